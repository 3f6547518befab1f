"""Judging a parser's outcome against the bytes it was fed.

The parsers' events are replayed against an independent reading of the same
bytes (``httpref``): where each head ends, how its body is framed and where the
next message begins. A head that was delivered must be well-formed field by
field; a body must be exactly the bytes its framing says (a chunked body
decoded by ``httpref.dechunk``); a message the bytes complete must have ended,
unless the parser refused it. Anything else is a desynchronisation: a proxy
would forward a different message than the one it was sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fuzz.httpparse import Event, Outcome
from fuzz.httpref import (
    dechunk,
    final_coding,
    head_end,
    is_field_value,
    is_target,
    is_token,
    serialize_fields,
    skip_empty_lines,
)
from pillion.http.headers import HeaderPairs, connection_tokens

__all__ = ["judge_requests", "judge_responses"]

# The version and the reason phrase are llhttp's to check (it takes HTTP/2.0, and
# control characters in a reason): the head carries neither, the proxy writes its own.
_STATUS_LINE = re.compile(rb"HTTP/[0-9]\.[0-9] [0-9]{3}(?: .*)?", re.DOTALL)


def _messages(outcome: Outcome) -> list[tuple[Any, list[Event]]]:
    """Each delivered head with the events that follow it."""
    messages: list[tuple[Any, list[Event]]] = []
    heads = iter(outcome.heads)
    for event in outcome.events:
        if event[0] == "head":
            messages.append((next(heads), [event]))
        else:
            assert messages, f"{event[0]} before any head"
            messages[-1][1].append(event)
    return messages


def _fields(headers: HeaderPairs) -> None:
    for name, value in headers:
        assert is_token(name), f"field name accepted: {name!r}"
        assert is_field_value(value), f"field value accepted: {value!r}"


def _one(headers: HeaderPairs, name: bytes) -> list[bytes]:
    return [value for field, value in headers if field.lower() == name]


def _trailers(head: Any, delivered: HeaderPairs, data: bytes, body_start: int) -> None:
    """A head's headers never change after delivery (trailer fields stay out of it,
    RFC 9110 §6.5.1)."""
    del data, body_start
    assert list(head.headers) == list(delivered), "headers changed after delivery"


def _body(events: list[Event], expected: bytes | None, complete: bool, refused: bool) -> bool:
    """Check one message's body events; whether the message ended."""
    kinds = [event[0] for event in events[1:]]
    assert kinds in ([], ["body"], ["end"], ["body", "end"]), f"events {kinds}"
    body = events[1][1] if kinds[:1] == ["body"] else b""
    ended = kinds[-1:] == ["end"]
    if ended:
        assert expected is not None, "a message ended where its framing does not"
        assert body == expected, f"body {body[:80]!r} where the framing says {expected[:80]!r}"
    elif expected is not None:
        assert expected.startswith(body), "body bytes that the framing does not have"
        assert refused or not complete, "a complete message that never ended"
    return ended


def judge_requests(
    data: bytes, outcome: Outcome, reparse: Callable[[bytes], Outcome] | None = None
) -> None:
    """``reparse``: how to parse a head written out again (origin-form heads must
    round-trip through it)."""
    messages = _messages(outcome)
    position = 0
    for index, (head, events) in enumerate(messages):
        last = index == len(messages) - 1
        start = skip_empty_lines(data, position)
        end = head_end(data, start)
        assert end != -1, "a head delivered before its end"
        fields = events[0]
        origin_form = _request_head(fields, data[start:end])
        if origin_form and reparse is not None:
            _round_trip(fields, reparse)
        if head.upgrade:
            assert last, "a message after an upgrade"
            assert [e[0] for e in events] in (["head"], ["head", "end"]), "upgrade"
            return
        expected: bytes | None
        if head.body == "none":
            expected, after = b"", end
        elif head.body == "length":
            expected, after = data[end : end + head.content_length], end + head.content_length
        else:
            decoded = dechunk(data, end)
            expected, after = (None, -1) if decoded is None else (decoded.body, decoded.end)
        complete = expected is not None and after <= len(data)
        refused = last and outcome.error is not None
        if not _body(events, expected, complete, refused):
            assert last, "a message without an end before the next one"
        _trailers(head, fields[4], data, end)
        position = after


