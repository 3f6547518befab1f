"""Samples from a JSON document, by the ``exporters.json[]`` rules. No I/O.

Paths are the JSONPath of ``pillion.config.jsonpath``: ``$``, ``.key``, ``['key
with dots']``, ``[index]``, ``$.@key`` for an element's key (or index) in object
mode, and the steps that match several values (wildcards, slices, unions,
``..key``, filters). A value becomes a number if it is one, a boolean (1, 0), a
numeric string, or a text the rule's ``value_map`` knows; anything else is reported
as ``not_a_number`` and skipped, as is a missing value (``missing``) unless the
rule says ``optional``.

A path that cannot be used as the rule needs is reported by reason, and turns the
target's ``up`` to 0 (``PATH_PROBLEMS``): a value path that matched several values
(``several_values``), an ``each`` that led to a value that is no list or map
(``not_a_list``), two elements that gave the same labels (``duplicate_series``: the
first is kept).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pillion.config.exporters import JsonMetricConfig, parse_path
from pillion.config.jsonpath import (
    KEY,
    Descend,
    Filter,
    Slice,
    Step,
    Union,
    Wildcard,
    is_multi,
    is_template,
    parse_template,
)

__all__ = ["KEY", "PATH_PROBLEMS", "Extracted", "extract", "go_text", "matches", "parse_path",
           "resolve"]  # fmt: skip

PATH_PROBLEMS = frozenset({"several_values", "not_a_list", "duplicate_series", "path_error"})
"""Reasons that say a rule's path does not fit the document: the target is not up."""

_MISSING = object()

Match = tuple[str | None, Any]  # (the key it was found under, the value)


def resolve(document: Any, steps: list[Step], key: str | None = None) -> Any:
    """The value at ``steps`` (``_MISSING`` when absent), for a path that matches one
    value at most; ``@key`` is ``key``."""
    value = document
    for step in steps:
        if step == KEY:
            return _MISSING if key is None else key
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return _MISSING
            value = value[step]
        elif isinstance(value, dict) and isinstance(step, str) and step in value:
            value = value[step]
        else:
            return _MISSING
    return value


def matches(document: Any, steps: list[Step], key: str | None = None) -> list[Match]:
    """Every value ``steps`` lead to, each with the key (or index) it was found under."""
    found: list[Match] = [(key, document)]
    for step in steps:
        if step == KEY:
            return [(at, at) for at, _ in found if at is not None]
        following: list[Match] = []
        for _, value in found:
            following.extend(_step(value, step))
        found = following
        if not found:
            break
    return found


def _step(value: Any, step: Step) -> Iterator[Match]:
    if isinstance(step, str):
        if isinstance(value, dict) and step in value:
            yield step, value[step]
    elif isinstance(step, int):
        if isinstance(value, list) and -len(value) <= step < len(value):
            yield str(step % len(value)), value[step]
    elif isinstance(step, Wildcard):
        yield from _children(value)
    elif isinstance(step, Slice):
        if isinstance(value, list):
            for index in range(*slice(step.start, step.stop, step.step).indices(len(value))):
                yield str(index), value[index]
    elif isinstance(step, Union):
        for item in step.items:
            yield from _step(value, item)
    elif isinstance(step, Descend):
        yield from _descend(value, step.key)
    elif isinstance(step, Filter):
        for at, child in _children(value):
            if _passes(child, step):
                yield at, child


