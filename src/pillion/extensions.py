"""Which implementation of the hot path runs: mypyc's extensions or the source.

``setup.py`` compiles the modules listed in ``_compiled.json`` with mypyc and
records each source file's sha256 there. The extensions run unless one of these
holds, and then every listed module runs from its ``.py`` instead:

- ``PILLION_NO_EXTENSIONS`` is set (to anything but empty or ``0``);
- nothing was compiled (no manifest, or an extension file is missing);
- a listed source changed since the build (an edit in a checkout): running the
  old compiled code would run something other than the source.

All or none: compiled modules call each other directly, so a mix would run two
versions of the same code. ``pillion version`` prints ``describe()``.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["compiled", "decide", "describe", "install"]

_PACKAGE = Path(__file__).parent
_MANIFEST = _PACKAGE / "_compiled.json"

_state: tuple[bool, str] | None = None


def decide(package: Path = _PACKAGE, no_extensions: str = "") -> tuple[bool, str, list[str]]:
    """(compiled?, why, the listed modules) for the package in ``package``."""
    try:
        manifest = json.loads((package / _MANIFEST.name).read_text())
        modules: dict[str, str] = manifest["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return False, "pure Python (not compiled)", []
    names = sorted(modules)
    if no_extensions not in ("", "0"):
        return False, "pure Python (PILLION_NO_EXTENSIONS is set)", names
    changed, missing = [], []
    for name in names:
        source = _source_path(name, package)
        try:
            digest = hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError:
            missing.append(name)
            continue
        if digest != modules[name]:
            changed.append(name)
        if not any(
            source.with_suffix(suffix).exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES
        ):
            missing.append(name)
    if missing:
        return False, f"pure Python (not compiled: {', '.join(missing)})", names
    if changed:
        return False, f"pure Python (changed since the build: {', '.join(changed)})", names
    return True, f"compiled ({manifest.get('compiler', 'mypyc')}, {len(names)} modules)", names


def _source_path(name: str, package: Path = _PACKAGE) -> Path:
    return package.joinpath(*name.split(".")[1:]).with_suffix(".py")


class _SourceFinder:
    """Finds the listed modules' ``.py`` files, ahead of their extensions (a meta path
    finder by its ``find_spec``; ``importlib.abc`` is not imported for its base class,
    which would load ``importlib.resources`` at every start)."""

    def __init__(self, names: list[str]) -> None:
        self._names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._names:
            return None
        return importlib.util.spec_from_file_location(fullname, _source_path(fullname))


def install() -> None:
    """Decide once, before any listed module is imported (``pillion/__init__``)."""
    global _state
    if _state is not None:
        return
    use_compiled, why, names = decide(no_extensions=os.environ.get("PILLION_NO_EXTENSIONS", ""))
    _state = (use_compiled, why)
    if not use_compiled and names:
        sys.meta_path.insert(0, _SourceFinder(names))


def compiled() -> bool:
    install()
    assert _state is not None
    return _state[0]


def describe() -> str:
    install()
    assert _state is not None
    return _state[1]
