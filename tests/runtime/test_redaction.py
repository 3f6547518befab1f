"""Credentials in the config never show: not in ``/config``, not in logs, not in errors.

Every field that can carry one is typed to be redacted (a URL's password and
credential-like query values, a route's ``Authorization`` header, secrets):
a walk over the schema holds every such field to that, and a running Pillion
whose every such field holds a marker is made to print, log and fail with them,
and the marker is looked for in all it said.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, PlainSerializer, SecretStr
from pydantic.fields import FieldInfo

from pillion.config import PillionConfig, parse_config
from pillion.config.models import model_in
from pillion.config.redaction import REVEAL, redact_in, redact_url
from pillion.config.types import HeaderMap, HttpUrl, Secret
from tests.helpers import free_port, http, running_pillion, write_config

MARK = "M4rk3r-s3cr3t"

# The serializers that redact, as the annotated types carry them.
REDACTING = [
    m
    for t in (HttpUrl, HeaderMap, Secret)
    for m in typing.get_args(t)[1:]
    if isinstance(m, PlainSerializer)
]


def redacting(field: FieldInfo) -> bool:
    """Whether the field is shown redacted: a redacting type, or a map of secrets."""
    if any(m in REDACTING for m in field.metadata):
        return True
    annotation = field.annotation
    for option in typing.get_args(annotation) or (annotation,):
        args = typing.get_args(option)
        if args and typing.get_origin(option) is dict:
            value = args[1]
            if value is SecretStr or value == Secret or typing.get_args(value)[:1] == (SecretStr,):
                return True
        if any(m in REDACTING for m in getattr(option, "__metadata__", ())):
            return True
    return False


def fields(model: type[BaseModel], path: str = "") -> Iterator[tuple[str, FieldInfo]]:
    for name, field in model.model_fields.items():
        here = f"{path}.{name}" if path else name
        yield here, field
        inner = model_in(field.annotation)
        if inner is not None:
            yield from fields(inner, here)


def may_carry_credentials(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return (
        "url" in last
        or last in {"address", "token", "password", "secret"}
        or last.endswith(("_token", "_key", "_secret"))
        or (last.endswith("headers") and not last.startswith("remove_"))
    )


def test_every_field_that_may_carry_a_credential_is_redacted() -> None:
    checked = [
        (path, redacting(field))
        for path, field in fields(PillionConfig)
        if may_carry_credentials(path) and "listen" not in path
    ]
    assert len(checked) >= 10  # the walk found them: URLs, headers, tokens
    assert [path for path, ok in checked if not ok] == [
        "proxy.inbound.limits.max_headers",  # a count
        "proxy.inbound.routes.match.headers",  # conditions: their own serializer, below
        "proxy.inbound.oidc.pass_access_token",  # a flag
        "proxy.outbound.limits.max_headers",
        "proxy.outbound.routes.match.headers",
        "logs.outputs.address",  # syslog's host:port: no credentials possible
        "secrets.templates.error_on_missing_key",  # a flag
    ]


def test_redact_url_keeps_what_helps_and_hides_what_is_secret() -> None:
    url = f"https://bob:{MARK}@logs.example:8443/ingest?tenant=a&access_token={MARK}&X-Amz-Signature={MARK}"
    shown = redact_url(url)
    assert MARK not in shown
    assert shown == (
        "https://bob:***@logs.example:8443/ingest?tenant=a&access_token=***&X-Amz-Signature=***"
    )
    assert redact_url(f"https://{MARK}@h/") == "https://***@h/"  # a token as user name
    assert redact_url("http://h:notaport/") == "***"
    error = f"ClientConnectorError: Cannot connect to {url} and {MARK}"
    assert MARK not in redact_in(error, url)


def marked_config(tmp_path: Path) -> str:
    where = f"127.0.0.1:{free_port()}"  # nothing listens: every client fails
    return f"""
proxy:
  access_log: null
  inbound:
    - name: api
      listen: 127.0.0.1:{free_port()}
      jwt:
        providers:
          - issuer: https://issuer.example
            audiences: [a]
            jwks_url: "http://jwks:{MARK}@{where}/jwks.json?access_token={MARK}"
      routes:
        - match:
            prefix: /
            headers: [{{name: X-Api-Key, exact: "{MARK}"}}, {{name: X-Env, exact: prod}}]
          set_request_headers: {{Authorization: "Bearer {MARK}", X-Tenant: acme}}
          add_request_headers: {{X-Api-Key: "{MARK}"}}
