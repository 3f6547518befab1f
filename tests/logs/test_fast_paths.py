"""The per-chunk fast paths against the per-line rules they replace: line
splitting, syslog framing of a batch, JSON lines without an object per record."""

from __future__ import annotations

import gzip
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pillion.config.logs import LogOutputConfig
from pillion.logs.buffer import Deleted, Record, summary
from pillion.logs.http import HttpSink
from pillion.logs.jsonlines import iso, json_lines
from pillion.logs.lines import LineSplitter
from pillion.logs.spill import SqliteSpill
from pillion.logs.syslog import frame, header_field
from tests.helpers import serve_http


def reference_lines(data: bytes, max_size: int) -> list[tuple[bytes, int]]:
    """The rule, line by line: cut at max_size (then drop the CR), or cut early and
    skip the rest when a line never ends within max_size."""
    out, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            if len(data) - start > max_size:
                out.append((data[start : start + max_size], len(data)))
            break
        line = data[start:end][:max_size]
        out.append((line[:-1] if line.endswith(b"\r") else line, end + 1))
        start = end + 1
    return out


@given(
    st.lists(st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\r\n", b"xyzxyz"]), max_size=40),
    st.integers(1, 9),
    st.integers(1, 12),
)
def test_split_whole_byte_by_byte_and_chunked(pieces: list[bytes], max_size: int, cut: int) -> None:
    data = b"".join(pieces)
    expected = reference_lines(data, max_size)
    for step in (max(len(data), 1), 1, cut):
        splitter = LineSplitter(max_size)
        got: list[tuple[bytes, int]] = []
        for i in range(0, len(data), step):
            lines, ends = splitter.split(data[i : i + step])
            got += zip(lines, ends, strict=True)
        # where a line too long is cut depends on where its chunk ends (as soon as it
        # is too long): only lines that fit are compared across chunkings
        if all(len(line) <= max_size for line in data.split(b"\n")):
            assert got == expected


def test_split_counts_cut_lines_and_skips_their_rest() -> None:
    splitter = LineSplitter(4)
    assert splitter.split(b"abcdef\r\nab\r\nabcdefgh") == ([b"abcd", b"ab", b"abcd"], [8, 12, 20])
    assert splitter.truncated == 2
    assert splitter.split(b"ij\nok\n") == ([b"ok"], [26])
    assert splitter.split(b"abc\r") == ([], [])
    assert splitter.split(b"\n") == ([b"abc"], [31])


def _record(message: bytes, at: float, name: str = "app", **extra: object) -> Record:
    return Record(message, at, name, "/var/log/x.log", (1, 2, "f"), 10, **extra)  # type: ignore[arg-type]


def test_frame_batch_is_frame_per_record() -> None:
    from pillion.logs.syslog import frame_batch

    batch = [
        _record(b"one", 1.0),
        _record(b"two", 1.0),
        _record(b"three \xff", 1.0),
        _record(b"", 2.5),
        _record(b"four", 2.5, "other"),
    ]
    host = header_field("bench", 255)
    for app in (None, b"fixed"):
        expected = b"".join(
            frame(
                r.message,
                r.time,
                facility=16,
                hostname=host,
                app_name=app or header_field(r.input, 48),
            )
            for r in batch
        )
        assert frame_batch(batch, facility=16, hostname=host, app_name=app) == expected


def test_json_lines_are_what_orjson_gives_each_object() -> None:
    batch = [
        _record(b'plain "quoted" \\ \xff\x00 \xe2\x82\xac', 1.5),
        _record(b"same time", 1.5),
        _record(b"cri", 1.5, stream="stderr", source_time="2026-11-24T10:00:00.1Z"),
        _record(b"fields", 2.0, fields={"level": "info", "message": "theirs", "n": [1, {"a": 2}]}),
        _record(b"other input", 2.0, "other"),
    ]
    expected = []
    for r in batch:
        document: dict[str, object] = {
            "time": r.source_time or iso(r.time),
            "input": r.input,
            "file": r.path,
            "message": r.message.decode("utf-8", "replace"),
        }
        if r.stream is not None:
            document["stream"] = r.stream
        if r.fields:
            document = {**r.fields, **document}
        expected.append(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE))
    assert json_lines(batch) == b"".join(expected)


