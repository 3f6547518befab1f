from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.config import ConfigError, ConfigIssue, load_config, parse_config
from pillion.config.types import ListenAddress


def errors_of(
    text: str, environ: dict[str, str] | None = None
) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.yaml", environ or {})
    return [(i.path, i.line, i.message) for i in caught.value.issues]


@pytest.mark.parametrize("text", ["", "\n\n", "# all\n  # comments\n", "---\n"])
def test_an_empty_or_comment_only_file_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "empty.yaml", {})
    [issue] = caught.value.issues
    assert (issue.path, issue.line) == ("(document)", 1)
    assert "empty or only comments" in issue.message


def test_an_explicit_empty_mapping_is_all_defaults() -> None:
    config = parse_config("{}\n", "empty.yaml", {})
    assert config.admin.listen == ListenAddress("127.0.0.1", 15000)
    assert config.status.listen == ListenAddress("0.0.0.0", 15020)
    assert config.app.port == 8080
    assert config.lifecycle.drain_timeout == 20.0
    assert config.proxy is None
    assert config.logs is None


def test_units_env_and_sections() -> None:
    config = parse_config(
        "app:\n  port: ${PORT}\n"
        "admin:\n  listen: '[::1]:${ADMIN:-1500}'\n  max_request_size: 1MiB\n"
        "lifecycle:\n  drain_timeout: 1m30s\n"
        "proxy: {}\n",
        "ok.yaml",
        {"PORT": "9000"},
    )
    assert config.app.port == 9000
    assert config.admin.listen == ListenAddress("::1", 1500)
    assert config.admin.max_request_size == 1024 * 1024
    assert config.lifecycle.drain_timeout == 90.0
    assert config.proxy is not None


def test_yaml_syntax_error_has_line() -> None:
    [(path, line, message)] = errors_of("app:\n  port: 1\n bad: [\n")
    assert path == "(yaml)"
    assert line is not None
    assert line >= 3
    assert "YAML error" in message


def test_top_level_must_be_a_mapping() -> None:
    [(path, line, message)] = errors_of("- a\n- b\n")
    assert (path, line) == ("(document)", 1)
    assert "mapping" in message


def test_unknown_key_suggests_and_lists_allowed() -> None:
    [(path, line, message)] = errors_of("status:\n  lisen: 0.0.0.0:1\n")
    assert (path, line) == ("status.lisen", 2)
    assert "did you mean 'listen'" in message
    assert "allowed: listen, max_request_size" in message


def test_unknown_top_level_section() -> None:
    [(path, line, message)] = errors_of("app: {}\nproxxy: {}\n")
    assert (path, line) == ("proxxy", 2)
    assert "did you mean 'proxy'" in message


def test_unknown_key_inside_a_section() -> None:
    [(path, line, _)] = errors_of("exporters:\n  stats_d: {}\n")
    assert (path, line) == ("exporters.stats_d", 2)


@pytest.mark.parametrize(
    ("logs", "path", "hint"),
    [
        ("{inputs: [], outputs: [{name: o, type: stdout}]}", "logs.inputs", "at least 1"),
        (
            "{inputs: [{name: a, paths: [x]}], outputs: [{name: o, type: file}]}",
            "logs.outputs[0]",
            "set `path` exactly when `type` is `file`",
        ),
        (
            "{inputs: [{name: a, paths: [x]}, {name: a, paths: [y]}], "
            "outputs: [{name: o, type: stdout}]}",
            "logs",
            "input names must be distinct",
        ),
        (
            "{inputs: [{name: a, paths: [x], read_from: middle}], "
            "outputs: [{name: o, type: stdout}]}",
            "logs.inputs[0].read_from",
            "'head' or 'tail'",
        ),
        (
            "{inputs: [{name: a, paths: [x]}], outputs: [{name: o, type: loki, "
            "url: 'http://l:3100', labels: {app: 'kubernetes.labels.\"app.kubernetes.io'}}]}",
            "logs.outputs[0].labels",
            "is not a field path",
        ),
    ],
)
def test_bad_logs_sections_are_refused_with_their_path(logs: str, path: str, hint: str) -> None:
    errors = errors_of(f"logs: {logs}\n")
    assert any(p == path and hint in message for p, _, message in errors), errors


def test_wrong_type() -> None:
    [(path, line, message)] = errors_of("admin:\n  allow_remote: maybe\n")
    assert (path, line) == ("admin.allow_remote", 2)
    assert "boolean" in message


