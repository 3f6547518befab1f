"""Pillion's own config file, watched (``lifecycle.watch_config``): a real ``pillion
run`` whose file is a ConfigMap key (``pillion.yaml -> ..data/pillion.yaml``) or a
plain file, changed the ways the kubelet and people change it.

Nothing here waits for a fixed time. Where a test shows that something did *not*
happen, it waits until the watch has looked at the file twice more after the
change (``pillion_config_file_checks_total``; the directory is poked meanwhile, so
inotify wakes it at once): the second of those looks began after the change.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.configwatch.test_watch import in_user_namespace
from tests.configwatch.volumes import ConfigMapVolume
from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    pillion_config,
    started,
    wait_until,
)

DEBUG = "telemetry:\n  log_level: debug\n"
INFO = "telemetry:\n  log_level: info\n"
WATCHING = "watching the config file"
ALREADY_READ = "config file content already read; nothing to reload"
CHANGED = "config file content changed; reloading once it settles"
RELOADING = "config file changed, reloading"
GONE = "config file cannot be read; the running config stays"
REFUSED = "config reload refused; the previous config keeps running"


class Pod:
    def __init__(self, process: PillionProcess, directory: Path) -> None:
        self.process = process
        self.directory = directory  # where the file is, as the pod sees it

    def text(self, body: str) -> str:
        return pillion_config(self.process.admin_port, self.process.status_port, body)

    def level(self) -> str:
        _, _, body = http("GET", f"{self.process.admin_url}/logging")
        level: str = json.loads(body)["level"]
        return level

    def metric(self, series: str) -> float | None:
        _, _, page = http("GET", f"{self.process.status_url}/metrics")
        for line in page.decode().splitlines():
            if line.startswith(f"{series} "):
                return float(line.split()[-1])
        return None

    def reloads(self, result: str) -> float | None:
        return self.metric(f'pillion_config_reloads_total{{result="{result}"}}')

    def logged(self, message: str) -> int:
        return sum(1 for r in self.process.records() if r.get("message") == message)

    def looked_twice_more(self) -> None:
        """Until the watch has begun a look at the file after this call, and ended it."""
        before = self.metric("pillion_config_file_checks_total") or 0.0

        def looked() -> bool:
            (self.directory / ".poke").write_text("")  # not the file: only wakes the watch
            return (self.metric("pillion_config_file_checks_total") or 0.0) >= before + 2

        wait_until(looked)


@pytest.fixture
def volume(tmp_path: Path) -> ConfigMapVolume:
    return ConfigMapVolume(tmp_path / "pillion", {"placeholder": ""})


@contextlib.contextmanager
def pod_on(volume: ConfigMapVolume, body: str, wrapper: tuple[str, ...] = ()) -> Iterator[Pod]:
    admin, status = free_port(), free_port()
    volume.update({"pillion.yaml": pillion_config(admin, status, body)})
    process = PillionProcess(volume.path / "pillion.yaml", admin, status, wrapper=wrapper)
    with started(process):
        yield Pod(process, volume.path)


@pytest.fixture
def pod(volume: ConfigMapVolume) -> Iterator[Pod]:
    """A Pillion at debug level whose watch has had its first look."""
    with pod_on(volume, DEBUG) as running:
        running.process.wait_for_log(ALREADY_READ)
        yield running


def test_a_configmap_update_is_reloaded_once(pod: Pod, volume: ConfigMapVolume) -> None:
    assert pod.level() == "debug"
    volume.update({"pillion.yaml": pod.text(INFO)})  # the kubelet's swap of ..data
    wait_until(lambda: pod.level() == "info")
    record = pod.process.wait_for_log(RELOADING)
    assert record["path"] == str(volume.path / "pillion.yaml")
    pod.process.wait_for_log("config reloaded")
    pod.looked_twice_more()
    assert pod.logged(RELOADING) == 1
    assert pod.reloads("success") == 1
    assert pod.reloads("error") == 0


def test_an_edit_in_place_is_reloaded(pod: Pod, volume: ConfigMapVolume) -> None:
    # Written through the key's symlink: the file in the timestamped directory changes.
    (volume.path / "pillion.yaml").write_text(pod.text(INFO))
    wait_until(lambda: pod.level() == "info")
    assert pod.reloads("success") == 1


def test_the_same_content_again_reloads_nothing(pod: Pod, volume: ConfigMapVolume) -> None:
    volume.update({"pillion.yaml": pod.text(DEBUG)})  # a swap to identical content
    os.utime(volume.path / "pillion.yaml")  # and a touch
    pod.looked_twice_more()
    assert pod.logged(CHANGED) == 0  # the watch saw no change of content...
    assert pod.logged(RELOADING) == 0  # ...so nothing was reloaded
    assert pod.reloads("success") == pod.reloads("error") == 0
    volume.update({"pillion.yaml": pod.text(INFO)})  # a change, for comparison
    wait_until(lambda: pod.level() == "info")
    assert pod.logged(CHANGED) == 1


def test_a_change_reloaded_by_sighup_is_not_reloaded_again(
    pod: Pod, volume: ConfigMapVolume
) -> None:
    volume.update({"pillion.yaml": pod.text(DEBUG + "lifecycle:\n  drain_timeout: 7s\n")})
    pod.process.signal(signal.SIGHUP)
    pod.process.wait_for_log("config reloaded")
    # The watch saw the change too; it checks the content against what SIGHUP read.
    wait_until(lambda: pod.logged(ALREADY_READ) >= 2)
    assert pod.logged(RELOADING) == 0
    assert pod.reloads("success") == 1


def test_a_bad_file_is_refused_once_then_a_good_one_is_loaded(
    pod: Pod, volume: ConfigMapVolume
) -> None:
    volume.update({"pillion.yaml": "app: [unclosed\n"})
    record = pod.process.wait_for_log(REFUSED)
    assert any("YAML error" in error for error in record["errors"]), record["errors"]
    assert pod.reloads("error") == 1
    assert pod.level() == "debug"  # the running config stays
    assert http("GET", f"{pod.process.status_url}/healthz/ready")[0] == 200

    volume.update({"pillion.yaml": ""})  # an empty key, or a file cut short
    record = pod.process.wait_for_log(REFUSED, count=2)
    assert any("empty or only comments" in error for error in record["errors"])
    pod.looked_twice_more()
    assert pod.reloads("error") == 2  # once per content, not once per look

    volume.update({"pillion.yaml": pod.text(INFO)})
    wait_until(lambda: pod.level() == "info")
    assert pod.reloads("success") == 1
    assert pod.reloads("error") == 2


def test_a_file_gone_is_logged_once_and_loaded_when_back(pod: Pod, volume: ConfigMapVolume) -> None:
    volume.update({"other.yaml": "x: 1\n"})  # the key is gone from the ConfigMap
    record = pod.process.wait_for_log(GONE)
    assert record["path"] == str(volume.path / "pillion.yaml")
    pod.looked_twice_more()
    assert pod.logged(GONE) == 1
    assert pod.process.proc.poll() is None
    assert pod.level() == "debug"
    assert pod.reloads("error") == 0  # nothing to reload: the running config stays

    volume.update({"pillion.yaml": pod.text(INFO)})
    pod.process.wait_for_log("config file is back")
    wait_until(lambda: pod.level() == "info")
    assert pod.reloads("success") == 1


def test_a_file_renamed_over_it_is_reloaded_and_its_new_listener_opened(
    tmp_path: Path,
) -> None:
    """A plain file, replaced as editors and ``kubectl cp`` do: written beside, renamed."""
    admin, status, port = free_port(), free_port(), free_port()
    path = tmp_path / "pillion.yaml"
    path.write_text(pillion_config(admin, status))
    with started(PillionProcess(path, admin, status)) as process:
        added = f"""proxy:
  inbound:
    - name: added
      listen: 127.0.0.1:{port}
      routes:
        - direct_response: {{status: 200, body: "added\\n"}}
