"""What a new config would change, in the words of whoever runs Pillion, before it
is applied: ``describe_changes(old, new)``, one line per change.

``+`` added or turned on, ``-`` removed or turned off, ``~`` changed::

    + section logs
    - section exporters
    + listener inbound-2 on 0.0.0.0:15007
    + tcp listener db on 127.0.0.1:15432
    - outbound listener legacy on 127.0.0.1:15008
    ~ listener inbound: listen 0.0.0.0:15006 -> 0.0.0.0:15007
    + route orders on inbound
    ~ route orders on inbound: timeout 30s -> 10s
    ~ route (prefix /api) on inbound: retry turned on
    ~ routes on inbound: order health, orders -> orders, health
    + cluster payments to 10.0.0.1:8080, 10.0.0.2:8080
    - cluster legacy to 10.0.0.9:8080
    ~ cluster payments: timeouts.connect 1s -> 2s
    + log output loki (loki https://loki.example/loki/api/v1/push)
    ~ secret template env: template changed (3 -> 4 lines)
    ~ admin: auth_token changed (value hidden)

Things are known by their names (a route without one by its match); the changed
keys are dotted paths inside the thing, with values as in ``pillion.yaml``
(``30s``, ``64KiB``, ``null``, ``(absent)`` for a key a mapping gains or loses).
A feature turned on lists what it opens (listeners, clusters, inputs, ...); one
turned off, what it closes.

Secrets never show: every value is shown as ``/config`` shows it (secrets, a URL's
password and credential-like query values, credential-like header values as
``***``), but compared in full, so a changed secret is reported as ``changed
(value hidden)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pillion.config.models import FEATURES, PillionConfig
from pillion.config.redaction import REDACTED, REVEAL, sensitive_name

__all__ = ["describe_changes"]

_LONG = 80  # characters: a longer or multi-line text is not shown, only that it changed
_PLAIN_SECTIONS = ("app", "admin", "status", "lifecycle", "telemetry")
_HEADER_MATCH = {"name", "exact", "regex", "present"}  # a route's header condition


def describe_changes(old: PillionConfig, new: PillionConfig) -> list[str]:
    """What going from ``old`` to ``new`` changes, one line per change (none: the
    same config); secret values never appear."""
    before, after = _dump(old), _dump(new)
    lines: list[str] = []
    for name in _PLAIN_SECTIONS:
        skip = {"notify"} if name == "app" else set()
        lines += _changed(name, before[name], after[name], skip)
    _things(
        lines,
        "notify target",
        before["app"].entries("notify"),
        after["app"].entries("notify"),
        detail=_notify_kind,
    )
    for name in FEATURES:
        was, now = before[name], after[name]
        if was.real is None and now.real is None:
            continue
        if was.real is None:
            lines.append(f"+ section {name}")
        elif now.real is None:
            lines.append(f"- section {name}")
        else:
            lines += _changed(name, was, now, _COLLECTIONS[name])
        _FEATURE_THINGS[name](lines, was, now)
    return lines


@dataclass(frozen=True)
class _Value:
    """A part of the config as shown (redacted) and as it is (only ever compared)."""

    shown: Any
    real: Any

    def __getitem__(self, key: str | int) -> _Value:
        return _Value(self.shown[key], self.real[key])

    def get(self, key: str) -> _Value:
        """``key`` of a section that may be off (None): absent is None."""
        if self.real is None:
            return _Value(None, None)
        return self[key]

    def entries(self, key: str) -> list[_Value]:
        """The list at ``key`` (empty when the section is off)."""
        value = self.get(key)
        return [value[i] for i in range(len(value.real))] if value.real is not None else []


def _dump(config: PillionConfig) -> dict[str, _Value]:
    shown = _hide_header_matches(config.model_dump(mode="json"))
    real = config.model_dump(mode="json", context=REVEAL)
    return {name: _Value(shown[name], real[name]) for name in real}


def _hide_header_matches(value: Any) -> Any:
    """A route's condition on a credential-like header (``Authorization``) shows its
    value as ``***``, as header values set by routes do."""
    if isinstance(value, list):
        return [_hide_header_matches(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == _HEADER_MATCH and sensitive_name(str(value["name"])):
        return {**value, **{k: REDACTED for k in ("exact", "regex") if value[k] is not None}}
    return {key: _hide_header_matches(item) for key, item in value.items()}


# -- things with a name: added, removed, changed --


def _things(
    lines: list[str],
    noun: str,
    old: Sequence[_Value] | _Value,
    new: Sequence[_Value] | _Value,
    *,
    key: Callable[[Any], str] = lambda shown: str(shown["name"]),
    detail: Callable[[Any], str] = lambda shown: "",
    where: str = "",
    skip: frozenset[str] | set[str] = frozenset(),
) -> list[tuple[str, _Value, _Value]]:
    """Lines for the things of two lists (or two optional singletons: ``key`` ""),
    known by ``key``; the ones in both, in the new order, for a closer look."""
    before, after = _keyed(old, key), _keyed(new, key)
    for name, thing in before.items():
        if name not in after:
            lines.append(f"- {_title(noun, name)}{where}{detail(thing.shown)}")
    for name, thing in after.items():
        if name not in before:
            lines.append(f"+ {_title(noun, name)}{where}{detail(thing.shown)}")
    both = [(name, before[name], thing) for name, thing in after.items() if name in before]
    for name, was, now in both:
        lines += _changed(f"{_title(noun, name)}{where}", was, now, skip)
    return both


def _keyed(things: Sequence[_Value] | _Value, key: Callable[[Any], str]) -> dict[str, _Value]:
    if isinstance(things, _Value):  # an optional singleton
        return {} if things.real is None else {"": things}
    keyed: dict[str, _Value] = {}
    for thing in things:
        name = key(thing.shown)
        unique, n = name, 1
        while unique in keyed:  # names are distinct where it matters; never lose one
            n += 1
            unique = f"{name} #{n}"
        keyed[unique] = thing
    return keyed


def _title(noun: str, name: str) -> str:
    return " ".join(part for part in (noun, name) if part)


def _changed(title: str, old: _Value, new: _Value, skip: frozenset[str] | set[str]) -> list[str]:
    return [f"~ {title}: {change}" for change in _changes(old, new, "", skip)]


def _changes(
    old: _Value, new: _Value, path: str, skip: frozenset[str] | set[str] = frozenset()
) -> Iterator[str]:
    """``path`` and how it changed, for every value that differs below ``old`` / ``new``."""
    if old.real == new.real:
        return
    if isinstance(old.shown, dict) and isinstance(new.shown, dict):
        keys = [*old.shown, *(k for k in new.shown if k not in old.shown)]
        for key in keys:
            if not path and key in skip:
                continue
            inner = f"{path}.{key}" if path else str(key)
            if key not in new.shown:
                yield f"{inner} {_show(old.shown[key])} -> (absent)"
            elif key not in old.shown:
                yield f"{inner} (absent) -> {_show(new.shown[key])}"
            else:
                yield from _changes(old[key], new[key], inner)
        return
    if (
        isinstance(old.shown, list)
        and isinstance(new.shown, list)
        and len(old.shown) == len(new.shown)
        and any(isinstance(item, dict) for item in [*old.shown, *new.shown])
    ):
        for index in range(len(old.shown)):
            yield from _changes(old[index], new[index], f"{path}[{index}]")
        return
    yield f"{path} {_leaf(old.shown, new.shown)}"


def _leaf(old: Any, new: Any) -> str:
    if old == new:  # what differs is hidden: a secret, a password in a URL
        return "changed (value hidden)"
    if isinstance(new, dict) and old is None:
        return "turned on"
    if isinstance(old, dict) and new is None:
        return "turned off"
    if isinstance(old, str) and isinstance(new, str) and (_long(old) or _long(new)):
        return f"changed ({_line_count(old)} -> {_line_count(new)} lines)"
    return f"{_show(old)} -> {_show(new)}"


def _long(text: str) -> bool:
    return len(text) > _LONG or "\n" in text.rstrip("\n")


def _line_count(text: str) -> int:
    return len(text.splitlines())


def _show(value: Any) -> str:
    """A value as it would be written in ``pillion.yaml`` (flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if _long(value):
            return f"({_line_count(value)} lines)"
        plain = value and value == value.strip() and not any(c in value for c in "\n,[]{}#")
        return value if plain else json.dumps(value)
    if isinstance(value, list):
        return f"[{', '.join(_show(item) for item in value)}]"
    if isinstance(value, dict):
        shown = (f"{key}: {_show(item)}" for key, item in value.items() if item is not None)
        return f"{{{', '.join(shown)}}}"
    return str(value)


# -- each feature's things --


def _proxy(lines: list[str], old: _Value, new: _Value) -> None:
    both = _things(
        lines,
        "",
        _listeners(old),
        _listeners(new),
        key=_listener_key,
        detail=_listener_detail,
        skip={"name", "kind", "routes"},
    )
    for _, was, now in both:
        if "routes" in now.real:  # an HTTP listener (the same kind in both)
            _routes(lines, str(now.shown["name"]), was.entries("routes"), now.entries("routes"))
    _things(
        lines,
        "cluster",
        old.entries("clusters"),
        new.entries("clusters"),
        detail=lambda c: f" to {', '.join(c['endpoints'])}" if c["endpoints"] else "",
    )


def _listeners(proxy: _Value) -> list[_Value]:
    """Every listener, its kind added: ``inbound``, ``outbound``, ``tcp``."""
    found = []
    for kind in ("inbound", "outbound", "tcp"):
        for listener in proxy.entries(kind):
            found.append(_Value({**listener.shown, "kind": kind}, {**listener.real, "kind": kind}))
    return found


def _listener_key(shown: Any) -> str:
    """A listener that changes kind is another listener: one closes, one opens."""
    noun = "listener" if shown["kind"] == "inbound" else f"{shown['kind']} listener"
    return f"{noun} {shown['name']}"


def _listener_detail(shown: Any) -> str:
    return f" on {shown['listen']}"


def _routes(lines: list[str], listener: str, old: list[_Value], new: list[_Value]) -> None:
    both = _things(lines, "route", old, new, key=_route_key, where=f" on {listener}", skip={"name"})
    common = {name for name, _, _ in both}
    order_before = [name for name in _keyed(old, _route_key) if name in common]
    order_after = [name for name, _, _ in both]
    if order_before != order_after:  # the first route that matches takes the request
        lines.append(
            f"~ routes on {listener}: order {', '.join(order_before)} -> {', '.join(order_after)}"
        )


def _route_key(shown: Any) -> str:
    """Its name, or what it matches: ``(prefix /api GET,POST header x-env=prod)``."""
    if shown["name"] is not None:
        return str(shown["name"])
    match = shown["match"]
    parts = [f"{kind} {match[kind]}" for kind in ("exact", "prefix", "regex") if match[kind]]
    if match["methods"]:
        parts.append(",".join(match["methods"]))
    for header in match["headers"]:
        condition = f"header {header['name']}"
        if header["exact"] is not None:
            condition += f"={header['exact']}"
        elif header["regex"] is not None:
            condition += f"~{header['regex']}"
        elif not header["present"]:
            condition += " absent"
        parts.append(condition)
    return f"({' '.join(parts) or 'any path'})"


def _logs(lines: list[str], old: _Value, new: _Value) -> None:
    _things(
        lines,
        "log input",
        old.entries("inputs"),
        new.entries("inputs"),
        detail=lambda i: f" ({', '.join(i['paths'])})",
    )
    _things(
        lines, "log output", old.entries("outputs"), new.entries("outputs"), detail=_output_detail
    )


def _output_detail(shown: Any) -> str:
    target = shown["url"] or shown["path"] or shown["address"]
    return f" ({shown['type']} {target})" if target else f" ({shown['type']})"


def _sources_and_templates(lines: list[str], section: str, old: _Value, new: _Value) -> None:
    _things(
        lines,
        f"{section} source",
        old.entries("sources"),
        new.entries("sources"),
        detail=_source_detail,
    )
    _things(
        lines,
        f"{section} template",
        old.entries("templates"),
        new.entries("templates"),
        detail=lambda t: f" -> {t['destination']}",
    )


def _source_detail(shown: Any) -> str:
    where = shown.get("path")
    return f" ({shown['type']} {where})" if where else f" ({shown['type']})"


def _secrets(lines: list[str], old: _Value, new: _Value) -> None:
    _sources_and_templates(lines, "secret", old, new)


def _config(lines: list[str], old: _Value, new: _Value) -> None:
    _sources_and_templates(lines, "config", old, new)
    _things(
        lines,
        "config watch",
        old.entries("watch"),
        new.entries("watch"),
        detail=lambda w: f" ({', '.join(w['paths'])})",
    )


def _exporters(lines: list[str], old: _Value, new: _Value) -> None:
    _things(
        lines,
        "json exporter",
        old.entries("json"),
        new.entries("json"),
        detail=lambda j: f" ({j['url']})",
    )
    _things(lines, "statsd exporter", old.get("statsd"), new.get("statsd"), detail=_statsd_detail)
    _things(
        lines,
        "metrics from log input",
        old.entries("from_logs"),
        new.entries("from_logs"),
        key=lambda f: str(f["input"]),
        detail=lambda f: f" ({len(f['metrics'])} metrics)",
    )
    _things(
        lines,
        "merge of the app's metrics",
        old.get("merge_app"),
        new.get("merge_app"),
        detail=lambda m: f" ({m['url']})",
    )


def _statsd_detail(shown: Any) -> str:
    ports = [f"{kind} {shown[kind]}" for kind in ("udp", "tcp") if shown[kind]]
    return f" ({', '.join(ports)})" if ports else ""


def _notify_kind(shown: Any) -> str:
    kinds = [kind for kind in ("signal", "http", "exec") if shown[kind] is not None]
    return f" ({', '.join(kinds)})" if kinds else ""


_FEATURE_THINGS: dict[str, Callable[[list[str], _Value, _Value], None]] = {
    "proxy": _proxy,
    "logs": _logs,
    "secrets": _secrets,
    "config": _config,
    "exporters": _exporters,
}

_COLLECTIONS: dict[str, set[str]] = {
    "proxy": {"inbound", "outbound", "tcp", "clusters"},
    "logs": {"inputs", "outputs"},
    "secrets": {"sources", "templates"},
    "config": {"sources", "templates", "watch"},
    "exporters": {"json", "statsd", "from_logs", "merge_app"},
}
