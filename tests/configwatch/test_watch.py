"""Watches end to end: a real Pillion, real files, a notification target that
appends a line to a file for every notification.

Nothing here measures time. Where a test shows that something did *not*
happen, it gives the wrong notification its chance first (``settle``), then
makes a real change and sees exactly one notification for it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.configwatch.running import metric, notified, running, settle
from tests.configwatch.volumes import ConfigMapVolume
from tests.helpers import PillionProcess, http, wait_until


@pytest.fixture
def volume(tmp_path: Path) -> ConfigMapVolume:
    return ConfigMapVolume(tmp_path / "app-config", {"app.conf": "a=1\n", "extra.conf": "e\n"})


@pytest.fixture
def hourly(tmp_path: Path, volume: ConfigMapVolume) -> Iterator[PillionProcess]:
    """Scanning once an hour: only inotify can explain a notification."""
    with running(tmp_path, f"""
config:
  scan_interval: 1h
  watch:
    - name: app
      paths: [{volume.path}, {tmp_path}/later.conf]
      wait: {{min: 200ms, max: 2s}}
      notify: [app]
""") as process:  # fmt: skip
        yield process


def test_a_configmap_update_notifies_once(
    tmp_path: Path, volume: ConfigMapVolume, hourly: PillionProcess
) -> None:
    assert metric(hourly, 'pillion_config_changes_total{watch="app"}') == 0.0
    settle()
    assert notified(tmp_path) == 0  # the first hash, at start, never notifies
    volume.update({"app.conf": "a=2\n", "extra.conf": "e\n"})
    wait_until(lambda: notified(tmp_path) == 1)
    settle()
    assert notified(tmp_path) == 1
    assert metric(hourly, 'pillion_config_changes_total{watch="app"}') == 1.0
    assert metric(hourly, 'pillion_notify_total{result="ok",target="app"}') == 1.0
    changed_at = metric(hourly, 'pillion_config_last_change_timestamp_seconds{watch="app"}')
    assert changed_at is not None
    assert changed_at > 0
    volume.update({"app.conf": "a=2\n"})  # a key removed
    wait_until(lambda: notified(tmp_path) == 2)


def test_a_touch_or_an_identical_update_notifies_no_one(
    tmp_path: Path, volume: ConfigMapVolume, hourly: PillionProcess
) -> None:
    (volume.path / "..data" / "app.conf").touch()
    volume.update({"app.conf": "a=1\n", "extra.conf": "e\n"})  # swapped, same content
    settle()
    assert notified(tmp_path) == 0
    volume.update({"app.conf": "a=3\n", "extra.conf": "e\n"})
    wait_until(lambda: notified(tmp_path) == 1)
    settle()
    assert notified(tmp_path) == 1
    assert metric(hourly, 'pillion_config_changes_total{watch="app"}') == 1.0


def test_a_missing_path_is_warned_about_once_and_noticed_when_it_appears(
    tmp_path: Path, hourly: PillionProcess
) -> None:
    warning = hourly.wait_for_log(
        "watched path does not exist; it counts as empty until it appears"
    )
    assert warning["path"] == f"{tmp_path}/later.conf"
    (tmp_path / "later.conf").write_text("now\n")
    wait_until(lambda: notified(tmp_path) == 1)
    records = hourly.records()
    assert sum(r["message"].startswith("watched path does not exist") for r in records) == 1


def test_quick_changes_within_min_notify_once(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    with running(tmp_path, f"""
config:
  scan_interval: 50ms
  watch:
    - {{name: app, paths: [{conf}], wait: {{min: 1s, max: 1m}}, notify: [app]}}
""") as process:  # fmt: skip
        for n in range(5):  # each one well within `min` of the one before
            (conf / f"site-{n}.conf").write_text(f"server {n}\n")
            time.sleep(0.05)
        wait_until(lambda: notified(tmp_path) == 1)
        settle()
        assert notified(tmp_path) == 1
        assert metric(process, 'pillion_config_changes_total{watch="app"}') == 1.0


def test_max_bounds_a_stream_of_changes(tmp_path: Path) -> None:
    """Changes come far more often than `min`: only `max` can notify while they go on."""
    stream = tmp_path / "stream.conf"
    stream.write_text("0\n")
    with running(tmp_path, f"""
config:
  scan_interval: 50ms
  watch:
    - {{name: app, paths: [{stream}], wait: {{min: 1s, max: 2s}}, notify: [app]}}
"""):  # fmt: skip
        deadline = time.monotonic() + 15
        n = 0
        while notified(tmp_path) == 0:
            assert time.monotonic() < deadline, "no notification while the file kept changing"
            n += 1
            stream.write_text(f"{n}\n")
            time.sleep(0.05)  # a change every 50ms: far more often than `min`


CHECK = 'grep -q "^ok" {path} || {{ echo "refusing {path}: $(cat {path})" >&2; exit 1; }}'


def test_a_failing_validation_notifies_no_one_the_next_good_change_does(tmp_path: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("ok 1\n")
    with running(tmp_path, f"""
