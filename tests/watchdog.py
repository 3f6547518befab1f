"""A last guard for the suite: a test still running long after its own timeout
(its cleanup stuck where pytest-timeout's signal cannot reach: a child in the
kernel, a thread holding a lock) stops the whole run at once, with what is needed
to find it, instead of letting it hang until CI kills it without a word.

The report is written straight to the original stderr, most useful last (CI keeps
the tail): the other threads' stacks, the main thread's stack, the test's child
processes with their state and kernel wait channel, and the test's id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator

import pytest

__all__ = ["STUCK_FACTOR", "pytest_runtest_protocol"]

STUCK_FACTOR = 4  # times the test's own timeout
_STUCK_MINIMUM = 180.0  # seconds


def _limit(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    own = float(marker.args[0]) if marker and marker.args else 0.0
    ini = float(item.config.getini("timeout") or 0)
    return max(_STUCK_MINIMUM, STUCK_FACTOR * max(own, ini))


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in map(int, children.read().split()):
                    found += [child, *_descendants(child)]
        except OSError:
            continue
    return found


def _report(config: pytest.Config, nodeid: str, limit: float, main: int) -> None:
    out: list[str] = [f"\n==== watchdog: {nodeid} still running after {limit:.0f} s ===="]
    frames = sys._current_frames()
    for ident, frame in frames.items():
        if ident not in (main, threading.get_ident()):
            out.append(f"-- thread {ident}:")
            out += [line.rstrip() for line in traceback.format_stack(frame)[-6:]]
    if main in frames:
        out.append("-- main thread:")
        out += [line.rstrip() for line in traceback.format_stack(frames[main])[-8:]]
    children = _descendants(os.getpid())
    if children:
        listing = subprocess.run(
            ["ps", "-o", "pid,stat,wchan:24,etime,args", "-p", ",".join(map(str, children))],
            capture_output=True,
            text=True,
            check=False,
        )
        out += ["-- child processes:", *(line[:200] for line in listing.stdout.splitlines())]
    out.append(f"==== watchdog: stopping the run; stuck in {nodeid} ====\n")
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=False)  # stderr is the terminal's again
    os.write(2, "\n".join(out).encode(errors="replace"))
    for child in children:
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)
    os._exit(70)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    limit = _limit(item)
    watchdog = threading.Timer(
        limit, _report, args=(item.config, item.nodeid, limit, threading.get_ident())
    )
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
