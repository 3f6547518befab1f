"""The http and loki outputs against an in-test receiver that checks the wire
format (Loki's push JSON, gzip, headers) and can be told to fail."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    PillionProcess,
    http,
    metric_value,
    running_pillion,
    serve_http,
    wait_until,
)

TOKEN = "Bearer s3cr3t-push-token"


@dataclass
class Receiver:
    """Accepts pushes; ``fail`` holds the statuses of the next answers to Loki pushes
    (then 204)."""

    fail: list[int] = field(default_factory=list)
    loki: list[dict[str, Any]] = field(default_factory=list)  # streams, validated
    lines: list[dict[str, Any]] = field(default_factory=list)  # http: JSON lines
    otlp: list[dict[str, Any]] = field(default_factory=list)  # logRecords, validated
    elastic: list[dict[str, Any]] = field(default_factory=list)  # documents indexed
    busy_seen: set[str] = field(default_factory=set)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    serving: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    if outer.fail and self.path == "/loki/api/v1/push":
                        status = outer.fail.pop(0)
                        self.send_response(status)
                        self.end_headers()
                        self.wfile.write(b"told to fail")
                        return
                    outer.headers.append({"path": self.path, **dict(self.headers)})
                    assert self.headers["Content-Encoding"] == "gzip"
                    data = gzip.decompress(body)
                    if self.path == "/loki/api/v1/push":
                        outer.loki.extend(_valid_loki(json.loads(data)))
                    elif self.path == "/v1/logs":
                        outer.otlp.extend(_valid_otlp(json.loads(data)))
                    elif self.path == "/_bulk":
                        answer = outer.bulk(data)
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        self.wfile.write(json.dumps(answer).encode())
                        return
                    else:
                        outer.lines += [json.loads(line) for line in data.splitlines()]
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = self.serving.enter_context(serve_http(Handler))
        return self

    def __exit__(self, *_: object) -> None:
        self.serving.close()

    def bulk(self, data: bytes) -> dict[str, Any]:
        """Elasticsearch's _bulk: action and document lines in pairs; per item, a
        message with "bad" is a mapping error (400), one with "busy" is refused
        once (429), the rest are created (201)."""
        lines = data.splitlines()
        assert len(lines) % 2 == 0
        items, errors = [], False
        for action, raw in zip(lines[0::2], lines[1::2], strict=True):
            assert json.loads(action) == {"create": {"_index": "logs-test"}}
            document = json.loads(raw)
            message = document["message"]
            if "bad" in message:
                status = 400
            elif "busy" in message and message not in self.busy_seen:
                self.busy_seen.add(message)
                status = 429
            else:
                status = 201
                self.elastic.append(document)
            errors = errors or status >= 300
            result: dict[str, Any] = {"_index": "logs-test", "status": status}
            if status >= 300:
                result["error"] = {"type": "mapper_parsing_exception" if status == 400
                                   else "es_rejected_execution_exception"}  # fmt: skip
            items.append({"create": result})
        return {"took": 1, "errors": errors, "items": items}

    def loki_lines(self) -> list[str]:
        with self.lock:
            return [value[1] for stream in self.loki for value in stream["values"]]


def _valid_loki(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Loki's push API (JSON): streams of labels and [ns timestamp, line] values."""
    assert set(document) == {"streams"}
    for stream in document["streams"]:
        assert set(stream) == {"stream", "values"}
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in stream["stream"].items())
        for value in stream["values"]:
            assert len(value) == 2
            assert re.fullmatch(r"\d{19}", value[0]), value[0]  # nanoseconds since the epoch
            assert isinstance(value[1], str)
    streams: list[dict[str, Any]] = document["streams"]
    return streams


def _valid_otlp(document: dict[str, Any]) -> list[dict[str, Any]]:
    """OTLP/HTTP JSON logs: resourceLogs > scopeLogs > logRecords, nanosecond strings."""
    records: list[dict[str, Any]] = []
    for resource_logs in document["resourceLogs"]:
        assert isinstance(resource_logs["resource"]["attributes"], list)
        for scope_logs in resource_logs["scopeLogs"]:
            assert scope_logs["scope"]["name"] == "pillion"
            for record in scope_logs["logRecords"]:
                assert re.fullmatch(r"\d{19}", record["timeUnixNano"])
                assert set(record["body"]) == {"stringValue"}
                for attribute in record["attributes"]:
                    assert set(attribute) == {"key", "value"}
                    assert len(attribute["value"]) == 1  # one typed value
                records.append(record)
    return records


@dataclass
class Pushing:
    pillion: PillionProcess
    receiver: Receiver
    logs: Path
    dead_letter: Path

    def metrics(self) -> bytes:
        return http("GET", f"{self.pillion.status_url}/metrics")[2]


@pytest.fixture
def pushing(tmp_path: Path) -> Iterator[Pushing]:
    logs = tmp_path / "logs"
    logs.mkdir()
    dead_letter = tmp_path / "refused.jsonl"
    with Receiver() as receiver:
        body = f"""
logs:
  checkpoints: {tmp_path}/logs.db
  inputs:
    - name: web
      paths: ["{logs}/*.log"]
      parser: {{type: json}}
      scan_interval: 50ms
  outputs:
    - name: loki
      type: loki
      url: http://127.0.0.1:{receiver.port}
      tenant_id: team-a
      headers: {{Authorization: "{TOKEN}"}}
      labels: {{level: level}}
      dead_letter: {dead_letter}
      batch_timeout: 20ms
    - name: hook
      type: http
      url: http://127.0.0.1:{receiver.port}/ingest
      batch_timeout: 20ms
    - name: otel
      type: otlp
      url: http://127.0.0.1:{receiver.port}
      batch_timeout: 20ms
    - name: es
      type: elasticsearch
      url: http://127.0.0.1:{receiver.port}
      index: logs-test
      dead_letter: {tmp_path}/es-refused.jsonl
      batch_timeout: 100ms
"""
        with running_pillion(tmp_path, body) as process:
            yield Pushing(process, receiver, logs, dead_letter)


def write(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("a") as file:
        file.write("".join(json.dumps(r) + "\n" for r in records))


def test_loki_streams_by_label_with_tenant_and_auth(pushing: Pushing) -> None:
    records = [{"level": "info" if n % 2 else "error", "n": n} for n in range(100)]
    write(pushing.logs / "app.log", records)
    wait_until(lambda: len(pushing.receiver.loki_lines()) == 100)
    streams = {
        tuple(sorted(s["stream"].items())) for s in pushing.receiver.loki
    }  # fmt: skip
    assert streams == {
        (("input", "web"), ("level", "error")),
        (("input", "web"), ("level", "info")),
    }
    [headers, *_] = [h for h in pushing.receiver.headers if h["path"] == "/loki/api/v1/push"]
    assert headers["X-Scope-OrgID"] == "team-a"
    assert headers["Authorization"] == TOKEN
    wait_until(lambda: len(pushing.receiver.lines) == 100)  # the http output, as JSON lines
    assert sorted(line["n"] for line in pushing.receiver.lines) == list(range(100))
    # the token is a secret: never in Pillion's logs, shown as *** in /config
    assert TOKEN not in pushing.pillion.output()
    admin = http(
        "GET", f"http://127.0.0.1:{pushing.pillion.admin_port}/config",
    )[2].decode()  # fmt: skip
    assert TOKEN not in admin
    assert json.loads(admin)["logs"]["outputs"][0]["headers"] == {"Authorization": "***"}


def test_5xx_and_429_are_retried_until_delivered(pushing: Pushing) -> None:
    pushing.receiver.fail = [500, 503, 429]
    write(pushing.logs / "app.log", [{"level": "info", "n": n} for n in range(20)])
    wait_until(lambda: len(pushing.receiver.loki_lines()) == 20)
    wait_until(lambda: len(pushing.receiver.lines) == 20)
    retries = metric_value(pushing.metrics(), 'pillion_logs_output_retries_total{output="loki"}')
    assert retries == 3.0
    assert pushing.receiver.loki_lines() == [
        json.dumps({"level": "info", "n": n}) for n in range(20)
    ]


def test_a_refused_batch_goes_to_the_dead_letter_file_and_the_rest_flows(
    pushing: Pushing,
) -> None:
    write(pushing.logs / "app.log", [{"level": "info", "n": 0}])
    wait_until(lambda: len(pushing.receiver.loki_lines()) == 1)
    wait_until(lambda: len(pushing.receiver.lines) == 1)
    pushing.receiver.fail = [400]
    write(pushing.logs / "app.log", [{"level": "info", "n": 1}])
    wait_until(pushing.dead_letter.exists)
    refused = [json.loads(line) for line in pushing.dead_letter.read_text().splitlines()]
    assert len(refused) == 1
    write(pushing.logs / "app.log", [{"level": "info", "n": 2}])
    wait_until(lambda: len(pushing.receiver.lines) >= 2 and len(pushing.receiver.loki_lines()) >= 2)
    metrics = pushing.metrics()
    counted = metric_value(metrics, 'pillion_logs_dead_letter_records_total{output="loki"}')
    assert counted == 1.0
    assert sorted(line["n"] for line in pushing.receiver.lines) == [0, 1, 2]  # the other output
    pushing.pillion.wait_for_log(
        "log batch refused by the receiver; written to the dead-letter file"
    )


def test_otlp_log_records(pushing: Pushing) -> None:
    write(pushing.logs / "app.log", [{"level": "error", "n": 7, "user": {"id": 3}}])
    wait_until(lambda: len(pushing.receiver.otlp) == 1)
    [record] = pushing.receiver.otlp
    assert (record["severityNumber"], record["severityText"]) == (17, "ERROR")
    attributes = {a["key"]: a["value"] for a in record["attributes"]}
    assert attributes["n"] == {"intValue": "7"}
    assert attributes["user.id"] == {"intValue": "3"}
    assert attributes["pillion.input"] == {"stringValue": "web"}
    assert json.loads(record["body"]["stringValue"])["n"] == 7


def test_elasticsearch_bulk_retries_only_the_failed_items(pushing: Pushing) -> None:
    messages = ["ok-0", "busy-1", "bad-2", "ok-3"]
    write(pushing.logs / "app.log", [{"level": "info", "m": m} for m in messages])
    wait_until(lambda: len(pushing.receiver.elastic) == 3)
    indexed = sorted(json.loads(d["message"])["m"] for d in pushing.receiver.elastic)
    assert indexed == ["busy-1", "ok-0", "ok-3"]  # each once: only busy-1 was sent again
    refused = pushing.dead_letter.with_name("es-refused.jsonl")
    wait_until(refused.exists)
    [dead] = [json.loads(line) for line in refused.read_text().splitlines()]
    assert json.loads(dead["message"])["m"] == "bad-2"
    metrics = pushing.metrics()
    assert metric_value(metrics, 'pillion_logs_dead_letter_records_total{output="es"}') == 1.0
    assert metric_value(metrics, 'pillion_logs_output_retries_total{output="es"}') == 1.0


def test_a_container_line_carries_the_runtimes_time_and_a_parsed_time_wins(
    tmp_path: Path,
) -> None:
    """A CRI line's timestamp is when the runtime wrote it: Loki's timestamp and
    OTLP's timeUnixNano say so (observedTimeUnixNano is when Pillion read it); a
    parser's time_field, the app's own time, wins over it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    with Receiver() as receiver:
        body = f"""
logs:
  checkpoints: {tmp_path}/logs.db
  inputs:
    - name: web
      paths: ["{logs}/*.log"]
      format: cri
      parser: {{type: json, time_field: at}}
      scan_interval: 50ms
  outputs:
    - {{name: loki, type: loki, url: "http://127.0.0.1:{receiver.port}", batch_timeout: 20ms}}
    - {{name: otel, type: otlp, url: "http://127.0.0.1:{receiver.port}", batch_timeout: 20ms}}
"""
        with running_pillion(tmp_path, body):
            started = time.time()
            (logs / "app.log").write_text(
                '2024-05-01T12:00:00.250000000Z stdout F {"m": "runtime"}\n'
                '2024-05-01T12:00:01.000000000+02:00 stderr F {"m": "zone"}\n'
                "2024-05-01T12:00:02.000000000Z stdout F "
                '{"m": "app", "at": "2020-01-01T00:00:00Z"}\n'
            )
            wait_until(lambda: len(receiver.loki_lines()) == 3 and len(receiver.otlp) == 3)
    runtime = datetime.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=datetime.UTC)
    zone = datetime.datetime(2024, 5, 1, 10, 0, 1, tzinfo=datetime.UTC)
    app = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    expected = {m: int(t.timestamp() * 1e9) for m, t in
                (("runtime", runtime), ("zone", zone), ("app", app))}  # fmt: skip
    loki = {json.loads(v[1])["m"]: int(v[0]) for s in receiver.loki for v in s["values"]}
    assert loki == expected
    otlp = {json.loads(r["body"]["stringValue"])["m"]: r for r in receiver.otlp}
    assert {m: int(r["timeUnixNano"]) for m, r in otlp.items()} == expected
    assert all(int(r["observedTimeUnixNano"]) >= started * 1e9 for r in otlp.values())
