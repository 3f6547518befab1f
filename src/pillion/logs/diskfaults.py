"""What a failed write to the log pipeline's own files (the disk buffer, the
checkpoints) means: one word for metrics and problems, ``disk_full``,
``read_only`` or ``io_error``.

The error is read first (SQLite's result code, the OS errno), then the file
system is asked (``statvfs``: mounted read-only? no block left?), because SQLite
does not always say: a file it cannot create in a read-only directory is
"unable to open database file", and a full disk is an I/O error when the write
that failed was the journal's.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["REASONS", "classify"]

REASONS = ("disk_full", "read_only", "io_error")

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def classify(error: BaseException, path: str | Path) -> str:
    """``disk_full``, ``read_only`` or ``io_error``, for ``error`` on the file ``path``."""
    name = str(getattr(error, "sqlite_errorname", "") or "")
    code = error.errno if isinstance(error, OSError) else None
    if name.startswith("SQLITE_READONLY") or code == errno.EROFS:
        return "read_only"
    if name == "SQLITE_FULL" or code in _FULL:
        return "disk_full"
    try:
        filesystem = os.statvfs(Path(path).parent)
    except OSError:
        return "io_error"
    if filesystem.f_flag & os.ST_RDONLY:
        return "read_only"
    if filesystem.f_bavail == 0:
        return "disk_full"
    return "io_error"
