"""Writing a rendered file so that no reader ever sees half of it.

The content goes to a temporary file in the destination's directory, created
with the final mode (and owner), written, fsynced, then renamed over the
destination, and the directory fsynced: a reader opens the old file or the new
one. Nothing is written when the content is unchanged.
"""

from __future__ import annotations

import contextlib
import os
import secrets as random_names
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(
    path: str, content: bytes, mode: int, owner: int | None = None, group: int | None = None
) -> bool:
    """Write ``content`` to ``path``; False (and nothing written) when the file already
    has exactly this content, mode and owner."""
    target = Path(path)
    try:
        st = target.stat()
        same_owner = (owner is None or st.st_uid == owner) and (group is None or st.st_gid == group)
        if st.st_mode & 0o7777 == mode and same_owner and target.read_bytes() == content:
            return False
    except OSError:
        pass
    temporary = target.with_name(f".{target.name}.{random_names.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            if owner is not None or group is not None:
                os.fchown(fd, -1 if owner is None else owner, -1 if group is None else group)
            os.fchmod(fd, mode)  # the mode asked for, whatever the umask
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True
