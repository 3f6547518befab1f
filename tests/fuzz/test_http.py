"""The HTTP/1.1 targets under Hypothesis: mutated seeds through each target's
check, and valid messages built from their fields, which must parse to exactly
those fields (the compiled and the source parsers, whole and in pieces: the
checks compare them)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from fuzz.httpparse import implementations
from fuzz.targets import http_chunked, http_request, http_response, load
from pillion.http.request import ParserLimits
from tests.fuzz.strategies import FUZZ, field_values, mutated, tokens

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
# fields the parser acts on (framing, hop-by-hop, host): the valid messages set their own
SPECIAL = {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"}
SPECIAL |= {b"upgrade", b"te", b"trailer", b"keep-alive"}
PCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"

fields = st.lists(
    st.tuples(tokens.map(str.encode), field_values).filter(lambda f: f[0].lower() not in SPECIAL),
    max_size=6,
)
paths = st.lists(st.text(PCHARS, max_size=8), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)
targets = st.tuples(paths, st.none() | st.text(PCHARS + "/?", max_size=10)).map(
    lambda t: (t[0] if t[1] is None else f"{t[0]}?{t[1]}").encode()
)


@dataclass(frozen=True)
class Request:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    chunked: bool

    def raw(self) -> bytes:
        framing = b"transfer-encoding: chunked\r\n" if self.chunked else b""
        if self.body and not self.chunked:
            framing = b"content-length: %d\r\n" % len(self.body)
        fields = b"".join(b"%s: %s\r\n" % pair for pair in self.headers)
        head = b"%s %s HTTP/1.1\r\nHost: app\r\n%s%s\r\n" % (
            self.method,
            self.target,
            fields,
            framing,
        )
        if self.chunked:
            return (
                head
                + (b"%x\r\n%s\r\n" % (len(self.body), self.body) if self.body else b"")
                + b"0\r\n\r\n"
            )
        return head + self.body


requests = st.builds(
    Request,
    st.sampled_from(METHODS).map(str.encode),
    targets,
    fields,
    st.binary(max_size=30),
    st.booleans(),
)


@FUZZ
@given(mutated(load("http-request")))
def test_mutated_requests(data: bytes) -> None:
    http_request.check(data)


@FUZZ
@given(st.lists(requests, min_size=1, max_size=3))
def test_valid_requests_parse_to_their_fields(sent: list[Request]) -> None:
    data = b"".join(request.raw() for request in sent)
    http_request.check(data)
    for request_module, _ in implementations():
        outcome = http_request.parse_requests(request_module, data, ParserLimits())
        assert outcome.error is None
        heads = [event for event in outcome.events if event[0] == "head"]
        assert [(h[1], h[2], h[3]) for h in heads] == [(r.method, r.target, b"1.1") for r in sent]
        for head, request in zip(heads, sent, strict=True):
            assert list(head[4][1 : 1 + len(request.headers)]) == request.headers
        bodies = [event[1] for event in outcome.events if event[0] == "body"]
        assert bodies == [r.body for r in sent if r.body]
        assert outcome.ended() == len(sent)


@FUZZ
@given(mutated(load("http-response")))
def test_mutated_responses(data: bytes) -> None:
    http_response.check(data)


@FUZZ
@given(
    st.integers(200, 599).filter(lambda s: s not in (204, 304)),
    fields,
    st.binary(max_size=30),
    st.sampled_from(["length", "chunked", "close"]),
    st.booleans(),
)
def test_valid_responses_parse_to_their_fields(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, framing: str, interim: bool
) -> None:
    head = b"HTTP/1.1 %d Whatever It Says\r\n%s" % (
        status,
        b"".join(b"%s: %s\r\n" % f for f in headers),
    )
    if framing == "length":
        data = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    elif framing == "chunked":
        chunk = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
        data = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n"
    else:
        data = head + b"\r\n" + body
    if interim:
        data = b"HTTP/1.1 100 Continue\r\n\r\n" + data
    http_response.check(data)
    for _, response_module in implementations():
        outcome = http_response.parse_responses(response_module, data)
        assert outcome.error is None
        final = [event for event in outcome.events if event[0] == "head"][-1]
        assert final[1] == status
        assert list(final[2][: len(headers)]) == headers
        assert final[4] == framing
        assert b"".join(outcome.bodies()) == body
        assert outcome.ended() == 1


@FUZZ
@given(mutated(load("http-chunked")))
def test_mutated_chunked_bodies(data: bytes) -> None:
    http_chunked.check(data)


extensions = st.lists(
    st.tuples(tokens, st.none() | tokens | st.text(PCHARS + ' \\"', max_size=8)).map(
        lambda e: (
            e[0] if e[1] is None else f'{e[0]}="{e[1].replace(chr(92), "").replace(chr(34), "")}"'
        )
    ),
    max_size=2,
).map(lambda items: "".join(f";{item}" for item in items).encode())
chunks = st.lists(
    st.tuples(st.binary(min_size=1, max_size=20), st.integers(0, 3), st.booleans(), extensions),
    max_size=5,
)


@FUZZ
@given(chunks, fields, st.integers(1, 3))
def test_valid_chunked_bodies_decode_to_their_chunks(
    sent: list[tuple[bytes, int, bool, bytes]], trailers: list[tuple[bytes, bytes]], zeros: int
) -> None:
    body = b""
    for data, leading_zeros, upper, extension in sent:
        size = b"0" * leading_zeros + (b"%X" if upper else b"%x") % len(data)
        body += size + extension + b"\r\n" + data + b"\r\n"
    body += b"0" * zeros + b"\r\n" + b"".join(b"%s: %s\r\n" % f for f in trailers) + b"\r\n"
    http_chunked.check(body + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    for request_module, response_module in implementations():
        request = http_request.parse_requests(request_module, http_chunked.REQUEST_HEAD + body)
        response = http_response.parse_responses(response_module, http_chunked.RESPONSE_HEAD + body)
        for outcome in (request, response):
            # a parser may refuse a chunk line over its limit, never read another body
            if outcome.error is None or outcome.ended():
                assert b"".join(outcome.bodies()) == b"".join(data for data, *_ in sent)
                assert outcome.ended() == 1
