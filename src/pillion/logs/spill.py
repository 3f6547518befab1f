"""The disk tier of the record log: records that do not fit in memory, in a
SQLite database, bounded in bytes.

It holds the newest records (the memory tier the oldest), in order of their
numbers. It is not what makes delivery survive a crash: the checkpoints are,
and they advance only past delivered records, so whatever was on disk at a
crash (or a power loss) is read again from the files. The database is therefore
started empty and never fsynced, whatever ``logs.fsync`` says: what a crash
leaves of it, torn or not, the next start deletes.

Its journal is kept in memory (``journal_mode=MEMORY``), not on disk: each group
is written once, not once to a journal and again to the database, and a write
that fails half-way (the disk full, the file system read-only) is still rolled
back, so the database the process goes on with stays whole. Without a journal
at all (``OFF``) a failed write left a malformed database behind. A failure is
raised as ``SpillFailed`` (the record log keeps the group in memory and the
inputs pause until a retry works). The file is readable by its owner only (mode
0600), as the records may be sensitive.
"""

from __future__ import annotations

import marshal
import os
import sqlite3
from pathlib import Path
from typing import Any

from pillion.logs.buffer import Deleted, Record, SpillFailed, merge_deleted, summary
from pillion.logs.diskfaults import classify
from pillion.logs.identity import FileKey

__all__ = ["SqliteSpill"]

_SCHEMA = """
CREATE TABLE groups (
    first INTEGER PRIMARY KEY,  -- the number of its first record
    last INTEGER NOT NULL,  -- and of its last
    records BLOB NOT NULL,  -- marshal: the group's columns, see _columns
    files BLOB NOT NULL  -- marshal: {file key: (last end offset, records, message bytes)}
)
"""

_CACHED_GROUPS = 4  # decoded groups kept, for outputs reading the same ones

# What records read together share: (how many in a row, time, input, path, file,
# stream, source time, fields). Stored once per run, not once per record.
Run = tuple[int, float, str, str, FileKey, str | None, str | None, Any]
# A group on disk: its records' numbers, messages and end offsets, and the runs.
Columns = tuple[list[int], list[bytes], list[int], list[Run]]


def _columns(records: list[Record]) -> Columns:
    seqs: list[int] = []
    messages: list[bytes] = []
    ends: list[int] = []
    runs: list[Run] = []
    first = records[0]
    at, name, path, file = first.time, first.input, first.path, first.file
    stream, source_time, fields = first.stream, first.source_time, first.fields
    count = 0
    for record in records:
        if (
            record.time != at
            or record.file != file  # (compiled, a tuple field is a new tuple on each read)
            or record.fields is not fields
            or record.source_time != source_time
            or record.stream != stream
            or record.input != name
            or record.path != path
        ):
            runs.append((count, at, name, path, file, stream, source_time, fields))
            at, name, path, file = record.time, record.input, record.path, record.file
            stream, source_time, fields = record.stream, record.source_time, record.fields
            count = 0
        count += 1
        seqs.append(record.seq)
        messages.append(record.message)
        ends.append(record.end)
    runs.append((count, at, name, path, file, stream, source_time, fields))
    return seqs, messages, ends, runs


def _records(columns: Columns) -> list[Record]:
    seqs, messages, ends, runs = columns
    records: list[Record] = []
    index = 0
    for count, at, name, path, file, stream, source_time, fields in runs:
        for _ in range(count):
            records.append(
                Record(
                    messages[index],
                    at,
                    name,
                    path,
                    file,
                    ends[index],
                    stream,
                    source_time,
                    fields,
                    seqs[index],
                )
            )
            index += 1
    return records


class SqliteSpill:
    """Records in groups (one row per group written), so the per-record cost is
    its message, number and end offset in a ``marshal``ed list, not an SQL
    statement. The database is this process's
    own (made empty at start, in Pillion's state directory), so ``marshal`` reads
    only what it wrote."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._cache: dict[int, list[Record]] = {}  # first seq -> its group's records

    def open(self) -> None:
        """Start an empty database (what a previous run left is read again from the
        files, see the module's note)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=MEMORY")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(_SCHEMA)
        self._db = db

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "spill not open"
        return self._db

    def write(self, records: list[Record]) -> None:
        files = {key: tuple(value) for key, value in summary(records).items()}
        try:
            self.db.execute(
                "INSERT INTO groups (first, last, records, files) VALUES (?, ?, ?, ?)",
                (
                    records[0].seq,
                    records[-1].seq,
                    marshal.dumps(_columns(records)),
                    marshal.dumps(files),
                ),
            )
        except (sqlite3.Error, OSError) as exc:
            raise self._failed("cannot write", exc) from exc

    def _failed(self, doing: str, exc: Exception) -> SpillFailed:
        return SpillFailed(classify(exc, self.path), f"disk buffer {self.path}: {doing}: {exc}")

    def read(self, after: int, limit: int) -> list[Record]:
        """Up to ``limit`` records numbered above ``after``, in order."""
        found: list[Record] = []
        rows = self.db.execute("SELECT first FROM groups WHERE last > ? ORDER BY first", (after,))
        for (first,) in rows:
            group = self._group(first)
            found += group[max(0, after + 1 - first) :] if not found else group
            if len(found) >= limit:
                break
        return found[:limit]

    def _group(self, first: int) -> list[Record]:
        group = self._cache.get(first)
        if group is None:
            (blob,) = self.db.execute(
                "SELECT records FROM groups WHERE first = ?", (first,)
            ).fetchone()
            group = _records(marshal.loads(blob))  # noqa: S302 - own file
            if len(self._cache) >= _CACHED_GROUPS:
                del self._cache[min(self._cache)]
            self._cache[first] = group
        return group

    def delete_through(self, seq: int) -> dict[FileKey, Deleted]:
        """Delete the groups whose records are all numbered up to ``seq``; per file,
        what was deleted."""
        deleted: dict[FileKey, Deleted] = {}
        try:
            with self.db:
                rows = self.db.execute(
                    "SELECT first, files FROM groups WHERE first <= ? AND last <= ?", (seq, seq)
                ).fetchall()
                if not rows:
                    return deleted
                self.db.execute("DELETE FROM groups WHERE first <= ? AND last <= ?", (seq, seq))
        except (sqlite3.Error, OSError) as exc:
            raise self._failed("cannot delete delivered records", exc) from exc
        for first, files in rows:  # in order: later groups' ends win
            self._cache.pop(first, None)
            group = {key: Deleted(*value) for key, value in marshal.loads(files).items()}  # noqa: S302
            merge_deleted(deleted, group)
        return deleted

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._cache.clear()