def test_section_of_the_wrong_shape() -> None:
    [(path, line, _)] = errors_of("app: 8080\n")
    assert (path, line) == ("app", 1)


@pytest.mark.parametrize(
    ("text", "path", "hint"),
    [
        ("lifecycle:\n  drain_timeout: 10\n", "lifecycle.drain_timeout", "needs a unit"),
        ("lifecycle:\n  drain_timeout: soon\n", "lifecycle.drain_timeout", "invalid duration"),
        ("status:\n  max_request_size: 4 KB please\n", "status.max_request_size", "invalid size"),
        ("app:\n  port: 70000\n", "app.port", "less than or equal to 65535"),
        ("app:\n  port: 0\n", "app.port", "greater than or equal to 1"),
        ("status:\n  listen: 0.0.0.0:99999\n", "status.listen", "out of range"),
        ("status:\n  listen: nowhere\n", "status.listen", "host:port"),
        ("status:\n  listen: '::1:80'\n", "status.listen", "brackets"),
        ("admin:\n  listen: 10.1.2.3:15000\n", "admin.listen", "allow_remote"),
        ("admin:\n  listen: admin.example:15000\n", "admin.listen", "loopback"),
    ],
)
def test_bad_values_name_their_field_and_line(text: str, path: str, hint: str) -> None:
    [(got_path, line, message)] = errors_of(text)
    assert (got_path, line) == (path, 2)
    assert hint in message


def test_admin_may_listen_remotely_when_allowed() -> None:
    config = parse_config(
        "admin:\n  allow_remote: true\n  listen: 0.0.0.0:15000\n  auth_token: t\n", "x", {}
    )
    assert config.admin.listen.host == "0.0.0.0"


def test_missing_env_reported_once_at_its_line() -> None:
    errors = errors_of("app:\n  port: 1\nstatus:\n  listen: ${NOT_SET_ANYWHERE}\n")
    assert errors == [
        (
            "status.listen",
            4,
            "environment variable NOT_SET_ANYWHERE is not set and has no default "
            "(write ${NOT_SET_ANYWHERE:-default} to give one)",
        )
    ]


def test_every_error_at_once_in_line_order() -> None:
    errors = errors_of(
        "app:\n  port: -1\n  colour: blue\n"
        "admin:\n  listen: ${NOPE}\n"
        "lifecycle:\n  drain_timeout: 5\n"
        "telemetry:\n  log_level: loud\n"
    )
    assert [(path, line) for path, line, _ in errors] == [
        ("app.port", 2),
        ("app.colour", 3),
        ("admin.listen", 5),
        ("lifecycle.drain_timeout", 7),
        ("telemetry.log_level", 9),
    ]


def test_duplicate_keys_are_errors() -> None:
    errors = errors_of("app:\n  port: 1\n  port: 2\n")
    assert errors == [("app.port", 3, "duplicate key")]


def test_error_text_names_source_and_count() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("app:\n  port: x\n", "pod/pillion.yaml", {})
    text = str(caught.value)
    assert text.splitlines()[0] == "pod/pillion.yaml: 1 error"
    assert "app.port (line 2):" in text
    assert caught.value.exit_code == 2


def test_secret_values_never_appear_in_errors() -> None:
    secret = "hunter2-do-not-print"
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "admin:\n  auth_token: ['${TOKEN}']\n  listen: ${TOKEN}:x\n"
            "status:\n  listen: x${TOKEN}\n",
            "x.yaml",
            {"TOKEN": secret},
        )
    rendered = str(caught.value) + repr(caught.value.issues)
    assert [i.path for i in caught.value.issues] == [
        "admin.auth_token",
        "admin.listen",
        "status.listen",
    ]
    assert secret not in rendered
    assert "<from environment>" in rendered


def test_secret_is_redacted_in_repr_and_dump() -> None:
    config = parse_config("admin:\n  auth_token: hunter2\n", "x.yaml", {})
    assert config.admin.auth_token is not None
    assert config.admin.auth_token.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.model_dump())
    assert config.model_dump(mode="json")["admin"]["auth_token"] == "***"


def test_load_config_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yaml")
    assert "cannot read" in str(caught.value)
    assert "No such file" in str(caught.value)


