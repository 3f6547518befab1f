"""Running the targets one after another, each in an atheris process of its own,
and reading what each did: executions, corpus entries added, failures (the
reproducer libFuzzer saved in the corpus, and the traceback), known defects met.
New inputs go to a scratch directory first; a merge keeps those the corpus needs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.target import CORPUS, FINDING_PREFIXES, corpus_files

__all__ = ["Result", "parse_log", "run_target"]

ROOT = Path(__file__).resolve().parent.parent
STARTUP_ALLOWANCE = 120  # seconds past the budget before a worker counts as hung
MERGE_ALLOWANCE = 600  # seconds for a merge (each new input run once or twice)


@dataclass
class Result:
    target: str
    executions: int = 0
    new_entries: int = 0
    failures: list[Path] = field(default_factory=list)
    known: dict[str, int] = field(default_factory=dict)
    exit_code: int = 0
    traceback: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.failures) or self.exit_code != 0


def parse_log(text: str) -> tuple[int, str]:
    """libFuzzer's executions (its final stats) and the Python traceback, if any."""
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    if runs is None:
        runs = re.search(r"Done (\d+) runs", text)
    trace = re.search(r"=== Uncaught Python exception: ===\n(.*?)(?:\n==\d+== |\Z)", text, re.S)
    return (int(runs.group(1)) if runs else 0), (trace.group(1).strip() if trace else "")


def _findings(directory: Path) -> set[Path]:
    return {p for p in corpus_files(directory) if p.name.startswith(FINDING_PREFIXES)}


def run_target(
    name: str, seconds: int, *, corpus_root: Path = CORPUS, pure: bool = False
) -> Result:
    """Fuzz ``name`` for ``seconds``, its corpus in ``corpus_root / name``."""
    corpus = corpus_root / name
    corpus.mkdir(parents=True, exist_ok=True)
    entries_before, findings_before = set(corpus_files(corpus)), _findings(corpus)
    result = Result(name)
    environment = {**os.environ, "PILLION_NO_EXTENSIONS": "1"} if pure else dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="pillion-fuzz-") as scratch_name:
        scratch = Path(scratch_name)
        stats, log, new = scratch / "known.json", scratch / "log.txt", scratch / "new"
        new.mkdir()
        command = [sys.executable, "-m", "fuzz.engine", name, "--seconds", str(seconds)]
        command += ["--corpus", str(corpus), "--new", str(new), "--stats", str(stats)]
        result.exit_code = _run(command, log, environment, seconds + STARTUP_ALLOWANCE)
        text = log.read_text(errors="replace")
        result.executions, result.traceback = parse_log(text)
        if result.exit_code and not result.traceback:
            result.traceback = "\n".join(text.splitlines()[-40:])
        if stats.exists():
            result.known = json.loads(stats.read_text())
        if corpus_files(new):
            _merge(name, corpus, new, scratch, environment)
    result.failures = sorted(_findings(corpus) - findings_before)
    added = set(corpus_files(corpus)) - entries_before
    result.new_entries = len(added - set(result.failures))
    return result


_LAUNCHER = """#!{python}
import sys
sys.path.insert(0, {root!r})
from fuzz.engine import run
run({name!r}, lambda target: sys.argv, None)
"""


def _merge(name: str, corpus: Path, new: Path, scratch: Path, environment: dict[str, str]) -> None:
    """Copy into ``corpus`` the new inputs that still reach code it does not (libFuzzer's
    merge), so that it keeps what a run learned without all its steps. libFuzzer runs
    the merge in a process it starts again with its own command line: a script."""
    launcher = scratch / "merge"
    launcher.write_text(_LAUNCHER.format(python=sys.executable, root=str(ROOT), name=name))
    launcher.chmod(0o700)
    command = [str(launcher), "-merge=1", str(corpus), str(new), "-timeout=30"]
    _run(command, scratch / "merge.txt", environment, MERGE_ALLOWANCE)


def _run(command: list[str], log: Path, environment: dict[str, str], timeout: float) -> int:
    """Run ``command``, its output into ``log``; its exit code (-1: killed, too long)."""
    with log.open("wb") as output:
        try:
            completed = subprocess.run(
                command,
                cwd=ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return -1
    return completed.returncode
