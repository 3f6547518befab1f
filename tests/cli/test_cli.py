"""The command line as users run it: a real ``python -m pillion`` subprocess."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pillion import __version__
from tests.helpers import base_config, free_port, write_config

EXAMPLES = Path(__file__).parents[2] / "examples"
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))


def pillion(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pillion", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize("name", ["minimal.yaml", "full.yaml"])
def test_validate_good_examples(name: str) -> None:
    result = pillion("validate", "-c", str(EXAMPLES / name))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_validate_each_invalid_example_exits_2_naming_field_and_line(path: Path) -> None:
    expected = re.findall(r"^# expect: (.+)$", path.read_text(), flags=re.M)
    assert expected, f"{path.name} must say what it expects"
    result = pillion("validate", "-c", str(path))
    assert result.returncode == 2
    for text in expected:
        assert text in result.stderr
    assert result.stdout == ""


def test_there_is_an_invalid_example_for_each_bad_input() -> None:
    assert {p.stem for p in INVALID} >= {
        "yaml-syntax", "unknown-key", "wrong-type", "bad-duration", "bad-size",
        "missing-env", "port-out-of-range", "admin-public", "empty", "admin-remote-without-token",
    }  # fmt: skip


def test_config_path_from_environment() -> None:
    result = pillion("validate", env={"PILLION_CONFIG": str(EXAMPLES / "minimal.yaml")})
    assert result.returncode == 0, result.stderr


def test_usage_errors_exit_2() -> None:
    assert pillion("validate", env={"PILLION_CONFIG": ""}).returncode == 2
    assert pillion("no-such-command").returncode == 2
    assert pillion("run", "--bogus").returncode == 2


def test_missing_file_exits_2() -> None:
    result = pillion("validate", "-c", "/nonexistent/pillion.yaml")
    assert result.returncode == 2
    assert "cannot read" in result.stderr


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_run_with_invalid_config_exits_2_and_starts_nothing(path: Path, tmp_path: Path) -> None:
    result = pillion("run", "-c", str(path))
    assert result.returncode == 2
    records = [json.loads(line) for line in result.stderr.splitlines()]
    [record] = records
    assert record["level"] == "error"
    assert record["message"] == "invalid configuration; nothing started"
    for text in re.findall(r"^# expect: (.+)$", path.read_text(), flags=re.M):
        assert any(text in error for error in record["errors"])


def test_run_with_a_port_in_use_exits_1_naming_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, base_config(free_port(), port))
        result = pillion("run", "-c", str(config))
    assert result.returncode == 1
    failure = [json.loads(line) for line in result.stderr.splitlines()][-1]
    assert failure["message"] == "cannot start"
    assert failure["error"] == f"cannot listen on 127.0.0.1:{port}: address already in use"


def test_admin_port_in_use_is_named_as_admin(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = write_config(tmp_path, base_config(taken.getsockname()[1], free_port()))
        result = pillion("run", "-c", str(config))
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records[-1]["component"] == "admin"
    # the status server had started; it was stopped before exiting
    assert any(r["message"] == "listening" and r["component"] == "status" for r in records)


def test_schema_is_json() -> None:
    result = pillion("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "pillion.yaml"


def test_version() -> None:
    first, hot_path = pillion("version").stdout.splitlines()
    assert first == __version__
    assert hot_path.startswith(("hot path: compiled (mypyc, ", "hot path: pure Python ("))
    pure = pillion("version", env={"PILLION_NO_EXTENSIONS": "1"}).stdout.splitlines()[1]
    assert pure in (
        "hot path: pure Python (PILLION_NO_EXTENSIONS is set)",
        "hot path: pure Python (not compiled)",
    )
    assert __version__ in pillion("--version").stdout


def test_console_script_and_module_agree() -> None:
    script = Path(sys.executable).with_name("pillion")
    result = subprocess.run(
        [str(script), "version"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.stdout.splitlines()[0] == __version__


def test_the_cli_does_not_load_cryptography_until_tls_or_jwt_is_used() -> None:
    """cryptography (and PyJWT on it) weigh about 9 MiB of RSS: a sidecar without TLS,
    JWT or the dev CA never imports them; nor Jinja2 without secrets templates."""
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys, pillion.cli.main, pillion.runtime, pillion.proxy.listener; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cryptography', 'jwt', "
         "'jinja2')))"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert probe.stdout.strip() == "[]"


def test_validate_against_the_running_config_lists_what_would_change(tmp_path: Path) -> None:
    old = write_config(tmp_path, "app: {port: 8080}\nadmin: {auth_token: old-secret}\n", "old.yaml")
    new = write_config(
        tmp_path,
        "app: {port: 8080}\nadmin: {auth_token: new-secret}\n"
        "proxy:\n  inbound: [{name: web, listen: '0.0.0.0:15006'}]\n",
        "new.yaml",
    )
    result = pillion("validate", "-c", str(new), "--against", str(old))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{new}: valid (features on: proxy)"
    assert lines[1] == f"against {old}: {len(lines) - 2} changes"
    assert "  + listener web on 0.0.0.0:15006" in lines
    assert "  ~ admin: auth_token changed (value hidden)" in lines
    assert "secret" not in result.stdout  # neither token shows
    same = pillion("validate", "-c", str(old), "--against", str(old))
    assert same.stdout.splitlines()[1] == f"against {old}: no change"
    bad = write_config(tmp_path, "app: {port: nope}\n", "bad.yaml")
    assert pillion("validate", "-c", str(new), "--against", str(bad)).returncode == 2
