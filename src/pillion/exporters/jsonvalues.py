"""Samples from a JSON document, by the ``exporters.json[]`` rules. No I/O.

Paths are a JSONPath subset that covers what stats endpoints need: ``$``,
``.key``, ``['key with dots']``, ``[index]``, and ``$.@key`` for an element's
key (or index) in object mode. A value becomes a number if it is one, a
boolean (1, 0), a numeric string, or a text the rule's ``value_map`` knows;
anything else is reported as ``not_a_number`` and skipped, as is a missing
value (``missing``) unless the rule says ``optional``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pillion.config.exporters import JsonMetricConfig, parse_path

__all__ = ["KEY", "Extracted", "extract", "parse_path", "resolve"]

KEY = "@key"
_MISSING = object()


def resolve(document: Any, steps: list[str | int], key: str | None = None) -> Any:
    """The value at ``steps`` (``_MISSING`` when absent); ``@key`` is ``key``."""
    value = document
    for step in steps:
        if step == KEY:
            return _MISSING if key is None else key
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return _MISSING
            value = value[step]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return _MISSING
    return value


def _number(value: Any, value_map: dict[str, float]) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in value_map:
            return value_map[value]
        try:
            return float(value)
        except ValueError:
            return None
    return None


@dataclass
class Extracted:
    """The samples of one rule: (label values, value), and the problems met."""

    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)
    problems: dict[str, int] = field(default_factory=dict)  # reason -> count

    def problem(self, reason: str) -> None:
        self.problems[reason] = self.problems.get(reason, 0) + 1


def _elements(document: Any, each: str | None) -> Iterator[tuple[str | None, Any]]:
    if each is None:
        yield None, document
        return
    found = resolve(document, parse_path(each))
    if isinstance(found, dict):
        yield from ((str(k), v) for k, v in found.items())
    elif isinstance(found, list):
        yield from ((str(i), v) for i, v in enumerate(found))


def extract(document: Any, rule: JsonMetricConfig) -> Extracted:
    """The samples ``rule`` finds in ``document`` (label values in ``rule.labels``
    order)."""
    result = Extracted()
    if rule.each is not None and not isinstance(
        resolve(document, parse_path(rule.each)), dict | list
    ):
        result.problem("missing")
        return result
    path = parse_path(rule.path)
    labels = [(parse_path(v) if v.startswith("$") else v) for v in rule.labels.values()]
    for key, element in _elements(document, rule.each):
        raw = resolve(element, path, key)
        if raw is _MISSING:
            if not rule.optional:
                result.problem("missing")
            continue
        number = _number(raw, rule.value_map)
        if number is None:
            result.problem("not_a_number")
            continue
        values = []
        for label in labels:
            if isinstance(label, str):
                values.append(label)
                continue
            found = resolve(element, label, key)
            values.append("" if found is _MISSING or found is None else _text(found))
        result.samples.append((tuple(values), number))
    return result


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
