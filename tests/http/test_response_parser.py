from __future__ import annotations

import pytest

from pillion.http.errors import ResponseError, ResponseIncomplete
from pillion.http.response import ResponseHead, ResponseParser


class Recorder:
    def __init__(self) -> None:
        self.heads: list[ResponseHead] = []
        self.body = b""
        self.ends = 0

    def on_response(self, head: ResponseHead) -> None:
        self.heads.append(head)

    def on_response_body(self, data: bytes) -> None:
        self.body += data

    def on_response_end(self) -> None:
        self.ends += 1


def parser_for() -> tuple[ResponseParser, Recorder]:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expecting = True
    return parser, recorder


@pytest.mark.parametrize("step", [0, 1])
def test_content_length_and_chunked(step: int) -> None:
    for wire, kind in (
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
         "chunked"),
    ):  # fmt: skip
        parser, recorder = parser_for()
        if step:
            for i in range(len(wire)):
                parser.feed(wire[i : i + 1])
        else:
            parser.feed(wire)
        assert [h.body for h in recorder.heads] == [kind]
        assert (recorder.body, recorder.ends) == (b"hello", 1)
        assert recorder.heads[0].keep_alive
        assert not parser.expecting


def test_read_until_close() -> None:
    parser, recorder = parser_for()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\npart one ")
    parser.feed(b"part two")
    assert recorder.ends == 0
    parser.feed_eof()
    assert (recorder.body, recorder.ends) == (b"part one part two", 1)
    assert not recorder.heads[0].keep_alive


def test_no_body_statuses_and_interim_responses() -> None:
    parser, recorder = parser_for()
    parser.feed(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert [h.status for h in recorder.heads] == [103, 204]
    assert recorder.ends == 1


def test_malformed_status_line() -> None:
    parser, _ = parser_for()
    with pytest.raises(ResponseError):
        parser.feed(b"HTTP/1.1 OK\r\n\r\n")


def test_closed_mid_response_is_incomplete() -> None:
    parser, _ = parser_for()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    with pytest.raises(ResponseIncomplete):
        parser.feed_eof()


def test_closed_before_any_response_is_incomplete() -> None:
    parser, _ = parser_for()
    with pytest.raises(ResponseIncomplete):
        parser.feed_eof()


def test_more_body_than_content_length_breaks_the_connection() -> None:
    parser, recorder = parser_for()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    assert (recorder.body, recorder.ends) == (b"ok", 1)
    assert parser.broken


def test_unasked_bytes_break_the_connection() -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")
    assert parser.broken
    assert recorder.heads == []


def test_oversized_response_head() -> None:
    parser, _ = parser_for()
    with pytest.raises(ResponseError):
        parser.feed(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n")
