"""HTTP/1.1 response heads from an upstream (``pillion.http.response``): interim
responses, then one final response, with its body, then the connection's end.

Property: the parser raises nothing but ``ResponseError`` (the proxy's 502), and
the head it delivers describes the bytes that follow it: fields well-formed, the
body framing the one llhttp reads, the body exactly its framed bytes. Fed whole,
in pieces and byte by byte (the events agree), by the compiled and the source
module (they agree exactly).
"""

from __future__ import annotations

from types import ModuleType

from fuzz.httpjudge import judge_responses
from fuzz.httpparse import Outcome, Recorder, consistent, implementations, pieces
from fuzz.target import Target
from pillion.http.errors import ResponseError

__all__ = ["TARGET", "check", "parse_responses"]

BYTEWISE_UP_TO = 2048


def parse_responses(module: ModuleType, data: bytes, cuts: list[int] | None = None) -> Outcome:
    recorder = Recorder()
    parser = module.ResponseParser(recorder)
    parser.expecting = True  # a request was sent
    try:
        for piece in pieces(data, cuts or []):
            parser.feed(piece)
        if not parser.upgraded:
            parser.feed_eof()
    except ResponseError as exc:
        recorder.outcome.error = exc
    error = recorder.outcome.error
    assert error is None or error.status == 502, error
    return recorder.outcome


def check(data: bytes) -> None:
    (_, installed), *others = implementations()
    whole = parse_responses(installed, data)
    for _, source in others:
        again = parse_responses(source, data)
        assert again.events == whole.events, "compiled != source"
        assert type(again.error) is type(whole.error), "compiled != source"
    feedings = [[len(data) // 3, 2 * len(data) // 3]]
    if len(data) <= BYTEWISE_UP_TO:
        feedings.append(list(range(len(data))))
    for cuts in feedings:
        assert consistent(whole, parse_responses(installed, data, cuts)), f"cut at {cuts[:3]}"
    judge_responses(data, whole)


TARGET = Target(
    name="http-response",
    summary="HTTP/1.1 response heads and bodies from an upstream (pillion.http.response)",
    check=check,
    tokens=(
        b"\r\n",
        b"\r\n\r\n",
        b"\n",
        b" ",
        b"\t",
        b":",
        b"\x00",
        b"HTTP/1.1 ",
        b"HTTP/1.0 ",
        b"100 Continue\r\n\r\n",
        b"101 ",
        b"204 ",
        b"304 ",
        b"099 ",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Connection: close\r\n",
        b"0\r\n\r\n",
        b";",
    ),
    max_len=48 * 1024,
)
