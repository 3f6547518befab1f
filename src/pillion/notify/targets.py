"""The notification targets: signal, HTTP, exec."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import random
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter

from pillion.config.redaction import redact_in, redact_url
from pillion.config.secrets import NotifyTargetConfig, SignalTargetConfig
from pillion.telemetry import Metrics

if TYPE_CHECKING:
    import aiohttp  # loaded at start only when a target is HTTP: most pods have none

__all__ = ["Notifier", "NotifyFamilies", "find_processes"]

log = logging.getLogger("pillion.notify")

_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 30.0


class NotifyFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.notified = Counter(
            "pillion_notify",
            "App notifications, by target and result (ok, failed).",
            ["target", "result"],
            registry=registry,
        )


def find_processes(name: str, proc: str = "/proc") -> list[int]:
    """Pids of the processes named ``name``: their ``comm``, or their command's file
    name (``comm`` is cut at 15 characters). Pillion's own pid is left out."""
    found = []
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            comm = Path(proc, entry, "comm").read_text().strip()
            argv0 = Path(proc, entry, "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if comm == name or os.path.basename(argv0.decode(errors="replace")) == name:
            found.append(int(entry))
    return found


def _signal_pids(config: SignalTargetConfig) -> list[int]:
    if config.pid_file is not None:
        try:
            return [int(Path(config.pid_file).read_text().strip())]
        except (OSError, ValueError) as exc:
            raise OSError(f"pid file {config.pid_file}: {exc}") from None
    assert config.process is not None
    return find_processes(config.process)


class Notifier:
    """Runs the app's notification targets by name."""

    def __init__(self, targets: list[NotifyTargetConfig], metrics: Metrics) -> None:
        self.targets = {target.name: target for target in targets}
        self._families = metrics.family("notify", NotifyFamilies)
        self._pending: dict[str, asyncio.Task[bool]] = {}
        self._session: aiohttp.ClientSession | None = None
        if any(target.http is not None for target in targets):
            # loaded now, at start, rather than by the first notification on a loop
            # that may be serving requests by then (about 100 ms of imports)
            importlib.import_module("aiohttp")

    def notify(self, name: str) -> asyncio.Task[bool]:
        """Notify target ``name`` (after its splay); a notification already pending for
        it covers this one. The task's result says whether it worked."""
        pending = self._pending.get(name)
        if pending is not None and not pending.done():
            return pending
        task = asyncio.create_task(self._run(name))
        self._pending[name] = task
        return task

    async def _run(self, name: str) -> bool:
        target = self.targets[name]
        if target.splay > 0:
            await asyncio.sleep(random.uniform(0, target.splay))  # noqa: S311 - spreading
        self._pending.pop(name, None)  # changes from here on need a new notification
        try:
            if target.signal is not None:
                await self._signal(target.signal)
            elif target.http is not None:
                await self._http(target)
            else:
                await self._exec(target)
        except (OSError, RuntimeError, TimeoutError) as exc:
            log.error("notification failed", extra={"target": name, "error": str(exc)})
            self._families.notified.labels(name, "failed").inc()
            return False
        log.info("app notified", extra={"target": name})
        self._families.notified.labels(name, "ok").inc()
        return True

    async def _signal(self, config: SignalTargetConfig) -> None:
        number = signal.Signals[f"SIG{config.signal.upper().removeprefix('SIG')}"]
        pids = _signal_pids(config)
        if not pids:
            raise RuntimeError(f"no process named {config.process}")
        for pid in pids:
            os.kill(pid, number)

    async def _http(self, target: NotifyTargetConfig) -> None:
        import aiohttp

        config = target.http
        assert config is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        headers = {name: value.get_secret_value() for name, value in config.headers.items()}
        delay = _BACKOFF_FIRST
        problem = ""
        for attempt in range(config.attempts):
            if attempt:
                await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311
                delay = min(delay * 2, _BACKOFF_MAX)
            try:
                async with self._session.request(
                    config.method,
                    config.url,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=config.timeout),
                ) as answer:
                    if 200 <= answer.status < 300:
                        return
                    problem = f"answered {answer.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
        problem = redact_in(problem, config.url)
        raise RuntimeError(
            f"{config.method} {redact_url(config.url)}: {problem} ({config.attempts} tries)"
        )

    async def _exec(self, target: NotifyTargetConfig) -> None:
        config = target.exec
        assert config is not None
        process = await asyncio.create_subprocess_exec(
            *config.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(config.timeout):
                _, stderr = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise TimeoutError(f"{config.command[0]}: killed after {config.timeout}s") from None
        if process.returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-200:]
            raise RuntimeError(f"{config.command[0]} exited {process.returncode}: {tail}")

    async def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._pending.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
