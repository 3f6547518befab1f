"""The process's first step, before anything heavy is imported.

``pillion run`` (the sidecar) takes its stop signals at once: a SIGTERM or SIGINT
that comes while it loads (about half a second of imports and config) ends it
cleanly, exit 0, as nothing has started yet; without this, Python's default would
kill it (exit 143), and as a container's PID 1 with no handler the kernel would
drop the signal and the container would wait for SIGKILL. The supervisor's own
handlers replace these once it runs. Other commands keep Python's defaults.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

__all__ = ["main"]


def main() -> None:
    """The ``pillion`` console script and ``python -m pillion``."""
    if sys.argv[1:2] == ["run"] and "--once" not in sys.argv:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _stop_before_start)
    from pillion.cli import main as cli

    cli()


def _stop_before_start(signum: int, frame: FrameType | None) -> None:
    os._exit(0)  # nothing started: nothing to drain or flush
