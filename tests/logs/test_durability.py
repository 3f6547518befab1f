"""What survives a crash: the checkpoints' transaction, the disk buffer started
anew, and ``logs.fsync``'s modes, each against a real Pillion and real files.

A power loss itself cannot be made here (it needs the page cache thrown away
under a running kernel); what each mode promises for one is in
``docs/logs-durability.md``. What can be made is a process dying at the worst
moment: inside a checkpoint save (a subclass of ``Checkpoints``, in a child
process, dies just before or just after the commit), and SIGKILL with records
on the disk buffer whose file is then torn.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pillion.config.logs import LogOutputConfig, LogsConfig
from pillion.logs.buffer import Record
from pillion.logs.checkpoints import Checkpoints
from pillion.logs.component import LogsComponent
from pillion.logs.identity import FINGERPRINT_BYTES, fingerprint
from pillion.logs.outputs import FileSink, sink_for
from pillion.telemetry import Metrics
from tests.helpers import http, metric_value, running_pillion, wait_until
from tests.logs.receiver import Receiver

# A checkpoint save that dies at ``commit``: just before it (the transaction's rows
# written, not committed) or just after it (committed, the connection not closed,
# so the WAL not yet moved into the database).
DYING_SAVE = """
import os, sys
from pillion.logs.checkpoints import Checkpoints

class Dying(Checkpoints):
    when = ""

    def commit(self, db):
        if self.when == "before":
            os._exit(17)
        super().commit(db)
        if self.when == "after":
            os._exit(17)

database, device, inode, mark, path, first, second, when = sys.argv[1:]
key = (int(device), int(inode), mark)
checkpoints = Dying(database)
checkpoints.open()
checkpoints.save({key: (path, int(first))}, [])
checkpoints.when = when
checkpoints.save({key: (path, int(second))}, [])
"""


def write(path: Path, ids: list[str]) -> None:
    with path.open("a") as file:
        file.write("".join(f"{i}\n" for i in ids))


def batch(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:06d}" for n in range(count)]


def shipped(out: Path) -> list[str]:
    if not out.exists():
        return []
    return [json.loads(line)["message"] for line in out.read_bytes().splitlines()]


def config(tmp_path: Path, out: Path, extra: str = "") -> str:
    return f"""