def _request_head(fields: Event, raw: bytes) -> bool:
    """A delivered request head (``fields`` as recorded then) against its bytes;
    whether its target was in origin or asterisk form (sent as it was received)."""
    _, method, target, version, headers, host, keep_alive, body, length, names = fields[:10]
    line = raw.split(b"\r\n", 1)[0]
    # one SP between the parts, or more: RFC 9112 section 3 lets a recipient split on runs
    parts = [part for part in line.split(b" ") if part]
    assert len(parts) == 3, f"request line accepted: {line!r}"
    assert is_token(method), f"method {method!r}"
    assert method == parts[0], f"method {parts[0]!r}"
    assert parts[2] == b"HTTP/" + version
    assert version in (b"1.0", b"1.1")
    _fields(headers)
    hosts = _one(headers, b"host")
    assert parts[1] == b"*" or not parts[1].startswith(b"*"), f"target {parts[1]!r} accepted"
    assert parts[1] != b"*" or method == b"OPTIONS", f"{method!r} * accepted"
    if parts[1].startswith(b"/") or parts[1] == b"*":
        assert is_target(parts[1]), f"target {parts[1]!r}"
        assert target == parts[1], f"target {target!r} for {parts[1]!r}"
        assert host == (hosts[0] if hosts else b"")
    else:
        assert is_target(target), f"target {target!r} for {parts[1]!r}"
        assert target.startswith(b"/"), f"target {target!r} for {parts[1]!r}"
        assert host, "absolute form without a host"
    lengths = _one(headers, b"content-length")
    if final_coding(headers) is not None:
        assert body == "chunked"
        assert final_coding(headers) == b"chunked"
        assert not lengths, "Content-Length with Transfer-Encoding"
    elif lengths:
        assert len(lengths) == 1
        assert int(lengths[0]) == length
        assert body == ("length" if length else "none")
    else:
        assert body == "none"
    assert not (keep_alive and b"close" in names)
    assert names == set().union(*map(connection_tokens, _one(headers, b"connection")))
    return parts[1].startswith(b"/") or parts[1] == b"*"


def _round_trip(fields: Event, reparse: Callable[[bytes], Outcome]) -> None:
    """The head written out again parses to the same head."""
    method, target, version, headers = fields[1:5]
    head = b"%s %s HTTP/%s\r\n%s\r\n" % (method, target, version, serialize_fields(headers))
    again = reparse(head)
    assert again.events[:1] == [fields], f"round trip of {head[:200]!r}"


def judge_responses(data: bytes, outcome: Outcome) -> None:
    messages = _messages(outcome)
    position = 0
    for index, (head, events) in enumerate(messages):
        last = index == len(messages) - 1
        start = skip_empty_lines(data, position)
        end = head_end(data, start)
        assert end != -1, "a head delivered before its end"
        headers: HeaderPairs = events[0][2]
        _fields(headers)
        status_line = data[start:end].split(b"\r\n", 1)[0]
        assert _STATUS_LINE.fullmatch(status_line), f"status line {status_line!r}"
        assert int(status_line[9:12]) == head.status
        framing = _llhttp_framing(head.status, headers)
        assert head.body == framing, f"response framing {head.body!r}, llhttp's {framing!r}"
        assert not (head.keep_alive and head.body == "close")
        if 100 <= head.status < 200:
            assert len(events) == 1, "an interim response with a body or an end"
            if head.status == 101:
                assert last, "responses after a switch of protocols"
            position = end
            continue
        expected: bytes | None
        if head.body == "none":
            expected, after = b"", end
        elif head.body == "length":
            expected, after = data[end : end + head.content_length], end + head.content_length
        elif head.body == "close":
            expected, after = data[end:], len(data)
        else:
            decoded = dechunk(data, end)
            expected, after = (None, -1) if decoded is None else (decoded.body, decoded.end)
        complete = expected is not None and after <= len(data)
        _body(events, expected, complete, last and outcome.error is not None)
        assert last, "a second final response on one request"
        _trailers(head, events[0][2], data, end)


def _llhttp_framing(status: int, headers: HeaderPairs) -> str:
    """How llhttp frames a response's body: RFC 9112 section 6.3, except that it
    gives a 1xx other than 100-103 the body its headers announce, or reads it until
    the connection closes under a coding other than chunked (RFC 9110 section 15.2:
    a 1xx has none), and reads a status below 100 as any other."""
    if status in (100, 101, 102, 103, 204, 304):
        return "none"
    coding = final_coding(headers)
    if coding is not None:
        return "chunked" if coding == b"chunked" else "close"
    lengths = _one(headers, b"content-length")
    if 100 <= status < 200:
        return "length" if lengths and int(lengths[0]) else "none"
    return "length" if lengths else "close"
