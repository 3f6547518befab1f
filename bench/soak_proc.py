"""Pillion's resources as ``/proc`` shows them: RSS, and its open file descriptors
by kind, sockets named by the ports they join (``tcp inbound<-client``), so that
descriptors that pile up can be told apart from those that come and go."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


@dataclass(frozen=True)
class ProcSample:
    at: float  # time.monotonic()
    rss_kib: int
    fds: int
    kinds: Counter[str] = field(default_factory=Counter)  # open descriptors by kind


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found = [root]
    index = 0
    while index < len(found):
        found += children.get(found[index], [])
        index += 1
    return found


def tcp_sockets(pid: int) -> dict[str, tuple[int, int, str]]:
    """Socket inode -> (local port, remote port, state), from the process's netns."""
    sockets: dict[str, tuple[int, int, str]] = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
                state = TCP_STATES.get(fields[3], fields[3])
                sockets[fields[9]] = (int(local, 16), int(remote, 16), state)
    return sockets


def fd_kind(target: str, sockets: dict[str, tuple[int, int, str]], names: dict[int, str]) -> str:
    """What one descriptor is: a path, ``pipe``, ``anon_inode:[...]``, or a TCP socket
    with its ports' names (``client`` for a port the soak did not choose)."""
    if target.startswith("socket:["):
        found = sockets.get(target[8:-1])
        if found is None:
            return "socket (not TCP)"
        local, remote, state = found
        if state == "LISTEN":
            return f"tcp listen {names.get(local, local)}"
        mine, peer = names.get(local, "client"), names.get(remote, "client")
        return f"tcp {mine}->{peer} {state}" if peer != "client" else f"tcp {mine}<-client {state}"
    if target.startswith("pipe:["):
        return "pipe"
    return target


def sample_process(root: int, names: dict[int, str]) -> ProcSample:
    """VmRSS and open file descriptors of ``root`` and its children, summed; ``names``
    gives the soak's ports their roles."""
    rss = 0
    kinds: Counter[str] = Counter()
    for pid in descendants(root):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            sockets = tcp_sockets(pid)
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    kinds[fd_kind(os.readlink(f"/proc/{pid}/fd/{fd}"), sockets, names)] += 1
    return ProcSample(time.monotonic(), rss, sum(kinds.values()), kinds)
