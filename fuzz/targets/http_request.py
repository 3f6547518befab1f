"""HTTP/1.1 request heads (``pillion.http.request``): a stream of requests from a
client, pipelined or not, with their bodies.

Property: the parser raises nothing but ``RequestError`` (a 4xx or 5xx), and
what it accepts is exactly what was sent: each head field by field (a valid
method, target, version and fields, the framing its headers say), round-tripping
through serialisation, each body exactly its framed bytes, and the next request
starting where the last one ended. Fed whole, in three pieces and byte by byte
(the events agree), by the compiled and the source module (they agree exactly),
and with small limits (413, 414, 431).
"""

from __future__ import annotations

from functools import partial
from types import ModuleType

from fuzz.httpjudge import judge_requests
from fuzz.httpparse import Outcome, Recorder, consistent, implementations, pieces
from fuzz.target import Target
from pillion.http.errors import RequestError
from pillion.http.request import ParserLimits

__all__ = ["TARGET", "check", "parse_requests"]

LIMITS = ParserLimits()
SMALL = ParserLimits(max_header_size=600, max_headers=8, max_uri_size=64, max_body_size=40)
BYTEWISE_UP_TO = 2048  # longer inputs are fed in pieces only (byte by byte is slow)


def parse_requests(
    module: ModuleType, data: bytes, limits: ParserLimits = LIMITS, cuts: list[int] | None = None
) -> Outcome:
    recorder = Recorder()
    parser = module.RequestParser(recorder, limits)
    try:
        for piece in pieces(data, cuts or []):
            parser.feed(piece)
    except RequestError as exc:
        recorder.outcome.error = exc
    error = recorder.outcome.error
    assert error is None or 400 <= error.status <= 599, error
    return recorder.outcome


def _error(outcome: Outcome) -> tuple[int, str] | None:
    return None if outcome.error is None else (outcome.error.status, outcome.error.reason)


def check(data: bytes) -> None:
    (installed, _), *others = implementations()
    whole = parse_requests(installed, data)
    for source, _ in others:
        again = parse_requests(source, data)
        assert (again.events, _error(again)) == (whole.events, _error(whole)), "compiled != source"
    feedings = [[len(data) // 3, 2 * len(data) // 3]]
    if len(data) <= BYTEWISE_UP_TO:
        feedings.append(list(range(len(data))))
    for cuts in feedings:
        assert consistent(whole, parse_requests(installed, data, cuts=cuts)), f"cut at {cuts[:3]}"
    small = parse_requests(installed, data, SMALL)
    assert consistent(whole, small), "small limits changed what was accepted"
    for outcome, limits in ((whole, LIMITS), (small, SMALL)):
        judge_requests(data, outcome, partial(parse_requests, installed, limits=limits))


TARGET = Target(
    name="http-request",
    summary="HTTP/1.1 request heads and bodies (pillion.http.request)",
    check=check,
    tokens=(
        b"\r\n",
        b"\r\n\r\n",
        b"\n",
        b" ",
        b"\t",
        b":",
        b"\x00",
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"Host: a\r\n",
        b"Content-Length: 5\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Connection: upgrade\r\nUpgrade: websocket\r\n",
        b"Expect: 100-continue\r\n",
        b"0\r\n\r\n",
        b"http://h:8/",
        b"GET ",
        b"CONNECT ",
        b"%00",
        b"#",
        b"?",
    ),
    max_len=48 * 1024,
)
