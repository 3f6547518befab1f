"""The strict request parser, without sockets: every input whole, byte by byte, and
followed by more data."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.http.errors import RequestError
from pillion.http.request import ParserLimits, RequestHead, RequestParser


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_request(self, head: RequestHead) -> None:
        self.events.append(("head", head))

    def on_request_body(self, data: bytes) -> None:
        if self.events and self.events[-1][0] == "body":
            self.events[-1] = ("body", self.events[-1][1] + data)  # type: ignore[operator]
        else:
            self.events.append(("body", data))

    def on_request_end(self) -> None:
        self.events.append(("end", None))

    def heads(self) -> list[RequestHead]:
        return [e[1] for e in self.events if e[0] == "head"]  # type: ignore[misc]

    def bodies(self) -> list[bytes]:
        return [e[1] for e in self.events if e[0] == "body"]  # type: ignore[misc]


def whole(parser: RequestParser, data: bytes) -> None:
    parser.feed(data)


def bytewise(parser: RequestParser, data: bytes) -> None:
    for i in range(len(data)):
        parser.feed(data[i : i + 1])


FEEDERS: list[Callable[[RequestParser, bytes], None]] = [whole, bytewise]
LIMITS = ParserLimits(max_header_size=1024, max_headers=10, max_uri_size=100, max_body_size=50)


def parse(data: bytes, feed: Callable[[RequestParser, bytes], None] = whole) -> Recorder:
    recorder = Recorder()
    feed(RequestParser(recorder, LIMITS), data)
    return recorder


def rejected(data: bytes, feed: Callable[[RequestParser, bytes], None] = whole) -> int:
    with pytest.raises(RequestError) as caught:
        parse(data, feed)
    return caught.value.status


@pytest.mark.parametrize("feed", FEEDERS)
def test_get(feed: Callable[[RequestParser, bytes], None]) -> None:
    recorder = parse(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n", feed)
    [head] = recorder.heads()
    assert (head.method, head.target, head.version, head.host) == (b"GET", b"/a?b=1", b"1.1", b"x")
    assert head.headers == [(b"Host", b"x"), (b"X-A", b"1")]
    assert head.keep_alive
    assert head.body == "none"
    assert recorder.events[-1] == ("end", None)


@pytest.mark.parametrize("feed", FEEDERS)
def test_bodies(feed: Callable[[RequestParser, bytes], None]) -> None:
    recorder = parse(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
        feed,
    )
    first, second = recorder.heads()
    assert (first.body, first.content_length) == ("length", 5)
    assert second.body == "chunked"
    assert recorder.bodies() == [b"hello", b"abcde"]


def test_pipelined_requests_and_trailing_partial() -> None:
    recorder = Recorder()
    parser = RequestParser(recorder, LIMITS)
    parser.feed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HT")
    assert [h.target for h in recorder.heads()] == [b"/1", b"/2"]
    assert parser.partial_head
    parser.feed(b"TP/1.1\r\nHost: x\r\n\r\n")
    assert [h.target for h in recorder.heads()] == [b"/1", b"/2", b"/3"]
    assert not parser.partial_head


def test_absolute_form_becomes_origin_form() -> None:
    [head] = parse(b"GET http://app.example:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n").heads()
    assert (head.target, head.host) == (b"/p?q", b"app.example:8080")


def test_http_10_without_host_and_connection_close() -> None:
    [head] = parse(b"GET / HTTP/1.0\r\n\r\n").heads()
    assert not head.keep_alive
    [head] = parse(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Y\r\n\r\n").heads()
    assert not head.keep_alive
    assert head.connection_names == {b"close", b"x-y"}


def test_expect_continue() -> None:
    [head] = parse(
        b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
    ).heads()
    assert head.expect_continue


SMUGGLING = {
    "content-length and transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    "transfer-encoding then content-length": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        400,
    ),
    "two content-lengths": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    "same content-length twice": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
    "content-length list": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n", 400),
    "signed content-length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n", 400),
    "final coding not chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    ),
    "gzip then chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "unknown coding": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n", 400),
    "space before colon": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", 400),
    "bad name character": (b"GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400),
    "NUL in value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\x002\r\n\r\n", 400),
    "bare CR in value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n", 400),
    "bare LF line ending": (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    "bad chunk size": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        400,
    ),
    "chunk size overflow": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        400,
    ),
    "chunk without CRLF": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        400,
    ),
    "two hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "no host in 1.1": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "HTTP/2.0 on HTTP/1 syntax": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "CONNECT": (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    "unknown method": (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    "unknown expectation": (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n", 417),
    "space in target": (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "non-http absolute target": (b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
}


@pytest.mark.parametrize("feed", FEEDERS, ids=["whole", "bytewise"])
@pytest.mark.parametrize("case", SMUGGLING)
def test_smuggling_shapes_are_rejected(
    case: str, feed: Callable[[RequestParser, bytes], None]
) -> None:
    data, status = SMUGGLING[case]
    recorder = Recorder()
    parser = RequestParser(recorder, LIMITS)
    with pytest.raises(RequestError) as caught:
        feed(parser, data)
    assert caught.value.status == status
    if "chunk" not in case:  # errors in a chunked body come after the head was accepted
        assert recorder.heads() == []


def test_smuggled_request_never_becomes_a_head() -> None:
    recorder = Recorder()
    with pytest.raises(RequestError):
        RequestParser(recorder, LIMITS).feed(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
        )
    assert recorder.heads() == []


@pytest.mark.parametrize("feed", FEEDERS, ids=["whole", "bytewise"])
def test_limits(feed: Callable[[RequestParser, bytes], None]) -> None:
    assert rejected(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", feed) == 414
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(11))
    assert rejected(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", feed) == 431
    assert rejected(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 2000 + b"\r\n\r\n", feed) == 431
    assert rejected(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 51\r\n\r\n", feed) == 413
    chunks = b"".join(b"a\r\n0123456789\r\n" for _ in range(6))
    body = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    assert rejected(body, feed) == 413


def test_an_endless_header_line_is_bounded() -> None:
    parser = RequestParser(Recorder(), LIMITS)
    parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\nX: ")
    status = 0
    for _ in range(100):  # never a CRLF: stopped once past max_header_size
        try:
            parser.feed(b"a" * 100)
        except RequestError as error:
            status = error.status
            break
    assert status == 431


def test_body_within_limits_passes() -> None:
    recorder = parse(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n" + b"a" * 50)
    assert recorder.bodies() == [b"a" * 50]


# -- property: every request is parsed exactly, or rejected with an error status --

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12)
VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz 0123456789;=,/.", max_size=20).map(str.strip)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS"]))
    target = b"/" + draw(TOKEN).encode()
    headers = [
        (b"x-" + name.encode(), value.encode())
        for name, value in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=6))
    ]
    body = draw(st.binary(max_size=40))
    return method, target, headers, body


def serialise(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes:
    lines = [b"%s %s HTTP/1.1\r\nHost: h\r\n" % (method, target)]
    lines += [b"%s: %s\r\n" % pair for pair in headers]
    lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
    return b"".join(lines) + body


@settings(max_examples=300, deadline=None)
@given(requests(), st.data())
def test_parsed_exactly_or_rejected(
    request: tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes], data: st.DataObject
) -> None:
    method, target, headers, body = request
    wire = bytearray(serialise(method, target, headers, body))
    mutate = data.draw(st.booleans())
    if mutate:
        for _ in range(data.draw(st.integers(1, 3))):
            position = data.draw(st.integers(0, len(wire) - 1))
            wire[position] = data.draw(st.integers(0, 255))
    recorder = Recorder()
    parser = RequestParser(recorder, ParserLimits())
    status = 0
    try:
        parser.feed(bytes(wire))
    except RequestError as error:
        status = error.status
    if status:
        assert 400 <= status < 500 or status in (501, 505)
    elif not mutate:
        [head] = recorder.heads()
        assert (head.method, head.target) == (method, target)
        assert head.headers[1:-1] == headers
        assert b"".join(recorder.bodies()) == body


# -- upgrades --

UPGRADE_HEAD = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


def _feed_holding(parser: RequestParser, data: bytes, feed: Callable[..., None]) -> bytes:
    """Feed as a connection does: once upgraded, hold what follows."""
    feed(parser, data)
    return parser.take_held()


@pytest.mark.parametrize("feed", FEEDERS, ids=["whole", "bytewise"])
def test_an_upgrade_without_a_body_stops_the_parse_and_holds_the_rest(
    feed: Callable[[RequestParser, bytes], None],
) -> None:
    recorder = Recorder()
    parser = RequestParser(recorder, LIMITS)
    held = _feed_holding(parser, UPGRADE_HEAD + b"\r\n" + b"\x81\x05hello" + NEXT, feed)
    [head] = recorder.heads()
    assert head.upgrade
    assert [e[0] for e in recorder.events] == ["head", "end"]
    assert parser.upgraded
    assert held == b"\x81\x05hello" + NEXT  # perhaps another protocol: not parsed
    assert parser.take_held() == b""


@pytest.mark.parametrize("feed", FEEDERS, ids=["whole", "bytewise"])
def test_after_an_upgrade_that_did_not_happen_parsing_goes_on(
    feed: Callable[[RequestParser, bytes], None],
) -> None:
    recorder = Recorder()
    parser = RequestParser(recorder, LIMITS)
    held = _feed_holding(parser, UPGRADE_HEAD + b"\r\n" + NEXT + NEXT[:10], feed)
    parser.resume_after_upgrade()
    feed(parser, held)
    assert [h.target for h in recorder.heads()] == [b"/ws", b"/next"]
    assert not parser.upgraded
    assert parser.partial_head  # the trailing partial request waits for more


@pytest.mark.parametrize("feed", FEEDERS, ids=["whole", "bytewise"])
@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 11\r\n\r\nhello world",
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ],
    ids=["length", "chunked"],
)
def test_an_upgrade_with_a_body_is_a_plain_request(
    feed: Callable[[RequestParser, bytes], None], framing: bytes
) -> None:
    recorder = parse(UPGRADE_HEAD + framing + NEXT, feed)
    first, second = recorder.heads()
    assert not first.upgrade  # not offered: served as plain HTTP/1.1
    assert first.body in ("length", "chunked")
    assert recorder.bodies() == [b"hello world"]
    assert [e[0] for e in recorder.events] == ["head", "body", "end", "head", "end"]
    assert second.target == b"/next"
    assert first.headers == parse(UPGRADE_HEAD + framing).heads()[0].headers


def test_the_body_limit_holds_for_an_upgrade_request() -> None:
    body = b"x" * (LIMITS.max_body_size + 1)
    chunked = b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(body), body)
    assert rejected(UPGRADE_HEAD + chunked) == 413
    assert rejected(UPGRADE_HEAD + b"Content-Length: %d\r\n\r\n" % len(body)) == 413


@settings(max_examples=200, deadline=None)
@given(
    # within LIMITS.max_body_size (50) framing and all: 32 bytes chunked are 43 on the wire
    body=st.binary(min_size=1, max_size=32),
    chunked=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=6),
)
def test_an_upgrade_request_body_arrives_whole_however_it_is_cut(
    body: bytes, chunked: bool, cuts: list[int]
) -> None:
    framing = (
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        if chunked
        else b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    data = UPGRADE_HEAD + framing + NEXT
    recorder = Recorder()
    parser = RequestParser(recorder, LIMITS)
    position = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        parser.feed(data[position:cut])
        position = max(position, min(cut, len(data)))
    assert recorder.bodies() == [body]
    assert [h.target for h in recorder.heads()] == [b"/ws", b"/next"]
    assert not parser.upgraded
