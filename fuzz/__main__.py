"""``python -m fuzz`` (``make fuzz``): every target, or those named, for a time
each; see fuzz/README.md."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from fuzz.run import Result, run_target
from fuzz.target import CORPUS
from fuzz.targets import MODULES, load


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--seconds", type=int, default=120, help="per target (default 120)")
    parser.add_argument(
        "--target",
        action="append",
        choices=list(MODULES),
        default=[],
        help="a target to run (repeatable; default: all)",
    )
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument(
        "--pure",
        action="store_true",
        help="run Pillion's compiled modules from their source (coverage sees them)",
    )
    parser.add_argument(
        "--corpus", type=Path, default=CORPUS, help="corpus root (default fuzz/corpus)"
    )
    return parser.parse_args(argv)


def _report(result: Result) -> None:
    known = ", ".join(f"{name} x{count}" for name, count in sorted(result.known.items()))
    print(
        f"{result.target:14} {result.executions:>9} executions  {result.new_entries:>4} new corpus "
        f"entries  {len(result.failures) or int(result.failed)} failures"
        + (f"  (known defects met: {known})" if known else ""),
        flush=True,
    )


def _reproducers(result: Result) -> None:
    print(f"\n{result.target}: FAILED (exit code {result.exit_code})")
    for path in result.failures:
        data = path.read_bytes()
        shown = repr(data[:400]) + (f" ... ({len(data)} bytes)" if len(data) > 400 else "")
        print(f"  reproducer saved: {path}\n  input: {shown}")
    if result.traceback:
        print("  " + result.traceback.replace("\n", "\n  "))


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    if args.list:
        for name in MODULES:
            print(f"{name:14} {load(name).summary}")
        return 0
    if importlib.util.find_spec("atheris") is None:
        print("atheris is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    results = []
    for name in args.target or list(MODULES):
        results.append(run_target(name, args.seconds, corpus_root=args.corpus, pure=args.pure))
        _report(results[-1])
    failed = [result for result in results if result.failed]
    for result in failed:
        _reproducers(result)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
