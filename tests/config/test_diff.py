"""``describe_changes``: what a new config would change, one line per change, and
never a secret's value."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pillion.config import PillionConfig, load_config, parse_config
from pillion.config.diff import describe_changes
from pillion.config.redaction import REDACTED, REVEAL
from tests.examples.test_full import POD_ENV

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PROXY = """proxy:
  inbound:
    - name: inbound
      listen: 0.0.0.0:15006
      routes:
        - name: health
          match: {exact: /healthz}
          direct_response: {status: 200}
        - name: orders
          match: {prefix: /orders}
          cluster: orders
          timeout: 30s
        - match: {prefix: /api, methods: [GET]}
          cluster: orders
  outbound:
    - name: egress
      listen: 127.0.0.1:15001
      cluster: orders
  tcp:
    - name: db
      listen: 127.0.0.1:15432
      upstream: 10.0.0.5:5432
  clusters:
    - name: orders
      endpoints: [10.0.0.1:8080]
    - name: legacy
      endpoints: [10.0.0.9:8080]
"""


def config(text: str) -> PillionConfig:
    return parse_config(text, "pillion.yaml", {})


def changes(old: str, new: str) -> list[str]:
    return describe_changes(config(old), config(new))


def test_the_same_config_changes_nothing() -> None:
    full = load_config(EXAMPLES / "full.yaml")
    assert describe_changes(full, full) == []
    assert changes(PROXY, PROXY) == []


def test_a_feature_turned_on_lists_what_it_opens_and_off_what_it_closes() -> None:
    plain = "telemetry: {log_level: info}\n"
    assert changes(plain, PROXY) == [
        "+ section proxy",
        "+ listener inbound on 0.0.0.0:15006",
        "+ outbound listener egress on 127.0.0.1:15001",
        "+ tcp listener db on 127.0.0.1:15432",
        "+ cluster orders to 10.0.0.1:8080",
        "+ cluster legacy to 10.0.0.9:8080",
    ]
    assert changes(PROXY, plain + "proxy: null\n") == [
        "- section proxy",
        "- listener inbound on 0.0.0.0:15006",
        "- outbound listener egress on 127.0.0.1:15001",
        "- tcp listener db on 127.0.0.1:15432",
        "- cluster orders to 10.0.0.1:8080",
        "- cluster legacy to 10.0.0.9:8080",
    ]


def test_listeners_opened_closed_and_changed() -> None:
    new = (
        PROXY.replace("listen: 0.0.0.0:15006", "listen: 0.0.0.0:15016\n      max_connections: 500")
        .replace(
            "  tcp:\n    - name: db\n      listen: 127.0.0.1:15432\n",
            "  tcp:\n    - name: db\n      listen: 127.0.0.1:15433\n",
        )
        .replace(
            "  outbound:\n",
            "    - name: inbound-2\n      listen: 0.0.0.0:15007\n  outbound:\n",
        )
        .replace("    - name: egress\n", "    - name: egress-2\n")
    )
    assert changes(PROXY, new) == [
        "- outbound listener egress on 127.0.0.1:15001",
        "+ listener inbound-2 on 0.0.0.0:15007",
        "+ outbound listener egress-2 on 127.0.0.1:15001",
        "~ listener inbound: listen 0.0.0.0:15006 -> 0.0.0.0:15016",
        "~ listener inbound: max_connections 10000 -> 500",
        "~ tcp listener db: listen 127.0.0.1:15432 -> 127.0.0.1:15433",
    ]


def test_a_listener_of_another_kind_is_another_listener() -> None:
    new = PROXY.replace(
        "  tcp:\n    - name: db\n      listen: 127.0.0.1:15432\n      upstream: 10.0.0.5:5432\n",
        "",
    ).replace("  outbound:\n", "  outbound:\n    - name: db\n      listen: 127.0.0.1:15432\n"
              "      cluster: legacy\n")  # fmt: skip
    assert changes(PROXY, new) == [
        "- tcp listener db on 127.0.0.1:15432",
        "+ outbound listener db on 127.0.0.1:15432",
    ]


def test_routes_added_removed_changed_and_reordered() -> None:
    new = PROXY.replace("timeout: 30s", "timeout: 10s\n          retry: {max_retries: 1}")
    new = new.replace(
        "        - name: health\n          match: {exact: /healthz}\n"
        "          direct_response: {status: 200}\n",
        "",
    )
    new = new.replace(
        "        - match: {prefix: /api, methods: [GET]}\n          cluster: orders\n",
        "        - name: catalog\n          match: {prefix: /catalog}\n          cluster: orders\n"
        "        - match: {prefix: /api, methods: [GET]}\n          cluster: legacy\n",
    )
    assert changes(PROXY, new) == [
        "- route health on inbound",
        "+ route catalog on inbound",
        "~ route orders on inbound: timeout 30s -> 10s",
        "~ route orders on inbound: retry turned on",
        "~ route (prefix /api GET) on inbound: cluster orders -> legacy",
    ]
    swapped = PROXY.replace(
        "        - name: orders\n          match: {prefix: /orders}\n          cluster: orders\n"
        "          timeout: 30s\n",
        "",
    ).replace(
        "        - name: health\n",
        "        - name: orders\n          match: {prefix: /orders}\n          cluster: orders\n"
        "          timeout: 30s\n        - name: health\n",
    )
    assert changes(PROXY, swapped) == [
        "~ routes on inbound: order health, orders, (prefix /api GET) -> "
        "orders, health, (prefix /api GET)",
    ]


def test_clusters_added_removed_and_changed() -> None:
    new = PROXY.replace(
        "    - name: legacy\n      endpoints: [10.0.0.9:8080]\n",
        "    - name: payments\n      endpoints: [10.0.0.2:8443, 10.0.0.3:8443]\n",
    ).replace(
        "      endpoints: [10.0.0.1:8080]\n",
        "      endpoints: [10.0.0.1:8080, 10.0.0.4:8080]\n"
        "      timeouts: {connect: 1s}\n      balancing: round_robin\n",
    )
    assert changes(PROXY, new) == [
        "- cluster legacy to 10.0.0.9:8080",
        "+ cluster payments to 10.0.0.2:8443, 10.0.0.3:8443",
        "~ cluster orders: endpoints [10.0.0.1:8080] -> [10.0.0.1:8080, 10.0.0.4:8080]",
        "~ cluster orders: balancing least_request -> round_robin",
        "~ cluster orders: timeouts.connect 2s -> 1s",
    ]


LOGS = """logs:
  inputs:
    - name: app
      paths: [/var/log/app/*.log]
  outputs:
    - name: loki
      type: loki
      url: https://shipper:{password}@loki.example/loki/api/v1/push
      headers: {{X-Scope-OrgID: {token}}}
      labels: {{app: shop}}
"""


def test_log_inputs_and_outputs() -> None:
    old = LOGS.format(password="p1", token="t1")
    new = old.replace("[/var/log/app/*.log]", "[/var/log/app/*.log, /var/log/app/*.err]")
    new = new.replace("labels: {app: shop}", "labels: {app: shop, team: web}")
    new += "    - name: console\n      type: stdout\n"
    new = new.replace("inputs:\n", "inputs:\n    - name: audit\n      paths: [/var/log/audit]\n")
    assert changes(old, new) == [
        "+ log input audit (/var/log/audit)",
        "~ log input app: paths [/var/log/app/*.log] -> [/var/log/app/*.log, /var/log/app/*.err]",
        "+ log output console (stdout)",
        "~ log output loki: labels.team (absent) -> web",
    ]
    assert changes(old, "logs: null\n") == [
        "- section logs",
        "- log input app (/var/log/app/*.log)",
        "- log output loki (loki https://shipper:***@loki.example/loki/api/v1/push)",
    ]


def test_a_changed_secret_is_reported_never_shown() -> None:
    secrets = ["old-admin-token", "new-admin-token", "old-password", "new-password",
               "old-org", "new-org", "old-bearer", "new-bearer", "old-query", "new-query",
               "old-match", "new-match"]  # fmt: skip

    def text(v: str) -> str:
        return f"""admin:
  auth_token: {v}-admin-token
status:
  prestop_token: {v}-admin-token
app:
  notify:
    - name: reload
      http:
        url: "http://127.0.0.1:8080/reload?token={v}-query"
        headers: {{X-Token: {v}-bearer}}
{LOGS.format(password=f"{v}-password", token=f"{v}-org")}proxy:
  inbound:
    - name: inbound
      routes:
        - name: internal
          match:
            prefix: /internal
            headers: [{{name: Authorization, exact: "Bearer {v}-match"}}]
          set_request_headers: {{Authorization: "Bearer {v}-bearer", x-tenant: shop}}
        - name: rest
exporters:
  json:
    - name: stats
      url: "http://127.0.0.1:8080/stats?sig={v}-query"
      metrics: [{{name: app_up, path: $.up}}]
"""

    lines = changes(text("old"), text("new"))
    output = "\n".join(lines)
    assert not [secret for secret in secrets if secret in output], output
    assert lines == [
        "~ admin: auth_token changed (value hidden)",
        "~ status: prestop_token changed (value hidden)",
        "~ notify target reload: http.url changed (value hidden)",
        "~ notify target reload: http.headers.X-Token changed (value hidden)",
        "~ route internal on inbound: match.headers[0].exact changed (value hidden)",
        "~ route internal on inbound: set_request_headers.Authorization changed (value hidden)",
        "~ log output loki: url changed (value hidden)",
        "~ log output loki: headers.X-Scope-OrgID changed (value hidden)",
        "~ json exporter stats: url changed (value hidden)",
    ]
    # Added or removed, a secret shows as /config shows it.
    added = changes("telemetry: {log_level: info}\n", text("new"))
    assert "+ log output loki (loki https://shipper:***@loki.example/loki/api/v1/push)" in added
    assert "~ admin: auth_token null -> ***" in added
    assert "+ json exporter stats (http://127.0.0.1:8080/stats?sig=***)" in added
    assert not [secret for secret in secrets if secret in "\n".join(added)]


SECRETS = """app:
  notify:
    - name: hup
      signal: {process: app}
secrets:
  sources:
    - {name: files, type: file, path: /etc/app/values.yaml}
  templates:
    - name: env
      destination: /run/app/env
      template: "A={{ secrets.files.a }}\\n"
      notify: [hup]
"""


def test_secret_sources_and_templates() -> None:
    new = SECRETS.replace("/etc/app/values.yaml", "/etc/app/other.yaml").replace(
        '"A={{ secrets.files.a }}\\n"', '"A={{ secrets.files.a }}\\nB={{ secrets.files.b }}\\n"'
    )
    new += "    - {name: raw, destination: /run/app/raw, format: raw, source: files, key: k}\n"
    new = new.replace(
        "  sources:\n", "  sources:\n    - {name: dir, type: directory, path: /etc/app/d}\n"
    )
    assert changes(SECRETS, new) == [
        "+ secret source dir (directory /etc/app/d)",
        "~ secret source files: path /etc/app/values.yaml -> /etc/app/other.yaml",
        "+ secret template raw -> /run/app/raw",
        "~ secret template env: template changed (1 -> 2 lines)",
    ]


CONFIG = """app:
  notify:
    - name: hup
      signal: {process: app}
config:
  sources:
    - {name: settings, type: file, path: /etc/config/settings.yaml}
  templates:
    - {name: motd, destination: /run/app/motd, template: "hello", notify: [hup]}
  watch:
    - {name: nginx, paths: [/etc/nginx/conf.d], notify: [hup]}
"""


def test_config_sources_templates_and_watches() -> None:
    new = CONFIG.replace('template: "hello"', 'template: "hello, world"').replace(
        "    - {name: nginx, paths: [/etc/nginx/conf.d], notify: [hup]}\n",
        "    - {name: envoy, paths: [/etc/envoy], notify: [hup]}\n",
    )
    new = new.replace("app:\n  notify:\n", "app:\n  port: 9090\n  notify:\n")
    new = new.replace("      signal: {process: app}\n", "      signal: {process: app}\n"
                      "    - {name: warm, exec: {command: [/bin/warm]}}\n")  # fmt: skip
    assert changes(CONFIG, new) == [
        "~ app: port 8080 -> 9090",
        "+ notify target warm (exec)",
        '~ config template motd: template hello -> "hello, world"',
        "- config watch nginx (/etc/nginx/conf.d)",
        "+ config watch envoy (/etc/envoy)",
    ]


def test_exporters() -> None:
    old = """logs:
  inputs: [{name: app, paths: [/var/log/app.log]}]
  outputs: [{name: console, type: stdout}]
exporters:
  json:
    - {name: stats, url: "http://127.0.0.1:8080/stats", metrics: [{name: app_up, path: $.up}]}
  statsd: {udp: 127.0.0.1:9125}
"""
    new = """logs:
  inputs: [{name: app, paths: [/var/log/app.log]}]
  outputs: [{name: console, type: stdout}]
exporters:
  json:
    - {name: stats, url: "http://127.0.0.1:8080/stats", timeout: 5s,
       metrics: [{name: app_up, path: $.up}]}
  from_logs:
    - input: app
      metrics: [{name: app_errors, regex: ERROR}]
  merge_app: {url: "http://127.0.0.1:8080/metrics"}
"""
    assert changes(old, new) == [
        "~ json exporter stats: timeout 2s -> 5s",
        "- statsd exporter (udp 127.0.0.1:9125, tcp 127.0.0.1:9125)",
        "+ metrics from log input app (1 metrics)",
        "+ merge of the app's metrics (http://127.0.0.1:8080/metrics)",
    ]
    assert changes(old, old.split("exporters:")[0] + "exporters: null\n") == [
        "- section exporters",
        "- json exporter stats (http://127.0.0.1:8080/stats)",
        "- statsd exporter (udp 127.0.0.1:9125, tcp 127.0.0.1:9125)",
    ]


def test_admin_status_and_lifecycle() -> None:
    old = "admin: {listen: 127.0.0.1:15000}\nlifecycle: {drain_timeout: 20s}\n"
    new = (
        "admin: {listen: 127.0.0.1:15001}\nstatus: {listen: 0.0.0.0:15021}\n"
        "lifecycle: {drain_timeout: 45s, watch_config: false}\ntelemetry: {log_level: debug}\n"
    )
    assert changes(old, new) == [
        "~ admin: listen 127.0.0.1:15000 -> 127.0.0.1:15001",
        "~ status: listen 0.0.0.0:15020 -> 0.0.0.0:15021",
        "~ lifecycle: drain_timeout 20s -> 45s",
        "~ lifecycle: watch_config true -> false",
        "~ telemetry: log_level info -> debug",
    ]


def test_every_example_against_full_shows_no_secret() -> None:
    """Each example against the config with every key, both ways: the secrets of
    either (what ``/config`` shows as ``***``, here read from the environment) never
    show."""
    tokens = ("APP_RELOAD_TOKEN", "ES_API_KEY", "PILLION_ADMIN_TOKEN", "PILLION_PRESTOP_TOKEN")
    environ = {**os.environ, **POD_ENV, **{name: f"{name.lower()}-value" for name in tokens}}
    full = load_config(EXAMPLES / "full.yaml", environ)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        example = load_config(path, environ)
        hidden = secrets_of(full) | secrets_of(example)
        for lines in (describe_changes(full, example), describe_changes(example, full)):
            assert all(line[:2] in ("+ ", "- ", "~ ") for line in lines), lines
            output = "\n".join(lines)
            assert not [secret for secret in hidden if secret in output], path
    assert len(hidden) >= len(tokens)  # the values read are secrets indeed


def secrets_of(config: PillionConfig) -> set[str]:
    """The values ``/config`` shows as ``***``."""

    def walk(shown: Any, real: Any) -> Iterator[str]:
        if isinstance(shown, dict):
            for key in shown:
                yield from walk(shown[key], real[key])
        elif isinstance(shown, list):
            for a, b in zip(shown, real, strict=True):
                yield from walk(a, b)
        elif shown == REDACTED and len(real.strip()) >= 8:  # not an empty ${TOKEN:-}
            yield real

    return set(walk(config.model_dump(mode="json"), config.model_dump(mode="json", context=REVEAL)))
