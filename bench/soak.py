"""Soak: everything at once against one Pillion for a long time, faults on a schedule.

On 127.0.0.1 only, with free ports and a temp dir, it starts an upstream app
(``soak_app.py``: HTTP, WebSocket echo, TCP echo), a real OpenBao dev server, a
TCP syslog receiver, and ``pillion run --config FILE`` in front of them all. Then,
for ``--minutes``:

* traffic at steady rates through the inbound listener and an outbound listener:
  HTTP/1.1 on keep-alive connections, HTTP/1.1 with ``Connection: close``,
  WebSocket upgrades with echoes, and TCP echoes through two ``tcp`` listeners;
* the app's log file written at a steady rate, numbered lines, rotated every
  minute, by rename and by copytruncate in turn; Pillion ships them to the
  receiver, which counts lost and duplicated lines exactly;
* secrets renewed every 30 s against OpenBao (token, PKI certificate, KV secret)
  and rendered to files, which are watched;
* a config reload (SIGHUP after rewriting the file) every 60 s, a good file and a
  bad one in turn: the bad one must be refused and the old config keep serving;
* the upstream app killed (SIGKILL) every 5 minutes and started again after a few
  seconds;
* Pillion's RSS and open fds sampled every few seconds from /proc.

Every interval is multiplied by ``--scale`` (default: minutes / 5, at most 1, so
that a short run still sees every fault), and each can be set on its own. The
faults are out of step, so each one's effects can be told apart: rotations at
1, 2, 3... rotation intervals, reloads half a reload interval earlier (with
``--aligned``, at the same moments: a rename rotation then always meets a good
reload), upstream kills at 1/4, 5/4... of their interval (75 s, 375 s...).

It prints tables, the pass criteria, and last the line described in
``soak_results``. Exit status: 0 when every criterion passed, 1 when one failed
(named above the last line), 2 when the soak itself could not run, 130 when
interrupted. Every process started is stopped, and the temp dir removed, on every
way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any

from soak_app import AppError, AppProcess
from soak_logs import LogWriter, SyslogReceiver
from soak_pillion import (
    MAX_CONNECTIONS,
    Metrics,
    Paths,
    Pillion,
    PillionError,
    Ports,
    config_text,
    free_ports,
    metric,
)
from soak_proc import ProcSample, sample_process
from soak_report import report
from soak_results import Reload, Results, Window
from soak_schedule import Schedule, describe, every, schedule
from soak_secrets import OpenBao, OpenBaoError, SecretFiles
from soak_traffic import (
    Operation,
    Tally,
    Target,
    close_request,
    run_keepalive,
    run_open_loop,
    tcp_echo,
    websocket_echo,
)

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
END_MARGIN = 5.0  # no fault starts this close to the end
KEEPALIVE_CONNECTIONS = 2  # per HTTP listener
READY_TIMEOUT = 60.0
DRAIN_TIMEOUT = 30.0  # for the last log lines to arrive after the run


class HarnessError(Exception):
    """The soak could not run: not a finding about Pillion."""


class PillionDied(PillionError):
    """Pillion exited while being soaked: a finding, reported as a failed run."""


# --- the soak ----------------------------------------------------------------------------


@dataclass
class Soak:
    """Everything the run's tasks share."""

    args: argparse.Namespace
    plan: Schedule
    ports: Ports
    paths: Paths
    bao: OpenBao
    app: AppProcess
    pillion: Pillion
    writer: LogWriter
    receiver: SyslogReceiver
    files: SecretFiles
    hot_path: str = ""  # Pillion's compiled modules, as it says
    started: float = 0.0
    until: float = 0.0
    tallies: list[Tally] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    reloads: list[Reload] = field(default_factory=list)
    samples: list[ProcSample] = field(default_factory=list)
    max_connections: int = MAX_CONNECTIONS["base"]  # what Pillion runs with

    def port_names(self) -> dict[int, str]:
        """Each port the soak chose, by its role (for Pillion's sockets in /proc)."""
        names = {port: role for role, port in vars(self.ports).items()}
        return {**names, self.bao.port: "openbao", self.bao.port + 1: "openbao-cluster"}

    def config(self, variant: str) -> str:
        return config_text(self.ports, self.paths, self.bao.address, self.plan.renew, variant)

    # -- traffic --

    def traffic(self) -> list[Coroutine[Any, Any, None]]:
        a, until, timeout = self.args, self.until, self.args.op_timeout
        loops: list[Coroutine[Any, Any, None]] = []
        sides = [
            ("inbound", self.ports.inbound, self.ports.tcp_inbound),
            ("outbound", self.ports.outbound, self.ports.tcp_outbound),
        ]
        for side, http, tcp in sides:
            host = "app.soak" if side == "inbound" else "app"
            keepalive = self._tally(f"{side} http keep-alive")
            for _ in range(KEEPALIVE_CONNECTIONS):
                rate = a.http_rate / KEEPALIVE_CONNECTIONS
                target = Target(keepalive.kind, http, host)
                loops.append(run_keepalive(target, keepalive, rate, until, timeout))
            ops: list[tuple[str, int, Operation, float]] = [
                ("http close", http, close_request, a.close_rate),
                ("websocket", http, websocket_echo, a.ws_rate),
                ("tcp", tcp, tcp_echo, a.tcp_rate),
            ]
            for name, port, op, rate in ops:
                tally = self._tally(f"{side} {name}")
                target = Target(tally.kind, port, host)
                loops.append(run_open_loop(target, tally, op, rate, until, timeout))
        return loops

    def _tally(self, kind: str) -> Tally:
        self.tallies.append(Tally(kind))
        return self.tallies[-1]

    # -- faults --

    async def rotate(self, count: int) -> None:
        self.writer.rotate("rename" if count % 2 == 0 else "copytruncate")

    async def reload(self, count: int) -> None:
        """A good file, then a bad one, in turn; waits for Pillion's verdict."""
        good = count % 2 == 0
        variant = ("good-a" if count % 4 == 0 else "good-b") if good else "bad"
        expected = MAX_CONNECTIONS[variant] if good else self.max_connections
        at = time.monotonic()
        try:
            before = await self.pillion.metrics()
            self.pillion.write_config(self.config(variant))
            self.pillion.reload()
            result = await self._reload_result(before)
            dump = await self.pillion.config_dump()
            shown = int(dump["proxy"]["inbound"][0]["max_connections"])
        except (OSError, TimeoutError, PillionError, KeyError, ValueError) as exc:
            progress(f"reload {count}: no answer from Pillion: {exc!r}")
            self.reloads.append(Reload(at, good, "none", False))
            return
        self.max_connections = shown
        self.reloads.append(Reload(at, good, result, shown == expected))

    async def _reload_result(self, before: Metrics) -> str:
        """Which of Pillion's reload counters moved: success, error, or none in 30 s."""
        name = "pillion_config_reloads_total"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            after = await self.pillion.metrics()
            for result in ("success", "error"):
                if metric(after, name, result=result) > metric(before, name, result=result):
                    return result
        return "none"

    async def restart_app(self, _count: int) -> None:
        down = time.monotonic()
        self.app.kill()
        await asyncio.sleep(self.plan.down)
        self.app.start()
        try:
            await self.app.wait_up()
        finally:
            self.windows.append(Window(down, time.monotonic()))

    async def new_secret_version(self, count: int) -> None:
        await asyncio.to_thread(self.bao.put_version, count + 1)
        self.files.wrote_version(count + 1)

    # -- observation --

    async def sample(self, _count: int) -> None:
        if self.pillion.exit_reason() is None:
            self.samples.append(sample_process(self.pillion.pid, self.port_names()))

    async def poll_files(self, _count: int) -> None:
        self.files.poll()

    async def watch_pillion(self, _count: int) -> None:
        gone = self.pillion.exit_reason()
        if gone is not None:
            raise PillionDied(f"{gone} during the soak")

    # -- the run --

    async def run(self) -> None:
        self.started = time.monotonic()
        self.until = self.started + self.plan.seconds
        try:
            async with asyncio.TaskGroup() as group:
                self._start_tasks(group)
        except ExceptionGroup as failed:  # one task's failure ended them all: say which
            for exc in failed.exceptions:
                if isinstance(exc, HarnessError | PillionError | AppError):
                    raise exc from None
            raise

    def _start_tasks(self, group: asyncio.TaskGroup) -> None:
        p, start, end = self.plan, self.started, self.until
        faults = end - END_MARGIN
        for loop in [*self.traffic(), self.writer.run(end)]:
            group.create_task(loop)
        reload_first = p.reload if p.aligned else p.reload / 2
        group.create_task(every(p.rotate, start, faults, self.rotate, first=p.rotate))
        group.create_task(every(p.reload, start, faults, self.reload, first=reload_first))
        group.create_task(every(p.restart, start, faults, self.restart_app, first=p.restart / 4))
        group.create_task(every(p.renew, start, end, self.new_secret_version, first=p.renew))
        group.create_task(every(p.sample, start, end, self.sample, first=0.0))
        group.create_task(every(1.0, start, end, self.poll_files, first=0.0))
        group.create_task(every(1.0, start, end, self.watch_pillion, first=1.0))

    def results(self, metrics: Metrics, exit_code: int | None) -> Results:
        return Results(
            minutes=self.args.minutes,
            started=self.started,
            ended=self.until,
            warmup=self.plan.warmup,
            grace=self.args.grace,
            renew=self.plan.renew,
            tallies=self.tallies,
            windows=self.windows,
            writer=self.writer,
            receiver=self.receiver,
            reloads=self.reloads,
            files=self.files,
            metrics=metrics,
            samples=self.samples,
            pillion_exit=exit_code,
            pillion_log=self.pillion.log,
            hot_path=self.hot_path,
        )


