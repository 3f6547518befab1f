"""Parsers, timestamps and pod metadata."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.config import parse_config
from pillion.config.types import python_regex
from pillion.logs.parsers import make_parser, parse_logfmt, parse_time, runtime_time
from pillion.logs.podinfo import parse_downward_file, pod_fields


def test_json_objects_only() -> None:
    parse = make_parser("json")
    assert parse(b'{"level": "warn", "n": 2}') == {"level": "warn", "n": 2}
    assert parse(b"[1, 2]") is None
    assert parse(b"{broken") is None
    assert parse(b"plain text") is None


def test_logfmt_with_quotes_and_escapes() -> None:
    fields = parse_logfmt(b'level=info msg="user \\"bob\\" logged in" took=12ms empty=')
    assert fields == {"level": "info", "msg": 'user "bob" logged in', "took": "12ms", "empty": ""}
    assert parse_logfmt(b"no pairs here") is None


def test_regex_named_groups() -> None:
    parse = make_parser(
        "regex", r"^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] \"(?P<request>[^\"]*)\""
    )
    line = b'10.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5'
    assert parse(line) == {
        "ip": "10.0.0.1", "time": "24/Nov/2026:10:00:00 +0000", "request": "GET / HTTP/1.1",
    }  # fmt: skip
    assert parse(b"not an access log line") is None


@pytest.mark.parametrize(
    ("value", "layout", "expected"),
    [
        ("2026-11-24T10:00:00.5Z", "rfc3339", 1795514400.5),
        ("2026-11-24T11:00:00+01:00", "rfc3339", 1795514400.0),
        (1795514400, "unix", 1795514400.0),
        ("1795514400500", "unix_ms", 1795514400.5),
        ("24/Nov/2026:10:00:00 +0000", "%d/%b/%Y:%H:%M:%S %z", 1795514400.0),
        ("2026-11-24 10:00:00", "%Y-%m-%d %H:%M:%S", 1795514400.0),  # no zone: UTC
        ("yesterday", "rfc3339", None),
        (None, "rfc3339", None),
    ],
)
def test_timestamps(value: object, layout: str, expected: float | None) -> None:
    assert parse_time(value, layout) == expected


def test_downward_api_files_and_env(tmp_path: object) -> None:
    text = 'app="shop"\nteam="payments \\"core\\""\nbroken\n'
    assert parse_downward_file(text) == {"app": "shop", "team": 'payments "core"'}
    assert pod_fields(
        labels_file=None,
        annotations_file=None,
        environ={"POD_NAMESPACE": "shop", "POD_NAME": "web-7", "HOME": "/root"},
    ) == {"namespace": "shop", "pod": "web-7"}


@given(
    st.datetimes(
        min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(9999, 12, 30)
    ),
    st.integers(0, 999_999_999),
    st.sampled_from(["Z", "+00:00", "+02:00", "-05:30", "z", "", "Q"]),
)
@settings(max_examples=300, deadline=None)
def test_runtime_time_reads_what_parse_time_reads(
    moment: datetime.datetime, nanoseconds: int, zone: str
) -> None:
    text = f"{moment:%Y-%m-%dT%H:%M:%S}.{nanoseconds:09d}{zone}"
    fast, slow = runtime_time(text), parse_time(text, "rfc3339")
    if slow is None:
        assert fast is None
    else:
        assert fast is not None
        # parse_time keeps microseconds, runtime_time more (up to a double's precision)
        assert abs(fast - slow) < 2e-6 + abs(slow) * 2**-50


@pytest.mark.parametrize(
    "text", ["2024-05-01T12:00:00.25000000xZ", "2024-13-01T12:00:00.250000000Z", "", "garbage"]
)
def test_runtime_time_of_what_is_not_a_time_is_none(text: str) -> None:
    assert runtime_time(text) is None


# Fluent Bit's apache2 parser (parsers.conf), its Onigmo regex as the docs write it.
APACHE2 = (
    r'^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)'
    r'(?: +(?<path>[^ ]*) +\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)'
    r'(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")?$'
)


def test_a_fluent_bit_parser_regex_works_as_copied() -> None:
    config = parse_config(
        "logs:\n  inputs:\n    - name: web\n      paths: [/var/log/apache2/access.log]\n"
        "      parser:\n        type: regex\n"
        f"        pattern: {json.dumps(APACHE2)}\n"
        "        time_field: time\n        time_format: '%d/%b/%Y:%H:%M:%S %z'\n"
        "  outputs: [{name: out, type: stdout}]\n",
        "fluent-bit.yaml",
        {},
    )
    assert config.logs is not None
    parser = config.logs.inputs[0].parser
    assert parser is not None
    assert parser.pattern is not None
    parse = make_parser("regex", parser.pattern)
    line = (b'192.168.2.20 - - [28/Jul/2006:10:27:10 -0300] "GET /cgi-bin/try/ HTTP/1.0" '
            b'200 3395 "-" "Mozilla/5.0"')  # fmt: skip
    fields = parse(line)
    assert fields is not None
    assert {k: fields[k] for k in ("host", "method", "path", "code", "size", "agent")} == {
        "host": "192.168.2.20", "method": "GET", "path": "/cgi-bin/try/", "code": "200",
        "size": "3395", "agent": "Mozilla/5.0"}  # fmt: skip
    stamp = parse_time(fields["time"], parser.time_format)
    assert stamp == datetime.datetime(2006, 7, 28, 13, 27, 10, tzinfo=datetime.UTC).timestamp()


def test_onigmo_named_references_and_lookbehinds_read_as_python() -> None:
    assert python_regex(r"(?<word>\w+) \k<word>") == r"(?P<word>\w+) (?P=word)"
    assert python_regex(r"(?<=a)b(?<!c)") == r"(?<=a)b(?<!c)"  # lookbehinds untouched
