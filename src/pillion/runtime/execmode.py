"""``pillion exec -- CMD``: the app as Pillion's child, with its secrets in its
environment.

The secrets are rendered first (as by ``pillion init``, within
``init_timeout``); then CMD starts with the variables of the templates named in
``secrets.exec.environment``. Pillion keeps the secrets fresh; when a rendered
file changes it restarts the child (SIGTERM, then SIGKILL after
``stop_timeout``), signals it, or does nothing, as configured. Signals Pillion
gets (TERM, INT, HUP, QUIT, USR1, USR2) are passed to the child, and Pillion
exits with the child's exit status (128 + N when a signal N ended it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import uvloop

from pillion.config import PillionConfig
from pillion.render.errors import RenderError
from pillion.render.sources import parse_dotenv
from pillion.secrets.component import SecretsComponent
from pillion.secrets.errors import SecretsError
from pillion.telemetry import Metrics, configure_logging

__all__ = ["run_exec"]

log = logging.getLogger("pillion.exec")

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2)  # fmt: skip


def run_exec(config: PillionConfig, command: list[str]) -> int:
    """Run ``command`` as a child until it exits; its exit status (1 when the secrets
    could not be rendered and the child never started)."""
    configure_logging(config.telemetry.log_level)
    code: int = uvloop.run(_Exec(config, command).run())
    return code


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class _Exec:
    def __init__(self, config: PillionConfig, command: list[str]) -> None:
        self.config = config
        self.command = command
        self.child: asyncio.subprocess.Process | None = None
        self.stopping = False  # a forwarded TERM/INT: the child's exit is the end
        self.restart = asyncio.Event()

    def _environment(self, secrets: SecretsComponent) -> dict[str, str]:
        assert self.config.secrets is not None
        environment = dict(os.environ)
        for name in self.config.secrets.exec.environment:
            try:
                environment.update(parse_dotenv(secrets.files.contents[name].decode()))
            except (ValueError, UnicodeDecodeError) as exc:
                raise SecretsError(f"template {name}: not KEY=value lines: {exc}") from None
        return environment

    async def run(self) -> int:
        if self.config.secrets is None:
            log.error("pillion exec needs a secrets section")
            return 2
        secrets = SecretsComponent(
            self.config.secrets, Metrics(process=False), notify=self.config.app.notify
        )
        settings = self.config.secrets.exec
        first = asyncio.Event()
        secrets.files.listeners.append(lambda names: self._changed(names, first))
        loop = asyncio.get_running_loop()
        for signum in _FORWARDED:
            loop.add_signal_handler(signum, self._forward, signum)
        try:
            await secrets.start()
            try:
                async with asyncio.timeout(self.config.secrets.init_timeout):
                    await first.wait()
            except TimeoutError:
                log.error("secrets not rendered in init_timeout; the command is not started")
                return 1
            if self.stopping:
                return _status(-signal.SIGTERM)
            while True:
                environment = self._environment(secrets)
                self.child = await asyncio.create_subprocess_exec(*self.command, env=environment)
                log.info("command started", extra={"pid": self.child.pid,
                                                   "command": self.command[0]})  # fmt: skip
                self.restart.clear()
                exited = asyncio.create_task(self.child.wait())
                restart = asyncio.create_task(self.restart.wait())
                await asyncio.wait({exited, restart}, return_when=asyncio.FIRST_COMPLETED)
                restart.cancel()
                if exited.done() and not self.restart.is_set():
                    code = _status(exited.result())
                    log.info("command exited", extra={"status": code})
                    return code
                log.info("secrets changed; restarting the command")
                await self._stop_child(settings.stop_timeout)
                if self.stopping:
                    return _status(self.child.returncode or 0)
        except (SecretsError, RenderError, OSError) as exc:
            log.error("pillion exec failed", extra={"error": str(exc)})
            return 1
        finally:
            for signum in _FORWARDED:
                loop.remove_signal_handler(signum)
            if self.child is not None and self.child.returncode is None:
                await self._stop_child(settings.stop_timeout)
            await secrets.close()

    def _changed(self, names: set[str], first: asyncio.Event) -> None:
        assert self.config.secrets is not None
        if not first.is_set():
            first.set()
            return
        settings = self.config.secrets.exec
        if self.child is None or self.child.returncode is not None:
            return
        if settings.on_change == "restart":
            self.restart.set()
        elif settings.on_change == "signal":
            name = settings.signal.upper().removeprefix("SIG")
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(signal.Signals[f"SIG{name}"])
        _ = names

    def _forward(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        if self.child is not None and self.child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(signum)

    async def _stop_child(self, grace: float) -> None:
        child = self.child
        if child is None or child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            async with asyncio.timeout(grace):
                await child.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
