"""Splitting a byte stream into lines, with a cap on their length. No I/O.

``split`` returns the complete lines (without their newline, and without a
trailing CR) and, in a second list, the stream offset just after each one. A line
longer than ``max_size`` is cut there: its first ``max_size`` bytes are a record,
the rest up to the next newline is dropped and counted, and the file goes on; a
long line never stalls reading nor holds more than ``max_size`` bytes.

A chunk is split in one ``bytes.split`` (one C call, not a find and two copies
per line): the per-line work left is the end offset. CRs and too-long lines are
looked for once per chunk and handled line by line only when there are some.
"""

from __future__ import annotations

__all__ = ["LineSplitter"]


class LineSplitter:
    __slots__ = ("_partial", "_skipping", "max_size", "offset", "truncated")

    def __init__(self, max_size: int, offset: int = 0) -> None:
        self.max_size = max_size
        self.offset = offset  # stream position of the end of what was fed
        self.truncated = 0  # lines cut so far
        self._partial = b""  # the start of a line not complete yet (at most max_size)
        self._skipping = False  # inside the dropped rest of a too-long line

    @property
    def pending(self) -> int:
        """Bytes fed but not yet part of a complete line."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[tuple[bytes, int]]:
        """The lines completed by ``data``, each with the offset just after it."""
        lines, ends = self.split(data)
        return list(zip(lines, ends, strict=True))

    def split(self, data: bytes) -> tuple[list[bytes], list[int]]:
        """The lines completed by ``data``, and the offset just after each."""
        base = self.offset
        self.offset = base + len(data)
        if self._skipping:  # the rest of a cut line: dropped up to its newline
            cut = data.find(b"\n")
            if cut < 0:
                return [], []
            self._skipping = False
            base += cut + 1
            data = data[cut + 1 :]
        lines = data.split(b"\n")
        rest = lines.pop()
        partial = self._partial
        position = base - len(partial)  # where the first line starts
        if lines and partial:
            lines[0] = partial + lines[0]
            partial = b""
        ends: list[int] = []
        if lines:
            for line in lines:
                position += len(line) + 1
                ends.append(position)
            if max(map(len, lines)) > self.max_size:
                lines = self._cut(lines)
            elif b"\r" in data or self._partial.endswith(b"\r"):
                lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        max_size = self.max_size
        if rest:
            partial += rest
            if len(partial) > max_size:  # emit its first max_size bytes now; drop the rest
                lines.append(partial[:max_size])
                ends.append(base + len(data))
                self.truncated += 1
                self._skipping = True
                partial = b""
        self._partial = partial
        return lines, ends

    def _cut(self, lines: list[bytes]) -> list[bytes]:
        """The lines over ``max_size`` cut to it and counted, the others' CR stripped
        (a line is cut first, so its CR counts towards ``max_size``). A CR at the end
        of a cut line is not the line's last byte: it stays, as it does when the
        line arrives in pieces and is cut before its end was read."""
        max_size = self.max_size
        out: list[bytes] = []
        for line in lines:
            if len(line) > max_size:
                self.truncated += 1
                out.append(line[:max_size])
            else:
                out.append(line[:-1] if line.endswith(b"\r") else line)
        return out

    def reset(self, offset: int) -> None:
        """Start again at ``offset`` (a truncated file), forgetting any partial line."""
        self.offset = offset
        self._partial = b""
        self._skipping = False
