"""Telling HTTP/1 from anything else by a connection's first bytes."""

from __future__ import annotations

import socket
import struct

import pytest

from pillion.http.sniff import LONGEST_PREFIX, Sniffed, sniff
from pillion.proxy.transparent import parse_sockaddr_in, parse_sockaddr_in6


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\n", b"OPTIONS * HTTP/1.1", b"PATCH ", b"HEAD /"],
)
def test_request_lines_are_http(data: bytes) -> None:
    assert sniff(data) is Sniffed.HTTP


def test_the_http2_preface_is_http2() -> None:
    assert sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04") is Sniffed.HTTP2
    assert sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") is Sniffed.HTTP2
    assert sniff(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n") is Sniffed.OTHER


@pytest.mark.parametrize("data", [b"", b"G", b"GE", b"GET", b"OPTIO", b"DELETE", b"PRI * HT"])
def test_prefixes_of_a_method_wait_for_more(data: bytes) -> None:
    assert sniff(data) is Sniffed.UNDECIDED


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",  # PostgreSQL's SSLRequest
        b"*1\r\n$4\r\nPING\r\n",  # Redis
        b"CONNECT example:443 HTTP/1.1",  # refused by the HTTP parser: passed through
        b"get / HTTP/1.1",  # methods are case-sensitive
        b"GETX / HTTP/1.1",
        b"hello\n",
    ],
)
def test_anything_else_is_not(data: bytes) -> None:
    assert sniff(data) is Sniffed.OTHER


def test_the_longest_prefix_always_decides() -> None:
    assert sniff(b"OPTIONS "[:LONGEST_PREFIX]) is Sniffed.HTTP
    assert all(sniff(bytes([b]) * LONGEST_PREFIX) is not Sniffed.UNDECIDED for b in range(256))


def test_sockaddr_in_as_getsockopt_returns_it() -> None:
    raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 8443)
    raw += socket.inet_aton("10.1.2.3") + bytes(8)
    assert parse_sockaddr_in(raw) == ("10.1.2.3", 8443)


def test_sockaddr_in6_as_getsockopt_returns_it() -> None:
    raw = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 8443, 0)
    raw += socket.inet_pton(socket.AF_INET6, "fd00:124::6") + bytes(4)
    assert parse_sockaddr_in6(raw) == ("fd00:124::6", 8443)
