"""The supervisor's logic, in process, with recording components.

The components here are test doubles of *our own* interface (not of any
network code): they record what the supervisor asks of them, in order.
"""

from __future__ import annotations

import asyncio

import pytest

from pillion.components import Component, ComponentKind, ComponentStartError
from pillion.config import PillionConfig, parse_config
from pillion.runtime.control import Control
from pillion.runtime.supervisor import Supervisor
from pillion.telemetry import Metrics
from tests.helpers import async_wait_until


class Recorder(Component):
    def __init__(
        self,
        name: str,
        journal: list[str],
        kind: ComponentKind = "traffic",
        fail: bool = False,
        drain_time: float = 0.0,
        in_place: bool = True,
    ) -> None:
        self.name = name
        self.kind = kind
        self.journal = journal
        self.fail = fail
        self.drain_time = drain_time
        self.in_place = in_place
        self._started = False
        self.drain_finished = False

    async def start(self) -> None:
        self.journal.append(f"start {self.name}")
        if self.fail:
            raise ComponentStartError(self.name, "cannot listen on 127.0.0.1:1: test")
        self._started = True

    @property
    def started(self) -> bool:
        return self._started

    async def drain(self, deadline: float) -> None:
        self.journal.append(f"drain {self.name}")
        await asyncio.sleep(self.drain_time)
        self.drain_finished = True

    async def close(self) -> None:
        self.journal.append(f"close {self.name}")
        self._started = False

    def can_reconfigure(self, config: PillionConfig) -> bool:
        return self.in_place

    def reconfigure(self, config: PillionConfig) -> None:
        self.journal.append(f"reconfigure {self.name}")


async def run_until_started(supervisor: Supervisor) -> asyncio.Task[int]:
    """Run the supervisor; return once its startup probe would pass, as a kubelet sees it."""
    task = asyncio.create_task(supervisor.run())
    while not supervisor.health().started:
        assert not task.done(), task.result()
        await asyncio.sleep(0.01)
    return task


CONFIG = parse_config("lifecycle:\n  drain_timeout: 5s\n", "test", {})


def builder(journal: list[str], **overrides: dict[str, object]) -> object:
    def build(config: PillionConfig, control: Control, metrics: Metrics) -> list[Component]:
        specs: list[tuple[str, ComponentKind]] = [
            ("status", "control"),
            ("admin", "control"),
            ("secrets", "traffic"),
            ("proxy", "traffic"),
            ("logs", "traffic"),
        ]
        return [
            Recorder(name, journal, kind, **overrides.get(name, {}))  # type: ignore[arg-type]
            for name, kind in specs
        ]

    return build


async def test_starts_in_order_and_drains_traffic_first_then_admin_then_status() -> None:
    journal: list[str] = []
    supervisor = Supervisor(CONFIG, build=builder(journal))  # type: ignore[arg-type]
    task = await run_until_started(supervisor)
    assert supervisor.health().ready
    supervisor.request_exit()
    assert await task == 0
    assert journal == [
        "start status", "start admin", "start secrets", "start proxy", "start logs",
        "drain logs", "close logs", "drain proxy", "close proxy", "drain secrets", "close secrets",
        "drain admin", "close admin", "drain status", "close status",
    ]  # fmt: skip


async def test_start_failure_stops_what_started_and_exits_1() -> None:
    journal: list[str] = []
    build = builder(journal, proxy={"fail": True})
    supervisor = Supervisor(CONFIG, build=build)  # type: ignore[arg-type]
    assert await supervisor.run() == 1
    assert journal == [
        "start status", "start admin", "start secrets", "start proxy",
        "close proxy",
        "drain secrets", "close secrets",
        "drain admin", "close admin", "drain status", "close status",
    ]  # fmt: skip
    health = supervisor.health()
    assert health.components["proxy"].state == "failed"
    assert not health.live


async def test_drain_request_fails_readiness_but_keeps_running() -> None:
    journal: list[str] = []
    supervisor = Supervisor(CONFIG, build=builder(journal))  # type: ignore[arg-type]
    task = await run_until_started(supervisor)
    supervisor.begin_drain()
    await async_wait_until(lambda: "drain secrets" in journal)  # the last traffic component
    health = supervisor.health()
    assert health.draining
    assert not health.ready
    assert health.live
    assert health.components["admin"].state == "running"
    assert health.components["proxy"].state == "draining"
    assert "drain admin" not in journal
    supervisor.request_exit()
    assert await task == 0
    assert journal.count("drain proxy") == 1  # drained once, not again at exit


async def test_drain_is_bounded_by_the_deadline() -> None:
    journal: list[str] = []
    config = parse_config("lifecycle:\n  drain_timeout: 100ms\n", "test", {})
    build = builder(journal, proxy={"drain_time": 60.0})
    supervisor = Supervisor(config, build=build)  # type: ignore[arg-type]
    task = await run_until_started(supervisor)
    supervisor.request_exit()
    assert await asyncio.wait_for(task, 10) == 0
    assert "close status" in journal


async def test_second_stop_request_cuts_the_drain_short() -> None:
    journal: list[str] = []
    config = parse_config("lifecycle:\n  drain_timeout: 1h\n", "test", {})
    build = builder(journal, proxy={"drain_time": 3600.0})
    supervisor = Supervisor(config, build=build)  # type: ignore[arg-type]
    task = await run_until_started(supervisor)
    supervisor.request_exit()
    await async_wait_until(lambda: "drain proxy" in journal)  # its drain takes an hour
    assert not task.done()
    supervisor.request_exit()
    assert await asyncio.wait_for(task, 10) == 0
    assert journal[-1] == "close status"


