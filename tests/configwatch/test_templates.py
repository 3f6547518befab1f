"""Config templates end to end: a real Pillion renders a mounted ConfigMap (and
files, and the environment) into files, again when they change, and tells the
app; a render that fails keeps the previous file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.configwatch.running import metric, notified, running, settle
from tests.configwatch.volumes import ConfigMapVolume
from tests.helpers import PillionProcess, wait_until

SUMMARY = "{{ config.settings.color }} {{ config.extra.region }} {{ config.env.MODE }}"


def renders(process: PillionProcess, template: str, result: str) -> float | None:
    series = f'pillion_config_renders_total{{result="{result}",template="{template}"}}'
    return metric(process, series)


def test_a_configmap_rendered_to_json_and_again_when_it_changes(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "settings", {"color": "blue", "size": "10"})
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "extra.yaml").write_text("region: eu\n")
    with running(tmp_path, f"""
config:
  scan_interval: 1h
  wait: {{min: 100ms, max: 1s}}
  sources:
    - {{name: settings, type: directory, path: {volume.path}}}
    - {{name: extra, type: file, path: {tmp_path}/extra.yaml}}
    - {{name: env, type: env, prefix: CW_TEST_}}
  templates:
    - {{name: app-conf, destination: {out}/app.json, format: json, source: settings,
       mode: "0444", notify: [app]}}
    - name: summary
      destination: {out}/summary.txt
      mode: "0440"
      template: "{SUMMARY}"
""", env={"CW_TEST_MODE": "prod"}) as process:  # fmt: skip
        # rendered before the app may start: ready means every template is written
        assert json.loads((out / "app.json").read_text()) == {"color": "blue", "size": "10"}
        assert stat.S_IMODE(os.stat(out / "app.json").st_mode) == 0o444
        assert (out / "summary.txt").read_text() == "blue eu prod"
        settle()
        assert notified(tmp_path) == 0  # the first render notifies no one
        volume.update({"color": "green", "size": "10"})
        wait_until(lambda: json.loads((out / "app.json").read_text())["color"] == "green")
        wait_until(lambda: notified(tmp_path) == 1)
        assert (out / "summary.txt").read_text() == "green eu prod"
        assert renders(process, "app-conf", "changed") == 2.0
        volume.update({"color": "green", "size": "10"})  # the same content again
        (tmp_path / "extra.yaml").write_text("region: us\n")  # only `summary` changes
        wait_until(lambda: (out / "summary.txt").read_text() == "green us prod")
        wait_until(lambda: renders(process, "app-conf", "unchanged") == 1.0)
        settle()
        assert notified(tmp_path) == 1  # summary notifies no one


def test_a_failing_render_keeps_the_previous_file(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "settings", {"greeting": "hello\n"})
    out = tmp_path / "greeting.txt"
    with running(tmp_path, f"""
config:
  scan_interval: 50ms
  wait: {{min: 100ms, max: 1s}}
  sources:
    - {{name: settings, type: directory, path: {volume.path}}}
  templates:
    - {{name: greeting, destination: {out}, format: raw, source: settings, key: greeting,
       notify: [app]}}
""") as process:  # fmt: skip
        assert out.read_text() == "hello\n"
        volume.update({"other": "x"})  # the key is gone
        wait_until(lambda: renders(process, "greeting", "error") == 1.0)
        error = process.wait_for_log("render failed; the previous file is kept")
        assert error["template"] == "greeting"
        assert "no key 'greeting'" in error["error"]
        assert out.read_text() == "hello\n"
        volume.update({"greeting": "hi\n"})
        wait_until(lambda: out.read_text() == "hi\n")
        wait_until(lambda: notified(tmp_path) == 1)


def test_without_templates_it_is_started_at_once(tmp_path: Path) -> None:
    with running(tmp_path, "config: {}\n") as process:
        assert metric(process, 'pillion_component_state{component="config",state="running"}')
