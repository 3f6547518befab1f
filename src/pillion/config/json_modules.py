"""json_exporter's modules (its ``config.yml``: ``modules: <name>: {headers, metrics,
http_client_config, body, valid_status_codes}``) as the metrics of one
``exporters.json[]`` target. No I/O but what ``yamlfile`` reads.

Each json_exporter metric becomes Pillion rules that give the series json_exporter
gives: a ``value`` metric one rule; an ``object`` metric one rule per entry of its
``values`` (named ``<name>_<key>``), over the matches of its ``path``. Paths and
label templates in braces (``{ .a }``, ``planet-{ .location }``) are read as they
are; text values are read as json_exporter reads them (``true``/``false`` as 1/0,
``null`` as NaN, ``valueconverter`` in any case).

What json_exporter itself ignores (a key it does not read, such as the camel-case
``epochTimestamp``) is accepted with a warning and has no effect here either. What
Pillion cannot do the same way is refused by name, with what to write instead.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from pillion.config.json_metrics import JsonMetricConfig
from pillion.config.jsonpath import is_multi, parse_path, parse_template, template_spans

__all__ = ["ModuleRules", "translate_config", "translate_module"]

Path_ = tuple[str | int, ...]
Problem = tuple[Path_, str]

_METRIC_KEYS = {"name", "path", "labels", "type", "valuetype", "epochtimestamp", "help",
                "values", "allow_missing_key", "valueconverter"}  # fmt: skip
_MODULE_KEYS = {"headers", "metrics", "http_client_config", "body", "valid_status_codes"}
# Go's strconv.ParseBool, which json_exporter reads a text value with after ParseFloat
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_NOT_HONOURED = (
    "Pillion fetches the target itself, directly, with no proxy, client certificate or token file"
)


@dataclass(frozen=True)
class ModuleRules:
    """What a module makes of a target: its metrics and how it is fetched."""

    metrics: tuple[JsonMetricConfig, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None  # POSTed when set
    status_codes: tuple[int, ...] = ()  # () : any 2xx
    follow_redirects: bool = True


@dataclass
class _Result:
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)

    def refuse(self, path: Path_, message: str) -> None:
        self.problems.append((path, message))

    def warn(self, path: Path_, message: str) -> None:
        self.notes.append((path, message))


def translate_config(
    document: Any, module: str
) -> tuple[ModuleRules | None, list[Problem], list[Problem]]:
    """Module ``module`` of json_exporter's ``config.yml``: the rules, the problems that
    refuse it, and the warnings (paths in the file)."""
    result = _Result()
    if not isinstance(document, dict):
        result.refuse((), "the top level must be a mapping (modules:)")
        return None, result.problems, result.notes
    if "modules" not in document and "metrics" in document:
        result.refuse(("metrics",), "json_exporter's format before 0.3.0 (metrics at the top "
                      "level): put them under modules: {default: {metrics: [...]}}")  # fmt: skip
        return None, result.problems, result.notes
    for key in document:
        if key != "modules":
            result.warn((key,), f"json_exporter does not read {key!r} (only modules:), nor "
                        "does Pillion: remove it")  # fmt: skip
    modules = document.get("modules")
    if not isinstance(modules, dict) or module not in modules:
        known = ", ".join(sorted(map(str, modules))) if isinstance(modules, dict) else "none"
        result.refuse(("modules",), f"no module {module!r} (modules: {known})")
        return None, result.problems, result.notes
    rules = _module(modules[module], ("modules", module), result)
    return rules, result.problems, result.notes


def translate_module(body: Any) -> tuple[ModuleRules | None, list[Problem], list[Problem]]:
    """One module written inline (``exporters.json[].json_exporter``)."""
    result = _Result()
    rules = _module(body, (), result)
    return rules, result.problems, result.notes


def _module(body: Any, where: Path_, result: _Result) -> ModuleRules | None:
    if not isinstance(body, dict):
        result.refuse(where, "a module is a mapping (metrics:, headers:...)")
        return None
    for key in body:
        if key not in _MODULE_KEYS:
            result.warn((*where, key), f"json_exporter does not read {key!r} in a module, nor "
                        "does Pillion: remove it")  # fmt: skip
    headers = _headers(body.get("headers"), (*where, "headers"), result)
    client = _client(body.get("http_client_config"), (*where, "http_client_config"), result)
    for name, value in client.items():
        if name in headers:
            result.refuse((*where, "http_client_config"), f"{name} also in headers: write it "
                          "once")  # fmt: skip
        headers[name] = value
    metrics: list[JsonMetricConfig] = []
    listed = body.get("metrics")
    if not isinstance(listed, list) or not listed:
        result.refuse((*where, "metrics"), "a module needs metrics (a list)")
    else:
        for index, metric in enumerate(listed):
            metrics += _metric(metric, (*where, "metrics", index), result)
    body_text = _body(body.get("body"), (*where, "body"), result)
    codes = body.get("valid_status_codes") or []
    if not isinstance(codes, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes
    ):
        result.refuse((*where, "valid_status_codes"), "a list of HTTP status codes")
        codes = []
    redirects = True
    if isinstance(body.get("http_client_config"), dict):
        redirects = body["http_client_config"].get("follow_redirects", True) is not False
    if result.problems:
        return None
    return ModuleRules(tuple(metrics), headers, body_text, tuple(codes), redirects)


def _headers(value: Any, where: Path_, result: _Result) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        result.refuse(where, "headers are a mapping of names to values")
        return {}
    return {name: _text(text) for name, text in value.items()}


def _client(config: Any, where: Path_, result: _Result) -> dict[str, str]:
    """prometheus/common's http_client_config, as header fields: what Pillion can do the
    same way (credentials written in the file); the rest refused by name."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        result.refuse(where, "a mapping")
        return {}
    headers: dict[str, str] = {}
    for key, value in config.items():
        at = (*where, key)
        if key == "basic_auth" and isinstance(value, dict):
            extra = sorted(set(value) - {"username", "password"})
            if extra:
                result.refuse((*at, extra[0]), f"{_NOT_HONOURED}: write the credentials "
                              "in the file (username, password), or the header in "
                              "pillion.yaml's exporters.json[].headers with ${ENV}")  # fmt: skip
                continue
            pair = f"{_text(value.get('username', ''))}:{_text(value.get('password', ''))}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif key == "authorization" and isinstance(value, dict):
            extra = sorted(set(value) - {"type", "credentials"})
            if extra:
                result.refuse((*at, extra[0]), f"{_NOT_HONOURED}: write credentials: in "
                              "the file, or the header in pillion.yaml's "
                              "exporters.json[].headers with ${ENV}")  # fmt: skip
                continue
            kind = _text(value.get("type") or "Bearer")
            headers["Authorization"] = f"{kind} {_text(value.get('credentials', ''))}"
        elif key == "bearer_token":
            headers["Authorization"] = f"Bearer {_text(value)}"
        elif key == "follow_redirects" and isinstance(value, bool):
            pass  # honoured: the fetch follows redirects or not
        elif key == "enable_http2" and isinstance(value, bool):
            pass  # json_exporter fetches over HTTP/1.1 whatever it says, as Pillion does
        elif key == "tls_config" and isinstance(value, dict):
            for name, setting in value.items():
                if not (name == "insecure_skip_verify" and setting is False):
                    result.refuse((*at, name), "Pillion checks an https target against "
                                  "the system's CAs, with no client certificate: scrape the "
                                  "app over http on loopback (it is in the same pod)")  # fmt: skip
        else:
            hint = {
                "bearer_token_file": "write bearer_token, or the header in pillion.yaml's "
                "exporters.json[].headers with ${ENV}",
                "oauth2": "fetch the token elsewhere and set the Authorization header in "
                "pillion.yaml's exporters.json[].headers",
            }.get(key, "remove it: the app is fetched directly, on loopback")
            result.refuse(at, f"{_NOT_HONOURED}: {key} cannot be honoured; {hint}")
    return headers


