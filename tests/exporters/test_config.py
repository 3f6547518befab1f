"""Bad exporter configs are refused by `pillion validate` with exit 2 and the field path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_config

LOGS = """logs:
  checkpoints: /tmp/x.db
  inputs: [{name: web, paths: ["/tmp/*.log"]}]
  outputs: [{name: out, type: stdout}]
"""


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ("exporters:\n  statsd:\n    mappings: [{match: 'a(', match_type: regex, name: x}]\n",
         "exporters.statsd.mappings[0]", "invalid regex"),
        (LOGS + "exporters:\n  from_logs: [{input: web, metrics: [{name: m, regex: 'x(',"
         " labels: []}]}]\n", "exporters.from_logs[0].metrics[0].regex", "invalid regex"),
        (LOGS + "exporters:\n  from_logs: [{input: web, metrics: [{name: m, regex: 'x',"
         " labels: [code]}]}]\n", "exporters.from_logs[0].metrics[0]", "no named group 'code'"),
        (LOGS + "exporters:\n  from_logs: [{input: api, metrics: [{name: m, regex: x}]}]\n",
         "exporters.from_logs[0].input", "no logs.inputs[] entry named api"),
        ("exporters:\n  json: [{name: a, url: 'http://127.0.0.1:1/', metrics: [{name: m,"
         " path: queue.depth}]}]\n", "exporters.json[0].metrics[0].path", "starts with $"),
        ("exporters:\n  json: [{name: a, url: 'http://127.0.0.1:1/', metrics: [{name: 'bad-name',"
         " path: $.x}]}]\n", "exporters.json[0].metrics[0].name", "pattern"),
        ("exporters:\n  merge_app: {url: 'http://127.0.0.1:1/metrics', labels: {'__x': y}}\n",
         "exporters.merge_app.labels", "invalid label name"),
        # what the JSONPath does not read: refused here, not a target gone from /metrics later
        ("exporters:\n  json: [{name: a, url: 'http://127.0.0.1:1/', metrics: [{name: m,"
         " path: '$.queues[?(@.name =~ \"^a\")].depth'}]}]\n", "exporters.json[0].metrics[0].path",
         "regex filters =~ are not supported"),
        ("exporters:\n  json: [{name: a, url: 'http://127.0.0.1:1/', metrics: [{name: m,"
         " path: $.depth, each: '$..*'}]}]\n", "exporters.json[0].metrics[0].each",
         "recursive descent reads a key"),
        ("exporters:\n  json: [{name: a, url: 'http://127.0.0.1:1/', metrics: [{name: m,"
         " path: $.depth, each: $.queues, labels: {q: '{range .items}'}}]}]\n",
         "exporters.json[0].metrics[0].labels", "{range} and {end} are not supported"),
    ],
)  # fmt: skip
def test_bad_exporter_configs_exit_2_naming_the_field(
    tmp_path: Path, body: str, path: str, message: str
) -> None:
    config = write_config(tmp_path, body)
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "validate", "-c", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"  {path} (line " in output, output
    assert message in output, output
