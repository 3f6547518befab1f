"""Small real file systems for the fault tests: a tmpfs of a given size (to fill
up, then to grow or empty), remounted read-only and writable again.

Mounting needs root, as the suite runs in CI. Linux refuses to make a file
system read-only while a file on it is open for writing (EBUSY), so ``remount``
retries until the files are closed (Pillion opens its checkpoint database for
each save only).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import wait_until

__all__ = ["fill", "remount", "tmpfs"]


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False, timeout=60)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``1m``) mounted at ``path`` (made if missing);
    unmounted on leaving the block, lazily if something still holds it."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    assert mounted.returncode == 0, f"cannot mount a tmpfs (root needed): {mounted.stderr}"
    try:
        yield path
    finally:
        unmounted = subprocess.run(
            ["umount", str(path)], capture_output=True, check=False, timeout=60
        )
        if unmounted.returncode:
            subprocess.run(["umount", "-l", str(path)], check=True, timeout=60)


def remount(path: Path, *options: str, timeout: float = 15.0) -> None:
    """``mount -o remount,<options>`` on the file system mounted at ``path``, retried
    while it is busy (a file open for writing there, when making it read-only)."""
    tried: list[str] = []

    def done() -> bool:
        result = _mount("-o", ",".join(("remount", *options)), str(path))
        tried[:] = [result.stderr]
        return result.returncode == 0

    try:
        wait_until(done, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"cannot remount {path} {options}: {tried}") from None


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system has no block left; the
    file, to delete for space again."""
    filler = directory / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb", buffering=0) as file:
        while True:
            try:
                file.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    assert os.statvfs(directory).f_bavail == 0
    return filler