def test_load_config_reads_env(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("app:\n  port: ${P}\n")
    assert load_config(path, {"P": "1234"}).app.port == 1234


def test_aliases_work_but_an_alias_bomb_is_refused() -> None:
    ok = parse_config("app: &a {port: 81}\nx-unused: 1\n".replace("x-unused: 1\n", ""), "x", {})
    assert ok.app.port == 81
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
    )
    [(path, line, message)] = errors_of(bomb)
    assert (path, line) == ("(document)", 1)
    assert "expands to more than" in message


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:- \n\t{}[]&*!#'\"$%|>@`,?~0.9")), max_size=80))
def test_any_text_gives_a_config_or_a_config_error(text: str) -> None:
    issues = outcome(text)
    assert issues is None or (issues and all(i.path and i.message for i in issues))


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["app", "admin", "port", "listen", "x"]), inner, max_size=3
            )
        ),
        max_leaves=12,
    )
)
def test_any_yaml_structure_gives_a_config_or_a_config_error(document: object) -> None:
    issues = outcome(yaml.safe_dump(document))
    assert issues is None or issues


def outcome(text: str) -> list[ConfigIssue] | None:
    """None for a valid config, else the issues of the ``ConfigError``."""
    try:
        parse_config(text, "fuzz.yaml", {})
    except ConfigError as exc:
        return exc.issues
    return None


def test_unknown_yaml_tag_is_a_config_error() -> None:
    [(path, line, message)] = errors_of("app:\n  port: !weird 80\n")
    assert (path, line) == ("(yaml)", 2)
    assert "!weird" in message


def test_rate_limit_by_header_needs_the_header() -> None:
    text = "proxy:\n  inbound:\n    - rate_limit: {rate: 1, key: header}\n"
    [(path, line, message)] = errors_of(text)
    assert (path, line) == ("proxy.inbound[0].rate_limit", 3)
    assert "set `header` exactly when `key` is `header`" in message


@pytest.mark.parametrize(
    ("routes", "path", "hint"),
    [
        ("[{match: {regex: '(['}}]", "proxy.inbound[0].routes[0].match.regex", "invalid regex"),
        (
            "[{match: {prefix: /}}, {match: {exact: /a}}]",
            "proxy.inbound[0].routes",
            "routes[1] can never match: routes[0]",
        ),
        ("[{match: {exact: /a, prefix: /}}]", "proxy.inbound[0].routes[0].match", "one of"),
        (
            "[{match: {exact: /a}, prefix_rewrite: /b}]",
            "proxy.inbound[0].routes[0]",
            "prefix_rewrite needs a prefix",
        ),
        ("[{cluster: nowhere}]", "proxy", "no cluster 'nowhere'"),
        (
            "[{weighted_clusters: [{cluster: x, weight: 0}]}]",
            "proxy.inbound[0].routes[0]",
            "weight above 0",
        ),
        (
            "[{weighted_clusters: [{cluster: x, weight: 1}], direct_response: {status: 200}}]",
            "proxy.inbound[0].routes[0]",
            "set one of",
        ),
        (
            "[{direct_response: {status: 99}}]",
            "proxy.inbound[0].routes[0].direct_response.status",
            "greater than or equal to 200",
        ),
        ("[{retry: {statuses: [200]}}]", "proxy.inbound[0].routes[0].retry.statuses", "200"),
        (
            "[{retry: {max_retries: 11}}]",
            "proxy.inbound[0].routes[0].retry.max_retries",
            "less than or equal to 10",
        ),
        (
            "[{set_request_headers: {Host: evil}}]",
            "proxy.inbound[0].routes[0].set_request_headers",
            "Pillion writes it itself",
        ),
        (
            '[{add_response_headers: {x-a: "one\\r\\nx-b: two"}}]',
            "proxy.inbound[0].routes[0].add_response_headers",
            "line break",
        ),
        (
            "[{remove_response_headers: ['bad name']}]",
            "proxy.inbound[0].routes[0].remove_response_headers",
            "not a header name",
        ),
        (
            "[{rate_limit: {rate: 0}}]",
            "proxy.inbound[0].routes[0].rate_limit.rate",
            "greater than 0",
        ),
    ],
)
def test_bad_routes_are_refused_with_their_path(routes: str, path: str, hint: str) -> None:
    errors = errors_of(f"proxy:\n  inbound:\n    - routes: {routes}\n")
    assert any(p == path and hint in message for p, _, message in errors), errors


