"""Limits on a chunked body's framing, which llhttp reads without any bound.

llhttp validates chunked coding (RFC 9112 §7.1) but sets no limit on a chunk
line: ``1;`` followed by megabytes of extension, or a size written with a
megabyte of leading zeros, is accepted. ``ChunkedFraming`` follows the framing
of one body over the reads that carry it, after llhttp has accepted them, and
raises ``RequestError`` when

- a chunk line (size and extensions) or a trailer line is longer than
  ``MAX_CHUNK_LINE`` (400, as Go's limit of 4 KiB);
- the chunk extensions of one body add up to more than ``MAX_CHUNK_EXTENSIONS``
  (413, as Node's 16 KiB since CVE-2024-22019).

It also counts the body's bytes as sent, so that a body limit counts the
framing too and not only the data. ``open_line_length`` is the fallback when a body's
start cannot be located in a read: it bounds the line still open at the end of
each read, which is what a line of megabytes needs.
"""

from __future__ import annotations

import re
from typing import Final

from pillion.http.errors import RequestError

__all__ = ["MAX_CHUNK_EXTENSIONS", "MAX_CHUNK_LINE", "ChunkedFraming", "open_line_length"]

MAX_CHUNK_LINE: Final = 4096
MAX_CHUNK_EXTENSIONS: Final = 16 * 1024

_HEX_DIGITS: Final = re.compile(rb"[0-9A-Fa-f]+")

_SIZE_LINE: Final = 0  # in a chunk-size line (size, extensions, CRLF)
_DATA: Final = 1  # in a chunk's data
_DATA_END: Final = 2  # in the CRLF after a chunk's data
_TRAILER: Final = 3  # in the trailer section, after the last chunk
_DONE: Final = 4


class ChunkedFraming:
    """The framing of one chunked body, followed read by read from its first byte."""

    __slots__ = ("_extensions", "_line", "_line_start", "_remaining", "_state", "wire_bytes")

    def __init__(self) -> None:
        self._state = _SIZE_LINE
        self._line = 0  # bytes of the open line seen in earlier reads
        self._line_start = b""  # and the first of them, to read the size from
        self._remaining = 0  # data bytes left in the current chunk
        self._extensions = 0
        self.wire_bytes = 0  # the body as sent so far: framing and data

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def scan(self, data: bytes, pos: int) -> int:
        """Follow ``data`` from ``pos``; return where the body ended, or -1 if it goes on."""
        end = len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                pos += take
                self.wire_bytes += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _DATA_END
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._carry(data, pos, end)
                return -1
            line = self._line + newline - pos  # without its LF
            self.wire_bytes += newline + 1 - pos
            if state == _DATA_END:
                self._state = _SIZE_LINE
            elif state == _SIZE_LINE:
                self._size_line(data, pos, newline, line)
            elif line > 1:  # a trailer field
                _check_line(line)
            else:  # the empty line that ends the trailers
                self._state = _DONE
                return newline + 1
            self._line = 0
            self._line_start = b""
            pos = newline + 1
        return -1

    def _carry(self, data: bytes, pos: int, end: int) -> None:
        """The read ends inside a line: keep its length (and its start, for the size)."""
        self.wire_bytes += end - pos
        if self._state == _DATA_END:
            return
        self._line += end - pos
        _check_line(self._line)
        if self._state == _SIZE_LINE and len(self._line_start) < MAX_CHUNK_LINE:
            self._line_start += data[pos:end]

    def _size_line(self, data: bytes, pos: int, newline: int, line: int) -> None:
        _check_line(line)
        text = self._line_start + data[pos:newline] if self._line_start else data[pos:newline]
        semicolon = text.find(b";")
        if semicolon >= 0:
            self._extensions += len(text) - semicolon
            if self._extensions > MAX_CHUNK_EXTENSIONS:
                raise RequestError(413, "chunk extensions too large")
            text = text[:semicolon]
        elif text.endswith(b"\r"):
            text = text[:-1]
        # Read before llhttp has: only what it accepts, hex digits (int() alone would
        # take "-5", "+5", "0x5", "5_0" or spaces).
        if _HEX_DIGITS.fullmatch(text) is None:
            raise RequestError(400, "malformed chunk size")
        size = int(text, 16)
        if size:
            self._state = _DATA
            self._remaining = size
        else:
            self._state = _TRAILER


def _check_line(length: int) -> None:
    if length > MAX_CHUNK_LINE:
        raise RequestError(400, "chunk line too long")


def open_line_length(data: bytes, carried: int) -> int:
    """The length of the line still open at the end of ``data``.

    A chunk or trailer line holds no LF, so the open line is what follows the
    last LF of the read, or the whole read added to what came before.
    """
    newline = data.rfind(b"\n")
    if newline < 0:
        return carried + len(data)
    return len(data) - newline - 1
