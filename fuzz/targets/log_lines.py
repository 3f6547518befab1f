"""A log file's bytes into lines and records (``pillion.logs.lines`` and
``pillion.logs.framing``): lines capped in length, CRI container-log lines
joined from their partials, multiline records (the java, python and go presets).

Property: nothing raises; the lines are exactly the file's lines (without LF and
a final CR; a line longer than the cap cut to it, and counted), whole or fed in
pieces or byte by byte, each with the offset just after it (a cut line's offset
may be earlier: it is given before its end was read); CRI framing keeps every
line (a line that is not CRI passes as it is), never makes a record over the
cap, and makes one record per full line; multiline framing joins the lines
back into exactly the file, each record but the first starting where the
preset says one starts.
"""

from __future__ import annotations

from fuzz.target import Target
from pillion.logs.framing import PRESETS, Framed, Framer
from pillion.logs.lines import LineSplitter

__all__ = ["TARGET", "check", "expected_lines"]

CAPS = (16, 4096)
BYTEWISE_UP_TO = 2048


def expected_lines(data: bytes, cap: int) -> tuple[list[bytes], list[int], int]:
    """The file's complete lines as the splitter must give them, the offset after
    each, and how many were cut. A last line without its LF is given (cut) only
    when it is already longer than the cap."""
    lines: list[bytes] = []
    ends: list[int] = []
    position = 0
    *complete, rest = data.split(b"\n")
    for line in complete:
        position += len(line) + 1
        ends.append(position)
        lines.append(line[:cap] if len(line) > cap else line.removesuffix(b"\r"))
    cut = sum(1 for line in complete if len(line) > cap)
    if len(rest) > cap:
        lines.append(rest[:cap])
        ends.append(len(data))
        cut += 1
    return lines, ends, cut


def check(data: bytes) -> None:
    for cap in CAPS:
        lines, ends, cut = expected_lines(data, cap)
        feedings = [[data], [data[: len(data) // 2], data[len(data) // 2 :]]]
        if len(data) <= BYTEWISE_UP_TO:
            feedings.append([data[i : i + 1] for i in range(len(data))])
        for pieces in feedings:
            splitter = LineSplitter(cap)
            got: list[bytes] = []
            got_ends: list[int] = []
            for piece in pieces:
                more, more_ends = splitter.split(piece)
                got += more
                got_ends += more_ends
            assert got == lines, f"lines {got[:4]!r} where the file has {lines[:4]!r}"
            assert splitter.truncated == cut
            assert splitter.offset == len(data)
            for line, end, want in zip(got, got_ends, ends, strict=True):
                assert end == want or len(line) == cap, f"offset {end} for {line!r}, not {want}"
        _cri(lines, ends, cap)
        _multiline(lines, ends)


def _cri(lines: list[bytes], ends: list[int], cap: int) -> None:
    framer = Framer(cri=True, max_size=cap)
    records = framer.feed(list(zip(lines, ends, strict=True)), 0.0)
    full = sum(1 for line in lines if _cri_tag(line) == b"F")
    assert len(records) == framer.malformed + full, "a CRI line was lost or made twice"
    for record in records:
        assert len(record.message) <= cap
        assert record.stream in (None, "stdout", "stderr")
        if record.stream is None:
            assert record.message in lines, "a malformed line changed"
    assert [r.end for r in records] == sorted(r.end for r in records), "offsets went back"


def _cri_tag(line: bytes) -> bytes | None:
    fields = line.split(b" ", 3)
    if len(fields) < 3 or fields[1] not in (b"stdout", b"stderr") or not fields[0].isascii():
        return None
    return fields[2] if fields[2] in (b"P", b"F") else None


def _multiline(lines: list[bytes], ends: list[int]) -> None:
    for preset in PRESETS.values():
        framer = Framer(start=preset, max_size=1 << 20)
        records: list[Framed] = framer.feed(list(zip(lines, ends, strict=True)), 0.0)
        records += framer.flush(0.0, everything=True)
        joined = b"\n".join(record.message for record in records)
        assert joined == b"\n".join(lines), "multiline records are not the file's lines"
        assert framer.start is not None
        for record in records[1:]:
            first = record.message.split(b"\n", 1)[0]
            assert framer.start.search(first), f"a record starts at {first!r}"
        if lines:
            assert records[-1].end == ends[-1]


TARGET = Target(
    name="log-lines",
    summary="log files into lines, CRI and multiline records (pillion.logs.lines, framing)",
    check=check,
    tokens=(
        b"\n",
        b"\r\n",
        b"\r",
        b"2024-05-01T10:00:00.123456789Z ",
        b" stdout ",
        b" stderr ",
        b" F ",
        b" P ",
        b"Traceback (most recent call last):\n",
        b"\tat com.x.Y(Y.java:1)\n",
        b"goroutine 1 [running]:\n",
        b"panic: ",
        b"Caused by: ",
        b"\xff",
        b" ",
    ),
    max_len=16 * 1024,
)
