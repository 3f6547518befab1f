"""The log targets under Hypothesis: mutated files and messages through their
checks, and CRI lines, logfmt pairs and JSON objects built from their fields,
which must read back exactly."""

from __future__ import annotations

import string
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets import load, log_lines, log_parsers
from pillion.logs.framing import Framer
from pillion.logs.lines import LineSplitter
from pillion.logs.parsers import parse_json, parse_logfmt
from tests.fuzz.strategies import FUZZ, mutated

log_text = st.binary(max_size=30).map(lambda raw: raw.replace(b"\n", b" ").replace(b"\r", b" "))
cri_lines = st.lists(
    st.tuples(st.sampled_from(["stdout", "stderr"]), st.booleans(), log_text), max_size=8
)


@FUZZ
@given(mutated(load("log-lines")))
def test_mutated_files(data: bytes) -> None:
    log_lines.check(data)


@FUZZ
@given(cri_lines)
def test_cri_lines_join_to_their_logs(lines: list[tuple[str, bool, bytes]]) -> None:
    text = b"".join(
        b"2024-05-01T10:00:00.%09dZ %s %s %s\n" % (i, s.encode(), b"P" if partial else b"F", log)
        for i, (s, partial, log) in enumerate(lines)
    )
    log_lines.check(text)
    expected: list[tuple[str, bytes]] = []
    pending: dict[str, bytes] = {}
    for stream, partial, log in lines:
        pending[stream] = pending.get(stream, b"") + log
        if not partial:
            expected.append((stream, pending.pop(stream)))
    records = Framer(cri=True).feed(LineSplitter(1 << 20).feed(text), 0.0)
    assert [(r.stream, r.message) for r in records] == expected


@FUZZ
@given(mutated(load("log-parsers")))
def test_mutated_messages(data: bytes) -> None:
    log_parsers.check(data)


keys = st.from_regex(r"[a-z_][a-z0-9_.-]{0,10}", fullmatch=True)
bare = st.text(string.ascii_letters + string.digits + "-_./:@=", max_size=10)
quoted = st.text(string.printable.replace("\n", "").replace("\r", ""), max_size=10)


@FUZZ
@given(st.dictionaries(keys, st.tuples(st.booleans(), bare, quoted), min_size=1, max_size=5))
def test_logfmt_pairs_read_back(pairs: dict[str, tuple[bool, str, str]]) -> None:
    parts = []
    for key, (is_quoted, plain, text) in pairs.items():
        if is_quoted:
            escaped = text.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{key}="{escaped}"')
        else:
            parts.append(f"{key}={plain}")
    message = " ".join(parts).encode()
    log_parsers.check(message)
    expected = {key: text if q else plain for key, (q, plain, text) in pairs.items()}
    assert parse_logfmt(message) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@FUZZ
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_json_objects_read_back(document: dict[str, Any]) -> None:
    message = orjson.dumps(document)
    log_parsers.check(message)
    assert parse_json(message) == document
