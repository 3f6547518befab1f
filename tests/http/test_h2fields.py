"""HTTP/2 field lists to request and response heads, and back: RFC 9113 §8's rules
as stream errors, the listener's limits as statuses."""

from __future__ import annotations

import pytest

from pillion.http.errors import MalformedStream, RequestError, ResponseError
from pillion.http.h2fields import request_head, response_fields, response_head, trailer_fields
from pillion.http.request import ParserLimits

LIMITS = ParserLimits(max_header_size=1024, max_headers=10, max_uri_size=64, max_body_size=100)
BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"shop"), (b":path", b"/a")]


def test_a_request_becomes_a_head_of_version_2() -> None:
    head = request_head(
        [*BASE, (b"cookie", b"a=1"), (b"x-y", b"z"), (b"cookie", b"b=2")], True, LIMITS
    )
    assert (head.method, head.target, head.version, head.host) == (b"GET", b"/a", b"2", b"shop")
    assert head.body == "none"
    assert head.headers == [(b"x-y", b"z"), (b"cookie", b"a=1; b=2")]  # one cookie field
    assert head.keep_alive
    assert not head.upgrade
    assert not head.expect_continue


def test_the_body_kind_follows_the_stream() -> None:
    assert request_head(BASE, False, LIMITS).body == "chunked"  # length unknown
    sized = request_head([*BASE, (b"content-length", b"7")], False, LIMITS)
    assert (sized.body, sized.content_length) == ("length", 7)
    with pytest.raises(MalformedStream):
        request_head([*BASE, (b"content-length", b"7")], True, LIMITS)  # announced, none came


def test_host_stands_in_for_a_missing_authority() -> None:
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"h")]
    assert request_head(fields, True, LIMITS).host == b"h"
    with pytest.raises(RequestError) as no_host:
        request_head(fields[:3], True, LIMITS)
    assert no_host.value.status == 400


@pytest.mark.parametrize(
    "fields",
    [
        [*BASE, (b"X-Up", b"1")],
        [*BASE, (b"connection", b"close")],
        [*BASE, (b"keep-alive", b"5")],
        [*BASE, (b"proxy-connection", b"x")],
        [*BASE, (b"transfer-encoding", b"chunked")],
        [*BASE, (b"upgrade", b"websocket")],
        [*BASE, (b"te", b"gzip")],
        [*BASE, (b"x-a", b" padded")],
        [*BASE, (b"x-a", b"nul\x00")],
        [*BASE, (b"content-length", b"1, 2")],
        [*BASE, (b"content-length", b"1"), (b"content-length", b"2")],
        [*BASE, (b":path", b"/again")],
        [(b"x-a", b"1"), *BASE],
        BASE[:3],  # no :path
        [(b":method", b"GET"), (b":authority", b"shop"), (b":path", b"/")],  # no :scheme
        [*BASE[:3], (b":path", b"no-slash")],
        [*BASE[:3], (b":path", b"/a b")],
        [*BASE, (b":protocol", b"websocket")],
    ],
)
def test_malformed_requests_are_stream_errors(fields: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(MalformedStream):
        request_head(fields, True, LIMITS)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ([*BASE, (b"x-big", b"v" * 2000)], 431),
        ([*BASE, *[(b"x-%d" % n, b"v") for n in range(11)]], 431),
        ([*BASE[:3], (b":path", b"/" + b"p" * 100)], 414),
        ([*BASE, (b"content-length", b"101")], 413),
        ([(b":method", b"CONNECT"), (b":authority", b"db:5432")], 501),
    ],
)
def test_over_the_limits_or_unsupported(fields: list[tuple[bytes, bytes]], status: int) -> None:
    with pytest.raises(RequestError) as raised:
        request_head(fields, False, LIMITS)
    assert not isinstance(raised.value, MalformedStream)
    assert raised.value.status == status


def test_te_trailers_and_options_star_are_fine() -> None:
    head = request_head([*BASE, (b"te", b"trailers")], True, LIMITS)
    assert (b"te", b"trailers") in head.headers
    star = [
        (b":method", b"OPTIONS"),
        (b":scheme", b"http"),
        (b":authority", b"s"),
        (b":path", b"*"),
    ]
    assert request_head(star, True, LIMITS).target == b"*"


def test_responses_from_an_http2_app() -> None:
    head = response_head([(b":status", b"200"), (b"content-length", b"3"), (b"x", b"y")], False)
    assert (head.status, head.body, head.content_length) == (200, "length", 3)
    trailers_only = response_head([(b":status", b"200"), (b"grpc-status", b"14")], True)
    assert trailers_only.body == "none"
    assert response_head([(b":status", b"204"), (b"connection", b"close")], True).headers == []
    for bad in ([(b"x", b"y")], [(b":status", b"20")], [(b"x", b"y"), (b":status", b"200")]):
        with pytest.raises(ResponseError):
            response_head(bad, True)


def test_fields_for_an_http2_client() -> None:
    fields = response_fields(201, [(b"Content-Type", b"text/plain"), (b"Keep-Alive", b"5")], 12)
    assert fields == [(b":status", b"201"), (b"content-type", b"text/plain"),
                      (b"content-length", b"12")]  # fmt: skip
    assert trailer_fields([(b"Grpc-Status", b"0"), (b":status", b"1")]) == [(b"grpc-status", b"0")]
