"""The compiled parsers and their source give the same verdicts on the same bytes.

``pillion.http.request`` and ``pillion.http.response`` run compiled (mypyc) when
the package was built with extensions. Here each is loaded a second time from
its ``.py``, under another name, and Hypothesis feeds both the same bytes, cut
at the same places: the events (heads, bodies, ends) and the rejections (status
and reason) must match. Under ``PILLION_NO_EXTENSIONS=1`` both sides are source
and the test checks the harness itself.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pillion.http.request as request_module
import pillion.http.response as response_module
from pillion import extensions
from pillion.http.errors import RequestError, ResponseError

SOURCE = Path(request_module.__file__).parent


def load_source(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_parity_{name}", SOURCE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


PURE_REQUEST = load_source("request")
PURE_RESPONSE = load_source("response")


def test_the_two_sides_are_what_they_claim() -> None:
    assert Path(PURE_REQUEST.__file__ or "").suffix == ".py"
    suffix = Path(request_module.__file__ or "").suffix
    assert (suffix == ".so") == extensions.compiled()
    if os.environ.get("PILLION_EXPECT_COMPILED"):  # set by `make test` for the main run
        assert extensions.compiled(), extensions.describe()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_request(self, head: Any) -> None:
        self.events.append((
            "request", head.method, head.target, head.version, tuple(head.headers), head.host,
            head.keep_alive, head.body, head.content_length, frozenset(head.connection_names),
            head.expect_continue, head.upgrade,
        ))  # fmt: skip

    def on_request_body(self, data: bytes) -> None:
        self.events.append(("body", data))

    def on_request_end(self) -> None:
        self.events.append(("end",))

    def on_response(self, head: Any) -> None:
        self.events.append((
            "response", head.status, tuple(head.headers), head.keep_alive, head.body,
            head.content_length, frozenset(head.connection_names),
        ))  # fmt: skip

    def on_response_body(self, data: bytes) -> None:
        self.events.append(("body", data))

    def on_response_end(self) -> None:
        self.events.append(("end",))


def joined(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Body events merged: where a body is cut depends only on the feed, not the parser."""
    out: list[tuple[Any, ...]] = []
    for event in events:
        if event[0] == "body" and out and out[-1][0] == "body":
            out[-1] = ("body", out[-1][1] + event[1])
        else:
            out.append(event)
    return out


LIMITS_ARGS = {"max_header_size": 400, "max_headers": 8, "max_uri_size": 60, "max_body_size": 40}


def run_request(module: ModuleType, pieces: list[bytes]) -> tuple[object, ...]:
    recorder = Recorder()
    parser = module.RequestParser(recorder, request_module.ParserLimits(**LIMITS_ARGS))
    verdict: object = None
    try:
        for piece in pieces:
            parser.feed(piece)
    except RequestError as error:
        verdict = (error.status, error.reason)
    return joined(recorder.events), verdict, parser.upgraded, parser.partial_head


def run_response(module: ModuleType, pieces: list[bytes], requests: int) -> tuple[object, ...]:
    recorder = Recorder()
    parser = module.ResponseParser(recorder)
    verdict: object = None
    try:
        for piece in pieces:
            if not parser.expecting and requests:
                requests -= 1
                parser.expecting = True
            parser.feed(piece)
        parser.feed_eof()
    except ResponseError as error:
        verdict = (type(error).__name__, str(error))
    return joined(recorder.events), verdict, parser.broken, parser.upgraded


# Pieces of HTTP/1.1, valid and hostile: Hypothesis strings them together.
METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"CONNECT", b"G\x00T", b"PRI", b"get"]
TARGETS = [b"/", b"/a?b=1", b"*", b"http://h:81/p?q", b"h:80", b"/" + b"x" * 70, b"/\x7f", b""]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/11", b"HTTP/0.9"]
HEADERS = [
    b"Host: x", b"host: y", b"Content-Length: 5", b"Content-Length: 3", b"content-length: -1",
    b"Content-Length: 1, 1", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: identity", b"Connection: close", b"Connection: keep-alive, Upgrade",
    b"Upgrade: websocket", b"Expect: 100-continue", b"Expect: nope", b"X-A: 1",
    b"X-Fold: a\r\n b", b"Bad Name: 1", b"X-B : 1", b"X-C: \x01", b"X-D: " + b"d" * 120,
    b"TE: trailers", b"",
]  # fmt: skip
BODIES = [b"", b"hello", b"abc", b"5\r\nhello\r\n0\r\n\r\n", b"3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
          b"zz\r\n", b"3;x=1\r\nabc\r\n0\r\n\r\n", b"1\r\na\n0\r\n\r\n", b"x" * 50]  # fmt: skip
EOLS = [b"\r\n", b"\n", b"\r"]

requests = st.lists(
    st.tuples(
        st.sampled_from(METHODS), st.sampled_from(TARGETS), st.sampled_from(VERSIONS),
        st.lists(st.sampled_from(HEADERS), max_size=6), st.sampled_from(BODIES),
        st.sampled_from(EOLS),
    ),
    min_size=1, max_size=3,
).map(
    lambda items: b"".join(
        method + b" " + target + b" " + version + eol
        + b"".join(header + eol for header in headers) + eol + body
        for method, target, version, headers, body, eol in items
    )
)  # fmt: skip

STATUS_LINES = [b"HTTP/1.1 200 OK", b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 Not Modified",
                b"HTTP/1.1 101 Switching Protocols", b"HTTP/1.1 100 Continue", b"HTTP/1.0 200 OK",
                b"HTTP/1.1 99 Low", b"HTTP/1.1 2000 Big", b"HTTX/1.1 200 OK"]  # fmt: skip

responses = st.lists(
    st.tuples(
        st.sampled_from(STATUS_LINES), st.lists(st.sampled_from(HEADERS), max_size=5),
        st.sampled_from(BODIES),
    ),
    min_size=1, max_size=3,
).map(
    lambda items: b"".join(
        line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body
        for line, headers, body in items
    )
)  # fmt: skip


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points})
    edges = [0, *marks, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a] or [b""]


PARITY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PARITY
@given(data=requests | st.binary(max_size=200), points=st.lists(st.integers(0, 10_000), max_size=6))
def test_request_parser_verdicts_match(data: bytes, points: list[int]) -> None:
    pieces = cut(data, points)
    assert run_request(request_module, pieces) == run_request(PURE_REQUEST, pieces)


@PARITY
@given(
    data=responses | st.binary(max_size=200),
    points=st.lists(st.integers(0, 10_000), max_size=6),
    asked=st.integers(1, 3),
)
def test_response_parser_verdicts_match(data: bytes, points: list[int], asked: int) -> None:
    pieces = cut(data, points)
    assert run_response(response_module, pieces, asked) == run_response(
        PURE_RESPONSE, pieces, asked
    )


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nGET /",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\r\n",
    ],
)
def test_known_shapes_match(data: bytes) -> None:
    """Smuggling shapes and an upgrade, whole and byte by byte."""
    for pieces in ([data], [data[i : i + 1] for i in range(len(data))]):
        assert run_request(request_module, pieces) == run_request(PURE_REQUEST, pieces)
