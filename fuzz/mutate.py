"""Structured mutations: what breaks parsers of lines and fields, applied to a
valid input. Used by ``make fuzz`` (its custom mutator, beside libFuzzer's own
byte mutations) and by the Hypothesis strategies of ``tests/fuzz``.

Each mutation is a function of the input, a random source and the target's
tokens (pieces of its syntax worth inserting: ``\\r\\n``, ``;``, field names).
The random source decides everything, so an input and a seed give one result.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

__all__ = ["MUTATIONS", "mutate"]

Mutation = Callable[[bytes, random.Random, Sequence[bytes]], bytes]

# Bytes that mean something to a line or field parser, or to a decoder.
_SPECIAL = b'\x00\t\n\r "#,-.0:;=@[\\]{|}\x7f\x80\xc3\xff'
_SIZES = (1, 2, 15, 16, 17, 255, 256, 1023, 1024, 4095, 4097, 9000, 33000)
_NUMBERS = (
    b"0",
    b"00000",
    b"-1",
    b"+1",
    b"1e400",
    b"nan",
    b"inf",
    b"0x1f",
    b"1_0",
    b"18446744073709551616",
    b"9" * 30,
    b"ffffffffffffffff",
    b"0.000001",
    b" 1",
)


def mutate(data: bytes, rng: random.Random, tokens: Sequence[bytes], rounds: int = 3) -> bytes:
    """``data`` after one to ``rounds`` mutations."""
    for _ in range(rng.randint(1, rounds)):
        data = rng.choice(MUTATIONS)(data, rng, tokens)
    return data


def _position(data: bytes, rng: random.Random) -> int:
    """Mostly a line or field boundary (where parsers decide things), else anywhere."""
    if data and rng.random() < 0.6:
        boundaries = [i for i, byte in enumerate(data) if byte in b"\n:;,| ="]
        if boundaries:
            return rng.choice(boundaries) + rng.choice((0, 1))
    return rng.randint(0, len(data))


def flip_bit(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    at = rng.randrange(len(data))
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]


def set_special(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    at = _position(data, rng)
    byte = bytes([rng.choice(_SPECIAL)])
    return data[:at] + byte + data[at + 1 :]


def insert_token(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    at = _position(data, rng)
    token = rng.choice(tokens) if tokens else bytes([rng.choice(_SPECIAL)])
    return data[:at] + token + data[at:]


def delete_span(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 8) :]


def truncate(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    return data[: rng.randint(0, len(data))]


def repeat_line(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    """A line (or the whole input) twice: duplicate fields, pipelined messages."""
    lines = data.split(b"\n")
    at = rng.randrange(len(lines))
    lines.insert(at, lines[at])
    return b"\n".join(lines)


def huge_field(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    """A run of one byte, sized around the usual limits."""
    at = _position(data, rng)
    filler = bytes([rng.choice(b"a0 \t/%")]) * rng.choice(_SIZES)
    return data[:at] + filler + data[at:]


def line_endings(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    """Bare LF, bare CR, or an obs-fold (a line that starts with whitespace)."""
    old, new = rng.choice(
        (
            (b"\r\n", b"\n"),
            (b"\r\n", b"\r"),
            (b"\r\n", b"\r\n "),
            (b"\r\n", b"\r\n\t"),
            (b"\n", b"\r\n"),
            (b"\n", b"\n "),
        )
    )
    if rng.random() < 0.5:
        return data.replace(old, new)
    at = data.find(old, rng.randint(0, len(data)))
    return data if at == -1 else data[:at] + new + data[at + len(old) :]


def number(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    """A run of digits made another number: leading zeros, huge, signed, hex, special."""
    runs = [i for i, byte in enumerate(data) if chr(byte).isdigit()]
    if not runs:
        return insert_token(data, rng, tokens)
    start = end = rng.choice(runs)
    while start > 0 and chr(data[start - 1]).isdigit():
        start -= 1
    while end < len(data) and chr(data[end]).isdigit():
        end += 1
    return data[:start] + rng.choice(_NUMBERS) + data[end:]


def change_case(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    span = data[at : at + rng.randint(1, 16)]
    return (
        data[:at] + (span.upper() if rng.random() < 0.5 else span.lower()) + data[at + len(span) :]
    )


def non_ascii(data: bytes, rng: random.Random, tokens: Sequence[bytes]) -> bytes:
    """Valid and invalid UTF-8, and Unicode's own line breaks and spaces."""
    piece = rng.choice(
        (
            "é".encode(),
            "\u2028".encode(),
            "\x85".encode(),
            "\ufeff".encode(),
            b"\xc3",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            "\u00a0".encode(),
        )
    )
    at = _position(data, rng)
    return data[:at] + piece + data[at:]


MUTATIONS: tuple[Mutation, ...] = (
    flip_bit,
    set_special,
    insert_token,
    insert_token,
    delete_span,
    truncate,
    repeat_line,
    huge_field,
    line_endings,
    line_endings,
    number,
    change_case,
    non_ascii,
)
