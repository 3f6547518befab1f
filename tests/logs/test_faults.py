"""The log pipeline's own files on a failing disk: a real Pillion, a real small
tmpfs (filled up, grown, remounted read-only), a real receiver on loopback, and
every line counted by its id on the receiving side.

- The disk buffer's file system fills: the inputs pause (the lines wait in their
  files), the reason is in ``/healthz/ready``'s body, a log line and the metrics;
  reading and delivery go on once there is space again, or once the output
  takes what is buffered; nothing is lost, nothing sent twice.
- The checkpoints' file system turns read-only or fills: delivery goes on, the
  saves fail and are retried, shown the same ways; once it is writable again the
  offsets are saved, and a SIGKILL then loses and repeats nothing.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PillionProcess, http, metric_value, running_pillion, wait_until
from tests.logs.mounts import fill, remount, tmpfs
from tests.logs.receiver import Receiver


def write(path: Path, ids: list[str], pad: int = 0) -> None:
    with path.open("a") as file:
        file.write("".join(f"{i}{' ' * pad}\n" for i in ids))


def batch(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:06d}" for n in range(count)]


def scrape(process: PillionProcess, series: str) -> float:
    return metric_value(http("GET", f"{process.status_url}/metrics")[2], series) or 0.0


def ready(process: PillionProcess) -> tuple[int, dict[str, Any]]:
    status, _, body = http("GET", f"{process.status_url}/healthz/ready")
    return status, json.loads(body)


def problems(process: PillionProcess) -> list[str]:
    return list(ready(process)[1]["components"]["logs"].get("problems", []))


LINES = 30_000  # about 3 MB of lines: far more than the 1 MiB the disk buffer has


@pytest.mark.parametrize("space", ["grows", "delivered"])
def test_a_full_disk_buffer_pauses_the_inputs_and_loses_nothing(tmp_path: Path, space: str) -> None:
    """The output is down, so the records go to the disk buffer until its tmpfs is
    full. Then either the file system grows (``grows``: reading goes on while the
    output is still down) or the output comes back (``delivered``: the disk stays
    full; what is delivered is deleted and its room used again)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    ids = [f"{n:06d}-{'x' * 80}" for n in range(LINES)]
    write(logs / "app.log", ids)
    with (
        tmpfs(tmp_path / "buffer", "1m") as disk,
        Receiver(accepting=False) as receiver,
    ):
        body = f"""
logs:
  checkpoints: {tmp_path}/state/logs.db
  memory_buffer: 64KiB
  disk_buffer: {{path: {disk}/buffer.db, max_size: 64MiB}}
  inputs: [{{name: app, paths: ["{logs}/*.log"], scan_interval: 50ms}}]
  outputs:
    - {{name: central, type: http, url: "{receiver.url}", compression: none,
        batch_timeout: 20ms}}
"""
        with running_pillion(tmp_path, body) as process:
            process.wait_for_log("disk buffer cannot be written; the inputs pause until it can")
            wait_until(lambda: scrape(process, 'pillion_logs_input_paused{input="app"}') == 1)
            assert scrape(process, 'pillion_logs_buffer_errors_total{reason="disk_full"}') >= 1
            assert scrape(process, "pillion_logs_buffer_full") == 1
            read = scrape(process, 'pillion_logs_input_records_total{input="app"}')
            assert read < LINES  # paused: the rest waits in the file
            status, health = ready(process)
            assert status == 200  # its own disk is no reason to take the pod out of service
            (problem,) = health["components"]["logs"]["problems"]
            assert problem.startswith(f"disk buffer {disk}/buffer.db: cannot write: ")
            assert "full" in problem
            assert problem.endswith("the inputs pause until it can be written")
            if space == "grows":
                remount(disk, "size=64m")
                wait_until(
                    lambda: (
                        scrape(process, 'pillion_logs_input_records_total{input="app"}') == LINES
                    )
                )
                assert receiver.ids() == {}  # all read and held while the output is down
            receiver.accepting = True
            wait_until(lambda: len(receiver.ids()) == LINES, timeout=60)
            process.wait_for_log("disk buffer written again; the inputs resume")
            wait_until(lambda: not problems(process))
            assert scrape(process, "pillion_logs_buffer_full") == 0
            assert scrape(process, 'pillion_logs_input_paused{input="app"}') == 0
        found = receiver.ids()
        assert set(found) == set(ids)
        assert set(found.values()) == {1}


def saved_offset(database: Path) -> int | None:
    """The offset saved for the one file, read without writing anything (the file
    system may be read-only): None while it cannot be read."""
    try:
        db = sqlite3.connect(f"file:{database}?immutable=1", uri=True)
        try:
            rows = db.execute("SELECT delivered FROM files").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return int(rows[0][0]) if len(rows) == 1 else None


def shipped(out: Path) -> list[str]:
    if not out.exists():
        return []
    return [json.loads(line)["message"] for line in out.read_bytes().splitlines()]


@pytest.mark.parametrize("fault", ["read_only", "disk_full"])
def test_checkpoints_that_cannot_be_saved_are_retried_and_nothing_is_lost(
    tmp_path: Path, fault: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app, out = logs / "app.log", tmp_path / "shipped.jsonl"
    with tmpfs(tmp_path / "state", "1m") as state:
        body = f"""
logs:
  checkpoints: {state}/logs.db
  disk_buffer: {{path: {tmp_path}/spill/buffer.db}}
  inputs: [{{name: app, paths: ["{logs}/*.log"], scan_interval: 50ms}}]
  outputs: [{{name: archive, type: file, path: {out}, batch_timeout: 20ms}}]
"""
        with running_pillion(tmp_path, body) as process:
            write(app, batch("a", 200))
            wait_until(lambda: saved_offset(state / "logs.db") == app.stat().st_size)
            before = app.stat().st_size
            filler = None
            if fault == "read_only":
                remount(state, "ro")
            else:
                filler = fill(state)
            write(app, batch("b", 200))
            wait_until(lambda: set(batch("b", 200)) <= set(shipped(out)))  # delivery goes on
            process.wait_for_log("checkpoints cannot be saved; retrying at each save")
            failed = f'pillion_logs_checkpoint_errors_total{{reason="{fault}"}}'
            wait_until(lambda: scrape(process, failed) >= 2)  # and retried
            assert scrape(process, "pillion_logs_checkpoint_failing") == 1
            status, health = ready(process)
            assert status == 200
            (problem,) = health["components"]["logs"]["problems"]
            assert problem.startswith(f"checkpoints {state}/logs.db: cannot save: ")
            assert "retried at each save" in problem
            assert saved_offset(state / "logs.db") == before  # the old one, intact
            if filler is None:
                remount(state, "rw")
            else:
                filler.unlink()
            wait_until(lambda: saved_offset(state / "logs.db") == app.stat().st_size)
            process.wait_for_log("checkpoints saved again")
            wait_until(lambda: not problems(process))
            assert scrape(process, "pillion_logs_checkpoint_failing") == 0
            process.proc.send_signal(signal.SIGKILL)
            process.proc.wait()
        write(app, batch("c", 100))  # while it is down
        with running_pillion(tmp_path, body):
            wait_until(lambda: set(batch("c", 100)) <= set(shipped(out)))
    found = shipped(out)
    assert sorted(found) == sorted(batch("a", 200) + batch("b", 200) + batch("c", 100))