async def test_components_that_finish_draining_in_time_are_not_cut() -> None:
    journal: list[str] = []
    build = builder(journal, proxy={"drain_time": 0.2})
    supervisor = Supervisor(CONFIG, build=build)  # type: ignore[arg-type]
    task = await run_until_started(supervisor)
    proxy = next(c for c in supervisor.components if c.name == "proxy")
    supervisor.request_exit()
    assert await task == 0
    assert isinstance(proxy, Recorder)
    assert proxy.drain_finished


async def test_reload_in_place_and_replacement(tmp_path: pytest.TempPathFactory) -> None:
    journal: list[str] = []
    path = tmp_path / "p.yaml"  # type: ignore[operator]
    path.write_text("lifecycle:\n  drain_timeout: 5s\ntelemetry:\n  log_level: debug\n")
    build = builder(journal, proxy={"in_place": False})
    supervisor = Supervisor(CONFIG, str(path), build=build)  # type: ignore[arg-type]
    await supervisor.start()
    old_proxy = next(c for c in supervisor.components if c.name == "proxy")
    journal.clear()
    assert await supervisor.reload()
    new_proxy = next(c for c in supervisor.components if c.name == "proxy")
    assert new_proxy is not old_proxy
    assert journal == [
        "start proxy", "reconfigure status", "reconfigure admin", "reconfigure secrets",
        "reconfigure logs", "drain proxy", "close proxy",
    ]  # fmt: skip
    assert supervisor.config.telemetry.log_level == "debug"
    assert supervisor.health().components["proxy"].state == "running"
    assert _sample(supervisor.metrics, "pillion_config_reloads_total", result="success") == 1


async def test_reload_with_failing_replacement_keeps_the_old_components(
    tmp_path: pytest.TempPathFactory,
) -> None:
    journal: list[str] = []
    path = tmp_path / "p.yaml"  # type: ignore[operator]
    path.write_text("app:\n  port: 9999\n")
    build = builder(journal, proxy={"in_place": False, "fail": False})
    supervisor = Supervisor(CONFIG, str(path), build=build)  # type: ignore[arg-type]
    await supervisor.start()
    before = list(supervisor.components)
    supervisor._build = builder(  # type: ignore[assignment]
        journal, proxy={"in_place": False, "fail": True}, logs={"in_place": False}
    )
    journal.clear()
    assert not await supervisor.reload()
    assert supervisor.components == before
    assert supervisor.config.app.port == 8080
    assert "reconfigure" not in " ".join(journal)
    assert _sample(supervisor.metrics, "pillion_config_reloads_total", result="error") == 1


async def test_reload_with_invalid_file_keeps_the_old_config(
    tmp_path: pytest.TempPathFactory,
) -> None:
    journal: list[str] = []
    path = tmp_path / "p.yaml"  # type: ignore[operator]
    path.write_text("app:\n  port: nope\n")
    supervisor = Supervisor(CONFIG, str(path), build=builder(journal))  # type: ignore[arg-type]
    await supervisor.start()
    journal.clear()
    assert not await supervisor.reload()
    assert journal == []
    assert supervisor.config is CONFIG
    assert _sample(supervisor.metrics, "pillion_config_last_reload_successful") == 0


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


class SlowStart(Recorder):
    """A replacement whose start waits for ``go``: a reload caught mid-way."""

    go = asyncio.Event()

    async def start(self) -> None:
        self.journal.append(f"starting {self.name}")
        await self.go.wait()
        await super().start()


async def test_a_stop_during_a_reload_drops_the_reload_and_drains_the_old_components(
    tmp_path: pytest.TempPathFactory,
) -> None:
    journal: list[str] = []
    path = tmp_path / "p.yaml"  # type: ignore[operator]
    path.write_text("lifecycle:\n  drain_timeout: 5s\ntelemetry:\n  log_level: debug\n")
    first = True

    def build(config: PillionConfig, control: Control, metrics: Metrics) -> list[Component]:
        nonlocal first
        made: list[Component] = [Recorder("status", journal, "control")]
        made.append(Recorder("proxy", journal, in_place=False) if first
                    else SlowStart("proxy", journal, in_place=False))  # fmt: skip
        first = False
        return made

    SlowStart.go = asyncio.Event()
    supervisor = Supervisor(CONFIG, str(path), build=build)
    task = await run_until_started(supervisor)
    old_proxy = next(c for c in supervisor.components if c.name == "proxy")
    reloading = asyncio.create_task(supervisor.reload())
    await async_wait_until(lambda: "starting proxy" in journal)
    supervisor.request_exit()
    await async_wait_until(lambda: "drain proxy" in journal)  # the old one, still serving
    SlowStart.go.set()
    assert await reloading is False  # dropped: nothing new runs while stopping
    assert await task == 0
    # the old proxy served until it was drained; the new one was closed as it started
    assert journal[:2] == ["start status", "start proxy"]
    assert journal.count("drain proxy") == 1
    assert journal.index("drain proxy") < journal.index("close proxy")
    assert journal[-2:] == ["start proxy", "close proxy"]
    assert supervisor.config is CONFIG  # the reload never took
    assert supervisor.components[1] is old_proxy
