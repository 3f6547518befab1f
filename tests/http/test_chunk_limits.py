"""Chunk lines have a length limit, however the body is cut into reads.

A chunk line (size and extensions) or trailer line over ``MAX_CHUNK_LINE`` is a
400, chunk extensions over ``MAX_CHUNK_EXTENSIONS`` per body a 413, and the
framing counts against the body limit; bodies within the limits arrive whole.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.http.chunked import MAX_CHUNK_EXTENSIONS, MAX_CHUNK_LINE
from pillion.http.errors import RequestError, ResponseError
from pillion.http.request import ParserLimits, RequestHead, RequestParser
from pillion.http.response import ResponseHead, ResponseParser

HEAD = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
GET = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
NO_LIMIT = ParserLimits()


class Recorder:
    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.body = b""
        self.ends = 0

    def on_request(self, head: RequestHead) -> None:
        self.heads.append(head.target)

    def on_request_body(self, data: bytes) -> None:
        self.body += data

    def on_request_end(self) -> None:
        self.ends += 1


def pieces_whole(data: bytes) -> Iterator[bytes]:
    yield data


def pieces_bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def pieces_random(data: bytes) -> Iterator[bytes]:
    cut = random.Random(len(data))
    i = 0
    while i < len(data):
        n = cut.randint(1, 3000)
        yield data[i : i + n]
        i += n


def pieces_large(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 65536):
        yield data[i : i + 65536]


CUTS: list[Callable[[bytes], Iterator[bytes]]] = [
    pieces_whole,
    pieces_random,
    pieces_large,
]


def feed(
    data: bytes, cut: Callable[[bytes], Iterator[bytes]], limits: ParserLimits = NO_LIMIT
) -> Recorder:
    recorder = Recorder()
    parser = RequestParser(recorder, limits)
    for piece in cut(data):
        parser.feed(piece)
    return recorder


def status_of(
    data: bytes, cut: Callable[[bytes], Iterator[bytes]], limits: ParserLimits = NO_LIMIT
) -> int:
    with pytest.raises(RequestError) as caught:
        feed(data, cut, limits)
    return caught.value.status


def chunked(*chunks: bytes, extension: bytes = b"", trailers: bytes = b"") -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(c), extension, c) for c in chunks)
    return body + b"0\r\n" + trailers + b"\r\n"


@pytest.mark.parametrize("cut", CUTS)
def test_a_4_mib_extension_is_refused(cut: Callable[[bytes], Iterator[bytes]]) -> None:
    data = HEAD + b"1;" + b"a" * (4 << 20) + b"\r\nx\r\n0\r\n\r\n"
    assert status_of(data, cut) == 400


@pytest.mark.parametrize("cut", CUTS)
def test_a_megabyte_of_leading_zeros_is_refused(cut: Callable[[bytes], Iterator[bytes]]) -> None:
    data = HEAD + b"0" * (1 << 20) + b"1\r\nx\r\n0\r\n\r\n"
    assert status_of(data, cut) == 400


@pytest.mark.parametrize("cut", [*CUTS, pieces_bytewise])
def test_a_line_just_over_the_limit_in_one_read_is_refused(
    cut: Callable[[bytes], Iterator[bytes]],
) -> None:
    line = b"1;" + b"e" * (MAX_CHUNK_LINE - 1)  # the line without CRLF: limit + 1
    assert status_of(HEAD + line + b"\r\nx\r\n0\r\n\r\n", cut) == 400


@pytest.mark.parametrize("cut", CUTS)
def test_a_line_at_the_limit_passes(cut: Callable[[bytes], Iterator[bytes]]) -> None:
    line = b"1;" + b"e" * (MAX_CHUNK_LINE - 3) + b"\r"  # with its CR: the limit
    recorder = feed(HEAD + line + b"\nx\r\n0\r\n\r\n" + GET, cut)
    assert recorder.body == b"x"
    assert recorder.heads == [b"/up", b"/next"]
    assert recorder.ends == 2


@pytest.mark.parametrize("cut", CUTS)
def test_extensions_adding_up_past_the_limit_are_refused(
    cut: Callable[[bytes], Iterator[bytes]],
) -> None:
    each = b";" + b"e" * 1000
    count = MAX_CHUNK_EXTENSIONS // len(each) + 1
    assert status_of(HEAD + chunked(*[b"x"] * count, extension=each), cut) == 413


@pytest.mark.parametrize("cut", CUTS)
def test_a_long_trailer_line_is_refused(cut: Callable[[bytes], Iterator[bytes]]) -> None:
    trailers = b"X-T: " + b"t" * MAX_CHUNK_LINE + b"\r\n"
    assert status_of(HEAD + chunked(b"abc", trailers=trailers), cut) == 400


@pytest.mark.parametrize("cut", CUTS)
def test_framing_counts_against_the_body_limit(cut: Callable[[bytes], Iterator[bytes]]) -> None:
    limits = ParserLimits(max_body_size=1000)
    small_chunks = chunked(*[b"x"] * 300)  # 300 bytes of data, ~1.8 KiB as sent
    assert status_of(HEAD + small_chunks, cut, limits) == 413
    assert feed(HEAD + chunked(b"y" * 900), cut, limits).body == b"y" * 900


@st.composite
def earlier_requests(draw: st.DrawFn) -> bytes:
    """Requests pipelined before the chunked one: bodies may hold CRLFs of their own."""
    out = b""
    for body in draw(st.lists(st.one_of(st.none(), st.binary(max_size=40)), max_size=3)):
        if body is None:
            out += GET
        else:
            body = body.replace(b"\r", b"\r\n\r\n")
            out += b"POST /l HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
                len(body),
                body,
            )
        out += draw(st.sampled_from([b"", b"\r\n"]))  # an empty line between is allowed
    return out


@settings(max_examples=200, deadline=None)
@given(
    before=earlier_requests(),
    line=st.integers(MAX_CHUNK_LINE - 3, MAX_CHUNK_LINE + 3),
    cut=st.sampled_from([pieces_whole, pieces_random, pieces_large]),
)
def test_a_chunked_request_behind_others_in_one_read_is_bounded(
    before: bytes, line: int, cut: Callable[[bytes], Iterator[bytes]]
) -> None:
    size_line = b"1;" + b"e" * (line - 3) + b"\r"  # ``line`` bytes before its LF
    data = before + HEAD + size_line + b"\nx\r\n0\r\n\r\n" + GET
    if line > MAX_CHUNK_LINE:
        assert status_of(data, cut) == 400
    else:
        recorder = feed(data, cut)
        assert recorder.heads[-2:] == [b"/up", b"/next"]
        assert recorder.body.endswith(b"x")


def test_an_upgrade_request_with_a_chunked_body_is_bounded() -> None:
    head = (
        b"POST /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    assert status_of(head + b"1;" + b"a" * 8192 + b"\r\nx\r\n0\r\n\r\n", pieces_whole) == 400
    recorder = feed(head + chunked(b"hello", b"world") + GET, pieces_whole)
    assert recorder.body == b"helloworld"
    assert recorder.heads == [b"/ws", b"/next"]


@st.composite
def bodies(draw: st.DrawFn) -> tuple[list[bytes], bytes, bytes]:
    chunks = draw(st.lists(st.binary(min_size=1, max_size=300), max_size=8))
    extension = draw(st.sampled_from([b"", b";a=b", b';n="v"', b";" + b"z" * 200]))
    trailers = draw(st.sampled_from([b"", b"X-Sum: 1\r\n", b"A: b\r\nC: d\r\n"]))
    return chunks, extension, trailers


@settings(max_examples=150, deadline=None)
@given(
    body=bodies(),
    cuts=st.lists(st.integers(1, 400), min_size=1, max_size=30),
    leading=st.booleans(),
)
def test_bodies_within_the_limits_arrive_whole_however_cut(
    body: tuple[list[bytes], bytes, bytes], cuts: list[int], leading: bool
) -> None:
    chunks, extension, trailers = body
    data = (
        (b"\r\n" if leading else b"")
        + HEAD
        + chunked(*chunks, extension=extension, trailers=trailers)
        + GET
    )
    recorder = Recorder()
    parser = RequestParser(recorder, NO_LIMIT)
    i = 0
    for n in cuts:
        parser.feed(data[i : i + n])
        i += n
    parser.feed(data[i:])
    assert recorder.body == b"".join(chunks)
    assert recorder.heads == [b"/up", b"/next"]
    assert recorder.ends == 2


# -- responses: an upstream (or, outbound, any server) is bounded the same way --


class ResponseRecorder:
    def __init__(self) -> None:
        self.body = b""

    def on_response(self, head: ResponseHead) -> None:
        pass

    def on_response_body(self, data: bytes) -> None:
        self.body += data

    def on_response_end(self) -> None:
        pass


def response_parser() -> tuple[ResponseParser, ResponseRecorder]:
    recorder = ResponseRecorder()
    parser = ResponseParser(recorder)
    parser.expecting = True
    return parser, recorder


def test_a_response_chunk_line_over_many_reads_is_refused() -> None:
    parser, _ = response_parser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;")
    parser.feed(b"e" * 1024 * 3)
    with pytest.raises(ResponseError):
        parser.feed(b"e" * 1024 * 2)
    assert parser.broken


def test_a_response_head_over_many_reads_is_refused() -> None:
    parser, _ = response_parser()
    parser.feed(b"HTTP/1.1 200 OK\r\nX-Long: ")
    for _ in range(63):
        parser.feed(b"h" * 1024)
    with pytest.raises(ResponseError):
        parser.feed(b"h" * 2048)  # past 64 KiB


def test_a_chunked_response_within_limits_arrives_whole() -> None:
    parser, recorder = response_parser()
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(
        b"ab", b"cd", extension=b";x=y"
    )
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
    assert recorder.body == b"abcd"
    assert not parser.expecting


def test_a_head_whose_end_comes_in_reads_of_one_or_two_bytes_still_finds_its_body() -> None:
    """The head's CRLF CRLF split over three reads ("\\r", "\\n", "\\r\\n..."): the
    body starts after it, not at the next blank line (found by Hypothesis: the
    empty body's "0\\r\\n\\r\\n" was taken for the head's end)."""
    data = HEAD + chunked(b"abc") + GET
    end = len(HEAD)
    cuts = [(i, j) for i in range(end - 8, end + 1) for j in range(i + 1, end + 3)]
    cuts.append((1, 55))  # the case Hypothesis found
    for first, second in cuts:
        recorder = Recorder()
        parser = RequestParser(recorder, NO_LIMIT)
        for piece in (data[:first], data[first:second], data[second : second + 1],
                      data[second + 1 :]):  # fmt: skip
            parser.feed(piece)
        assert (recorder.body, recorder.heads) == (b"abc", [b"/up", b"/next"]), (first, second)
    recorder = Recorder()
    parser = RequestParser(recorder, NO_LIMIT)
    for index in range(len(data)):  # one byte at a time
        parser.feed(data[index : index + 1])
    assert (recorder.body, recorder.heads) == (b"abc", [b"/up", b"/next"])