def _children(value: Any) -> Iterator[Match]:
    if isinstance(value, dict):
        yield from ((str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        yield from ((str(i), v) for i, v in enumerate(value))


def _descend(value: Any, key: str) -> Iterator[Match]:
    """``key`` in ``value`` and at any depth below it, in document order."""
    if isinstance(value, dict) and key in value:
        yield key, value[key]
    for _, child in _children(value):
        if isinstance(child, dict | list):
            yield from _descend(child, key)


def _passes(element: Any, test: Filter) -> bool:
    """Whether ``element`` passes the filter: an element without the field, or whose
    field is of another type than the literal, does not (but passes ``!=``)."""
    field_value = resolve(element, list(test.path))
    if test.op == "exists":
        return field_value is not _MISSING
    if field_value is _MISSING:
        return False
    literal = test.literal
    if test.op in ("==", "!="):
        equal = _equal(field_value, literal)
        return equal if test.op == "==" else not equal
    if isinstance(literal, str):
        if not isinstance(field_value, str):
            return False
        left: Any = field_value
    else:
        if isinstance(field_value, bool) or not isinstance(field_value, int | float):
            return False
        left = float(field_value)
    if test.op == "<":
        return bool(left < literal)
    if test.op == "<=":
        return bool(left <= literal)
    if test.op == ">":
        return bool(left > literal)
    return bool(left >= literal)


def _equal(value: Any, literal: str | float | bool | None) -> bool:
    if literal is None or isinstance(literal, bool | str):
        return type(value) is type(literal) and value == literal
    return not isinstance(value, bool) and isinstance(value, int | float) and value == literal


@dataclass
class Extracted:
    """The samples of one rule: (label values, value), and the problems met, each
    with a description of its first occurrence (for the log)."""

    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)
    problems: dict[str, int] = field(default_factory=dict)  # reason -> count
    details: dict[str, str] = field(default_factory=dict)  # reason -> what happened first

    def problem(self, reason: str, detail: str = "") -> None:
        self.problems[reason] = self.problems.get(reason, 0) + 1
        if detail and reason not in self.details:
            self.details[reason] = detail


def _number(value: Any, rule: JsonMetricConfig) -> float | None:
    value_map = rule.value_map
    if rule._json_exporter:
        if value is None:
            return math.nan  # json_exporter reads null as NaN
        if isinstance(value, int | float) and not isinstance(value, bool) and value_map:
            text = go_text(value, go=True)  # json_exporter converts the value's text
            if text in value_map:
                return value_map[text]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits
            return None
    if isinstance(value, str):
        key = value.lower() if rule._fold_case else value
        if key in value_map:
            return value_map[key]
        try:
            return float(value)
        except ValueError:
            return None
    return None


class _Label:
    """How one label value is made: fixed text, a path, or a template."""

    def __init__(self, text: str) -> None:
        self.fixed: str | None = None
        self.parts: list[str | list[Step]] = []
        if text.startswith("$"):
            self.parts = [parse_path(text)]
        elif is_template(text):
            self.parts = list(parse_template(text))
        else:
            self.fixed = text

    def value(self, element: Any, key: str | None, go: bool) -> str:
        if self.fixed is not None:
            return self.fixed
        pieces = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            found = matches(element, part, key)
            if not found:
                return ""  # as json_exporter: a label whose path is missing is empty
            pieces.append(" ".join(go_text(value, go=go) for _, value in found))
        return "".join(pieces)


def _elements(document: Any, rule: JsonMetricConfig, result: Extracted) -> list[Match] | None:
    """The elements of object mode (one, the document, without ``each``); None after a
    problem."""
    if rule.each is None:
        return [(None, document)]
    steps = parse_path(rule.each)
    if is_multi(steps):
        return matches(document, steps)
    found = resolve(document, steps)
    if found is _MISSING:
        if not rule.optional:
            result.problem("missing", f"each {rule.each} is not in the document")
        return None
    if isinstance(found, dict):
        return [(str(k), v) for k, v in found.items()]
    if isinstance(found, list):
        return [(str(i), v) for i, v in enumerate(found)]
    result.problem("not_a_list", f"each {rule.each} is a {type(found).__name__}, not a list "
                   "or a map")  # fmt: skip
    return None


def extract(document: Any, rule: JsonMetricConfig) -> Extracted:
    """The samples ``rule`` finds in ``document`` (label values in ``rule.labels``
    order)."""
    result = Extracted()
    elements = _elements(document, rule, result)
    if elements is None:
        return result
    steps = parse_path(rule.path) if rule.path is not None else None
    several = steps is not None and is_multi(steps)
    labels = [_Label(text) for text in rule.labels.values()]
    go = rule._json_exporter
    seen: set[tuple[str, ...]] = set()
    for key, element in elements:
        if steps is None:
            number: float | None = rule.value
        else:
            if several:
                found = matches(element, steps, key)
                if len(found) > 1:
                    result.problem("several_values", f"path {rule.path} matched {len(found)} "
                                   "values where one is needed")  # fmt: skip
                    continue
                raw = found[0][1] if found else _MISSING
            else:
                raw = resolve(element, steps, key)
            if raw is _MISSING:
                if not rule.optional:
                    result.problem("missing", f"path {rule.path} is not in the document")
                continue
            number = _number(raw, rule)
            if number is None:
                result.problem("not_a_number", f"path {rule.path} gave {_shown(raw)}")
                continue
        values = tuple(label.value(element, key, go) for label in labels)
        if values in seen:
            result.problem("duplicate_series", f"two elements gave the labels {values}: the "
                           "first is kept")  # fmt: skip
            continue
        seen.add(values)
        assert number is not None
        result.samples.append((values, number))
    return result


def _shown(value: Any) -> str:
    """What a value is, not what it holds (a log line never shows a document's text)."""
    if isinstance(value, str):
        return f"a text of {len(value)} characters" if value else "an empty text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def go_text(value: Any, *, go: bool) -> str:
    """A JSON value as label text: as Pillion writes it, or (``go``) as json_exporter's
    Go writes it (numbers in ``%v``, null as ``<nil>``); lists and maps as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>" if go else ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if go and isinstance(value, int | float):
        return _go_float(float(value)) if math.isfinite(float(value)) else str(value)
    return str(value)


def _go_float(value: float) -> str:
    """``strconv.FormatFloat(value, 'g', -1, 64)``, as Go's ``fmt`` prints a float64:
    the shortest digits, in exponent form from 1e6 up or below 1e-4 (``1e+06``)."""
    if value == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # where the decimal point goes
    power = point - 1
    head = "-" if sign else ""
    if power < -4 or power >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{head}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{head}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return head + digits + "0" * (point - len(digits))
    return f"{head}{digits[:point]}.{digits[point:]}"
