"""A directory laid out as the kubelet mounts a ConfigMap, and updated as it does.

``..<timestamp>/`` holds the files, ``..data`` points to it, and each key is a
symlink ``<key> -> ..data/<key>``. An update writes a new timestamped directory,
points a temporary symlink at it and renames that over ``..data`` (the one
atomic step), then adds and removes the keys' symlinks and deletes the old
directory (the kubelet's ``AtomicWriter``).
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

_STAMPS = itertools.count()


class ConfigMapVolume:
    def __init__(self, path: Path, data: dict[str, str]) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.keys: set[str] = set()
        self.update(data)

    def update(self, data: dict[str, str]) -> None:
        old = (self.path / "..data").resolve() if (self.path / "..data").exists() else None
        stamp = f"..2026_11_24_{next(_STAMPS):04d}"
        (self.path / stamp).mkdir()
        for key, value in data.items():
            (self.path / stamp / key).write_text(value)
        os.symlink(stamp, self.path / "..data_tmp")
        os.replace(self.path / "..data_tmp", self.path / "..data")
        for key in set(data) - self.keys:
            os.symlink(f"..data/{key}", self.path / key)
        for key in self.keys - set(data):
            (self.path / key).unlink()
        self.keys = set(data)
        if old is not None:
            shutil.rmtree(old)
