"""``proxy.workers > 1``: the proxy as N child processes, kept alive.

Each worker binds the same listeners with ``SO_REUSEPORT`` (the kernel spreads
connections), so one dying does not close a port; the others keep serving while
it is restarted (after a short, growing pause if it keeps dying). Ready when
every worker is. Drain sends SIGTERM to all: each drains like a single proxy.
Metrics: workers write to the supervisor's multiprocess directory, merged on scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys

from prometheus_client import CollectorRegistry, Counter

from pillion.components import Component, ComponentStartError
from pillion.config import PillionConfig
from pillion.config.redaction import REVEAL
from pillion.telemetry import Metrics

__all__ = ["ProxyWorkers"]

log = logging.getLogger("pillion.proxy")

START_TIMEOUT = 30.0
MAX_RESTART_PAUSE = 10.0


def _restarts_family(registry: CollectorRegistry) -> Counter:
    return Counter(
        "pillion_proxy_worker_restarts",
        "Proxy worker processes restarted after they died.",
        registry=registry,
    )


async def _read_line(fd: int, seconds: float) -> bytes:
    """What a worker writes next on its pipe (``b""``: it closed, or ``seconds`` passed)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, ready)
    try:
        async with asyncio.timeout(seconds):
            await readable
    except TimeoutError:
        return b""
    finally:
        loop.remove_reader(fd)
    try:
        return os.read(fd, 64)
    except BlockingIOError:
        return b""


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.ready = False
        self.failures = 0
        self.status_fd: int | None = None  # the read end of the worker's ready pipe

    def close_status(self) -> None:
        if self.status_fd is not None:
            os.close(self.status_fd)
            self.status_fd = None


class ProxyWorkers(Component):
    kind = "traffic"

    def __init__(self, config: PillionConfig, metrics: Metrics) -> None:
        assert config.proxy is not None
        self.name = "proxy"
        self._config = config
        self._payload = json.dumps(
            config.model_dump(
                mode="json", include={"app", "proxy", "lifecycle", "telemetry"}, context=REVEAL
            )
        ).encode()
        self._metrics = metrics
        self._directory = metrics.multiprocess_dir()
        self._restarts = metrics.family("proxy_worker_restarts", _restarts_family)
        self._workers = [_Worker(index) for index in range(config.proxy.workers)]
        self._monitors: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def ready(self) -> bool:
        return self._started and not self._stopping and all(w.ready for w in self._workers)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process and w.process.returncode is None]

    async def start(self) -> None:
        try:
            for worker in self._workers:
                await self._spawn(worker)
        except ComponentStartError:
            await self.close()
            raise
        for worker in self._workers:
            self._watch(worker)
        self._started = True
        log.info("workers started", extra={"workers": len(self._workers), "pids": self.pids})

    async def _spawn(self, worker: _Worker) -> None:
        """Start one worker and wait until it listens; raise if it cannot."""
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pillion.proxy.worker_main",
                "--index", str(worker.index), "--ready-fd", str(write_fd),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": self._directory},
            )  # fmt: skip
        finally:
            os.close(write_fd)
        worker.process = process
        assert process.stdin is not None
        process.stdin.write(self._payload)
        process.stdin.close()
        worker.close_status()  # a restarted worker's predecessor's
        worker.status_fd = read_fd
        line = await _read_line(read_fd, START_TIMEOUT)
        if line != b"ready\n":
            worker.close_status()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await process.wait()
            raise ComponentStartError(
                "proxy", f"worker {worker.index} did not start (exit code {code}; see its log)"
            )
        worker.ready = True

    def _watch(self, worker: _Worker) -> None:
        task = asyncio.get_running_loop().create_task(self._monitor(worker))
        self._monitors.add(task)
        task.add_done_callback(self._monitors.discard)

    async def _monitor(self, worker: _Worker) -> None:
        """Restart ``worker`` whenever it dies, until the proxy stops."""
        while not self._stopping:
            process = worker.process
            assert process is not None
            code = await process.wait()
            worker.ready = False
            self._metrics.worker_exited(process.pid)
            if self._stopping:
                return
            worker.failures += 1
            pause = min(MAX_RESTART_PAUSE, 0.1 * 2 ** (worker.failures - 1))
            log.error(
                "worker died; restarting it",
                extra={"worker": worker.index, "pid": process.pid, "exit_code": code,
                       "pause_seconds": pause},
            )  # fmt: skip
            self._restarts.inc()
            await asyncio.sleep(pause)
            try:
                await self._spawn(worker)
            except ComponentStartError as exc:
                log.error("worker restart failed", extra={"error": exc.reason})
                continue
            worker.failures = 0
            log.info("worker restarted", extra={"worker": worker.index, "pids": self.pids})

    async def drain_inbound(self, deadline: float) -> None:
        """Each worker closes its inbound listeners (SIGUSR1) and says ``drained`` on
        its pipe once their requests are done; this returns when all have (a worker
        that dies meanwhile counts as done), or at ``deadline``."""
        told = []
        for worker in self._workers:
            process = worker.process
            if process is None or process.returncode is not None or worker.status_fd is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGUSR1)
                told.append(worker.status_fd)
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        await asyncio.gather(*(_read_line(fd, remaining) for fd in told))

    async def drain(self, deadline: float) -> None:
        self._stopping = True
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        waits = [w.process.wait() for w in self._workers if w.process is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining + 1.0):
                await asyncio.gather(*waits)

    async def close(self) -> None:
        self._stopping = True
        for task in list(self._monitors):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in self._workers:
            process = worker.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            if process is not None:
                self._metrics.worker_exited(process.pid)
            worker.close_status()
        self._started = False

    def can_reconfigure(self, config: PillionConfig) -> bool:
        keys = {"app", "proxy", "lifecycle", "telemetry"}
        return config.model_dump(include=keys, context=REVEAL) == self._config.model_dump(
            include=keys, context=REVEAL
        )

    def reconfigure(self, config: PillionConfig) -> None:
        """Nothing to do: only called when the workers' settings are unchanged."""