def hot_path(pillion: Path) -> str:
    """What the Python next to ``pillion`` says of its compiled modules."""
    probe = "from pillion import extensions as e; print(e.describe())"
    try:
        done = subprocess.run(
            [str(pillion.parent / "python"), "-c", probe],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({type(exc).__name__})"
    return done.stdout.strip()


def progress(message: str) -> None:
    print(f"soak: {message}", file=sys.stderr, flush=True)


async def start_everything(
    args: argparse.Namespace, work: Path, stack: contextlib.ExitStack, receiver: SyslogReceiver
) -> Soak:
    """OpenBao, the app, Pillion: each registered on ``stack`` to be stopped."""
    plan = schedule(args)
    roles = [role.name for role in fields(Ports) if role.name != "syslog"]
    ports = Ports(**dict(zip(roles, free_ports(len(roles)), strict=True)), syslog=receiver.port)
    paths = Paths(work, work / "logs", work / "secrets", work / "vault-token")
    for directory in (paths.logs, paths.secrets, work / "state"):
        directory.mkdir()
    bao = OpenBao(work / "openbao")
    stack.callback(bao.stop)
    try:
        await asyncio.to_thread(bao.start)
        token = await asyncio.to_thread(bao.set_up, plan.renew)
    except (OpenBaoError, OSError) as exc:
        raise HarnessError(f"OpenBao: {exc}") from None
    paths.token.write_text(token + "\n")
    paths.token.chmod(0o600)
    app = AppProcess(ports.app_http, ports.app_tcp, work / "app.log")
    stack.callback(app.kill)
    app.start()
    try:
        await app.wait_up()
    except AppError as exc:
        raise HarnessError(str(exc)) from None
    writer = LogWriter(paths.logs, args.log_rate)
    stack.callback(writer.close)
    pillion = Pillion(args.pillion, work / "pillion.yaml", work / "pillion.log", ports)
    stack.callback(pillion.stop, 5.0)  # on the way out early; the normal end stops it first
    files = SecretFiles(paths.cert, paths.kv)
    soak = Soak(args, plan, ports, paths, bao, app, pillion, writer, receiver, files)
    soak.hot_path = hot_path(args.pillion)
    pillion.write_config(soak.config("base"))
    pillion.start()
    await pillion.wait_ready(READY_TIMEOUT)
    return soak


async def main_async(args: argparse.Namespace, work: Path, stack: contextlib.ExitStack) -> bool:
    receiver = SyslogReceiver()
    await receiver.start()
    try:
        soak = await start_everything(args, work, stack, receiver)
        progress(f"pillion ready (pid {soak.pillion.pid}); {describe(soak.plan)}")
        await soak.run()
        progress("traffic stopped; waiting for the last log lines")
        await receiver.wait_for(soak.writer.next_seq, DRAIN_TIMEOUT)
        soak.files.poll()
        metrics = await soak.pillion.metrics()
        exit_code = soak.pillion.stop()
    finally:
        await receiver.close()
    return report(soak.results(metrics, exit_code))


# --- entry point -------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    add = parser.add_argument
    add("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    add("--scale", type=float, help="multiplies every interval (default: minutes/5, at most 1)")
    add("--rotate-every", type=float, help="seconds between log rotations (default 60 x scale)")
    add("--reload-every", type=float, help="seconds between config reloads (default 60 x scale)")
    add("--renew-every", type=float, help="seconds between secret renewals (default 30 x scale)")
    add("--restart-every", type=float, help="seconds between upstream kills (default 300 x scale)")
    add("--down", type=float, default=3.0, help="seconds the upstream stays down (default 3)")
    add(
        "--grace",
        type=float,
        default=2.0,
        help="seconds after the upstream is back during which failures count as down",
    )
    add("--sample-every", type=float, default=5.0, help="seconds between RSS/fd samples")
    add("--http-rate", type=float, default=40.0, help="keep-alive requests/s per listener")
    add("--close-rate", type=float, default=10.0, help="Connection: close requests/s per listener")
    add("--ws-rate", type=float, default=2.0, help="WebSocket connections/s per listener")
    add("--tcp-rate", type=float, default=2.0, help="TCP connections/s per listener")
    add("--log-rate", type=float, default=100.0, help="log lines/s (default 100)")
    add("--op-timeout", type=float, default=5.0, help="seconds one request may take")
    add("--pillion", type=Path, default=REPO / ".venv" / "bin" / "pillion")
    add("--aligned", action="store_true", help="reloads at the same moments as rotations")
    add("--keep", action="store_true", help="keep the temp dir (its path is printed)")
    args = parser.parse_args(argv)
    if args.minutes < 0.5:
        parser.error("--minutes must be at least 0.5")
    rates = (args.http_rate, args.close_rate, args.ws_rate, args.tcp_rate, args.log_rate)
    if min(rates) <= 0 or (args.scale is not None and args.scale <= 0):
        parser.error("rates and --scale must be positive")
    return args


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in background
    work = Path(tempfile.mkdtemp(prefix="pillion-soak-"))
    try:
        with contextlib.ExitStack() as stack:
            passed = asyncio.run(main_async(args, work, stack))
    except PillionDied as exc:
        progress(f"FAIL: {exc}; the end of its log:\n{log_tail(work / 'pillion.log')}")
        return 1
    except (HarnessError, PillionError, AppError) as exc:
        progress(f"error: {exc}; the end of Pillion's log:\n{log_tail(work / 'pillion.log')}")
        return 2
    except KeyboardInterrupt:
        progress("interrupted; every process started was stopped")
        return 130
    finally:
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
