"""The soak's log lines: a writer standing for the app (numbered lines at a steady
rate, rotated by rename or by copytruncate on demand) and a TCP syslog receiver
standing for the aggregator (counts every number it receives), so lost and
duplicated lines are counted exactly.

Each line is ``<time> INFO soak seq=<9 digits> <padding>``; the receiver takes the
number from ``seq=`` in each RFC 6587 octet-counted frame.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from soak_wire import WireError, split_syslog_frames

HOST = "127.0.0.1"
TICKS_PER_SECOND = 10
LINE_BYTES = 120  # about what a web service's log line takes
RENAME_LATE_WRITES_S = 0.2  # the app keeps writing to the renamed file this long
KEEP_ROTATED = 3  # rotated files kept on disk
SEQ = b"seq="
SEQ_DIGITS = 9


@dataclass(frozen=True)
class Rotation:
    kind: str  # "rename" or "copytruncate"
    at: float  # time.monotonic()
    last_seq: int  # the last line written before it (-1: none)


def log_line(seq: int, now: float) -> bytes:
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(timespec="milliseconds")
    head = f"{moment} INFO soak seq={seq:0{SEQ_DIGITS}d} "
    return (head + "x" * max(0, LINE_BYTES - 1 - len(head)) + "\n").encode()


@dataclass
class LogWriter:
    """Appends numbered lines to ``directory``/app.log at ``rate`` lines per second."""

    directory: Path
    rate: float
    next_seq: int = 0
    rotations: list[Rotation] = field(default_factory=list)
    # (first seq of a tick, when it was written): a lost line's time, by bisection
    ticks: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = self.directory / "app.log"
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, count: int) -> None:
        now = time.time()
        self.ticks.append((self.next_seq, time.monotonic()))
        lines = b"".join(log_line(self.next_seq + i, now) for i in range(count))
        os.write(self.fd, lines)
        self.next_seq += count

    async def run(self, until: float) -> None:
        """Write until ``until``: as many lines as the rate says by now, ten times a second."""
        started = time.monotonic()
        while (now := time.monotonic()) < until:
            due = int((now - started) * self.rate) - self.next_seq
            if due > 0:
                self.write(due)
            await asyncio.sleep(1 / TICKS_PER_SECOND)

    def rotated_name(self) -> Path:
        return self.directory / f"app.log.{len(self.rotations)}"

    def rotate(self, kind: str) -> None:
        """Rename rotation (the app reopens its file a moment later, writing to the
        renamed one meanwhile), or copytruncate (copy, then truncate in place: the
        app never reopens; nothing is written between the copy and the truncation)."""
        self.rotations.append(Rotation(kind, time.monotonic(), self.next_seq - 1))
        target = self.rotated_name()
        if kind == "rename":
            os.rename(self.path, target)
            asyncio.get_running_loop().call_later(RENAME_LATE_WRITES_S, self._reopen)
        else:
            shutil.copyfile(self.path, target)
            os.ftruncate(self.fd, 0)
        old = self.directory / f"app.log.{len(self.rotations) - KEEP_ROTATED}"
        with contextlib.suppress(FileNotFoundError):
            old.unlink()

    def _reopen(self) -> None:
        old, self.fd = self.fd, self._open()
        os.close(old)

    def close(self) -> None:
        os.close(self.fd)

    def written_at(self, seq: int) -> float:
        index = bisect.bisect_right(self.ticks, (seq, float("inf"))) - 1
        return self.ticks[max(index, 0)][1]


class SyslogReceiver:
    """A TCP syslog server (octet counting) that counts each line number received."""

    def __init__(self) -> None:
        self.counts = bytearray()  # times each seq arrived (saturates at 255)
        self.frames = 0
        self.unnumbered = 0
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self._writers):
                writer.close()
            await self.server.wait_closed()
            if self._handlers:  # each ends with its stream, which closing ends
                await asyncio.wait(self._handlers, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        buffer = b""
        try:
            while data := await reader.read(1 << 16):
                frames, buffer = split_syslog_frames(buffer + data)
                for frame in frames:
                    self._count(frame)
        except (ConnectionError, WireError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _count(self, frame: bytes) -> None:
        self.frames += 1
        at = frame.find(SEQ)
        digits = frame[at + len(SEQ) : at + len(SEQ) + SEQ_DIGITS]
        if at < 0 or not digits.isdigit():
            self.unnumbered += 1
            return
        seq = int(digits)
        if seq >= len(self.counts):
            self.counts.extend(bytes(seq + 1 - len(self.counts) + 4096))
        self.counts[seq] = min(self.counts[seq] + 1, 255)

    def missing(self, written: int) -> list[int]:
        counts = self.counts
        return [seq for seq in range(written) if seq >= len(counts) or counts[seq] == 0]

    def duplicates(self) -> int:
        return sum(count - 1 for count in self.counts if count > 1)

    def duplicated(self) -> list[int]:
        return [seq for seq, count in enumerate(self.counts) if count > 1]

    async def wait_for(self, written: int, within: float) -> None:
        """Until every line below ``written`` arrived, or ``within`` seconds passed."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.missing(written):
                return
            await asyncio.sleep(0.5)


@dataclass(frozen=True)
class SeqRun:
    """Consecutive line numbers (lost, or duplicated)."""

    first: int
    last: int
    written_at: float  # time.monotonic() when the first was written


def seq_runs(numbers: list[int], writer: LogWriter) -> list[SeqRun]:
    """``numbers`` (ascending) as runs of consecutive ones."""
    runs: list[SeqRun] = []
    start = previous = -2
    for seq in [*numbers, -2]:
        if seq == previous + 1:
            previous = seq
            continue
        if start >= 0:
            runs.append(SeqRun(start, previous, writer.written_at(start)))
        start = previous = seq
    return runs
