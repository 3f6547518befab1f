"""The disk tier of the record log: records that do not fit in memory, in a
SQLite database (WAL), bounded in bytes.

It holds the newest records (the memory tier the oldest), in order of their
numbers. It is not what makes delivery survive a crash: the checkpoints are,
and they advance only past delivered records, so whatever was on disk at a
crash is read again from the files. The database is therefore started empty
and written without fsync.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

import orjson

from pillion.logs.buffer import Deleted, Record
from pillion.logs.identity import FileKey

__all__ = ["SqliteSpill"]

_SCHEMA = """
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    message BLOB NOT NULL,
    time REAL NOT NULL,
    input TEXT NOT NULL,
    path TEXT NOT NULL,
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    end_offset INTEGER NOT NULL,
    stream TEXT,
    source_time TEXT,
    fields BLOB
)
"""

_INSERT = (
    "INSERT INTO records (seq, message, time, input, path, device, inode, fingerprint, "
    "end_offset, stream, source_time, fields) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_READ = (
    "SELECT seq, message, time, input, path, device, inode, fingerprint, end_offset, stream, "
    "source_time, fields FROM records WHERE seq > ? ORDER BY seq LIMIT ?"
)

Row = tuple[int, bytes, float, str, str, int, int, str, int, str | None, str | None, bytes | None]


def _row(record: Record) -> Row:
    device, inode, mark = record.file
    fields = orjson.dumps(record.fields) if record.fields is not None else None
    return (record.seq, record.message, record.time, record.input, record.path, device,
            inode, mark, record.end, record.stream, record.source_time, fields)  # fmt: skip


def _record(row: Row) -> Record:
    seq, message, at, name, path, device, inode, mark, end, stream, source_time, fields = row
    return Record(bytes(message), at, name, path, (device, inode, mark), end, stream,
                  source_time, orjson.loads(fields) if fields is not None else None,
                  seq)  # fmt: skip


class SqliteSpill:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        """Start an empty database (what a previous run left is read again from the
        files, see the module's note)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(_SCHEMA)
        self._db = db

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "spill not open"
        return self._db

    def write(self, records: Iterable[Record]) -> None:
        with self.db:
            self.db.executemany(_INSERT, [_row(r) for r in records])

    def read(self, after: int, limit: int) -> list[Record]:
        """Up to ``limit`` records numbered above ``after``, in order."""
        rows = self.db.execute(_READ, (after, limit)).fetchall()
        return [_record(row) for row in rows]

    def delete_through(self, seq: int) -> dict[FileKey, Deleted]:
        """Delete the records numbered up to ``seq``; per file, the end offset of the
        last one deleted, how many were, and the bytes of their messages."""
        with self.db:
            rows = self.db.execute(
                "SELECT device, inode, fingerprint, max(end_offset), count(*), "
                "sum(length(message)) FROM records WHERE seq <= ? "
                "GROUP BY device, inode, fingerprint",
                (seq,),
            ).fetchall()
            self.db.execute("DELETE FROM records WHERE seq <= ?", (seq,))
        return {(device, inode, mark): Deleted(end, count, size)
                for device, inode, mark, end, count, size in rows}  # fmt: skip

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