logs:
  checkpoints: {tmp_path}/logs.db
  inputs: [{{name: app, paths: ["{tmp_path}/*.log"]}}]
  outputs:
    - name: out
      type: http
      url: "http://user:{MARK}@{where}/ingest?token={MARK}"
      headers: {{X-Scope-OrgID: tenant, X-Auth-Token: "{MARK}"}}
      batch_timeout: 20ms
exporters:
  json:
    - name: stats
      url: "http://user:{MARK}@{where}/stats?api_key={MARK}"
      metrics: [{{name: app_value, path: $.x}}]
  merge_app:
    url: "http://{MARK}@{where}/metrics"
""" + secrets_section(tmp_path, where)


def secrets_section(tmp_path: Path, where: str) -> str:
    token_file = tmp_path / "token"
    token_file.write_text("root")
    return f"""
secrets:
  vault:
    address: "http://vault:{MARK}@{where}"
    auth: {{method: token, token_file: {token_file}}}
  sources: [{{name: app, type: kv, path: secret/app}}]
  templates: [{{name: t, destination: {tmp_path}/t.env, format: dotenv, source: app}}]
"""


def run_and_collect(tmp_path: Path, body: str, failures: list[str], started: str) -> str:
    """Everything a Pillion running ``body`` said once each failure was logged: its
    logs, its probes, ``/metrics``, ``/config``, and the dashboard with its data."""
    with running_pillion(tmp_path, body, ready=False) as process:
        process.wait_for_log(started)
        with (tmp_path / "app.log").open("a") as app_log:
            app_log.write("a line to ship\n")  # for the log output to fail to send
        http("GET", f"{process.status_url}/metrics")  # a scrape fetches the exporters' targets
        for message in failures:  # each client fails against its closed port, and logs it
            process.wait_for_log(message)
        _, _, shown = http("GET", f"{process.admin_url}/config")
        _, _, ready = http("GET", f"{process.status_url}/healthz/ready")
        _, _, starting = http("GET", f"{process.status_url}/healthz/started")
        _, _, metrics = http("GET", f"{process.status_url}/metrics")
        _, _, stats = http("GET", f"{process.admin_url}/stats")
        recent = {r["message"] for r in json.loads(stats)["recent_errors"]}
        assert set(failures) <= recent  # the dashboard shows the failures logged above
        _, _, page = http("GET", f"{process.admin_url}/")
        return "\n".join(
            [process.output(), shown.decode(), ready.decode(), starting.decode(), metrics.decode(),
             stats.decode(), page.decode()]
        )  # fmt: skip


def test_a_running_pillion_never_shows_the_marker(tmp_path: Path) -> None:
    body = marked_config(tmp_path)
    secrets_at = body.index("\nsecrets:")
    config = parse_config(body, "x", {})  # every credential field holds the marker
    dumped = config.model_dump(mode="json")
    assert MARK not in json.dumps(dumped)
    assert dumped["logs"]["outputs"][0]["url"].startswith("http://user:***@127.0.0.1:")
    routes = dumped["proxy"]["inbound"][0]["routes"][0]
    assert routes["set_request_headers"] == {"Authorization": "***", "X-Tenant": "acme"}
    assert [h["exact"] for h in routes["match"]["headers"]] == ["***", "prod"]

    failures = [
        "JWKS fetch failed; the last keys are kept",
        "json target failed",
        "the app's metrics are left out",
        "log output failed; retrying",
    ]
    seen = run_and_collect(tmp_path, body[:secrets_at], failures, "started")
    # Secrets come first (the app waits for its files): on their own.
    secrets = body[secrets_at:]
    (tmp_path / "s").mkdir()
    seen += run_and_collect(tmp_path / "s", secrets, ["vault login failed"], "vault login failed")
    assert MARK not in seen
    assert "user:***@127.0.0.1" in seen  # shown, redacted, not left out


def test_a_refused_config_never_shows_the_marker(tmp_path: Path) -> None:
    body = marked_config(tmp_path).replace("type: http", "type: carrier-pigeon")
    config = write_config(tmp_path, body)
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "validate", "-c", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "logs.outputs[0].type" in result.stderr
    assert MARK not in result.stdout + result.stderr


def test_worker_processes_get_the_real_values(tmp_path: Path) -> None:
    # A config handed to Pillion's own worker processes is dumped with the values.
    config = parse_config(marked_config(tmp_path), "x", {})
    dumped = json.dumps(config.model_dump(mode="json", context=REVEAL))
    assert MARK in dumped
    again = PillionConfig.model_validate(json.loads(dumped))
    assert again.model_dump(context=REVEAL) == config.model_dump(context=REVEAL)
