"""How far each file has been delivered: a SQLite database (WAL), written in
transactions, so a crash leaves either the old or the new offsets, never half.

An unreadable database (corrupted, not SQLite) is moved aside as
``<name>.corrupt-<time>`` and a new one started: the files are then read from
their beginning (duplicates, never losses), and Pillion does not crash-loop.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from pillion.logs.identity import FileKey

__all__ = ["Checkpoints"]

log = logging.getLogger("pillion.logs")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    path TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (device, inode, fingerprint)
)
"""


class Checkpoints:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open (or create) the database; a corrupted one is moved aside."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            log.error(
                "checkpoint database unreadable; moved aside, starting over (files are "
                "read again from their start: duplicates, not losses)",
                extra={"path": str(self.path), "aside": str(aside), "error": str(exc)},
            )
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.execute("SELECT count(*) FROM files").fetchone()
            db.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def load(self) -> dict[FileKey, int]:
        assert self._db is not None
        rows = self._db.execute("SELECT device, inode, fingerprint, delivered FROM files")
        return {(device, inode, fp): delivered for device, inode, fp, delivered in rows}

    def save(self, offsets: dict[FileKey, tuple[str, int]], forget: list[FileKey]) -> None:
        """Write new offsets and drop released files, in one transaction."""
        if not offsets and not forget:
            return
        assert self._db is not None
        now = time.time()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                "(device, inode, fingerprint) DO UPDATE SET path = excluded.path, "
                "delivered = excluded.delivered, updated = excluded.updated",
                [(*key, path, offset, now) for key, (path, offset) in offsets.items()],
            )
            db.executemany(
                "DELETE FROM files WHERE device = ? AND inode = ? AND fingerprint = ?", forget
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
