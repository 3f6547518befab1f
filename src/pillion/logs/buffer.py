"""The records between the inputs and the outputs. No I/O.

One log of records, each numbered; every output reads it with its own cursor
and acknowledges in order. A record leaves the log once every output has
acknowledged it, so it is held once however many outputs there are, and the
log's size in bytes is what the memory limit bounds. Each file's records are
also queued as (number, end offset) so its checkpoint can advance exactly to
the last line every output has.

With a disk tier (a ``Spill``), records that find the memory full go to disk,
and so does every record after them while the disk holds any: memory holds the
oldest records, disk the newest, and a batch reads across the two. The disk
tier is written in groups (``SPILL_GROUP_*``) and its records are deleted once
every output has them. When both tiers are full, ``full`` is true and the
inputs pause.

A group the disk tier cannot take (``SpillFailed``: the disk is full or
read-only) stays in memory, where the outputs read it as before, and ``full``
is true while it waits: the inputs pause, and the lines wait in their files.
``retry_spill`` tries it again (so does any write or deletion that works, and
delivery makes the wait moot: a group every output has is never written).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from pillion.logs.identity import FileKey

__all__ = [
    "RECORD_OVERHEAD",
    "Deleted",
    "Record",
    "RecordLog",
    "Spill",
    "SpillFailed",
    "merge_deleted",
    "summary",
]


RECORD_OVERHEAD = 280  # bytes a record costs beyond its message (measured with tracemalloc)
SPILL_GROUP_RECORDS = 512  # records written to disk together...
SPILL_GROUP_BYTES = 1024 * 1024  # ...or bytes, whichever comes first


class Record:
    """One line (or joined lines) of a file, on its way to the outputs.

    A plain class with slots rather than a dataclass: compiled, a slotted
    dataclass is rebuilt by ``dataclasses`` as an interpreted class, and a record
    is made per line."""

    __slots__ = (
        "end",
        "fields",
        "file",
        "input",
        "message",
        "path",
        "seq",
        "source_time",
        "stream",
        "time",
    )

    def __init__(
        self,
        message: bytes,  # the line, without its newline
        time: float,  # when it was read (Unix time)
        input: str,
        path: str,
        file: FileKey,
        end: int,  # offset in its file just after its line
        stream: str | None = None,  # CRI: stdout or stderr
        source_time: str | None = None,  # CRI: the runtime's timestamp of the line
        fields: dict[str, Any] | None = None,  # parsed, static and pod fields
        seq: int = 0,  # numbered by the log
    ) -> None:
        self.message = message
        self.time = time
        self.input = input
        self.path = path
        self.file = file
        self.end = end
        self.stream = stream
        self.source_time = source_time
        self.fields = fields
        self.seq = seq

    def __repr__(self) -> str:
        return f"Record(seq={self.seq}, end={self.end}, message={self.message!r})"

    @property
    def size(self) -> int:
        return len(self.message) + RECORD_OVERHEAD


class Deleted(NamedTuple):
    """A file's records deleted from the disk tier."""

    end: int  # the end offset of the last one
    records: int
    message_bytes: int