config:
  scan_interval: 50ms
  watch:
    - name: app
      paths: [{conf}]
      wait: {{min: 200ms, max: 2s}}
      validate: [sh, -c, '{CHECK.format(path=conf)}']
      notify: [app]
""") as process:  # fmt: skip
        failures = 'pillion_config_validation_failures_total{watch="app"}'
        assert metric(process, failures) == 0.0
        conf.write_text("broken\n")
        wait_until(lambda: metric(process, failures) == 1.0)
        error = process.wait_for_log("config change failed validation; the app is not notified")
        assert error["watch"] == "app"
        assert error["error"] == "sh exited 1"
        assert f"refusing {conf}: broken" in error["output"]
        settle()
        assert notified(tmp_path) == 0
        conf.write_text("ok 2\n")
        wait_until(lambda: notified(tmp_path) == 1)
        assert metric(process, failures) == 1.0
        assert metric(process, 'pillion_config_changes_total{watch="app"}') == 2.0


def test_the_metrics_pass_promtool(tmp_path: Path, volume: ConfigMapVolume) -> None:
    with running(tmp_path, f"""
config:
  scan_interval: 50ms
  sources: [{{name: settings, type: directory, path: {volume.path}}}]
  templates:
    - {{name: conf, destination: {tmp_path}/app.json, format: json, source: settings}}
  watch:
    - name: app
      paths: [{volume.path}]
      wait: {{min: 100ms, max: 1s}}
      validate: [sh, -c, "exit 1"]
      notify: [app]
""") as process:  # fmt: skip
        volume.update({"app.conf": "a=2\n"})
        wait_until(lambda: metric(process, 'pillion_config_validation_failures_total{watch="app"}'))
        scrape = http("GET", f"{process.status_url}/metrics")[2]
    for family in ("changes_total", "validation_failures_total", "renders_total",
                   "last_change_timestamp_seconds"):  # fmt: skip
        assert f"pillion_config_{family}{{".encode() in scrape
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package; `make test` installs it"
    check = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True,
                           timeout=30, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == b""


def test_a_validation_that_hangs_is_killed_and_counted(tmp_path: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("1\n")
    with running(tmp_path, f"""
config:
  scan_interval: 50ms
  watch:
    - name: app
      paths: [{conf}]
      wait: {{min: 100ms, max: 1s}}
      validate: [sleep, "30"]
      validate_timeout: 300ms
      notify: [app]
""") as process:  # fmt: skip
        conf.write_text("2\n")
        error = process.wait_for_log("config change failed validation; the app is not notified")
        assert error["error"] == "sleep: killed after 0.3s"
        assert metric(process, 'pillion_config_validation_failures_total{watch="app"}') == 1.0
        assert notified(tmp_path) == 0


def test_a_change_not_yet_notified_at_a_reload_is_notified_after_it(
    tmp_path: Path, volume: ConfigMapVolume
) -> None:
    """SIGHUP replaces the component; the change must not become the new baseline."""
    with running(tmp_path, f"""
config:
  scan_interval: 50ms
  watch:
    - {{name: app, paths: [{volume.path}], wait: {{min: 1s, max: 5s}}, notify: [app]}}
""") as process:  # fmt: skip
        volume.update({"app.conf": "a=2\n"})
        process.signal(signal.SIGHUP)
        process.wait_for_log("config reloaded")
        wait_until(lambda: notified(tmp_path) == 1)
        settle()
        assert notified(tmp_path) == 1


def in_user_namespace(setting: str) -> tuple[str, ...]:
    """Run as root of a new user namespace whose inotify limit ``setting`` is 0."""
    limit = f"/proc/sys/user/{setting}"  # this namespace's own: the host's are untouched
    return ("unshare", "--user", "--map-root-user", "sh", "-c",
            f'echo 0 > {limit} && exec "$@"', "sh")  # fmt: skip


@pytest.mark.parametrize(
    ("setting", "reason"),
    [("max_inotify_watches", "inotify_add_watch"), ("max_inotify_instances", "inotify_init1")],
)
def test_without_inotify_changes_are_found_by_scanning(
    tmp_path: Path, volume: ConfigMapVolume, setting: str, reason: str
) -> None:
    section = f"""
config:
  scan_interval: 100ms
  watch:
    - {{name: app, paths: [{volume.path}], wait: {{min: 100ms, max: 1s}}, notify: [app]}}
"""
    with running(tmp_path, section, in_user_namespace(setting)) as process:
        warning = process.wait_for_log(
            "inotify unavailable; config files are hashed every scan_interval"
        )
        assert warning["error"].startswith(reason)
        volume.update({"app.conf": "a=2\n"})
        wait_until(lambda: notified(tmp_path) == 1)
