"""Compiled or source: the decision ``pillion.extensions`` takes at import time."""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import subprocess
import sys
from pathlib import Path

from pillion import extensions

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def package(tmp_path: Path, *, digest_of: bytes = b"x = 1\n", built: bool = True) -> Path:
    root = tmp_path / "pillion"
    (root / "http").mkdir(parents=True)
    (root / "http" / "request.py").write_bytes(b"x = 1\n")
    if built:
        (root / "http" / f"request{SUFFIX}").write_bytes(b"")
    digest = hashlib.sha256(digest_of).hexdigest()
    manifest = {"compiler": "mypyc", "modules": {"pillion.http.request": digest}}
    (root / "_compiled.json").write_text(json.dumps(manifest))
    return root


def test_built_and_unchanged_runs_compiled(tmp_path: Path) -> None:
    assert extensions.decide(package(tmp_path)) == (
        True, "compiled (mypyc, 1 modules)", ["pillion.http.request"]
    )  # fmt: skip


def test_the_switch_forces_source(tmp_path: Path) -> None:
    root = package(tmp_path)
    assert extensions.decide(root, "1")[:2] == (
        False, "pure Python (PILLION_NO_EXTENSIONS is set)"
    )  # fmt: skip
    assert extensions.decide(root, "0")[0]  # 0 and empty mean "not set"


def test_a_source_edited_after_the_build_runs_from_source(tmp_path: Path) -> None:
    root = package(tmp_path, digest_of=b"x = 0\n")
    assert extensions.decide(root)[:2] == (
        False, "pure Python (changed since the build: pillion.http.request)"
    )  # fmt: skip


def test_no_manifest_or_no_extension_file(tmp_path: Path) -> None:
    assert extensions.decide(tmp_path / "nothing")[:2] == (False, "pure Python (not compiled)")
    assert extensions.decide(package(tmp_path, built=False))[:2] == (
        False, "pure Python (not compiled: pillion.http.request)"
    )  # fmt: skip


def test_the_switch_loads_every_listed_module_from_source() -> None:
    code = (
        "import pillion.proxy.exchange as e, pillion.http.request as r; "
        "print(e.__file__); print(r.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
        env={"PILLION_NO_EXTENSIONS": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert [Path(line).suffix for line in result.stdout.split()] == [".py", ".py"]
