"""The log pipeline's pure parts: line splitting, file identity, the record log."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pillion.logs.buffer import RECORD_OVERHEAD, SPILL_GROUP_RECORDS, Record, RecordLog
from pillion.logs.identity import FINGERPRINT_BYTES, fingerprint
from pillion.logs.lines import LineSplitter
from pillion.logs.spill import SqliteSpill
from pillion.logs.syslog import frame, header_field


def test_lines_and_their_end_offsets() -> None:
    splitter = LineSplitter(max_size=100)
    assert splitter.feed(b"one\ntwo\r\nthr") == [(b"one", 4), (b"two", 9)]
    assert splitter.pending == 3
    assert splitter.feed(b"ee\n") == [(b"three", 15)]
    assert splitter.feed(b"") == []


def test_a_long_line_is_cut_and_counted_and_the_next_one_kept() -> None:
    splitter = LineSplitter(max_size=10)
    lines = splitter.feed(b"x" * 25)  # no newline yet: cut as soon as it is too long
    lines += splitter.feed(b"y" * 1000 + b"\nnext\n")
    assert lines == [(b"x" * 10, 25), (b"next", 1031)]
    assert splitter.truncated == 1
    assert splitter.pending == 0


@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(1, 50))
def test_any_chunking_gives_the_same_lines(pieces: list[bytes], cut: int) -> None:
    data = b"".join(pieces)
    whole = LineSplitter(max_size=10_000).feed(data)
    split = LineSplitter(max_size=10_000)
    chunked = [line for i in range(0, len(data), cut) for line in split.feed(data[i : i + cut])]
    assert chunked == whole


def test_fingerprint_waits_for_a_first_line() -> None:
    assert fingerprint(b"partial") is None
    assert fingerprint(b"first\nsecond") == fingerprint(b"first\nother")
    assert fingerprint(b"first\n") != fingerprint(b"First\n")
    assert fingerprint(b"z" * FINGERPRINT_BYTES) is not None  # a long first line: its head


def test_records_leave_when_every_output_has_them_and_checkpoints_follow() -> None:
    log = RecordLog(["a", "b"], limit_bytes=1000)
    key = (1, 2, "f")
    log.track(key, "/x.log", 0)
    for end in (10, 20, 30):
        log.append(Record(b"0123456789", 0.0, "app", "/x.log", key, end))
    assert [r.seq for r in log.batch("a", 2, 1000)] == [1, 2]
    assert log.cut  # stopped at its count, with a record after it
    assert [r.seq for r in log.batch("a", 10, 1000)] == [1, 2, 3]
    assert not log.cut  # the end of the records
    assert [r.seq for r in log.batch("a", 10, 2 * log.records[0].size)] == [1, 2]
    assert log.cut  # stopped at its bytes
    log.ack("a", 2)
    assert log.delivered_changes() == {}  # b has nothing yet
    assert len(log.records) == 3
    log.ack("b", 1)
    assert log.delivered_changes() == {key: ("/x.log", 10)}
    assert len(log.records) == 2
    assert [r.seq for r in log.batch("a", 10, 1000)] == [3]
    size = log.records[0].size
    assert [r.seq for r in log.batch("b", 10, size + 1)] == [2]  # bounded by bytes
    log.ack("b", 3)
    log.ack("a", 3)
    assert log.delivered_changes() == {key: ("/x.log", 30)}
    assert log.bytes == 0
    assert log.settled(key)


def _spilling_log(tmp_path: Path, memory_records: int, disk_records: int) -> RecordLog:
    spill = SqliteSpill(str(tmp_path / "buffer.db"))
    spill.open()
    size = 10 + RECORD_OVERHEAD  # each test record: a 10-byte message
    return RecordLog(["a", "b"], memory_records * size, spill, disk_records * size)


def test_records_beyond_memory_go_to_disk_and_come_back_in_order(tmp_path: Path) -> None:
    log = _spilling_log(tmp_path, memory_records=3, disk_records=2000)
    key, other = (1, 2, "f"), (1, 3, "g")
    log.track(key, "/x.log", 0)
    log.track(other, "/y.log", 0)
    for n in range(1, 1001):  # 3 in memory, the rest on disk (written in groups)
        file = key if n % 2 else other
        log.append(Record(b"%010d" % n, float(n), "app", "/p", file, n * 11,
                          fields={"n": n} if n == 500 else None))  # fmt: skip
    assert len(log.records) == 3
    assert log.spilled == 997
    assert log.spill_bytes == 997 * (10 + RECORD_OVERHEAD)
    assert not log.full
    assert (tmp_path / "buffer.db").stat().st_size > 0
    # a batch reads across the tiers, whole records with their fields
    batch = log.batch("a", 600, 10**9)
    assert [r.seq for r in batch] == list(range(1, 601))
    assert batch[499].fields == {"n": 500}
    assert batch[499].message == b"0000000500"
    assert batch[499].file == other
    log.ack("a", 600)
    log.ack("b", 2)  # memory is freed as usual, the disk not yet
    assert log.delivered_changes() == {key: ("/x.log", 11), other: ("/y.log", 22)}
    assert log.spilled == 997
    log.ack("b", 601)  # past memory: the disk's groups every output has (to 600) go
    last = 3 + SPILL_GROUP_RECORDS  # the first group: records 4 to 515; the second is kept
    assert log.delivered_changes() == {key: ("/x.log", last * 11), other: ("/y.log", (last - 1)
                                       * 11)}  # fmt: skip
    assert log.spilled == 1000 - last
    assert not log.settled(key)
    assert not log.settled(other)
    assert [r.seq for r in log.batch("b", 2, 10**9)] == [602, 603]
    log.ack("a", 1000)
    log.ack("b", 1000)
    assert (log.spilled, log.spill_bytes) == (0, 0)
    assert log.settled(key)
    assert log.settled(other)
    # with the disk empty again, new records go to memory
    log.append(Record(b"x" * 10, 0.0, "app", "/p", key, 99_999))
    assert (len(log.records), log.spilled) == (1, 0)


def test_both_tiers_full_is_full(tmp_path: Path) -> None:
    log = _spilling_log(tmp_path, memory_records=2, disk_records=SPILL_GROUP_RECORDS + 5)
    key = (1, 2, "f")
    log.track(key, "/x.log", 0)
    n = 0
    while not log.full:
        n += 1
        log.append(Record(b"0123456789", 0.0, "app", "/x.log", key, n))
    assert n == 2 + SPILL_GROUP_RECORDS + 5
    assert log.room == 0
    assert log.batch("a", 10**6, 10**9)[-1].seq == n  # the unwritten group is readable too
    log.ack("a", n)
    log.ack("b", 3)
    assert not log.full  # memory is free, though the disk still holds the newest
    log.append(Record(b"0123456789", 0.0, "app", "/x.log", key, n + 1))
    assert log.spilled == n - 2 + 1  # seq 3 stays: the disk tier is freed in whole groups
    assert len(log.records) == 0


def test_syslog_frames_are_rfc5424_with_octet_counting() -> None:
    framed = frame(b"hello\nworld", 0.5, facility=16, hostname=b"pod-1", app_name=b"app")
    length, _, body = framed.partition(b" ")
    assert int(length) == len(body)
    assert body == b"<134>1 1970-01-01T00:00:00.500Z pod-1 app - - - hello\nworld"
    assert header_field("my app", 48) == b"my_app"
    assert header_field("", 48) == b"-"


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 700)),
            st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 900)),
        ),
        max_size=40,
    )
)
def test_each_output_reads_every_record_once_in_order_across_tiers(
    steps: list[tuple[str, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = _spilling_log(Path(tmp), memory_records=50, disk_records=10**6)
        keys = [(1, 1, "f"), (1, 2, "g")]
        for key in keys:
            log.track(key, "/p", 0)
        seen: dict[str, list[int]] = {"a": [], "b": []}
        ends: dict[tuple[int, int, str], list[int]] = {key: [] for key in keys}
        appended = 0
        for action, count in steps:
            if action == "append":
                for _ in range(count):
                    appended += 1
                    key = keys[appended % 3 == 0]
                    ends[key].append(appended * 7)
                    log.append(Record(b"m" * 10, 0.0, "app", "/p", key, appended * 7))
            else:
                batch = log.batch(action, count, 10**9)
                seen[action] += [r.seq for r in batch]
                if batch:
                    log.ack(action, batch[-1].seq)
        for output in ("a", "b"):  # then each reads to the end
            while batch := log.batch(output, 97, 10**9):
                seen[output] += [r.seq for r in batch]
                log.ack(output, batch[-1].seq)
            assert seen[output] == list(range(1, appended + 1))
        changes = log.delivered_changes()
        for key in keys:  # every file is delivered to its last record, and settled
            if ends[key]:
                assert changes[key] == ("/p", ends[key][-1])
            assert log.settled(key)
        assert (log.spilled, log.spill_bytes, log.bytes) == (0, 0, 0)
