"""The record log when its disk tier fails: the group that could not be written
stays in memory and is still delivered, the inputs are told to pause (``full``,
no ``room``), each failure is counted once, and a retry or a delivery ends it.

The disk tier is a real ``SqliteSpill`` whose failures come from SQLite itself:
with ``PRAGMA query_only`` it answers each write with SQLITE_READONLY, as on a
file system remounted read-only (``test_faults`` fills a real one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pillion.logs.buffer import RECORD_OVERHEAD, SPILL_GROUP_RECORDS, Record, RecordLog
from pillion.logs.spill import SqliteSpill

KEY = (1, 2, "f")


class Switchable:
    """A ``SqliteSpill`` that can be made read-only and writable again, by SQLite's
    ``query_only`` (its writes then fail with SQLITE_READONLY)."""

    def __init__(self, path: Path) -> None:
        self.spill = SqliteSpill(str(path))
        self.spill.open()

    def read_only(self, yes: bool) -> None:
        self.spill.db.execute(f"PRAGMA query_only={int(yes)}")


@pytest.fixture
def disk(tmp_path: Path) -> Switchable:
    return Switchable(tmp_path / "buffer.db")


def append(log: RecordLog, count: int, first_end: int = 0) -> None:
    for n in range(count):
        log.append(Record(b"0123456789", 0.0, "app", "/x.log", KEY, first_end + 10 * (n + 1)))


def new_log(disk: Switchable) -> RecordLog:
    size = 10 + RECORD_OVERHEAD
    log = RecordLog(["a"], limit_bytes=2 * size, spill=disk.spill, spill_limit_bytes=10**6)
    log.track(KEY, "/x.log", 0)
    return log


def test_a_group_the_disk_refuses_waits_in_memory_and_a_retry_writes_it(
    disk: Switchable,
) -> None:
    log = new_log(disk)
    disk.read_only(True)
    append(log, 2 + SPILL_GROUP_RECORDS + 50)  # 2 in memory, a group and more for disk
    assert log.spill_failure is not None
    assert log.spill_failure.startswith(f"disk buffer {disk.spill.path}: cannot write: ")
    assert log.spill_errors == {"read_only": 1}  # once, not once per line after it
    assert log.full
    assert log.room == 0
    assert log.retry_spill() is False  # still read-only
    assert log.spill_errors == {"read_only": 2}
    disk.read_only(False)
    assert log.retry_spill() is True
    assert log.spill_failure is None
    assert not log.full
    assert log.room > 0
    everything = log.batch("a", 10_000, 10**9)
    assert [r.seq for r in everything] == list(range(1, 2 + SPILL_GROUP_RECORDS + 50 + 1))
    log.ack("a", everything[-1].seq)
    assert (log.spilled, log.spill_bytes) == (0, 0)
    assert log.delivered_changes() == {KEY: ("/x.log", 10 * len(everything))}


def test_while_the_disk_refuses_the_outputs_still_get_everything(disk: Switchable) -> None:
    log = new_log(disk)
    disk.read_only(True)
    append(log, 2 + SPILL_GROUP_RECORDS)
    assert log.full
    delivered = 0
    while batch := log.batch("a", 100, 10**9):
        assert batch[0].seq == delivered + 1  # in order, none skipped
        delivered = batch[-1].seq
        log.ack("a", delivered)
    assert delivered == 2 + SPILL_GROUP_RECORDS
    assert not log.full  # nothing waits for the disk any more
    assert log.retry_spill() is True  # and nothing is on it: the next group tries again
    assert log.delivered_changes() == {KEY: ("/x.log", 10 * delivered)}


def test_groups_that_cannot_be_deleted_stay_until_a_retry_deletes_them(
    disk: Switchable,
) -> None:
    log = new_log(disk)
    append(log, 2 + 2 * SPILL_GROUP_RECORDS)  # two groups written
    assert log.spill_failure is None
    disk.read_only(True)
    last = log.batch("a", 10_000, 10**9)[-1].seq
    log.ack("a", last)
    assert log.spill_errors == {"read_only": 1}
    assert log.spilled == 2 * SPILL_GROUP_RECORDS  # still on disk
    assert not log.settled(KEY)  # so the checkpoint does not pass them yet
    assert log.delivered_changes() == {KEY: ("/x.log", 20)}
    disk.read_only(False)
    assert log.retry_spill() is True
    assert (log.spilled, log.spill_bytes) == (0, 0)
    assert log.settled(KEY)
    assert log.delivered_changes() == {KEY: ("/x.log", 10 * last)}
