"""One target under atheris (libFuzzer for Python), in a process of its own:
``python -m fuzz.engine NAME --seconds N --corpus DIR --new NEW --stats FILE``.

libFuzzer starts from the corpus in ``DIR``, writes each input that reaches new
code into ``NEW`` (named by its SHA-1; the runner then merges the ones still
needed into ``DIR``), and writes the input of a failure into ``DIR``
(``crash-<sha1>``) before it exits. Coverage comes from Pillion's Python code,
instrumented as the target imports it; compiled modules are opaque to it, so
the HTTP targets' source copies are instrumented by hand (and ``--pure`` runs
everything from source). Half the mutations are libFuzzer's own (bytes, the
target's tokens as a dictionary, crossing corpus entries), half the structured
ones of ``fuzz.mutate``. The known defects met are tallied in ``FILE`` (JSON).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from fuzz import known
from fuzz.mutate import mutate
from fuzz.target import Target

__all__ = ["dictionary", "main"]


def dictionary(tokens: tuple[bytes, ...]) -> str:
    """libFuzzer's dictionary format: one quoted token a line, bytes as ``\\xNN``."""
    lines = []
    for token in tokens:
        escaped = "".join(
            chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in token
        )
        lines.append(f'"{escaped}"')
    return "\n".join(lines) + "\n"


def _instrument(atheris: Any, module: ModuleType) -> None:
    """Coverage for a module loaded by path (past the import hooks)."""
    for value in vars(module).values():
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value):
            atheris.instrument_func(value)
        elif inspect.isclass(value):
            for member in vars(value).values():
                if inspect.isfunction(member):
                    atheris.instrument_func(member)


def _load(atheris: Any, name: str) -> Target:
    with atheris.instrument_imports(include=["pillion", "fuzz"]):
        from fuzz import targets

        target = targets.load(name)
    if name.startswith("http-"):
        from fuzz.httpparse import implementations

        for pair in implementations()[1:]:
            for module in pair:
                _instrument(atheris, module)
    return target


class _Tally:
    """Writes ``known.seen`` to a file: at once for a new defect, else at most once a
    second (libFuzzer ends the process without a chance to write at the end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.total = 0
        self.kinds = 0
        self.written = 0.0

    def update(self) -> None:
        total = known.seen.total()
        if total == self.total:
            return
        self.total = total
        now = time.monotonic()
        if len(known.seen) == self.kinds and now - self.written < 1.0:
            return
        self.kinds, self.written = len(known.seen), now
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(dict(known.seen)))
        scratch.replace(self.path)


def run(name: str, arguments: Callable[[Target], list[str]], stats: Path | None) -> None:
    """Fuzz target ``name``, or merge corpora, as libFuzzer's ``arguments`` (its
    command first) say; never returns. The target is loaded (and instrumented) first."""
    atheris = importlib.import_module("atheris")
    target = _load(atheris, name)
    tally = _Tally(stats) if stats is not None else None

    def one_input(data: bytes) -> None:
        target.check(data)
        if tally is not None:
            tally.update()

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)  # noqa: S311 - a mutation, not a secret
        if rng.random() < 0.5:
            mutated: bytes = atheris.Mutate(data, max_size)
            return mutated
        return mutate(data, rng, target.tokens)[:max_size]

    atheris.Setup(arguments(target), one_input, custom_mutator=mutator)
    atheris.Fuzz()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m fuzz.engine")
    parser.add_argument("target")
    parser.add_argument("--seconds", type=int, required=True)
    parser.add_argument("--corpus", type=Path, required=True, help="read, and failures saved")
    parser.add_argument("--new", type=Path, required=True, help="where new inputs go")
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args(argv)

    def arguments(target: Target) -> list[str]:
        dictionary_file = args.stats.with_suffix(".dict")
        dictionary_file.write_text(dictionary(target.tokens))
        return [
            sys.argv[0],
            str(args.new),
            str(args.corpus),
            f"-max_total_time={args.seconds}",
            f"-max_len={target.max_len}",
            f"-artifact_prefix={args.corpus}/",
            f"-dict={dictionary_file}",
            "-print_final_stats=1",
            "-timeout=30",
            "-report_slow_units=5",
            "-rss_limit_mb=3072",
        ]

    run(args.target, arguments, args.stats)


if __name__ == "__main__":
    main(sys.argv[1:])
