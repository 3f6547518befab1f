"""What a fuzz target is, and where its corpus lives.

A target is a ``check``: bytes in; it returns when the parser under test either
accepted the input exactly (the property says what "exactly" means for it) or
refused it with its documented error, and raises anything else: an
``AssertionError`` for a broken property, or the exception that escaped. The
same ``check`` runs under ``make fuzz`` (atheris, for minutes) and under
``make test`` (Hypothesis and the corpus, bounded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CORPUS", "FINDING_PREFIXES", "Target", "corpus_files"]

CORPUS = Path(__file__).parent / "corpus"
"""One directory per target: seeds (named for what they are) and the inputs
``make fuzz`` found (named by their SHA-1; ``crash-...`` for a failure)."""

FINDING_PREFIXES = ("crash-", "timeout-", "oom-", "slow-unit-", "leak-")
"""libFuzzer's names for the reproducer of a failure."""


@dataclass(frozen=True)
class Target:
    name: str
    summary: str
    check: Callable[[bytes], None]
    tokens: tuple[bytes, ...]  # syntax worth inserting (the mutators' dictionary)
    max_len: int = 4096  # the longest input the fuzzer makes (seeds may be longer)

    def corpus(self, root: Path = CORPUS) -> Path:
        return root / self.name


def corpus_files(directory: Path) -> list[Path]:
    """The inputs in a target's corpus directory, in a stable order."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
