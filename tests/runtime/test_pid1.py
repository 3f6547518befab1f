"""Pillion as a container's PID 1 (a PID namespace of its own, as in a pod): a
SIGTERM at any moment once it runs ends it with exit 0. The kernel drops a signal
sent to a namespace's PID 1 that has no handler for it, so without handlers taken
at once, a stop while Pillion loads would be lost and the container killed later.

The moments are conditions, not delays: while it loads (its config is a FIFO the
test holds: Pillion has imported what it needs to read it, and waits), once the
status port answers (components starting), once it is ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import base_config, free_port, http, wait_until, write_config


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            found += [int(child) for child in children.read().split()]
    return found


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return dict(line.split(":\t", 1) for line in status.read().splitlines() if ":\t" in line)


def _handles_term(pid: int) -> bool:
    caught = int(_status(pid).get("SigCgt", "0"), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _answers(url: str, *statuses: int) -> bool:
    try:
        return http("GET", url, timeout=1)[0] in statuses
    except OSError:
        return False


@pytest.mark.parametrize("moment", ["loading", "live", "ready"])
def test_a_stop_at_any_moment_ends_pid_1_with_exit_0(tmp_path: Path, moment: str) -> None:
    admin, status = free_port(), free_port()
    text = base_config(admin, status)
    config = tmp_path / "pillion.yaml"
    if moment == "loading":
        os.mkfifo(config)
    else:
        write_config(tmp_path, text)
    namespace = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
         sys.executable, "-m", "pillion", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _children(namespace.pid))
        (pillion,) = _children(namespace.pid)
        assert _status(pillion)["NSpid"].split()[-1] == "1"  # PID 1 in its namespace
        if moment == "loading":
            with config.open("w") as fifo:  # returns once Pillion opened it to read
                assert _handles_term(pillion)
                os.kill(pillion, signal.SIGTERM)
                fifo.write(text)  # if the stop were lost, it would go on and serve
        else:
            url = f"http://127.0.0.1:{status}/healthz/" + moment
            wait_until(lambda: _answers(url, 200))
            os.kill(pillion, signal.SIGTERM)
        code = namespace.wait(timeout=30)
        assert code == 0, namespace.stderr.read() if namespace.stderr else ""
    finally:
        if namespace.poll() is None:
            namespace.kill()
            namespace.wait()
