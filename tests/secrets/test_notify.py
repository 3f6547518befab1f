"""Notification targets against real processes and a real HTTP server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pillion.config.secrets import NotifyTargetConfig
from pillion.notify import Notifier, find_processes
from pillion.telemetry import Metrics
from tests.helpers import async_wait_until, free_port, metric_value, wait_until

# A child that counts SIGHUPs in a file; its process name is set by exec -a.
COUNTER = """
import signal, sys, time
path = sys.argv[1]
count = 0
def hup(*_):
    global count
    count += 1
    open(path, "w").write(str(count))
signal.signal(signal.SIGHUP, hup)
open(path, "w").write("0")
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def app_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    counter = tmp_path / "hups"
    process = subprocess.Popen(
        ["bash", "-c", f'exec -a demo-app-xyz {sys.executable} -c "$0" "$1"', COUNTER,
         str(counter)]
    )  # fmt: skip
    wait_until(counter.exists, timeout=10)
    try:
        yield process, counter
    finally:
        process.kill()
        process.wait()


def target(**fields: Any) -> NotifyTargetConfig:
    return NotifyTargetConfig.model_validate({"name": "app", **fields})


async def notify_once(config: NotifyTargetConfig) -> tuple[bool, Metrics]:
    metrics = Metrics(process=False)
    notifier = Notifier([config], metrics)
    try:
        return await notifier.notify("app"), metrics
    finally:
        await notifier.close()


def count(metrics: Metrics, result: str) -> float | None:
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry)
    return metric_value(text, f'pillion_notify_total{{result="{result}",target="app"}}')


async def test_signal_by_process_name_and_by_pid_file(
    tmp_path: Path, app_process: tuple[subprocess.Popen[bytes], Path]
) -> None:
    process, counter = app_process
    assert find_processes("demo-app-xyz") == [process.pid]
    ok, metrics = await notify_once(target(signal={"process": "demo-app-xyz"}))
    assert ok
    await async_wait_until(lambda: counter.read_text() == "1")
    pid_file = tmp_path / "app.pid"
    pid_file.write_text(f"{process.pid}\n")
    ok, metrics = await notify_once(target(signal={"pid_file": str(pid_file)}))
    assert ok
    await async_wait_until(lambda: counter.read_text() == "2")
    assert count(metrics, "ok") == 1.0


async def test_signal_to_a_missing_process_fails_and_is_counted(tmp_path: Path) -> None:
    ok, metrics = await notify_once(target(signal={"process": "no-such-proc-xyz"}))
    assert not ok
    assert count(metrics, "failed") == 1.0
    ok, _ = await notify_once(target(signal={"pid_file": str(tmp_path / "none.pid")}))
    assert not ok


async def test_http_is_retried_until_2xx() -> None:
    calls: list[str] = []

    async def reload(request: web.Request) -> web.Response:
        calls.append(request.headers.get("Authorization", ""))
        return web.Response(status=503 if len(calls) < 3 else 200)

    app = web.Application()
    app.router.add_post("/-/reload", reload)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        url = f"http://127.0.0.1:{port}/-/reload"
        ok, metrics = await notify_once(
            target(http={"url": url, "headers": {"Authorization": "Bearer t0k"}})
        )
        failed, failed_metrics = await notify_once(
            target(http={"url": f"http://127.0.0.1:{port}/missing", "attempts": 2})
        )
    finally:
        await runner.cleanup()
    assert ok
    assert calls == ["Bearer t0k"] * 3
    assert count(metrics, "ok") == 1.0
    assert not failed
    assert count(failed_metrics, "failed") == 1.0


async def test_exec_with_a_timeout(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    ok, _ = await notify_once(target(exec={"command": ["touch", str(marker)]}))
    assert ok
    assert marker.exists()
    ok, _ = await notify_once(target(exec={"command": ["sh", "-c", "exit 3"]}))
    assert not ok
    # killed at its timeout: had it been waited for, sleep would have exited 0
    ok, _ = await notify_once(target(exec={"command": ["sleep", "30"], "timeout": "200ms"}))
    assert not ok


async def test_notifications_while_one_is_pending_are_merged(tmp_path: Path) -> None:
    marker = tmp_path / "count"
    notifier = Notifier(
        [target(exec={"command": ["sh", "-c", f"echo x >> {marker}"]}, splay="300ms")],
        Metrics(process=False),
    )
    try:
        tasks = [notifier.notify("app") for _ in range(5)]
        assert len({id(task) for task in tasks}) == 1
        assert await tasks[0]
    finally:
        await notifier.close()
    assert marker.read_text() == "x\n"
