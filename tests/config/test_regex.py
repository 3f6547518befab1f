"""`Regex` fields: a pattern that does not compile is refused at its own field's path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pillion.config import ConfigError, parse_config
from pillion.config.types import Regex, Section

LOGS = """logs:
  checkpoints: /tmp/x.db
  outputs: [{name: out, type: stdout}]
  inputs:
    - name: web
      paths: ["/tmp/*.log"]
"""


class _Match(Section):
    regex: Regex
    optional: Regex | None = None


def test_a_regex_stays_text_and_a_bad_one_names_its_field() -> None:
    assert _Match(regex=r"^a+$").regex == r"^a+$"
    with pytest.raises(ValidationError) as caught:
        _Match(regex="a", optional="(")
    [error] = caught.value.errors()
    assert error["loc"] == ("optional",)
    assert error["msg"].startswith("Value error, invalid regex: ")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (
            "proxy:\n  inbound: [{routes: [{match: {regex: '(['}}]}]\n",
            "proxy.inbound[0].routes[0].match.regex",
        ),
        (
            "proxy:\n  inbound: [{routes: [{match: {headers: [{name: x, regex: '*'}]}}]}]\n",
            "proxy.inbound[0].routes[0].match.headers[0].regex",
        ),
        (LOGS + "      multiline: {start: 'a('}\n", "logs.inputs[0].multiline.start"),
        (
            LOGS + "      parser: {type: regex, pattern: '(?P<x>'}\n",
            "logs.inputs[0].parser.pattern",
        ),
        (
            LOGS + "      filters: [{include: {regex: '['}}]\n",
            "logs.inputs[0].filters[0].include.regex",
        ),
        (
            LOGS + "      filters: [{redact: {regex: '+'}}]\n",
            "logs.inputs[0].filters[0].redact.regex",
        ),
        (
            LOGS + "exporters:\n  from_logs: [{input: web, metrics: [{name: m, regex: 'x('}]}]\n",
            "exporters.from_logs[0].metrics[0].regex",
        ),
    ],
)
def test_a_bad_regex_is_refused_at_its_path(body: str, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(body, "test.yaml", {})
    [issue] = caught.value.issues
    assert issue.path == path
    assert issue.message.startswith("invalid regex: ")


def test_a_parser_pattern_still_needs_a_named_group() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(LOGS + "      parser: {type: regex, pattern: 'a+'}\n", "test.yaml", {})
    [issue] = caught.value.issues
    assert issue.path == "logs.inputs[0].parser"
    assert "no named group" in issue.message


def test_pillion_validate_names_the_field_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "pillion.yaml"
    config.write_text(LOGS + "      filters: [{exclude: {field: level, regex: '(debug'}}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "  logs.inputs[0].filters[0].exclude.regex (line 7): invalid regex: " in output