logs:
  checkpoints: {tmp_path}/state/logs.db
{extra}  inputs: [{{name: app, paths: ["{tmp_path}/logs/*.log"], scan_interval: 50ms}}]
  outputs: [{{name: archive, type: file, path: {out}, batch_timeout: 20ms}}]
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_inside_a_checkpoint_save_keeps_one_whole_checkpoint(
    tmp_path: Path, when: str
) -> None:
    """Dead before the commit: the previous offsets, intact, and the lines after
    them are sent. Dead after it: the new offsets (the WAL is replayed), and
    nothing before them is sent again."""
    (tmp_path / "logs").mkdir()
    app, out, database = tmp_path / "logs" / "app.log", tmp_path / "out.jsonl", tmp_path / "state"
    database.mkdir()
    database = database / "logs.db"
    lines = batch("d", 100)
    write(app, lines)
    st = app.stat()
    with app.open("rb") as file:
        mark = fingerprint(file.read(FINGERPRINT_BYTES))
    assert mark is not None
    half = len("".join(f"{i}\n" for i in lines[:50]))
    child = subprocess.run(
        [sys.executable, "-c", DYING_SAVE, str(database), str(st.st_dev), str(st.st_ino),
         mark, str(app), str(half), str(st.st_size), when],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert child.returncode == 17, child.stderr
    saved = Checkpoints(str(database)).load()
    assert saved == {(st.st_dev, st.st_ino, mark): half if when == "before" else st.st_size}
    with running_pillion(tmp_path, config(tmp_path, out)):
        write(app, batch("e", 10))
        wait_until(lambda: set(batch("e", 10)) <= set(shipped(out)))
    expected = (lines[50:] if when == "before" else []) + batch("e", 10)
    assert shipped(out) == expected  # in order, none twice, none from before the checkpoint


def test_sigkill_with_records_on_a_torn_disk_buffer_loses_nothing(tmp_path: Path) -> None:
    """The output is down, the records are on the disk buffer; Pillion is killed and
    the buffer's file torn (as a power loss may leave it, unsynced): the next start
    makes a new one and reads the lines again from the checkpoints."""
    logs = tmp_path / "logs"
    logs.mkdir()
    ids = batch("k", 20_000)
    write(logs / "app.log", ids)
    with Receiver(accepting=False) as receiver:
        body = f"""
logs:
  checkpoints: {tmp_path}/state/logs.db
  memory_buffer: 64KiB
  inputs: [{{name: app, paths: ["{logs}/*.log"], scan_interval: 50ms}}]
  outputs: [{{name: central, type: http, url: "{receiver.url}", compression: none}}]
"""
        with running_pillion(tmp_path, body) as process:

            def scrape(series: str) -> float:
                exposition = http("GET", f"{process.status_url}/metrics")[2]
                return metric_value(exposition, series) or 0.0

            wait_until(lambda: scrape('pillion_logs_input_records_total{input="app"}') == 20_000)
            wait_until(lambda: scrape('pillion_logs_buffer_bytes{tier="disk"}') > 0)
            process.proc.send_signal(signal.SIGKILL)
            process.proc.wait()
        buffer = tmp_path / "state" / "buffer.db"
        size = buffer.stat().st_size
        with buffer.open("r+b") as file:  # half of it overwritten
            file.seek(size // 4)
            file.write(os.urandom(size // 2))
        receiver.accepting = True
        with running_pillion(tmp_path, body):
            wait_until(lambda: set(receiver.ids()) == set(ids), timeout=60)
    assert min(receiver.ids().values()) == 1


@pytest.mark.parametrize("mode", ["batch", "interval", "never"])
def test_every_fsync_mode_delivers_and_checkpoints(tmp_path: Path, mode: str) -> None:
    """Each mode saves the checkpoints (``interval`` after syncing the file output):
    killed once they are saved, Pillion sends nothing twice."""
    (tmp_path / "logs").mkdir()
    app, out = tmp_path / "logs" / "app.log", tmp_path / "out.jsonl"
    body = config(tmp_path, out, f"  fsync: {mode}\n  fsync_interval: 300ms\n")
    write(app, batch("f", 300))
    with running_pillion(tmp_path, body) as process:
        wait_until(lambda: set(batch("f", 300)) <= set(shipped(out)))
        checkpoints = Checkpoints(str(tmp_path / "state" / "logs.db"))
        wait_until(lambda: list(checkpoints.load().values()) == [app.stat().st_size])
        process.proc.send_signal(signal.SIGKILL)
        process.proc.wait()
    with running_pillion(tmp_path, body):
        write(app, batch("g", 50))
        wait_until(lambda: set(batch("g", 50)) <= set(shipped(out)))
    assert shipped(out) == batch("f", 300) + batch("g", 50)


@pytest.mark.parametrize(
    ("mode", "synchronous", "fsync_each"),
    [("batch", "FULL", True), ("interval", "FULL", False), ("never", "OFF", False)],
)
def test_the_fsync_mode_reaches_sqlite_and_the_file_outputs(
    tmp_path: Path, mode: str, synchronous: str, fsync_each: bool
) -> None:
    logs = LogsConfig.model_validate(
        {
            "checkpoints": str(tmp_path / "logs.db"),
            "fsync": mode,
            "inputs": [{"name": "app", "paths": [str(tmp_path / "*.log")]}],
            "outputs": [{"name": "archive", "type": "file", "path": str(tmp_path / "o")}],
        }
    )
    component = LogsComponent(logs, Metrics(process=False), from_logs=[])
    assert component.checkpoints.synchronous == synchronous
    output = LogOutputConfig.model_validate({"name": "o", "type": "file", "path": "/o"})
    sink = sink_for(output, "/dead", fsync_each=component.config.fsync == "batch")
    assert isinstance(sink, FileSink)
    assert sink.fsync_each is fsync_each


def test_a_file_output_ends_a_line_torn_by_a_kill_before_it_writes(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"message": "whole"}\n{"message": "cut sh')  # a write cut by SIGKILL

    async def reopen_and_send() -> None:
        sink = FileSink(str(out))
        await sink.open()
        await sink.send([Record(b"next", 0.0, "app", "/x.log", (1, 2, "f"), 5)])
        await sink.close()

    asyncio.run(reopen_and_send())
    lines = out.read_bytes().splitlines()
    assert lines[:2] == [b'{"message": "whole"}', b'{"message": "cut sh']
    assert json.loads(lines[2])["message"] == "next"  # whole, on a line of its own
