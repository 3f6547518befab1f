"""Running an example file for real: the file from ``examples/`` with only its
addresses and paths moved to the test's (each one checked to still be there, so a
test cannot run a stale copy), plus the admin and status servers on free loopback
ports."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import PillionProcess, free_port, started

__all__ = ["EXAMPLES", "ReloadEndpoint", "example_config", "running_example"]

EXAMPLES = Path(__file__).parents[2] / "examples"


def example_config(name: str, directory: Path, moves: Mapping[str, str]) -> tuple[Path, int, int]:
    """``examples/<name>`` with each ``old`` text replaced by ``new``, written to
    ``directory``; the admin and status servers are put on free ports. Returns the
    file and the two ports."""
    text = (EXAMPLES / name).read_text()
    for old, new in moves.items():
        assert old in text, f"examples/{name} no longer has {old!r}"
        text = text.replace(old, new)
    document = yaml.safe_load(text)
    assert "admin" not in document, "the harness sets the admin server"
    assert "status" not in document, "the harness sets the status server"
    admin_port, status_port = free_port(), free_port()
    text += f"\nadmin: {{listen: '127.0.0.1:{admin_port}'}}\n"
    text += f"status: {{listen: '127.0.0.1:{status_port}'}}\n"
    path = directory / name
    path.write_text(text)
    return path, admin_port, status_port


@contextlib.contextmanager
def running_example(
    name: str,
    directory: Path,
    moves: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    *,
    ready: bool = True,
) -> Iterator[PillionProcess]:
    """``pillion run`` of ``example_config(...)``, stopped on leaving the block."""
    path, admin_port, status_port = example_config(name, directory, moves)
    with started(PillionProcess(path, admin_port, status_port, env=env), ready=ready) as process:
        yield process


class ReloadEndpoint:
    """The app's reload endpoint: each ``POST`` is recorded, with its path, as
    ``snapshot()`` finds the app's files when the call comes. Serve ``handler``."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.calls: list[dict[str, Any]] = []
        lock, calls = threading.Lock(), self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                seen = {"path": self.path, **snapshot()}
                with lock:
                    calls.append(seen)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.handler = Handler