def test_the_disk_tier_gives_back_each_record_as_it_was(tmp_path: Path) -> None:
    spill = SqliteSpill(str(tmp_path / "buffer.db"))
    spill.open()
    shared = {"kubernetes": {"pod": "p"}}
    records = [
        _record(b"a", 1.0, fields=shared),
        _record(b"b", 1.0, fields=shared),
        _record(b"c", 1.0, fields={"level": "info"}),
        _record(b"d", 2.0, stream="stdout", source_time="t1"),
        _record(b"e", 2.0, stream="stdout", source_time="t2"),
        _record(b"f", 2.0, "other"),
        Record(b"g", 2.0, "other", "/var/log/y.log", (1, 3, "g"), 99),
    ]
    for seq, record in enumerate(records, start=1):
        record.seq = seq
    spill.write(records)
    back = spill.read(0, 100)

    def attributes(r: Record) -> tuple[object, ...]:
        return (r.message, r.time, r.input, r.path, r.file, r.end, r.stream, r.source_time)

    assert [(attributes(r), r.fields, r.seq) for r in back] == [
        (attributes(r), r.fields, r.seq) for r in records
    ]
    assert (
        summary(back)
        == summary(records)
        == {
            (1, 2, "f"): Deleted(10, 6, 6),
            (1, 3, "g"): Deleted(99, 1, 1),
        }
    )
    spill.close()


async def test_a_batch_encoded_ahead_is_the_one_posted_and_a_stale_one_is_not(
    tmp_path: Path,
) -> None:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(gzip.decompress(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    records = [_record(b"line %d" % n, 1.0) for n in range(1, 7)]
    for seq, record in enumerate(records, start=1):
        record.seq = seq
    first, second, third = records[:2], records[2:4], records[4:]
    with serve_http(Handler) as port:
        config = LogOutputConfig.model_validate(
            {"name": "r", "type": "http", "url": f"http://127.0.0.1:{port}/"}
        )
        sink = HttpSink(config, str(tmp_path / "dead-letter.jsonl"))
        await sink.open()
        sink.prepare(second)
        await sink.send(first)  # not the one prepared: encoded now
        sink.prepare(third)
        await sink.send(second)
        sink.prepare([*third, *third])  # a batch that is never sent
        await sink.send(third)
        await sink.close()
    assert bodies == [json_lines(first), json_lines(second), json_lines(third)]


def _reference_json_lines(batch: list[Record]) -> bytes:
    lines = []
    for r in batch:
        document: dict[str, object] = {
            "time": r.source_time or iso(r.time),
            "input": r.input,
            "file": r.path,
            "message": r.message.decode("utf-8", "replace"),
        }
        if r.stream is not None:
            document["stream"] = r.stream
        if r.fields:
            document = {**r.fields, **document}
        lines.append(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE))
    return b"".join(lines)


_TRICKY = [
    b"",
    b",",
    b'"',
    b"\\",
    b"}",
    b'},{"message":',
    b'"},{"message":"',
    b"\xff",
    b"\n",
    b"\x00",
    b"\xe2\x82\xac",
    b"plain",
]


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(_TRICKY), max_size=4),
            st.sampled_from([1.0, 2.0]),
            st.sampled_from([None, "stdout"]),
            st.sampled_from([None, {"k": '},{"message":'}]),
        ),
        max_size=12,
    )
)
def test_json_lines_in_runs_match_one_object_per_record(
    specs: list[tuple[list[bytes], float, str | None, dict[str, str] | None]],
) -> None:
    batch = [
        Record(b"".join(parts), at, "app", "/x.log", (1, 2, "f"), 1, stream, None, fields)
        for parts, at, stream, fields in specs
    ]
    assert json_lines(batch) == _reference_json_lines(batch)
