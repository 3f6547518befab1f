"""The `config` section's models: what is refused, and where the error points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pillion.config import ConfigError, parse_config
from tests.helpers import write_config

NOTIFY = "app:\n  notify:\n    - {name: app, signal: {process: app}}\n"


def issues(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "pillion.yaml", {})
    return [(issue.path, issue.message) for issue in caught.value.issues]


def test_a_full_section_is_accepted() -> None:
    config = parse_config(NOTIFY + """
config:
  sources:
    - {name: settings, type: directory, path: /etc/app-config}
  templates:
    - {name: app-conf, destination: /config/app.json, format: json, source: settings,
       mode: "0444", notify: [app]}
  watch:
    - name: nginx
      paths: [/etc/nginx/conf.d, /etc/app/extra.conf]
      wait: {min: 1s, max: 10s}
      validate: [nginx, -t]
      validate_timeout: 30s
      notify: [app]
""", "pillion.yaml", {})  # fmt: skip
    assert config.config is not None
    watch = config.config.watch[0]
    assert watch.validate == ["nginx", "-t"]
    assert (watch.wait.min, watch.wait.max, watch.validate_timeout) == (1.0, 10.0, 30.0)
    assert config.config.templates[0].mode == 0o444
    assert config.config.scan_interval == 1.0


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        ("watch: [{name: w, paths: [/a], notify: [nobody]}]",
         "config.watch[0].notify[0]", "config watch w: no app.notify target named nobody"),
        ("watch: [{name: w, paths: [/a], notify: [app, nobody]}]",
         "config.watch[0].notify[1]", "no app.notify target named nobody"),
        ("sources: [{name: s, type: env, prefix: X_}]\n  templates: [{name: t, destination: /t,"
         " format: json, source: s, notify: [nobody]}]",
         "config.templates[0].notify[0]", "config template t: no app.notify target named nobody"),
        ("watch: [{name: w, paths: [/a], notify: [app], wait: {min: 5s, max: 1s}}]",
         "config.watch[0].wait", "min (5s) is longer than max (1s)"),
        ("watch: [{name: w, paths: [/a], notify: [app], wait: {min: 5}}]",
         "config.watch[0].wait.min", "a duration needs a unit"),
        ("watch: [{name: w, paths: [/a], notify: [app], validate_timeout: 0}]",
         "config.watch[0].validate_timeout", "greater than 0"),
        ("watch: [{name: w, paths: [/a, etc/b], notify: [app]}]",
         "config.watch[0].paths[1]", "the path must be absolute"),
        ("watch: [{name: w, paths: [], notify: [app]}]",
         "config.watch[0].paths", "at least 1 item"),
        ("watch: [{name: w, paths: [/a], notify: []}]",
         "config.watch[0].notify", "at least 1 item"),
        ("watch: [{name: w, paths: [/a], notify: [app], validate: []}]",
         "config.watch[0].validate", "at least 1 item"),
        ("watch: [{name: w, paths: [/a], notify: [app], every: 1s}]",
         "config.watch[0].every", "unknown key"),
        ("sources: [{name: s, type: kv, path: secret/app}]",
         "config.sources[0].type", "a config source is file, env or directory, not kv"),
        ("sources: [{name: s, type: directory, path: /d, refresh: 5s}]",
         "config.sources[0].refresh", "refresh does not apply"),
        ("sources: [{name: s, type: env, prefix: X_}]\n  templates: [{name: t, destination: /t,"
         " format: json, source: other}]",
         "config", "template t: no source named other"),
        ("watch: [{name: w, paths: [/a], notify: [app]}, {name: w, paths: [/b], notify: [app]}]",
         "config", "watch names must be distinct"),
        ("scan_interval: 0",
         "config.scan_interval", "greater than 0"),
    ],
)  # fmt: skip
def test_bad_sections_are_refused_at_their_path(section: str, path: str, message: str) -> None:
    found = issues(f"{NOTIFY}config:\n  {section}\n")
    assert any(p == path and message in m for p, m in found), found


def test_pillion_validate_exits_2_naming_every_field(tmp_path: Path) -> None:
    config = write_config(tmp_path, NOTIFY + """
config:
  watch:
    - name: nginx
      paths: [/etc/nginx]
      wait: {min: 10s, max: 1s}
      notify: [app]
    - name: extra
      paths: [/etc/extra.conf]
      notify: [app, reloader]
""")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "validate", "-c", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "config.watch[0].wait (line 9): min (10s) is longer than max (1s)" in output
    # the cross-section check runs once the sections themselves are valid
    config.write_text(config.read_text().replace("min: 10s", "min: 1s"))
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "validate", "-c", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert (
        "config.watch[1].notify[1] (line 13): config watch extra: no app.notify target named "
        "reloader" in output
    )
