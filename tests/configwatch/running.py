"""A real Pillion for the config tests, with one notification target (``app``) that
appends a line to ``notified`` for every notification."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from tests.helpers import PillionProcess, free_port, http, metric_value, write_config


def start(
    tmp_path: Path,
    section: str,
    wrapper: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> PillionProcess:
    admin, status = free_port(), free_port()
    config = write_config(
        tmp_path,
        f"""
admin: {{listen: 127.0.0.1:{admin}}}
status: {{listen: 127.0.0.1:{status}}}
app:
  notify:
    - {{name: app, exec: {{command: [sh, -c, "echo x >> {tmp_path}/notified"]}}}}
{section}""",
    )
    process = PillionProcess(config, admin, status, env=env, wrapper=wrapper).start()
    process.wait_ready()
    return process


def notified(tmp_path: Path) -> int:
    path = tmp_path / "notified"
    return len(path.read_text().splitlines()) if path.exists() else 0


def metric(process: PillionProcess, series: str) -> float | None:
    return metric_value(http("GET", f"{process.status_url}/metrics")[2], series)


def settle(seconds: float = 1.0) -> None:
    """Give a notification that should not come the time to come anyway."""
    time.sleep(seconds)
