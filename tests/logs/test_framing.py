"""CRI and multiline framing: records, and the offsets checkpoints may advance to."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from pillion.config.logs import MultilineConfig
from pillion.logs.framing import PRESETS, Framer


def offsets(lines: list[bytes]) -> list[tuple[bytes, int]]:
    out, end = [], 0
    for line in lines:
        end += len(line) + 1
        out.append((line, end))
    return out


def test_cri_partials_are_joined_per_stream() -> None:
    big = b"a" * 16384
    lines = offsets([
        b"2026-11-24T10:00:00.000000001Z stdout P " + big,
        b"2026-11-24T10:00:00.000000002Z stderr F an error in between",
        b"2026-11-24T10:00:00.000000003Z stdout P " + big,
        b"2026-11-24T10:00:00.000000004Z stdout F end",
    ])  # fmt: skip
    framed = Framer(cri=True, max_size=1 << 20).feed(lines, 0.0)
    assert [(f.stream, f.message[-3:], f.end) for f in framed] == [
        ("stderr", b"een", lines[1][1]),
        ("stdout", b"end", lines[3][1]),  # ends with its last part: the checkpoint waits
    ]
    assert framed[1].message == big + big + b"end"
    assert framed[1].time == "2026-11-24T10:00:00.000000001Z"  # the record's first part


def test_cri_keeps_a_malformed_line_and_caps_a_record() -> None:
    framer = Framer(cri=True, max_size=10)
    lines = offsets([b"not cri at all", b"t stdout P 0123456789", b"t stdout F more"])
    framed = framer.feed(lines, 0.0)
    assert [f.message for f in framed] == [b"not cri at all", b"0123456789"]
    assert framer.malformed == 1


JAVA = [
    b"2026-11-24 10:00:00 ERROR request failed",
    b'Exception in thread "main" java.lang.IllegalStateException: boom',
    b"\tat com.shop.Cart.add(Cart.java:42)",
    b"Caused by: java.io.IOException: disk",
    b"\t... 12 more",
    b"2026-11-24 10:00:01 INFO next request",
]
PYTHON = [
    b"2026-11-24 10:00:00,000 ERROR app: handler crashed",
    b"Traceback (most recent call last):",
    b'  File "/app/main.py", line 10, in handle',
    b"    return cart[item]",
    b"KeyError: 'shoes'",
    b"",
    b"During handling of the above exception, another exception occurred:",
    b"ValueError: bad item",
    b"2026-11-24 10:00:01,000 INFO app: next",
]
GO = [
    b"panic: runtime error: index out of range [5] with length 3",
    b"",
    b"goroutine 1 [running]:",
    b"main.main()",
    b"\t/app/main.go:8 +0x1d",
    b"exit status 2",
    b"2026/11/24 10:00:01 server started",
]


# The last line of a traceback names the exception, whatever its name: a bare
# Exception, a custom one in a module, StopIteration.
PYTHON_ENDINGS = [
    b"2026-11-24 10:00:00,000 ERROR app: one",
    b"Traceback (most recent call last):",
    b'  File "/app/main.py", line 3, in <module>',
    b"Exception: boom",
    b"2026-11-24 10:00:01,000 ERROR app: two",
    b"Traceback (most recent call last):",
    b'  File "/app/main.py", line 4, in <module>',
    b"shop.errors.PaymentDeclinedError: card refused",
    b"2026-11-24 10:00:02,000 ERROR app: three",
    b"Traceback (most recent call last):",
    b'  File "/app/main.py", line 5, in <module>',
    b"StopIteration",
    b"2026-11-24 10:00:03,000 INFO app: next",
]


@pytest.mark.parametrize(
    ("preset", "lines", "records"),
    [
        ("java", JAVA, [0, 1, 5]),
        ("python", PYTHON, [0, 8]),
        ("python", PYTHON_ENDINGS, [0, 4, 8, 12]),
        ("go", GO, [0, 6]),
    ],
)
def test_presets_keep_a_trace_in_one_record(
    preset: str, lines: list[bytes], records: list[int]
) -> None:
    framer = Framer(start=PRESETS[preset])
    framed = framer.feed(offsets(lines), 0.0) + framer.flush(0.0, everything=True)
    firsts = [f.message.split(b"\n")[0] for f in framed]
    assert firsts == [lines[i] for i in records]
    assert b"\n".join(lines) == b"\n".join(f.message for f in framed)


def test_a_multiline_record_waits_for_the_next_start_or_the_timeout() -> None:
    framer = Framer(start=r"^\S", flush_timeout=1.0)
    lines = offsets([b"first", b"  more", b"second", b"  tail"])
    framed = framer.feed(lines, 10.0)
    assert [(f.message, f.end) for f in framed] == [(b"first\n  more", lines[1][1])]
    assert framer.flush(10.5) == []  # quiet for less than the timeout
    [late] = framer.flush(11.0)
    assert (late.message, late.end) == (b"second\n  tail", lines[3][1])


def test_presets_compile() -> None:
    for pattern in PRESETS.values():
        re.compile(pattern.encode())


def test_docker_json_file_lines_and_their_parts_are_joined_per_stream() -> None:
    def entry(log: str, stream: str = "stdout", second: int = 0) -> bytes:
        when = f"2026-12-07T10:00:{second:02d}.123456789Z"
        return json.dumps({"log": log, "stream": stream, "time": when}).encode()

    framer = Framer(docker=True)
    lines = offsets([
        entry("whole line\n"),
        entry("a long line, ", second=1),  # Docker splits lines over 16 KiB
        entry("an error\n", stream="stderr", second=2),
        entry("in three parts, ", second=3),
        entry("ends here\n", second=4),
        b"not json at all",
        entry("ünïcode ✓\n", second=5),
    ])  # fmt: skip
    framed = framer.feed(lines, 0.0)
    assert [(f.message, f.stream, f.time) for f in framed] == [
        (b"whole line", "stdout", "2026-12-07T10:00:00.123456789Z"),
        (b"an error", "stderr", "2026-12-07T10:00:02.123456789Z"),
        (b"a long line, in three parts, ends here", "stdout", "2026-12-07T10:00:01.123456789Z"),
        (b"not json at all", None, None),  # passed on as it is, and counted
        ("ünïcode ✓".encode(), "stdout", "2026-12-07T10:00:05.123456789Z"),
    ]
    assert framer.malformed == 1
    # the joined record's checkpoint is past its last part, never past a part held back
    assert framed[2].end == lines[4][1]


# Fluent Bit's documented multiline example, its rules as a [MULTILINE_PARSER] has them.
FLUENT_BIT_RULES = [
    ("start_state", r"([a-zA-Z]+ \d+ \d+\:\d+\:\d+)(.*)", "cont"),
    ("cont", r"^\s+at.*", "cont"),
]


def test_fluent_bit_state_rules_join_what_each_state_allows() -> None:
    lines = [
        b"single line...",
        b'Dec 14 06:41:08 Exception in thread "main" java.lang.RuntimeException: wrong',
        b"    at com.myproject.module.MyProject.badMethod(MyProject.java:22)",
        b"    at com.myproject.module.MyProject.main(MyProject.java:6)",
        b"another line...",
        b"Dec 14 06:41:09 second start",
        b"Dec 14 06:41:10 third start",  # a start ends the record before it
        b"    at only.Frame(F.java:1)",
    ]
    framer = Framer(rules=FLUENT_BIT_RULES)
    framed = framer.feed(offsets(lines), 0.0) + framer.flush(0.0, everything=True)
    assert [f.message for f in framed] == [
        lines[0],
        b"\n".join(lines[1:4]),
        lines[4],
        lines[5],
        b"\n".join(lines[6:8]),
    ]
    assert [f.end for f in framed] == [offsets(lines)[i][1] for i in (0, 3, 4, 5, 7)]


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        ([{"state": "cont", "regex": "x", "next_state": "cont"}], "a rule for start_state"),
        ([{"state": "start_state", "regex": "x", "next_state": "cont"}], "no rule for state cont"),
        ([{"state": "start_state", "regex": "(", "next_state": "start_state"}], "invalid regex"),
    ],
)
def test_bad_state_rules_are_refused(rules: list[dict[str, str]], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        MultilineConfig.model_validate({"rules": rules})
    with pytest.raises(ValidationError, match="set one of start, preset and rules"):
        MultilineConfig.model_validate({"start": "x", "preset": "java"})