def _body(value: Any, where: Path_, result: _Result) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        result.refuse(where, "body is a mapping (content:, templatize:)")
        return None
    for key in value:
        if key not in ("content", "templatize"):
            result.warn((*where, key), f"json_exporter does not read {key!r}: remove it")
    if value.get("templatize"):
        result.refuse((*where, "templatize"), "Pillion fetches on its own, with no probe "
                      "parameters to render: write the rendered body as content, with "
                      "templatize: false")  # fmt: skip
        return None
    content = _text(value.get("content") or "")
    return content or None


def _metric(metric: Any, where: Path_, result: _Result) -> list[JsonMetricConfig]:
    if not isinstance(metric, dict):
        result.refuse(where, "a metric is a mapping (name:, path:...)")
        return []
    for key in metric:
        if key == "epochTimestamp":
            result.warn((*where, key), "json_exporter does not read epochTimestamp (its key "
                        "is epochtimestamp), so its series carry no timestamp; nor do "
                        "Pillion's: remove it")  # fmt: skip
        elif key not in _METRIC_KEYS:
            hint = f" (its key is {key.lower()})" if key.lower() in _METRIC_KEYS else ""
            result.warn((*where, key), f"json_exporter does not read {key!r}{hint}, nor "
                        "does Pillion: remove it")  # fmt: skip
    if "epochtimestamp" in metric:
        result.refuse((*where, "epochtimestamp"), "Pillion serves JSON values at scrape "
                      "time, without a timestamp (one turns off Prometheus' staleness "
                      "handling, as json_exporter's README warns): remove it")  # fmt: skip
    name = metric.get("name")
    kind = metric.get("type", "value")
    if not isinstance(name, str) or not name:
        result.refuse((*where, "name"), "a metric needs a name")
        return []
    if kind not in ("value", "object"):
        result.refuse((*where, "type"), f"type is value or object, not {kind!r}")
        return []
    valuetype = metric.get("valuetype", "untyped")
    if valuetype not in ("gauge", "counter", "untyped"):
        result.refuse((*where, "valuetype"), f"valuetype is gauge, counter or untyped, not "
                      f"{valuetype!r}")  # fmt: skip
        return []
    path = metric.get("path")
    if not isinstance(path, str):
        result.refuse((*where, "path"), "a metric needs a path ({ .a.b })")
        return []
    labels = metric.get("labels") or {}
    if not isinstance(labels, dict):
        result.refuse((*where, "labels"), "labels are a mapping")
        return []
    labels = {str(key): _text(value) for key, value in labels.items()}
    base: dict[str, Any] = {
        "help": _text(metric.get("help") or name),
        "type": valuetype,
        "optional": metric.get("allow_missing_key") is True,
    }
    converter = metric.get("valueconverter")
    if kind == "value":
        if metric.get("values"):
            result.warn((*where, "values"), "json_exporter reads values on type: object "
                        "only, and so does Pillion: remove it")  # fmt: skip
        if converter:
            result.warn((*where, "valueconverter"), "applies to type: object only, in "
                        "json_exporter as here: remove it")  # fmt: skip
        rule = {**base, "name": name, "labels": labels, **_value(path, (*where, "path"), result)}
        return _built([(rule, (*where, "path"), False)], name, where, result)
    values = metric.get("values") or {}
    if not isinstance(values, dict) or not values:
        result.warn((*where, "values"), "an object metric without values: json_exporter "
                    "makes no series of it, nor does Pillion")  # fmt: skip
        return []
    conversions = _conversions(converter, values, (*where, "valueconverter"), result)
    try:
        steps = parse_path(path)
    except ValueError as exc:
        result.refuse((*where, "path"), str(exc))
        return []
    rules = []
    for key, text in values.items():
        at = (*where, "values", key)
        if is_multi(steps):  # one element per match
            rule = {**base, "each": path, "labels": labels, **_value(_text(text), at, result)}
        else:  # the one value the path leads to is the element
            rule = {**base, "labels": {k: _under(path, v) for k, v in labels.items()},
                    **_value(_under(path, _text(text)), at, result)}  # fmt: skip
        mapped = conversions.get(_text(text))
        if mapped is not None:
            rule["value_map"] = mapped
        rules.append(({**rule, "name": f"{name}_{key}"}, at, mapped is not None))
    return _built(rules, name, where, result)


