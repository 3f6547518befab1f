"""From lines to records: the Kubernetes CRI format and multiline joining. No I/O.

A ``Framer`` takes a file's lines, each with the offset just after it, and
gives records, each with the offset just after its last line, so a checkpoint
never passes a line whose record is not out yet: lines held for joining are
read again after a restart.

* **CRI** (``<time> <stream> <P|F> <log>``, as containerd and CRI-O write
  container logs): ``P`` parts are joined with the following parts of the same
  stream until its ``F`` line; the record's message is the joined log, and the
  CRI time and stream are kept.
* **Docker json-file** (``{"log": "...\\n", "stream": ..., "time": ...}``): a
  ``log`` without its trailing newline is a part of a long line, joined with the
  next parts of its stream up to the one that ends it.
* **Multiline**: a record starts at a line matching ``start``; the lines that
  do not are appended to it (a stack trace). A record is out when the next one
  starts, or after ``flush_timeout`` without a new line. Presets: ``java``,
  ``python``, ``go``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

__all__ = ["PRESETS", "Framed", "Framer"]

PRESETS = {
    # a record starts with a non-blank first character, except the lines of a trace
    "java": r"^(?!\s|Caused by:|\.\.\. \d+ more|Suppressed:)",
    # a traceback's lines are indented, then ends with the exception line: a record
    # starts at anything that is not indented and not the traceback's own lines
    "python": r"^(?!\s|$|Traceback \(most recent call last\):|During handling of the above"
    r"|The above exception was the direct cause|(\w+\.)*\w*(Error|Exception|Exit|Interrupt"
    r"|Warning|Iteration)\b)",
    # goroutine dumps: a panic starts a record; its goroutine blocks and frames follow
    "go": r"^(?!\s|goroutine \d+ \[|created by |\S+\(.*\)$|\S+\.go:\d+|$|\[signal |exit status )",
}  # fmt: skip


@dataclass(slots=True)
class Framed:
    message: bytes
    end: int  # offset just after the record's last line
    stream: str | None = None  # CRI: stdout or stderr
    time: str | None = None  # CRI: the runtime's timestamp


@dataclass(slots=True)
class _Pending:
    parts: list[bytes]
    end: int
    size: int
    since: float
    stream: str | None = None
    time: str | None = None


class Framer:
    """One file's framing state."""

    def __init__(
        self,
        *,
        cri: bool = False,
        docker: bool = False,
        start: str | None = None,
        rules: list[tuple[str, str, str]] | None = None,
        flush_timeout: float = 1.0,
        max_size: int = 256 * 1024,
    ) -> None:
        self.cri = cri
        self.docker = docker
        self.start = re.compile(start.encode()) if start else None
        # state -> its rules, in order: (regex, next state)
        self.rules: dict[str, list[tuple[re.Pattern[bytes], str]]] = {}
        for state, regex, next_state in rules or ():
            self.rules.setdefault(state, []).append((re.compile(regex.encode()), next_state))
        self._state = ""  # rules: the state the record being joined is in
        self.flush_timeout = flush_timeout
        self.max_size = max_size
        self.malformed = 0  # CRI lines that were not CRI (passed on as they are)
        self._partial: dict[str, _Pending] = {}  # CRI: per stream
        self._multi: _Pending | None = None

    def feed(self, lines: list[tuple[bytes, int]], now: float) -> list[Framed]:
        out: list[Framed] = []
        for line, end in lines:
            if self.cri or self.docker:
                framed = self._cri(line, end, now) if self.cri else self._docker(line, end, now)
                if framed is None:
                    continue
            else:
                framed = Framed(line, end)
            if self.rules:
                self._follow(framed, now, out)
            elif self.start is None:
                out.append(framed)
            else:
                self._join(framed, now, out)
        return out

    def _follow(self, framed: Framed, now: float, out: list[Framed]) -> None:
        """Rules: the line goes on the record when a rule of its state matches; else
        the record is out, and the line starts one (a ``start_state`` rule matches)
        or is one of its own."""
        multi = self._multi
        if multi is not None:
            for regex, next_state in self.rules.get(self._state, ()):
                if regex.search(framed.message):
                    if multi.size < self.max_size:
                        multi.parts.append(framed.message)
                        multi.size += len(framed.message) + 1
                    multi.end, multi.since, self._state = framed.end, now, next_state
                    return
            out.append(self._take())
        for regex, next_state in self.rules["start_state"]:
            if regex.search(framed.message):
                self._multi = _Pending([framed.message], framed.end, len(framed.message), now,
                                       framed.stream, framed.time)  # fmt: skip
                self._state = next_state
                return
        out.append(framed)

    def _cri(self, line: bytes, end: int, now: float) -> Framed | None:
        fields = line.split(b" ", 3)
        # a runtime writes its time in ASCII (RFC 3339): anything else is not a CRI line
        if (
            len(fields) < 3
            or fields[1] not in (b"stdout", b"stderr")
            or fields[2] not in (b"P", b"F")
            or not fields[0].isascii()
        ):
            self.malformed += 1
            return Framed(line, end)
        time, stream, tag = fields[0].decode(), fields[1].decode(), fields[2]
        log = fields[3] if len(fields) == 4 else b""
        return self._part(log, tag == b"F", end, now, stream, time)

    def _docker(self, line: bytes, end: int, now: float) -> Framed | None:
        """A line of Docker's json-file format; a ``log`` without its newline is a part
        (Docker splits lines longer than 16 KiB), joined with the next parts."""
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            entry = None
        log = entry.get("log") if isinstance(entry, dict) else None
        if not isinstance(log, str):
            self.malformed += 1
            return Framed(line, end)
        stream = entry.get("stream") if isinstance(entry.get("stream"), str) else "stdout"
        time = entry.get("time") if isinstance(entry.get("time"), str) else None
        whole = log.endswith("\n")
        return self._part((log[:-1] if whole else log).encode(), whole, end, now, stream, time)

    def _part(
        self, part: bytes, last: bool, end: int, now: float, stream: str, time: str | None
    ) -> Framed | None:
        """A piece of a line its writer split (CRI ``P``, a Docker log without its
        newline): held until the ``last`` piece of its stream, then the whole line."""
        pending = self._partial.get(stream)
        if not last:
            if pending is None:
                self._partial[stream] = _Pending([part], end, len(part), now, stream, time)
            elif pending.size < self.max_size:
                pending.parts.append(part)
                pending.size += len(part)
                pending.end = end
            else:
                pending.end = end  # over the cap: the rest of this record is dropped
            return None
        if pending is not None:
            del self._partial[stream]
            if pending.size < self.max_size:
                pending.parts.append(part)
            return Framed(b"".join(pending.parts)[: self.max_size], end, stream, pending.time)
        return Framed(part, end, stream, time)

    def _join(self, framed: Framed, now: float, out: list[Framed]) -> None:
        assert self.start is not None
        multi = self._multi
        if multi is None or self.start.search(framed.message):
            if multi is not None:
                out.append(self._take())
            self._multi = _Pending([framed.message], framed.end, len(framed.message), now,
                                   framed.stream, framed.time)  # fmt: skip
            return
        if multi.size < self.max_size:
            multi.parts.append(framed.message)
            multi.size += len(framed.message) + 1
        multi.end = framed.end
        multi.since = now  # quiet time counts from its last line

    def _take(self) -> Framed:
        multi, self._multi = self._multi, None
        assert multi is not None
        message = b"\n".join(multi.parts)[: self.max_size]
        return Framed(message, multi.end, multi.stream, multi.time)

    def flush(self, now: float, *, everything: bool = False) -> list[Framed]:
        """A multiline record quiet for ``flush_timeout`` (or any, ``everything``)."""
        multi = self._multi
        if multi is not None and (everything or now - multi.since >= self.flush_timeout):
            return [self._take()]
        return []
