"""HTTP/1.1 as RFC 9110 and RFC 9112 write it, for judging what the parsers
accept: field syntax, where a head ends, and a strict chunked-body decoder.
Written from the RFCs' grammar, independently of llhttp, and slow on purpose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pillion.http.headers import HeaderPairs

__all__ = [
    "Dechunked",
    "dechunk",
    "final_coding",
    "head_end",
    "is_field_value",
    "is_target",
    "is_token",
    "serialize_fields",
]

_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TCHARS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN = _TCHARS + rb"+"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# RFC 9112 section 7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ), a name
# a token, a value a token or a quoted-string. llhttp also takes an empty name (;=v), an
# empty value (;a=) and a value of tokens and quoted strings run together (a=b"c"): the
# proxy drops extensions (it frames bodies itself) and these move no boundary, so the
# reference takes them too.
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*"
    + _TCHARS
    + rb"*(?:[ \t]*=[ \t]*(?:"
    + _TCHARS
    + rb"|"
    + _QUOTED
    + rb")*)?)*"
)
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):(.*)")  # its value's OWS stripped after


def is_token(text: bytes) -> bool:
    """RFC 9110 section 5.6.2."""
    return bool(text) and all(byte in _TCHAR for byte in text)


def is_field_value(value: bytes) -> bool:
    """Field content as RFC 9110 section 5.5 allows it (VCHAR, obs-text, SP and HTAB
    inside), without leading whitespace. Trailing whitespace is left to the parser:
    llhttp keeps it in the value."""
    if value[:1] in (b" ", b"\t"):
        return False
    return all(byte == 9 or (byte >= 32 and byte != 127) for byte in value)


def is_target(target: bytes) -> bool:
    """An origin-form or asterisk-form request target: visible ASCII only."""
    if target != b"*" and not target.startswith(b"/"):
        return False
    return all(0x21 <= byte <= 0x7E for byte in target)


def head_end(data: bytes, start: int) -> int:
    """Where the head that starts at ``start`` ends (just after its empty line), or
    -1. Strict framing (CRLF only), as the parsers accept it."""
    end = data.find(b"\r\n\r\n", start)
    return -1 if end == -1 else end + 4


def skip_empty_lines(data: bytes, start: int) -> int:
    """Past the empty lines a server may ignore before a request line (RFC 9112
    section 2.2); llhttp skips any CR and LF there."""
    while start < len(data) and data[start] in b"\r\n":
        start += 1
    return start


def final_coding(headers: HeaderPairs) -> bytes | None:
    """The last transfer coding named by the ``Transfer-Encoding`` fields (RFC 9112
    section 6.1), lower case; None without such a field. As llhttp reads the list:
    an empty last element (``chunked,``) is the last coding, where RFC 9110 section
    5.6.1 would skip it; llhttp then reads the body until the connection closes, the
    parsers' heads say so too, and no boundary moves."""
    values = [value for name, value in headers if name.lower() == b"transfer-encoding"]
    if not values:
        return None
    return b",".join(values).split(b",")[-1].strip().lower()


def serialize_fields(headers: HeaderPairs) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


@dataclass(frozen=True)
class Dechunked:
    body: bytes
    end: int  # offset just after the chunked body (its trailer section's empty line)
    trailers: tuple[tuple[bytes, bytes], ...]


def dechunk(data: bytes, start: int = 0) -> Dechunked | None:
    """The chunked body (RFC 9112 section 7.1) at ``data[start:]``, or None when it
    is malformed or incomplete."""
    body: list[bytes] = []
    at = start
    while True:
        eol = data.find(b"\r\n", at)
        if eol == -1:
            return None
        line = _CHUNK_LINE.fullmatch(data, at, eol)
        if line is None:
            return None
        size = int(line.group(1), 16)
        at = eol + 2
        if size == 0:
            break
        if len(data) < at + size + 2 or data[at + size : at + size + 2] != b"\r\n":
            return None
        body.append(data[at : at + size])
        at += size + 2
    trailers: list[tuple[bytes, bytes]] = []
    while True:
        eol = data.find(b"\r\n", at)
        if eol == -1:
            return None
        if eol == at:
            return Dechunked(b"".join(body), eol + 2, tuple(trailers))
        field = _FIELD_LINE.fullmatch(data, at, eol)
        value = b"" if field is None else field.group(2).strip(b" \t")
        if field is None or not is_field_value(value):
            return None
        trailers.append((field.group(1), value))
        at = eol + 2
