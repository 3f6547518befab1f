"""A log record's message into fields and a time (``pillion.logs.parsers``), and
the record written out as a JSON line (``pillion.logs.jsonlines``).

Property: nothing raises; JSON gives the object the bytes hold or None; logfmt
gives text keys without whitespace or ``=`` (None without any pair); the regex
parser gives text; a time read from any field in any layout is None or a time
every output can write; and the record, with its fields, is written as one valid
JSON line that holds its message.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from fuzz.target import Target
from pillion.logs.buffer import Record
from pillion.logs.jsonlines import iso, json_lines
from pillion.logs.parsers import make_parser, parse_json, parse_logfmt, parse_time

__all__ = ["TARGET", "check"]

ACCESS_LOG = r'^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d+)'
parse_access_log = make_parser("regex", ACCESS_LOG)
LAYOUTS = ("rfc3339", "unix", "unix_ms", "%d/%b/%Y:%H:%M:%S %z", "%Y-%m-%d %H:%M:%S")
_WHITESPACE = frozenset(" \t\n\r\f\v")
_PAIR = re.compile(rb"[^\s=]=")  # a key's last byte, then its =


def check(data: bytes) -> None:
    as_json = parse_json(data)
    if as_json is not None:
        assert data.startswith(b"{")
        assert as_json == orjson.loads(data)
    as_logfmt = parse_logfmt(data)
    if as_logfmt is None:
        assert _PAIR.search(data) is None, "a key=value pair not read"
    else:
        for key, value in as_logfmt.items():
            assert key, as_logfmt
            assert "=" not in key, key
            assert not _WHITESPACE & set(key), key
            assert isinstance(value, str)
    as_regex = parse_access_log(data)
    assert as_regex is None or all(isinstance(v, str) for v in as_regex.values())
    values: list[Any] = [data.decode("utf-8", "replace")]
    for fields in (as_json, as_logfmt, as_regex):
        values += (fields or {}).values()
    for value in values:
        for layout in LAYOUTS:
            stamp = parse_time(value, layout)
            if stamp is not None:
                assert math.isfinite(stamp)
                iso(stamp)  # every output writes the time; it must be writable
                _write(data, stamp, as_json or as_logfmt or as_regex)


def _write(message: bytes, stamp: float, fields: dict[str, Any] | None) -> None:
    record = Record(
        message, stamp, "app", "/var/log/app.log", (1, 2, "head"), len(message), fields=fields
    )
    written = json_lines([record])
    assert written.endswith(b"\n")
    assert written.count(b"\n") == 1
    document = orjson.loads(written)
    assert document["message"] == message.decode("utf-8", "replace")


TARGET = Target(
    name="log-parsers",
    summary="log messages into fields and a time, then a JSON line (pillion.logs.parsers)",
    check=check,
    tokens=(
        b"{",
        b"}",
        b'"',
        b"=",
        b'="',
        b"\\",
        b" ",
        b"\t",
        b'"ts":',
        b'"time":',
        b"level=",
        b"1.7e9",
        b"1795514400500",
        b"2026-11-24T10:00:00Z",
        b"+25:00",
        b"9999-12-31",
        b"0001-01-01T00:00:00+14:00",
        b"inf",
        b"nan",
        b"1e400",
        b"[24/Nov/2026:10:00:00 +0000]",
        b"\xff",
        b"\\u0000",
        b"\\ud800",
    ),
    max_len=4096,
)
