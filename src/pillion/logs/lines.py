"""Splitting a byte stream into lines, with a cap on their length. No I/O.

``feed`` returns the complete lines (without their newline, and without a
trailing CR) and the stream offset just after each one. A line longer than
``max_size`` is cut there: its first ``max_size`` bytes are a record, the rest
up to the next newline is dropped and counted, and the file goes on; a long line
never stalls reading nor holds more than ``max_size`` bytes.
"""

from __future__ import annotations

__all__ = ["LineSplitter"]


class LineSplitter:
    __slots__ = ("_partial", "_skipping", "max_size", "offset", "truncated")

    def __init__(self, max_size: int, offset: int = 0) -> None:
        self.max_size = max_size
        self.offset = offset  # stream position of the end of what was fed
        self.truncated = 0  # lines cut so far
        self._partial = bytearray()
        self._skipping = False  # inside the dropped rest of a too-long line

    @property
    def pending(self) -> int:
        """Bytes fed but not yet part of a complete line."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[tuple[bytes, int]]:
        """The lines completed by ``data``, each with the offset just after it."""
        lines: list[tuple[bytes, int]] = []
        start = 0
        base = self.offset
        self.offset += len(data)
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            else:
                self._partial += data[start:end]
                line = bytes(self._partial[: self.max_size])
                if len(self._partial) > self.max_size:
                    self.truncated += 1
                lines.append((line[:-1] if line.endswith(b"\r") else line, base + end + 1))
            self._partial.clear()
            start = end + 1
        rest = data[start:]
        if not self._skipping and rest:
            self._partial += rest
            if len(self._partial) > self.max_size:
                # emit the first max_size bytes now; drop the rest of this line
                line = bytes(self._partial[: self.max_size])
                self.truncated += 1
                self._skipping = True
                self._partial.clear()
                lines.append((line, base + len(data)))
        return lines

    def reset(self, offset: int) -> None:
        """Start again at ``offset`` (a truncated file), forgetting any partial line."""
        self.offset = offset
        self._partial.clear()
        self._skipping = False