def _built(rules: list[tuple[dict[str, Any], Path_, bool]], name: str, where: Path_,
           result: _Result) -> list[JsonMetricConfig]:  # fmt: skip
    built = []
    for rule, at, folded in rules:
        if "path" not in rule and "value" not in rule:
            continue  # refused already
        if rule["type"] == "counter" and not rule["name"].endswith("_total"):
            result.refuse((*where, "valuetype"), f"counter: Pillion serves a counter as "
                          f"{rule['name']}_total, as OpenMetrics names counters, so the "
                          f"series would not be json_exporter's {rule['name']}: write "
                          "valuetype: untyped to keep its name (Prometheus' queries read it "
                          "the same), or name it ..._total")  # fmt: skip
            return []
        value_map = {**_BOOLEANS, **rule.pop("value_map", {})}
        if folded:
            value_map = {key.lower(): number for key, number in value_map.items()}
        try:
            config = JsonMetricConfig.model_validate({**rule, "value_map": value_map})
        except ValidationError as exc:
            for detail in exc.errors(include_input=False, include_url=False):
                key = detail["loc"][0] if detail["loc"] else ""
                place = {"name": (*where, "name"), "labels": (*where, "labels")}.get(str(key), at)
                message = detail["msg"].removeprefix("Value error, ")
                result.refuse(place, f"{key}: {message}" if key else message)
            continue
        config._json_exporter = True
        if folded:
            config._fold_case = True
        built.append(config)
    return built


