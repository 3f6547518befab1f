"""Log lines no app means to write, read the same way every time: a CR inside a
cut line, a CRI time that is not text, times out of every output's range, a
long line without a single pair."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pillion.logs.buffer import Record
from pillion.logs.framing import Framed, Framer
from pillion.logs.jsonlines import json_lines
from pillion.logs.lines import LineSplitter
from pillion.logs.parsers import parse_json, parse_logfmt, parse_time


def split(data: bytes, cap: int, pieces: list[bytes]) -> list[bytes]:
    splitter = LineSplitter(cap)
    return [line for piece in pieces for line in splitter.split(piece)[0]]


@pytest.mark.parametrize("data", [b"abc\rdefg\nx\n", b"abcdefg\r\nx\n", b"ab\r\r\nx\n"])
def test_a_cut_line_is_the_same_whole_and_byte_by_byte(data: bytes) -> None:
    whole = split(data, 4, [data])
    assert whole == split(data, 4, [data[i : i + 1] for i in range(len(data))])
    assert whole[-1] == b"x"


def test_a_cut_line_keeps_a_cr_that_was_inside_it() -> None:
    assert split(b"abc\rdefg\n", 4, [b"abc\rdefg\n"]) == [b"abc\r"]


def test_a_cri_line_whose_time_is_not_ascii_passes_as_it_is() -> None:
    framer = Framer(cri=True)
    line = b"\xff\xfe stdout F hello"
    assert framer.feed([(line, len(line) + 1)], 0.0) == [Framed(line, len(line) + 1)]
    assert framer.malformed == 1


@pytest.mark.parametrize(
    ("value", "layout"),
    [
        ("inf", "unix"),
        ("nan", "unix"),
        ("-inf", "unix_ms"),
        (1e300, "unix"),
        (10**400, "unix"),
        (-5, "unix"),
        ("0001-01-01T00:00:00+14:00", "rfc3339"),
        ("9999-12-31T23:59:59-14:00", "rfc3339"),
        ("1969-12-31T23:59:59Z", "rfc3339"),
    ],
)
def test_a_time_no_output_can_write_is_no_time(value: object, layout: str) -> None:
    assert parse_time(value, layout) is None


def test_the_latest_time_is_written() -> None:
    stamp = parse_time("9999-12-31T23:59:59.5Z", "rfc3339")
    assert stamp is not None
    record = Record(b"m", stamp, "app", "/var/log/a.log", (1, 2, "h"), 2)
    assert b'"time":"9999-12-31T23:59:59.500Z"' in json_lines([record])


def test_a_long_line_without_pairs_is_read_in_one_pass() -> None:
    # each byte a possible key start: a search from each rescanned the rest of the run
    assert parse_logfmt(b"x" * 256 * 1024) is None
    assert list(parse_logfmt(b"=a" * 64 * 1024) or {}) == ["a"]


_EVERY_BYTE = re.compile(rb'([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))')


@given(st.binary(max_size=40).map(lambda raw: bytes(b' ="\\ab\t'[b % 7] for b in raw)))
def test_logfmt_reads_the_pairs_a_search_from_every_byte_reads(message: bytes) -> None:
    expected: dict[str, str] = {}
    for match in _EVERY_BYTE.finditer(message):
        key, quoted, bare = match.groups()
        value = bare if quoted is None else re.sub(rb"\\(.)", rb"\1", quoted)
        expected[key.decode()] = value.decode()
    assert parse_logfmt(message) == (expected or None)


def test_json_keeps_what_it_cannot_time() -> None:
    fields = parse_json(b'{"ts": 1e300, "msg": "x"}')
    assert fields == {"ts": 1e300, "msg": "x"}
    assert parse_time(fields["ts"], "unix") is None
