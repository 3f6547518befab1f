"""Noticing at once that some directories changed: inotify.

Its users (the log tailer, config watches) need to know only *that* something
changed in a directory they read (a line appended, a file created, renamed or
deleted), not what: they then scan and read as they do on their polling timer.
So the inotify descriptor is drained with one ``read`` per wake-up and its
events are never parsed, which keeps the cost off the per-line path when the
app writes fast.

When inotify cannot be used (no instance left, ``max_user_watches`` reached,
a file system without it), ``open`` or ``watch`` raise ``WatchUnavailable`` and
the user polls: it scans every ``scan_interval`` either way, inotify only
makes it sooner.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import glob
import os
from collections.abc import Callable, Iterable

__all__ = ["DirectoryWatch", "WatchUnavailable", "directories_of"]

_IN_MODIFY = 0x002
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_ONLYDIR = 0x01000000
_MASK = _IN_MODIFY | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_ONLYDIR
_IN_CLOEXEC = os.O_CLOEXEC
_IN_NONBLOCK = os.O_NONBLOCK
_REFRESH_EVERY = 20  # calls of watch(); then every directory's watch is added again


class WatchUnavailable(Exception):
    """inotify cannot be used; the reason is the message."""


def directories_of(patterns: Iterable[str]) -> set[str]:
    """The directories where files matching ``patterns`` can appear: from each
    pattern's last directory without a wildcard down to its files' level (``**``:
    every directory below)."""
    found: set[str] = set()
    for pattern in patterns:
        parts = pattern.split(os.sep)[:-1]  # the directory part
        fixed = 0
        while fixed < len(parts) and not glob.has_magic(parts[fixed]):
            fixed += 1
        for depth in range(max(fixed, 1), len(parts) + 1):
            partial = os.sep.join(parts[:depth]) or os.sep
            if glob.has_magic(partial):
                found.update(os.path.normpath(d) for d in glob.glob(partial, recursive=True)
                             if os.path.isdir(d))  # fmt: skip
            elif os.path.isdir(partial):
                found.add(partial)
    return found


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class DirectoryWatch:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watched: set[str] = set()
        self._calls = 0
        self._libc = _libc()

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start; ``WatchUnavailable`` if the kernel has no inotify instance to give."""
        fd = self._libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK)
        if fd < 0:
            raise WatchUnavailable(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self._fd, self._loop = fd, loop
        loop.add_reader(fd, self._drain)

    def _drain(self) -> None:
        assert self._fd is not None
        try:
            while os.read(self._fd, 64 * 1024):
                pass
        except BlockingIOError:
            pass
        self.on_change()

    def watch(self, directories: Iterable[str]) -> None:
        """Watch these directories (those already watched are skipped; every
        ``_REFRESH_EVERY`` calls all are added again, as a deleted directory's watch
        is gone). ``WatchUnavailable`` when the watch limit is reached."""
        if self._fd is None:
            raise WatchUnavailable("not open")
        self._calls += 1
        if self._calls % _REFRESH_EVERY == 0:
            self._watched.clear()
        for directory in directories:
            if directory in self._watched:
                continue
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(directory), _MASK)
            if wd < 0:
                code = ctypes.get_errno()
                if code in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                    continue  # gone or not a directory: the scan sees to it
                raise WatchUnavailable(f"inotify_add_watch {directory}: {os.strerror(code)}")
            self._watched.add(directory)

    def close(self) -> None:
        if self._fd is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        self._watched.clear()
