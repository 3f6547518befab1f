"""Every input in fuzz/corpus/, replayed through its target: the seeds, what
``make fuzz`` found that reached new code, and the reproducers of failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.target import CORPUS, corpus_files
from fuzz.targets import load, names

INPUTS = [path for name in names() for path in corpus_files(CORPUS / name)]


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_input(path: Path) -> None:
    load(path.parent.name).check(path.read_bytes())


@pytest.mark.parametrize("name", names())
def test_every_target_has_named_seeds(name: str) -> None:
    named = [p for p in corpus_files(CORPUS / name) if "-" in p.name]
    assert len(named) >= 5, f"{name}: write seeds into fuzz/corpus/{name}/"
