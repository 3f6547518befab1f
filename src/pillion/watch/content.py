"""The content of some files and directories as one digest, and the directories
to watch to notice when it changes.

A path is a file or a directory; a directory's content is every regular file
below it, read through symlinks, with hidden names (a ``.`` first) skipped. A
mounted ConfigMap is a directory whose keys are symlinks into ``..data``, itself
a symlink to a timestamped directory that the kubelet replaces atomically: read
through the visible keys, the swap is one change of content, and walking the
hidden machinery too would only count each key again.

The digest covers each file's path and content in sorted order: touching a
file, or swapping in identical content, changes nothing; a rename does.

Reading every file at every scan would be costly for large trees, so a file's
content digest is kept while its device, inode, size, mtime and ctime stay the
same, but only once the file is a few seconds old: a write in the same clock
tick as the read could leave those unchanged (git's "racy clean" problem).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ContentHasher", "Snapshot"]

_SETTLED_NS = 2_000_000_000  # a file's digest is reused once its ctime is this old
_MAX_DEPTH = 32  # directories below a watched path (symlink loops are cut earlier)

_Signature = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class Snapshot:
    digest: str  # sha256, hex
    files: int
    directories: frozenset[str]  # where a change would show: watch these
    missing: tuple[str, ...]  # watched paths that do not exist (counted as empty)
    unreadable: tuple[str, ...]  # files or directories that could not be read, with why


class ContentHasher:
    """Digests of the same paths, scan after scan; keeps the files' digests."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[_Signature, bytes]] = {}

    def snapshot(self, paths: Iterable[str]) -> Snapshot:
        walk = _Walk(self._known)
        for path in sorted({os.path.normpath(p) for p in paths}):
            walk.top(path)
        self._known = walk.seen
        return Snapshot(walk.digest.hexdigest(), walk.files, frozenset(walk.directories),
                        tuple(walk.missing), tuple(walk.unreadable))  # fmt: skip


class _Walk:
    def __init__(self, known: dict[str, tuple[_Signature, bytes]]) -> None:
        self.known = known
        self.seen: dict[str, tuple[_Signature, bytes]] = {}
        self.digest = hashlib.sha256()
        self.files = 0
        self.directories: set[str] = set()
        self.missing: list[str] = []
        self.unreadable: list[str] = []
        self.now_ns = time.time_ns()

    def top(self, path: str) -> None:
        # The parent too: the path itself may be created, replaced or renamed there.
        self.directories.add(os.path.dirname(path) or "/")
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self.missing.append(path)
            return
        except OSError as exc:
            self.unreadable.append(f"{path}: {exc.strerror}")
            return
        if stat.S_ISDIR(st.st_mode):
            self.directory(path, path, {_identity(st)}, 0)
        elif stat.S_ISREG(st.st_mode):
            self.file(path, path)

    def directory(self, top: str, path: str, visited: set[tuple[int, int]], depth: int) -> None:
        self.directories.add(path)
        try:
            with os.scandir(path) as listing:
                entries = sorted((e for e in listing if not e.name.startswith(".")),
                                 key=lambda e: e.name)  # fmt: skip
        except OSError as exc:
            self.unreadable.append(f"{path}: {exc.strerror}")
            return
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # through symlinks
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue
            if is_file:
                self.file(top, entry.path)
            elif is_dir and depth < _MAX_DEPTH:
                try:
                    identity = _identity(os.stat(entry.path))
                except OSError:
                    continue  # gone since it was listed: the next scan sees how it ends
                if identity not in visited:  # a symlink back up would loop forever
                    self.directory(top, entry.path, visited | {identity}, depth + 1)

    def file(self, top: str, path: str) -> None:
        try:
            content = self.content(path)
        except FileNotFoundError:
            return  # gone since it was listed: the next scan sees how it ends
        except OSError as exc:
            self.unreadable.append(f"{path}: {exc.strerror}")
            return
        relative = os.path.relpath(path, top) if path != top else ""
        self.digest.update(b"%s\0%s\0%s" % (os.fsencode(top), os.fsencode(relative), content))
        self.files += 1
        # Where the content really is (a ConfigMap key's timestamped directory): an
        # edit in place there would not show in the watched directory.
        self.directories.add(os.path.dirname(os.path.realpath(path)))

    def content(self, path: str) -> bytes:
        """The sha256 of the file's content (reused while its stat is unchanged)."""
        with open(path, "rb") as file:
            st = os.fstat(file.fileno())
            signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            known = self.known.get(path)
            if known is not None and known[0] == signature:
                self.seen[path] = known
                return known[1]
            digest = hashlib.file_digest(file, "sha256").digest()
        if self.now_ns - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
            self.seen[path] = (signature, digest)
        return digest


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino
