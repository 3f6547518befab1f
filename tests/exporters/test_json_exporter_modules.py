"""json_exporter's config (its modules) as a target's metrics: a running Pillion reads
the file as it is, fetches the documents from a loopback server, and serves the series
json_exporter serves for them (with Pillion's `target` label); what cannot be done the
same way is refused by name when the config is checked."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import PillionProcess, http, running_pillion, serve_http

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = FIXTURES / "json_exporter.yml"


@dataclass
class Documents:
    """The apps: the documents of json_exporter's README, and a record of requests."""

    files: dict[str, bytes] = field(default_factory=lambda: {
        "/data.json": (FIXTURES / "json_exporter_data.json").read_bytes(),
        "/animals.json": (FIXTURES / "json_exporter_animals.json").read_bytes(),
    })  # fmt: skip
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        documents = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sent = self.rfile.read(length) if length else b""
                with documents.lock:
                    documents.requests.append((self.command, self.path, dict(self.headers), sent))
                if self.path == "/fetched":  # answers 203, which the module accepts
                    body, status = documents.files["/data.json"], 203
                else:
                    body = documents.files.get(self.path, b"{}")
                    status = 200 if self.path in documents.files else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = answer
            do_POST = answer

            def log_message(self, *_: Any) -> None:
                pass

        return Handler


@pytest.fixture(scope="module")
def documents() -> Iterator[Documents]:
    served = Documents()
    with serve_http(served.handler()) as served.port:
        yield served


def target(name: str, port: int, path: str, module: str) -> str:
    return (
        f"    - name: {name}\n      url: http://127.0.0.1:{port}{path}\n"
        f"      module_file: {CONFIG}\n      module: {module}\n"
    )


@pytest.fixture(scope="module")
def pillion(tmp_path_factory: pytest.TempPathFactory, documents: Documents) -> Iterator[
        PillionProcess]:  # fmt: skip
    port = documents.port
    body = (
        "exporters:\n  json:\n"
        + target("app", port, "/data.json", "default")
        + target("app2", port, "/data.json", "default")
        + target("zoo", port, "/animals.json", "animals")
        + target("conv", port, "/data.json", "converted")
        + target("fetched", port, "/fetched", "fetched")
        + f"    - name: inline\n      url: http://127.0.0.1:{port}/data.json\n"
        "      json_exporter:\n"
        "        metrics:\n"
        "          - {name: inline_active, type: object, path: '{.values[?(@.some_boolean == "
        "true)]}', labels: {id: '{.id}'}, values: {count: '{.count}'}}\n"
    )
    with running_pillion(tmp_path_factory.mktemp("json"), body) as process:
        yield process


def scrape(process: PillionProcess) -> str:
    status, _, page = http("GET", f"{process.status_url}/metrics", timeout=10)
    assert status == 200
    return page.decode()


def series(page: str, prefix: str) -> dict[str, float]:
    """Every sample whose name starts with ``prefix``: ``name{labels}`` (labels sorted)
    to value."""
    found = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def test_the_readme_example_gives_json_exporters_series(pillion: PillionProcess) -> None:
    """json_exporter's README lists what module `default` makes of examples/data.json
    (the timestamped value without its timestamp: json_exporter reads `epochtimestamp`,
    not `epochTimestamp`). The same series, one set per target."""
    page = scrape(pillion)
    expected = {
        'example_global_value{environment="beta",location="planet-mars"}': 1234,
        'example_timestamped_value_count{environment="beta"}': 2,
        'example_value_active{environment="beta",id="id-A"}': 1,
        'example_value_active{environment="beta",id="id-C"}': 1,
        'example_value_boolean{environment="beta",id="id-A"}': 1,
        'example_value_boolean{environment="beta",id="id-C"}': 0,
        'example_value_count{environment="beta",id="id-A"}': 1,
        'example_value_count{environment="beta",id="id-C"}': 3,
    }
    for name in ("app", "app2"):
        with_target = {key.replace("}", f',target="{name}"}}'): value
                       for key, value in expected.items()}  # fmt: skip
        mine = {key: value for key, value in series(page, "example_").items()
                if f'target="{name}"' in key}  # fmt: skip
        assert mine == {_sorted(key): value for key, value in with_target.items()}
    # untyped, as json_exporter's default valuetype; one family for both targets
    assert page.count("# TYPE example_global_value untyped\n") == 1
    assert "# HELP example_global_value Example of a top-level global value scrape in the " \
        "json\n" in page  # fmt: skip
    assert "example_missing_key" not in page  # optional and missing: no series, no family
    assert 'pillion_exporter_json_up{target="app"} 1.0' in page
    assert "pillion_exporter_json_errors_total{" not in page.replace(
        'reason="missing"', "")  # fmt: skip
    promtool(page)


def test_a_top_level_list(pillion: PillionProcess) -> None:
    assert series(scrape(pillion), "animal_") == {
        'animal_population{name="deer",predator="false",target="zoo"}': 456,
        'animal_population{name="lion",predator="true",target="zoo"}': 123,
        'animal_population{name="pigeon",predator="false",target="zoo"}': 789,
    }


def test_valueconverter_filters_on_numbers_and_value_types(pillion: PillionProcess) -> None:
    page = scrape(pillion)
    found = {key: value for key, value in series(page, "example_").items()
             if 'target="conv"' in key}  # fmt: skip
    assert found == {
        # valueconverter: the state's text in any case
        'example_convert_state{state="ACTIVE",target="conv"}': 1,
        'example_convert_state{state="INACTIVE",target="conv"}': 2,
        # a filter on a number, valuetype gauge
        'example_busy_count{id="id-B",target="conv"}': 2,
        'example_busy_count{id="id-C",target="conv"}': 3,
        # != and a static value
        'example_not_active_info{id="id-B",target="conv"}': 1,
        # a path without a wildcard: the one object it leads to
        'example_first_count{id="id-A",target="conv"}': 1,
        # valuetype counter, named ..._total
        'example_requests_total{target="conv"}': 1234,
    }
    assert "# TYPE example_busy_count gauge\n" in page
    assert "# TYPE example_requests_total counter\n" in page


def test_headers_credentials_body_and_statuses_are_sent_as_json_exporter_sends_them(
    pillion: PillionProcess, documents: Documents
) -> None:
    page = scrape(pillion)
    assert series(page, "fetched_") == {'fetched_value{target="fetched"}': 1234}
    assert 'pillion_exporter_json_up{target="fetched"} 1.0' in page  # 203 is accepted
    with documents.lock:
        fetched = [r for r in documents.requests if r[1] == "/fetched"]
        plain = [r for r in documents.requests if r[1] == "/data.json"]
    method, _, headers, sent = fetched[-1]
    assert (method, sent) == ("POST", b'{"query": "stats"}')
    assert headers["X-Tenant"] == "shop"
    assert headers["Authorization"] == "Basic c2NyYXBlcjpzM2NyZXQ="  # scraper:s3cret
    assert headers["Accept"] == "application/json"
    assert any(r[2].get("X-Dummy") == "my-test-header" and r[0] == "GET" for r in plain)


def test_a_module_written_in_pillion_yaml(pillion: PillionProcess) -> None:
    assert series(scrape(pillion), "inline_") == {
        'inline_active_count{id="id-A",target="inline"}': 1,
        'inline_active_count{id="id-B",target="inline"}': 2,
    }


def test_epochtimestamp_in_camel_case_is_accepted_with_a_warning(tmp_path: Path) -> None:
    result = validate(tmp_path, target("app", 1, "/data.json", "default"))
    assert result.returncode == 0, result.stderr
    assert "warning: exporters.json[0].module_file (line 5): " in result.stderr
    expected = (
        "json_exporter.yml line 19: modules.default.metrics[1].epochTimestamp: "
        "json_exporter does not read epochTimestamp (its key is epochtimestamp)"
    )
    assert expected in result.stderr


# --- refusals and warnings, each naming the construct ------------------------------------


def validate(tmp_path: Path, targets: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "pillion.yaml"
    config.write_text(f"exporters:\n  json:\n{targets}")
    return subprocess.run([sys.executable, "-m", "pillion", "validate", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def module_file(tmp_path: Path, module: str) -> str:
    """A json_exporter config of one module, `default`; a target that reads it."""
    (tmp_path / "config.yml").write_text("modules:\n  default:\n" + module)
    return "    - name: app\n      url: http://127.0.0.1:1/\n      module_file: config.yml\n"


def refused(tmp_path: Path, module: str) -> str:
    result = validate(tmp_path, module_file(tmp_path, module))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "exporters.json[0].module_file (line 5): " in result.stderr
    return result.stderr


METRIC = "    metrics:\n    - {name: m, path: '{.a}'}\n"


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("    metrics:\n    - {name: m, path: '{.a}', epochtimestamp: '{.t}'}\n",
         "metrics[0].epochtimestamp: Pillion serves JSON values at scrape time, without a "
         "timestamp"),
        ("    metrics:\n    - {name: m, path: '{.a}', valuetype: counter}\n",
         "metrics[0].valuetype: counter: Pillion serves a counter as m_total"),
        ("    metrics:\n    - {name: m, path: 'x{.a}'}\n",
         "metrics[0].path: 'x{.a}': text around the JSONPath makes no number"),
        ("    metrics:\n    - {name: m, path: 'count'}\n",
         "metrics[0].path: 'count' is no JSONPath in braces"),
        ("    metrics:\n    - {name: m, path: '{.a[?(@.b =~ \"c\")]}'}\n",
         "regex filters =~ are not supported"),
        ("    metrics:\n    - {name: m, path: '{.a}', type: list}\n",
         "metrics[0].type: type is value or object, not 'list'"),
        ("    metrics:\n    - {name: m, path: '{.a}', labels: {bad-label: x}}\n",
         "metrics[0].labels: labels: invalid label name 'bad-label'"),
        ("    metrics:\n    - name: m\n      type: object\n      path: '{.a[*]}'\n"
         "      values: {state: '{.s}'}\n      valueconverter: {'{.s}': {up: high}}\n",
         "valueconverter.{.s}.up: 'high' is not a number"),
        ("    body: {content: x, templatize: true}\n" + METRIC,
         "body.templatize: Pillion fetches on its own, with no probe parameters"),
        ("    http_client_config:\n      tls_config: {ca_file: /ca.pem}\n" + METRIC,
         "http_client_config.tls_config.ca_file: Pillion checks an https target against "
         "the system's CAs"),
        ("    http_client_config:\n      basic_auth: {username: u, password_file: /p}\n" + METRIC,
         "http_client_config.basic_auth.password_file: Pillion fetches the target itself"),
        ("    http_client_config:\n      authorization: {credentials_file: /t}\n" + METRIC,
         "http_client_config.authorization.credentials_file: Pillion fetches the target"),
        ("    http_client_config:\n      bearer_token_file: /t\n" + METRIC,
         "bearer_token_file cannot be honoured; write bearer_token, or the header"),
        ("    http_client_config:\n      oauth2: {client_id: x}\n" + METRIC,
         "oauth2 cannot be honoured; fetch the token elsewhere"),
        ("    http_client_config:\n      proxy_url: http://proxy:3128\n" + METRIC,
         "proxy_url cannot be honoured; remove it"),
        ("    headers: {Authorization: x}\n    http_client_config:\n"
         "      bearer_token: t\n" + METRIC, "Authorization also in headers: write it once"),
        ("    valid_status_codes: [abc]\n" + METRIC, "a list of HTTP status codes"),
        ("    metrics: []\n", "a module needs metrics"),
    ],
)  # fmt: skip
def test_what_cannot_be_done_the_same_way_is_refused(
    tmp_path: Path, module: str, expected: str
) -> None:
    assert expected in refused(tmp_path, module)


def test_the_format_before_modules_and_an_unknown_module_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("metrics:\n- {name: m, path: '{.a}'}\n")
    target_yaml = "    - name: app\n      url: http://127.0.0.1:1/\n      module_file: config.yml\n"
    old = validate(tmp_path, target_yaml)
    assert "json_exporter's format before 0.3.0 (metrics at the top level): put them under " \
        "modules: {default: {metrics: [...]}}" in old.stderr  # fmt: skip
    (tmp_path / "config.yml").write_text("modules:\n  a: {metrics: [{name: m, path: '{.a}'}]}\n")
    unknown = validate(tmp_path, target_yaml + "      module: b\n")
    assert "no module 'b' (modules: a)" in unknown.stderr


def test_target_level_mistakes_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("modules:\n  default: {metrics: [{name: m, path: "
                                         "'{.a}', valuetype: gauge}]}\n")  # fmt: skip
    base = "    - name: app\n      url: http://127.0.0.1:1/\n"
    cases = {
        base + "      module: default\n": "module names a module of module_file",
        base + "      module_file: config.yml\n      json_exporter: {metrics: []}\n":
            "module_file and json_exporter: give the module in one place",
        base + "      metrics: []\n": "no metrics: give metrics, or a json_exporter module",
        base + "      module_file: config.yml\n      metrics: [{name: m, path: $.b}]\n":
            "metric m is defined twice for this target",
        base + "      module_file: config.yml\n      headers: {accept: x}\n"
        "    - name: other\n      url: http://127.0.0.1:1/\n"
        "      metrics: [{name: m, path: $.a, type: counter}]\n":
            "metric m is a gauge for target app and a counter for other",
    }  # fmt: skip
    for targets, message in cases.items():
        result = validate(tmp_path, targets)
        assert result.returncode == 2, targets
        assert message in result.stderr, result.stderr


def test_what_json_exporter_ignores_is_accepted_with_a_warning(tmp_path: Path) -> None:
    module = (
        "    metrics:\n"
        "    - {name: m, path: '{.a}', valueType: gauge, values: {x: '{.b}'}}\n"
        "    - {name: n, type: object, path: '{.a[*]}'}\n"
        "    retries: 3\n"
    )
    result = validate(tmp_path, module_file(tmp_path, module))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 4
    assert "metrics[0].valueType: json_exporter does not read 'valueType' (its key is " \
        "valuetype), nor does Pillion: remove it" in result.stderr  # fmt: skip
    assert "metrics[0].values: json_exporter reads values on type: object only" in result.stderr
    assert "metrics[1].values: an object metric without values" in result.stderr
    assert "default.retries: json_exporter does not read 'retries' in a module" in result.stderr


def _sorted(series_name: str) -> str:
    name, _, labels = series_name.partition("{")
    pairs = sorted(labels.rstrip("}").split(","))
    return f"{name}{{{','.join(pairs)}}}"


def promtool(page: str) -> None:
    """The page parses; the only lint is about names json_exporter's config gives
    (a gauge called ``..._count``)."""
    check = subprocess.run(["promtool", "check", "metrics"], input=page.encode(),
                           capture_output=True, timeout=30, check=False)  # fmt: skip
    problems = (check.stdout + check.stderr).decode().splitlines()
    assert all('should not have "_count" suffix' in line for line in problems), problems


def test_the_fixture_documents_are_json() -> None:
    for name in ("json_exporter_data.json", "json_exporter_animals.json"):
        json.loads((FIXTURES / name).read_text())