class SpillFailed(Exception):
    """The disk tier could not write a group or delete delivered ones. ``reason`` is
    ``disk_full``, ``read_only`` or ``io_error``; the message names the file and
    the cause."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Spill(Protocol):
    """The disk tier: records in order of their numbers. ``write`` and
    ``delete_through`` raise ``SpillFailed`` and then change nothing."""

    def write(self, records: list[Record]) -> None: ...

    def read(self, after: int, limit: int) -> list[Record]: ...

    def delete_through(self, seq: int) -> dict[FileKey, Deleted]: ...


def summary(records: Iterable[Record]) -> dict[FileKey, Deleted]:
    """Per file: the end offset of its last record, how many, their messages' bytes.

    Counted a run of one file's records at a time (a file's records come in runs,
    a chunk each), not with a tuple per record."""
    files: dict[FileKey, Deleted] = {}
    key: FileKey | None = None
    end = count = size = 0
    for record in records:
        if record.file is not key and record.file != key:
            if key is not None:
                merge_deleted(files, {key: Deleted(end, count, size)})
            key, count, size = record.file, 0, 0
        end = record.end
        count += 1
        size += len(record.message)
    if key is not None:
        merge_deleted(files, {key: Deleted(end, count, size)})
    return files


def merge_deleted(into: dict[FileKey, Deleted], later: dict[FileKey, Deleted]) -> None:
    """Add ``later`` (records after those of ``into``) to ``into``."""
    for key, part in later.items():
        before = into.get(key)
        into[key] = (
            part
            if before is None
            else Deleted(
                part.end, before.records + part.records, before.message_bytes + part.message_bytes
            )
        )


@dataclass
class _FileProgress:
    path: str
    waiting: deque[tuple[int, int]] = field(default_factory=deque)  # (seq, end) in memory
    spilled: int = 0  # records of the file in the disk tier
    delivered: int = 0
    changed: bool = False


class RecordLog:
    def __init__(
        self,
        outputs: list[str],
        limit_bytes: int,
        spill: Spill | None = None,
        spill_limit_bytes: int = 0,
    ) -> None:
        self.limit_bytes = limit_bytes
        self.records: deque[Record] = deque()
        self.bytes = 0
        self.next_seq = 1
        self.acked = dict.fromkeys(outputs, 0)  # the last seq each output has
        self.files: dict[FileKey, _FileProgress] = {}
        self.spill = spill
        self.spill_limit_bytes = spill_limit_bytes if spill is not None else 0
        self.spill_bytes = 0  # counted like memory: message + RECORD_OVERHEAD
        self.spilled = 0  # records in the disk tier, written or pending
        self._pending: list[Record] = []  # for the disk tier, not written yet
        self._written: deque[int] = deque()  # the last seq of each group on disk
        self._pending_bytes = 0
        self.spill_failure: str | None = None  # why the disk tier failed, until it works
        self.spill_errors: dict[str, int] = {}  # failed disk-tier operations, by reason
        # Whether the last ``batch`` stopped at its count or byte limit with records
        # left after it (a full batch), rather than at the end of the records.
        self.cut = False

    @property
    def full(self) -> bool:
        if self.spill_failure is not None and self._pending:
            return True  # a group waits for a disk that does not take it
        return self.bytes >= self.limit_bytes and self.spill_bytes >= self.spill_limit_bytes

    @property
    def room(self) -> int:
        """Bytes of records that still fit, in both tiers."""
        if self.spill_failure is not None and self._pending:
            return 0
        return max(0, self.limit_bytes - self.bytes) + max(
            0, self.spill_limit_bytes - self.spill_bytes
        )

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
        if self.spill is not None and (self.spilled or self.bytes >= self.limit_bytes):
            self._pending.append(record)
            self._pending_bytes += record.size
            self.spilled += 1
            self.spill_bytes += record.size
            self.files[record.file].spilled += 1
            if (
                len(self._pending) >= SPILL_GROUP_RECORDS
                or self._pending_bytes >= SPILL_GROUP_BYTES
            ) and self.spill_failure is None:  # failing: retry_spill tries, not each line
                self._write_pending()
            return
        self.records.append(record)
        self.bytes += record.size
        self.files[record.file].waiting.append((record.seq, record.end))

    def add_lines(
        self,
        key: FileKey,
        lines: list[bytes],
        ends: list[int],
        *,
        at: float,
        input: str,
        path: str,
        fields: dict[str, Any] | None,
    ) -> None:
        """``append`` a chunk's lines, each with the offset just after it, as records
        (the per-line loop here rather than in the tailer: here it runs compiled)."""
        for index in range(len(lines)):
            record = Record(lines[index], at, input, path, key, ends[index], None, None, fields)
            self.append(record)

    def _write_pending(self) -> None:
        if self._pending:
            assert self.spill is not None
            try:
                self.spill.write(self._pending)
            except SpillFailed as failed:
                self._spill_failed(failed)
                return
            self.spill_failure = None
            self._written.append(self._pending[-1].seq)
            self._pending, self._pending_bytes = [], 0

    def _spill_failed(self, failed: SpillFailed) -> None:
        self.spill_failure = str(failed)
        self.spill_errors[failed.reason] = self.spill_errors.get(failed.reason, 0) + 1

    def retry_spill(self) -> bool:
        """Try again what the disk tier failed to do: delete the groups every output
        has, then write the group that waits. True once nothing is failing."""
        if self.spill_failure is None:
            return True
        everyone = min(self.acked.values())
        if self._written and everyone >= self._written[0]:
            self._delete_spilled(everyone)
        if self._pending:
            self._write_pending()
        elif not self.spilled:
            self.spill_failure = None  # nothing is for the disk: the next group tries
        return self.spill_failure is None

    def batch(
        self, output: str, max_records: int, max_bytes: int, after: int | None = None
    ) -> list[Record]:
        """The next records for ``output`` after what it acknowledged (or after
        ``after``: the batch that follows one in flight), from memory and then from
        disk. ``cut`` says afterwards whether a limit stopped it."""
        acked = self.acked[output] if after is None else after
        records = self.records
        batch: list[Record] = []
        size = 0
        self.cut = True
        if records:
            start = acked - records[0].seq + 1
            for index in range(max(start, 0), len(records)):
                record = records[index]
                if batch and (len(batch) >= max_records or size + record.size > max_bytes):
                    return batch
                batch.append(record)
                size += record.size
        if len(batch) >= max_records:
            return batch
        if not self.spilled:
            self.cut = False
            return batch
        assert self.spill is not None
        after = batch[-1].seq if batch else acked
        pending = self._pending
        if not pending or after + 1 < pending[0].seq:  # from the written groups first
            for record in self.spill.read(after, max_records - len(batch)):
                if batch and size + record.size > max_bytes:
                    return batch
                batch.append(record)
                size += record.size
            after = batch[-1].seq if batch else after
        if pending and len(batch) < max_records:  # then the group not written yet
            for index in range(max(0, after + 1 - pending[0].seq), len(pending)):
                record = pending[index]
                if batch and (len(batch) >= max_records or size + record.size > max_bytes):
                    return batch
                batch.append(record)
                size += record.size
        self.cut = len(batch) >= max_records
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
        if self.spilled and (
            (self._written and everyone >= self._written[0])
            or (self._pending and everyone >= self._pending[-1].seq)
        ):
            self._delete_spilled(everyone)

    def _delete_spilled(self, everyone: int) -> None:
        """Delete the disk tier's records every output has (in whole groups)."""
        assert self.spill is not None
        try:
            deleted = self.spill.delete_through(everyone)
        except SpillFailed as failed:
            self._spill_failed(failed)  # on disk until a later acknowledgement or retry
            deleted = {}
        else:
            written = self._written
            while written and written[0] <= everyone:
                written.popleft()
            if not self._pending:
                self.spill_failure = None
        pending = self._pending
        if pending and everyone >= pending[-1].seq:  # all delivered: never written
            merge_deleted(deleted, summary(pending))
            self._pending, self._pending_bytes = [], 0
        for key, part in deleted.items():
            self.spilled -= part.records
            self.spill_bytes -= part.message_bytes + part.records * RECORD_OVERHEAD
            progress = self.files.get(key)
            if progress is not None:
                progress.spilled -= part.records
                progress.delivered = max(progress.delivered, part.end)
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
        return progress is None or not (progress.waiting or progress.spilled)

    def forget(self, key: FileKey) -> None:
        self.files.pop(key, None)
