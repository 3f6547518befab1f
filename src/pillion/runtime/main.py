"""Run the sidecar in this process on uvloop, and return the exit code."""

from __future__ import annotations

import logging
import signal

import uvloop

from pillion.config import PillionConfig
from pillion.runtime.supervisor import Supervisor
from pillion.telemetry import configure_logging

__all__ = ["run_sidecar"]


def run_sidecar(config: PillionConfig, config_path: str | None) -> int:
    """Serve ``config`` until a stop signal; 0 after a clean drain, 1 on failure."""
    configure_logging(config.telemetry.log_level)
    logging.getLogger("pillion.supervisor").info(
        "starting", extra={"config": config_path or "(built-in)"}
    )
    exit_code: int = uvloop.run(Supervisor(config, config_path).run())
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # on the way out: a late signal changes nothing
    return exit_code