_BOOLEANS = {**dict.fromkeys(_TRUE[1:], 1.0), **dict.fromkeys(_FALSE[1:], 0.0)}


def _value(text: str, where: Path_, result: _Result) -> dict[str, Any]:
    """``path`` or ``value`` for a json_exporter value text: one path in braces, or a
    number (or true/false) written as it is."""
    if "{" not in text:
        number = _number(text)
        if number is None:
            result.refuse(where, f"{text!r} is no JSONPath in braces ({{ .a }}) and no number")
            return {}
        return {"value": number}
    try:
        template = parse_template(text)
    except ValueError as exc:
        result.refuse(where, str(exc))
        return {}
    if len(template) != 1 or isinstance(template[0], str):
        result.refuse(where, f"{text!r}: text around the JSONPath makes no number: write the "
                      "path alone, in braces")  # fmt: skip
        return {}
    return {"path": text}


def _number(text: str) -> float | None:
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return None


def _conversions(converter: Any, values: dict[str, Any], where: Path_,
                 result: _Result) -> dict[str, dict[str, float]]:  # fmt: skip
    """valueconverter: for each values text, its texts (in any case) to numbers."""
    if not converter:
        return {}
    if not isinstance(converter, dict):
        result.refuse(where, "valueconverter maps a values entry to {text: number}")
        return {}
    texts = {_text(text) for text in values.values()}
    found: dict[str, dict[str, float]] = {}
    for path, mapping in converter.items():
        if path not in texts:
            result.warn((*where, path), "matches no entry of values (json_exporter matches "
                        "them by their text): it has no effect; remove it")  # fmt: skip
            continue
        if not isinstance(mapping, dict):
            result.refuse((*where, path), "a mapping of texts to numbers")
            continue
        numbers: dict[str, float] = {}
        for source, target in mapping.items():
            number = _number(_text(target))
            if number is None:
                result.refuse((*where, path, str(source)), f"{target!r} is not a number")
                continue
            numbers[_text(source).lower()] = number
        found[path] = numbers
    return found


def _under(prefix: str, text: str) -> str:
    """``text``'s paths, which are relative to an element, made relative to the document
    the element is at ``prefix`` of (``{ .values[0] }`` + ``{ .count }`` ->
    ``{.values[0].count}``)."""
    head = prefix.strip()[1:-1].strip()
    head = head[1:] if head[:1] in ("$", "@") else head
    out, position = [], 0
    for start, end, inner in template_spans(text):
        rest = inner[1:] if inner[:1] in ("$", "@") else inner
        out.append(text[position:start])
        out.append("{" + head + rest + "}")
        position = end
    out.append(text[position:])
    return "".join(out)


def _text(value: Any) -> str:
    """A YAML scalar as the text Go's YAML reader gives a string field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