@pytest.mark.parametrize(
    "text",
    [
        "logs:\n  inputs: [{name: a, paths: [/a.log]}]\n  outputs:\n    - {name: o, type: http, "
        "url: 'http://u:p@h/x', headers: {Authorization: t}}\n",
        "app:\n  notify:\n    - name: n\n      http: {url: 'http://tok@h/', "
        "headers: {authorization: t}}\n",
    ],
)
def test_credentials_in_the_url_and_an_authorization_header_are_refused(text: str) -> None:
    errors = errors_of(text)
    assert any("keep one of the two" in message for _, _, message in errors), errors


@pytest.mark.parametrize(
    ("sources", "path", "hint"),
    [
        ("[{name: a, type: file, path: /a.yaml, common_name: x}]", "secrets.sources[0]",
         "common_name applies to type pki only, not file"),
        ("[{name: a, type: env, prefix: A_, path: /a}]", "secrets.sources[0]",
         "path applies to type kv or dynamic or pki or file or directory only, not env"),
        ("[{name: a, type: directory, path: /d, kv_version: 1, ttl: 1h}]", "secrets.sources[0]",
         "kv_version applies to type kv only; ttl applies to type pki only, not directory"),
        ("[{name: a, type: file, path: /a.yaml, prefix: A_}]", "secrets.sources[0]",
         "prefix applies to type env only, not file"),
    ],
)  # fmt: skip
def test_a_source_key_another_type_reads_is_refused(sources: str, path: str, hint: str) -> None:
    templates = "[{name: t, destination: /t, format: json, source: a}]"
    text = f"secrets:\n  sources: {sources}\n  templates: {templates}\n"
    errors = errors_of(text)
    assert any(p == path and hint in message for p, _, message in errors), errors


@pytest.mark.parametrize("key", ["jwt_required: true", "api_key_required: false",
                                 "authorization: {identities: [spiffe://x]}"])  # fmt: skip
def test_an_outbound_route_refuses_the_checks_of_inbound_routes(key: str) -> None:
    text = (
        "proxy:\n  outbound:\n    - routes:\n        - {match: {prefix: /b}, cluster: c}\n"
        f"        - {{match: {{prefix: /}}, cluster: c, {key}}}\n"
        "  clusters: [{name: c, endpoints: ['127.0.0.1:1']}]\n"
    )
    [(path, line, message)] = errors_of(text)
    assert (path, line) == ("proxy.outbound[0]", 3)
    assert f"routes[1].{key.split(':')[0]}: an outbound listener checks no callers" in message


@pytest.mark.parametrize(
    ("template", "hint"),
    [
        ("{{ config.app.key }}", "template t: line 1: no source named app (sources: a)"),
        ("x\n{{ config['b'].key }}", "template t: line 2: no source named b (sources: a)"),
        ("{{ secrets.a.key }}", "t: secrets is not defined (sources are config.<source>.<key>)"),
        ("{% if %}", "template t: line 1: Expected an expression"),
        ("{{ config.a.key | toJSON }}", "template t: line 1: No filter named 'toJSON'"),
    ],
)  # fmt: skip
def test_an_inline_template_is_checked_with_the_config(template: str, hint: str) -> None:
    text = (
        "config:\n  sources: [{name: a, type: env, prefix: A_}]\n"
        f"  templates: [{{name: t, destination: /t, template: {json.dumps(template)}}}]\n"
    )
    [(path, _, message)] = errors_of(text)
    assert path == "config"
    assert hint in message


def test_an_inline_template_may_loop_set_and_filter() -> None:
    template = (
        "{% set n = config.a | length %}{% for k, v in config['a'].items() %}"
        "{{ k }}={{ v | b64encode }} of {{ n }}{% endfor %}{{ config.a | json }}"
    )
    text = (
        "config:\n  sources: [{name: a, type: env, prefix: A_}]\n"
        f"  templates: [{{name: t, destination: /t, template: {json.dumps(template)}}}]\n"
    )
    config = parse_config(text, "test.yaml", {}).config
    assert config is not None
    assert config.templates[0].template == template


def test_a_file_for_a_newer_config_format_is_refused_by_name() -> None:
    [(path, line, message)] = errors_of("version: 2\napp: {port: 8080}\n")
    assert (path, line) == ("version", 1)
    assert message.startswith("the file is written for config format 2, of a newer Pillion")
    assert "which reads format 1" in message
    assert parse_config("version: 1\napp: {port: 8080}\n", "v1.yaml", {}).version == 1
    [(path, _, _)] = errors_of("version: 0\n")
    assert path == "version"
