"""The log pipeline's pure parts: line splitting, file identity, the record log."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pillion.logs.buffer import RecordLog
from pillion.logs.identity import FINGERPRINT_BYTES, fingerprint
from pillion.logs.lines import LineSplitter


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
    log = RecordLog(["a", "b"], limit_bytes=100)
    key = (1, 2, "f")
    log.track(key, "/x.log", 0)
    for end in (10, 20, 30):
        log.append(b"0123456789", key, end)
    assert [r.seq for r in log.batch("a", 2, 1000)] == [1, 2]
    log.ack("a", 2)
    assert log.delivered_changes() == {}  # b has nothing yet
    assert len(log.records) == 3
    log.ack("b", 1)
    assert log.delivered_changes() == {key: ("/x.log", 10)}
    assert len(log.records) == 2
    assert [r.seq for r in log.batch("a", 10, 1000)] == [3]
    assert [r.seq for r in log.batch("b", 10, 15)] == [2]  # bounded by bytes (one at least)
    log.ack("b", 3)
    log.ack("a", 3)
    assert log.delivered_changes() == {key: ("/x.log", 30)}
    assert log.bytes == 0
    assert log.settled(key)
