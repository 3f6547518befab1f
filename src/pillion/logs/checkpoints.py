"""How far each file has been delivered: a SQLite database (WAL), written in
transactions, so a crash leaves either the old or the new offsets, never half.

The database is opened for each save and closed after it, not held open: a
save that fails (the disk full, the directory read-only) leaves nothing behind
in a bad state, and the next one starts afresh on whatever the volume has
become. ``synchronous`` is ``FULL`` (each save is on disk when ``save``
returns: the WAL is fsynced at the commit, and the database when the closing
connection moves the WAL into it) or ``OFF`` (the OS writes it when it likes:
after a power loss the offsets may be older, or the file torn).

An unreadable database (corrupted, not SQLite) is moved aside as
``<name>.corrupt-<time>`` and a new one started: the files are then read from
their beginning (duplicates, never losses), and Pillion does not crash-loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Literal

from pillion.logs.diskfaults import classify
from pillion.logs.identity import FileKey

__all__ = ["CheckpointSaveFailed", "Checkpoints"]

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


class CheckpointSaveFailed(Exception):
    """A save did not happen (the saved offsets are the previous ones). ``reason`` is
    ``disk_full``, ``read_only`` or ``io_error``; the message names the file."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Checkpoints:
    def __init__(self, path: str, *, synchronous: Literal["FULL", "OFF"] = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous

    def open(self) -> None:
        """Check (or create) the database; a corrupted one is moved aside."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connect(check=True).close()
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
            self._connect(check=True).close()

    def _connect(self, check: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute(_SCHEMA)
            if check:
                db.execute("SELECT count(*) FROM files").fetchone()
                db.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def load(self) -> dict[FileKey, int]:
        db = self._connect()
        try:
            rows = db.execute("SELECT device, inode, fingerprint, delivered FROM files")
            return {(device, inode, fp): delivered for device, inode, fp, delivered in rows}
        finally:
            db.close()

    def save(self, offsets: dict[FileKey, tuple[str, int]], forget: list[FileKey]) -> None:
        """Write new offsets and drop released files, in one transaction;
        ``CheckpointSaveFailed`` when it could not be written."""
        if not offsets and not forget:
            return
        now = time.time()
        try:
            db = self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise self._failed(exc) from exc
        try:
            self.write(db, offsets, forget, now)
        except (sqlite3.Error, OSError) as exc:
            raise self._failed(exc) from exc
        finally:
            try:
                db.close()  # (moves the WAL into the database; a failure there is harmless)
            except sqlite3.Error as exc:
                log.debug("checkpoint database not closed cleanly", extra={"error": str(exc)})

    def write(
        self,
        db: sqlite3.Connection,
        offsets: dict[FileKey, tuple[str, int]],
        forget: list[FileKey],
        now: float,
    ) -> None:
        """The transaction of a save: all of it, or (rolled back) none."""
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
            self.commit(db)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            raise

    def commit(self, db: sqlite3.Connection) -> None:
        """The point after which a crash keeps the new offsets (a subclass in the tests
        dies just before it, or just after)."""
        db.execute("COMMIT")

    def _failed(self, exc: Exception) -> CheckpointSaveFailed:
        return CheckpointSaveFailed(
            classify(exc, self.path), f"checkpoints {self.path}: cannot save: {exc}"
        )

    def close(self) -> None:
        """Nothing is held between saves."""
