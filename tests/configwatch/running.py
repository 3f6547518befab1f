"""A real Pillion for the config tests, with one notification target (``app``) that
appends a line to ``notified`` for every notification."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.helpers import PillionProcess, http, metric_value, running_pillion


@contextlib.contextmanager
def running(
    tmp_path: Path,
    section: str,
    wrapper: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[PillionProcess]:
    body = f"""
app:
  notify:
    - {{name: app, exec: {{command: [sh, -c, "echo x >> {tmp_path}/notified"]}}}}
{section}"""
    with running_pillion(tmp_path, body, env=env, wrapper=wrapper) as process:
        yield process


def notified(tmp_path: Path) -> int:
    path = tmp_path / "notified"
    return len(path.read_text().splitlines()) if path.exists() else 0


def metric(process: PillionProcess, series: str) -> float | None:
    return metric_value(http("GET", f"{process.status_url}/metrics")[2], series)


def settle(seconds: float = 1.0) -> None:
    """Give a notification that should not come the time to come anyway (there is
    no event to wait for when something must not happen)."""
    time.sleep(seconds)
