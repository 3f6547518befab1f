"""Discovery by inotify, and the polling fallback when inotify cannot be used.

The inotify tests scan only once an hour, so only inotify can explain that a
line arrives. The fallback tests run Pillion in its own user namespace whose
inotify limits (``/proc/sys/user/max_inotify_*``, which belong to that
namespace alone) are set to zero, as on a node whose watches or instances are
used up; it must then poll, say so, and lose nothing.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pillion.watch import directories_of
from tests.helpers import PillionProcess, http, metric_value, running_pillion, wait_until


@contextlib.contextmanager
def shipping(
    tmp_path: Path, scan_interval: str, wrapper: tuple[str, ...] = ()
) -> Iterator[PillionProcess]:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    body = f"""
logs:
  checkpoints: {tmp_path}/state/logs.db
  inputs:
    - name: app
      paths: ["{logs}/**/*.log"]
      scan_interval: {scan_interval}
      rotate_wait: 200ms
  outputs:
    - {{name: archive, type: file, path: {tmp_path}/out.jsonl, batch_timeout: 10ms}}
"""
    with running_pillion(tmp_path, body, wrapper=wrapper) as process:
        yield process


def shipped(tmp_path: Path) -> list[str]:
    out = tmp_path / "out.jsonl"
    if not out.exists():
        return []
    return [json.loads(line)["message"] for line in out.read_bytes().splitlines()]


def polling(process: PillionProcess) -> float | None:
    metrics = http("GET", f"{process.status_url}/metrics")[2]
    return metric_value(metrics, 'pillion_logs_input_polling{input="app"}')


@pytest.fixture
def hourly(tmp_path: Path) -> Iterator[PillionProcess]:
    with shipping(tmp_path, "1h") as process:
        yield process


def test_new_files_lines_and_rotations_are_seen_at_once(
    tmp_path: Path, hourly: PillionProcess
) -> None:
    logs = tmp_path / "logs"
    assert polling(hourly) == 0.0
    (logs / "app.log").write_text("one\n")  # a new file in a watched directory
    wait_until(lambda: shipped(tmp_path) == ["one"])
    with (logs / "app.log").open("a") as file:  # lines appended
        file.write("two\n")
    wait_until(lambda: shipped(tmp_path) == ["one", "two"])
    (logs / "app.log").rename(logs / "app.log.1")  # rename rotation, a new file
    (logs / "app.log").write_text("three\n")
    wait_until(lambda: shipped(tmp_path) == ["one", "two", "three"])
    nested = logs / "pods" / "web" / "0"  # a directory tree made after the start
    nested.mkdir(parents=True)
    (nested / "c.log").write_text("four\n")
    wait_until(lambda: shipped(tmp_path)[3:] == ["four"])


def test_a_long_scan_interval_does_not_hold_up_the_stop(
    tmp_path: Path, hourly: PillionProcess
) -> None:
    (tmp_path / "logs" / "app.log").write_text("one\n")
    wait_until(lambda: shipped(tmp_path) == ["one"])
    hourly.signal(signal.SIGTERM)
    assert hourly.wait_exit(timeout=30) == 0
    assert "drain cut short" not in hourly.output()  # the input stopped when told
    assert shipped(tmp_path) == ["one"]


def in_user_namespace(setting: str) -> tuple[str, ...]:
    """A wrapper running the command as root of a new user namespace in which the
    inotify limit ``setting`` is 0."""
    limit = f"/proc/sys/user/{setting}"  # this namespace's own: the host's are untouched
    return ("unshare", "--user", "--map-root-user", "sh", "-c",
            f'echo 0 > {limit} && exec "$@"', "sh")  # fmt: skip


@pytest.mark.parametrize(
    ("setting", "reason"),
    [("max_inotify_watches", "inotify_add_watch"), ("max_inotify_instances", "inotify_init1")],
)
def test_without_inotify_the_input_polls_and_loses_nothing(
    tmp_path: Path, setting: str, reason: str
) -> None:
    with shipping(tmp_path, "50ms", in_user_namespace(setting)) as process:
        warning = process.wait_for_log("inotify unavailable; the input polls every scan_interval")
        assert warning["input"] == "app"
        assert warning["error"].startswith(reason)
        assert polling(process) == 1.0
        lines = [f"line-{n}" for n in range(2000)]
        (tmp_path / "logs" / "app.log").write_text("".join(f"{x}\n" for x in lines))
        wait_until(lambda: shipped(tmp_path) == lines)


def test_the_watched_directories(tmp_path: Path) -> None:
    for directory in ("pods/a/b", "pods/c/d/e", "other"):
        (tmp_path / directory).mkdir(parents=True)
    base = str(tmp_path)
    assert directories_of([f"{base}/pods/*/*/*.log"]) == {
        f"{base}/pods", f"{base}/pods/a", f"{base}/pods/c", f"{base}/pods/a/b",
        f"{base}/pods/c/d",
    }  # fmt: skip
    assert directories_of([f"{base}/**/*.log"]) == {
        base, f"{base}/pods", f"{base}/pods/a", f"{base}/pods/a/b", f"{base}/pods/c",
        f"{base}/pods/c/d", f"{base}/pods/c/d/e", f"{base}/other",
    }  # fmt: skip
    assert directories_of([f"{base}/other/app.log", f"{base}/missing/x.log"]) == {f"{base}/other"}
    assert directories_of([f"{base}/*.log"]) == {base}  # not its parents
