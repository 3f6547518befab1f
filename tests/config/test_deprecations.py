"""Renamed keys keep working under their old names, with a deprecation, for the
versions the rename says; both names at once is an error. The table in force is
empty (no key has been renamed yet): these tests use their own."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pillion.cli.main import cli
from pillion.config import ConfigError, parse_config
from pillion.config.deprecations import RENAMED, Renamed
from pillion.runtime.supervisor import Supervisor
from pillion.telemetry import Metrics
from tests.runtime.test_supervisor import builder, run_until_started

TABLE = (
    Renamed("lifecycle.drain_deadline", "drain_timeout", since="0.2.0", removal="0.4.0"),
    Renamed("proxy.inbound[].upstream_pool", "upstream_max_idle", since="0.2.0", removal="0.4.0"),
)


def test_an_old_name_is_read_as_the_new_one_with_a_deprecation_and_its_line() -> None:
    text = (
        "lifecycle:\n  drain_deadline: 7s\n"
        "proxy:\n  inbound:\n    - {name: a, listen: '127.0.0.1:1', upstream_pool: 3}\n"
        "    - {name: b, listen: '127.0.0.1:2'}\n"
        "    - {name: c, listen: '127.0.0.1:3', upstream_pool: 5}\n"
    )
    config = parse_config(text, "old.yaml", {}, renamed=TABLE)
    assert config.lifecycle.drain_timeout == 7.0
    assert config.proxy is not None
    assert [listener.upstream_max_idle for listener in config.proxy.inbound] == [3, 128, 5]
    assert [(n.path, n.line) for n in config.deprecations] == [
        ("lifecycle.drain_deadline", 2),
        ("proxy.inbound[0].upstream_pool", 5),
        ("proxy.inbound[2].upstream_pool", 7),
    ]
    assert config.deprecations[0].message == (
        "drain_deadline is deprecated since 0.2.0 and read until 0.4.0: write drain_timeout"
    )


def test_both_names_at_once_is_an_error_naming_the_old_one() -> None:
    text = "lifecycle:\n  drain_deadline: 7s\n  drain_timeout: 9s\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "both.yaml", {}, renamed=TABLE)
    [issue] = caught.value.issues
    assert (issue.path, issue.line) == ("lifecycle.drain_deadline", 2)
    assert (
        issue.message
        == "drain_deadline was renamed drain_timeout in 0.2.0: write only drain_timeout"
    )


def test_without_a_rename_the_old_name_is_an_unknown_key() -> None:
    assert RENAMED == ()  # none in force yet
    with pytest.raises(ConfigError, match="drain_deadline"):
        parse_config("lifecycle:\n  drain_deadline: 7s\n", "old.yaml", {})
    assert parse_config("lifecycle:\n  drain_timeout: 7s\n", "new.yaml", {}).deprecations == ()


async def test_pillion_logs_and_counts_each_deprecation_it_loads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_config("lifecycle:\n  drain_deadline: 7s\n", "old.yaml", {}, renamed=TABLE)
    metrics = Metrics()
    supervisor = Supervisor(config, metrics=metrics, build=builder([]))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="pillion.supervisor"):
        task = await run_until_started(supervisor)
        supervisor.request_exit()
        assert await task == 0
    [record] = [r for r in caplog.records if r.getMessage() == "deprecated config key"]
    assert record.key == "lifecycle.drain_deadline"  # type: ignore[attr-defined]
    sample = metrics.registry.get_sample_value(
        "pillion_config_deprecations_total", {"key": "lifecycle.drain_deadline"}
    )
    assert sample == 1.0


def test_validate_with_nothing_deprecated_writes_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "pillion.yaml"
    path.write_text("version: 1\nlifecycle:\n  drain_timeout: 7s\n")
    result = subprocess.run([sys.executable, "-m", "pillion", "validate", "-c", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing deprecated


def test_validate_prints_each_deprecation_as_a_warning_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pillion.config.loader.RENAMED", TABLE)
    path = tmp_path / "old.yaml"
    path.write_text("version: 1\nlifecycle:\n  drain_deadline: 7s\n")
    result = CliRunner().invoke(cli, ["validate", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"{path}: warning: lifecycle.drain_deadline (line 3): drain_deadline is deprecated "
        "since 0.2.0 and read until 0.4.0: write drain_timeout\n"
    )
    assert result.stdout == f"{path}: valid (features on: none)\n"