"""
        (tmp_path / "pillion.yaml.new").write_text(pillion_config(admin, status, added))
        os.replace(tmp_path / "pillion.yaml.new", path)
        process.wait_for_log("config reloaded")

        def answers() -> bool:
            try:
                return http("GET", f"http://127.0.0.1:{port}/")[2] == b"added\n"
            except OSError:
                return False

        wait_until(answers)


def test_turned_off_and_on_by_the_file(volume: ConfigMapVolume) -> None:
    def drain_timeout(process: PillionProcess) -> str:
        _, _, body = http("GET", f"{process.admin_url}/config")
        value: str = json.loads(body)["lifecycle"]["drain_timeout"]
        return value

    off = DEBUG + "lifecycle:\n  watch_config: false\n"
    with pod_on(volume, off) as pod:
        volume.update({"pillion.yaml": pod.text(off + "  drain_timeout: 7s\n")})
        pod.process.signal(signal.SIGHUP)  # off: only SIGHUP reloads
        pod.process.wait_for_log("config reloaded")
        volume.update({"pillion.yaml": pod.text(DEBUG)})
        pod.process.signal(signal.SIGHUP)
        pod.process.wait_for_log("config reloaded", count=2)
        pod.process.wait_for_log(WATCHING)  # on since the second reload...
        messages = [r.get("message") for r in pod.process.records()]
        assert messages.index(WATCHING) > messages.index("config reloaded")  # ...not before

        volume.update({"pillion.yaml": pod.text(DEBUG + "lifecycle:\n  drain_timeout: 9s\n")})
        wait_until(lambda: drain_timeout(pod.process) == "9s")  # on: the change reloads itself
        volume.update({"pillion.yaml": pod.text(off)})
        pod.process.wait_for_log("no longer watching the config file")
        assert pod.logged(RELOADING) == 2
        assert pod.reloads("success") == 4


@pytest.mark.parametrize(
    ("setting", "reason"),
    [("max_inotify_watches", "inotify_add_watch"), ("max_inotify_instances", "inotify_init1")],
)
def test_without_inotify_a_change_is_found_by_looking(
    volume: ConfigMapVolume, setting: str, reason: str
) -> None:
    with pod_on(volume, DEBUG, in_user_namespace(setting)) as pod:
        warning = pod.process.wait_for_log(
            "inotify unavailable; the config file is checked every 2s"
        )
        assert warning["error"].startswith(reason)
        volume.update({"pillion.yaml": pod.text(INFO)})
        wait_until(lambda: pod.level() == "info")
