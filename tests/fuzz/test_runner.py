"""``make fuzz``'s runner: listing the targets, a short run that grows a corpus,
a failure found, saved in the corpus as its reproducer and reported, and the
pieces it reads libFuzzer's output with."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

from fuzz.engine import dictionary
from fuzz.mutate import mutate
from fuzz.run import ROOT, parse_log, run_target
from fuzz.target import CORPUS
from fuzz.targets import MODULES


def test_list_names_every_target() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "fuzz", "--list"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert [line.split()[0] for line in listed.splitlines()] == list(MODULES)


def test_a_short_run_executes_and_keeps_its_corpus(tmp_path: Path) -> None:
    shutil.copytree(CORPUS / "log-lines", tmp_path / "log-lines")
    result = run_target("log-lines", 2, corpus_root=tmp_path)
    assert not result.failed, result.traceback
    assert result.executions > 0
    assert len(list((tmp_path / "log-lines").iterdir())) >= len(
        list((CORPUS / "log-lines").iterdir())
    )


def test_a_failure_is_saved_in_the_corpus_and_reported(tmp_path: Path) -> None:
    (tmp_path / "tests.fuzz.failing_target").mkdir()
    (tmp_path / "tests.fuzz.failing_target" / "seed").write_bytes(b"abc")
    result = run_target("tests.fuzz.failing_target", 20, corpus_root=tmp_path)
    assert result.failed
    [reproducer] = result.failures
    assert reproducer.parent == tmp_path / "tests.fuzz.failing_target"
    assert reproducer.name.startswith("crash-")
    assert b"\x00" in reproducer.read_bytes()
    assert "a NUL got through" in result.traceback


def test_parse_log_reads_executions_and_the_traceback() -> None:
    log = (
        "#2458310\tDONE   cov: 2 ft: 2\nstat::number_of_executed_units: 2458310\n"
        "\n=== Uncaught Python exception: ===\nAssertionError: x\nTraceback (most recent call"
        ' last):\n  File "t.py", line 4, in one\nAssertionError: x\n\n==9646== ERROR: libFuzzer'
    )
    executions, traceback = parse_log(log)
    assert executions == 2458310
    assert traceback.startswith("AssertionError: x")
    assert traceback.endswith("AssertionError: x")


def test_the_dictionary_escapes_what_libfuzzer_cannot_read_plain() -> None:
    assert dictionary((b"a b", b'"\\\r\n\xff')) == '"a b"\n"\\x22\\x5c\\x0d\\x0a\\xff"\n'


def test_mutations_depend_on_the_seed_only() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    first = [mutate(data, random.Random(seed), (b"\r\n",)) for seed in range(50)]
    again = [mutate(data, random.Random(seed), (b"\r\n",)) for seed in range(50)]
    assert first == again
    assert len(set(first)) > 25
