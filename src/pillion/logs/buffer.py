"""The records between the inputs and the outputs. No I/O.

One log of records, each numbered; every output reads it with its own cursor
and acknowledges in order. A record leaves the log once every output has
acknowledged it, so it is held once however many outputs there are, and the
log's size in bytes is what the memory limit bounds. Each file's records are
also queued as (number, end offset) so its checkpoint can advance exactly to
the last line every output has.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pillion.logs.identity import FileKey

__all__ = ["RECORD_OVERHEAD", "Record", "RecordLog"]


RECORD_OVERHEAD = 280  # bytes a record costs beyond its message (measured with tracemalloc)


@dataclass(slots=True)
class Record:
    message: bytes  # the line, without its newline
    time: float  # when it was read (Unix time)
    input: str
    path: str
    file: FileKey
    end: int  # offset in its file just after its line
    stream: str | None = None  # CRI: stdout or stderr
    source_time: str | None = None  # CRI: the runtime's timestamp of the line
    fields: dict[str, Any] | None = None  # parsed, static and pod fields
    seq: int = 0  # numbered by the log

    @property
    def size(self) -> int:
        return len(self.message) + RECORD_OVERHEAD


@dataclass
class _FileProgress:
    path: str
    waiting: deque[tuple[int, int]] = field(default_factory=deque)  # (seq, end offset)
    delivered: int = 0
    changed: bool = False


class RecordLog:
    def __init__(self, outputs: list[str], limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.records: deque[Record] = deque()
        self.bytes = 0
        self.next_seq = 1
        self.acked = dict.fromkeys(outputs, 0)  # the last seq each output has
        self.files: dict[FileKey, _FileProgress] = {}

    @property
    def full(self) -> bool:
        return self.bytes >= self.limit_bytes

    def track(self, key: FileKey, path: str, delivered: int) -> None:
        """A file starts (or resumes) at ``delivered``."""
        progress = self.files.get(key)
        if progress is None:
            self.files[key] = _FileProgress(path, delivered=delivered)
        else:
            progress.path = path

    def append(self, record: Record) -> None:
        record.seq = self.next_seq
        self.next_seq += 1
        self.records.append(record)
        self.bytes += record.size
        self.files[record.file].waiting.append((record.seq, record.end))

    def batch(self, output: str, max_records: int, max_bytes: int) -> list[Record]:
        """The next records for ``output`` after what it acknowledged."""
        records = self.records
        if not records:
            return []
        start = self.acked[output] - records[0].seq + 1
        batch: list[Record] = []
        size = 0
        for index in range(max(start, 0), len(records)):
            record = records[index]
            if batch and (len(batch) >= max_records or size + record.size > max_bytes):
                break
            batch.append(record)
            size += record.size
        return batch

    def ack(self, output: str, seq: int) -> None:
        """``output`` has every record up to ``seq``; free what all outputs have."""
        self.acked[output] = max(self.acked[output], seq)
        everyone = min(self.acked.values())
        records = self.records
        while records and records[0].seq <= everyone:
            self.bytes -= records.popleft().size
        for progress in self.files.values():
            waiting = progress.waiting
            while waiting and waiting[0][0] <= everyone:
                progress.delivered = waiting.popleft()[1]
                progress.changed = True

    def delivered_changes(self) -> dict[FileKey, tuple[str, int]]:
        """Files whose delivered offset moved since the last call."""
        changes = {}
        for key, progress in self.files.items():
            if progress.changed:
                progress.changed = False
                changes[key] = (progress.path, progress.delivered)
        return changes

    def settled(self, key: FileKey) -> bool:
        """Whether every record of this file is delivered everywhere."""
        progress = self.files.get(key)
        return progress is None or not progress.waiting

    def forget(self, key: FileKey) -> None:
        self.files.pop(key, None)
