"""The JSONPath the JSON exporter reads, parsed when the config loads. No I/O.

Two spellings of one language:

* ``$.queue.depth``, ``$.shards[0]['key.with.dots']``: Pillion's own;
* ``{ .queue.depth }``: kubectl's and json_exporter's, a path in braces (``$`` or
  ``@`` in front is optional). In a label, text may surround the braces
  (``planet-{ .location }``), and several may follow one another.

Steps: ``.key``, ``['key']`` / ``["key"]``, ``[index]`` (negative from the end),
``.@key`` (in object mode: the element's key or index), and the steps that match
several values:

* ``[*]`` / ``.*``: every element of a list, every value of a map;
* ``[a:b]``, ``[a:b:step]``: a slice of a list; ``[0,2]``, ``['a','b']``: a union;
* ``..key``: ``key`` at any depth below;
* ``[?(@.field == "x")]``: the elements (of a list, or values of a map) whose
  ``field`` compares so with a literal: ``==`` and ``!=`` with a string, a number,
  ``true``, ``false`` or ``null``; ``<``, ``<=``, ``>``, ``>=`` with a number (or a
  string, compared as text). ``[?(@.field)]``: those that have the field. An
  element without the field, or whose field is of another type, is not matched.

What is not in the language is refused by name when the config loads: regex
filters (``=~``), ``&&`` / ``||``, functions, ``{range}`` / ``{end}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "KEY",
    "WILDCARD",
    "Descend",
    "Filter",
    "Slice",
    "Step",
    "Template",
    "Union",
    "Wildcard",
    "is_multi",
    "is_template",
    "parse_path",
    "parse_template",
    "template_spans",
]

KEY = "@key"


@dataclass(frozen=True)
class Wildcard:
    """``[*]`` or ``.*``."""


WILDCARD = Wildcard()


@dataclass(frozen=True)
class Slice:
    start: int | None
    stop: int | None
    step: int | None


@dataclass(frozen=True)
class Union:
    items: tuple[str | int, ...]


@dataclass(frozen=True)
class Descend:
    """``..key``: every value under ``key``, at any depth."""

    key: str


@dataclass(frozen=True)
class Filter:
    """``[?(@.path OP literal)]``; ``op`` is ``exists`` for ``[?(@.path)]``."""

    path: tuple[str | int, ...]
    op: str
    literal: str | float | bool | None


Step = str | int | Wildcard | Slice | Union | Descend | Filter

Template = list[str | list[Step]]
"""A label template: literal text, and the paths whose text goes between it."""

_NAME = r"[^.\[\]\s()=!<>&|'\"*]+"
_SIMPLE = re.compile(
    r"\.\.(?P<descend>" + _NAME + r")"
    r"|\.(?P<key>[^.\[\]]+)"
    r"|\[\s*(?P<index>-?\d+)\s*\]"
    r"|\[\s*'(?P<single>[^']*)'\s*\]"
    r'|\[\s*"(?P<double>[^"]*)"\s*\]'
    r"|\[\s*\*\s*\]"
)
_SLICE = re.compile(r"\[\s*(-?\d+)?\s*:\s*(-?\d+)?\s*(?::\s*(-?\d+)?\s*)?\]")
_UNION_ITEM = re.compile(r"\s*(?:(-?\d+)|'([^']*)'|\"([^\"]*)\")\s*(,|\])")
_FILTER = re.compile(
    r"\[\s*\?\s*\(\s*@(?P<path>(?:\.[A-Za-z0-9_@$-]+|\[\s*-?\d+\s*\]|\['[^']*'\]|\[\"[^\"]*\"\])*)"
    r"\s*(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<literal>\"[^\"]*\"|'[^']*'|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
    r"|true|false|null))?\s*\)\s*\]"
)
_FILTER_STEP = re.compile(r"\.([A-Za-z0-9_@$-]+)|\[\s*(-?\d+)\s*\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_TEMPLATE_START = re.compile(r"\{\s*(?:[.$@\[]|range\b|end\b)")


def parse_path(path: str) -> list[Step]:
    """``$.a['b.c'][0]`` (or ``{ .a['b.c'][0] }``) -> ``["a", "b.c", 0]``, and the
    steps above; ``ValueError`` naming what is not in the language."""
    text = path.strip()
    if text.startswith("{"):
        template = parse_template(text)
        if len(template) != 1 or isinstance(template[0], str):
            raise ValueError(f"{path!r}: one JSONPath in braces, with no text around it")
        return template[0]
    if not text.startswith("$"):
        raise ValueError(f"{path!r}: a JSONPath starts with $ (or is written in braces, {{ .a }})")
    return _steps(text, 1, path)


def _steps(text: str, position: int, path: str) -> list[Step]:
    steps: list[Step] = []
    while position < len(text):
        rest = text[position:]
        if rest.startswith("[?"):
            match = _FILTER.match(text, position)
            if match is None:
                raise ValueError(f"{path!r}: cannot read the filter {rest!r}{_filter_hint(rest)}")
            steps.append(_filter(match))
            position = match.end()
            continue
        if rest.startswith(".*"):
            steps.append(WILDCARD)
            position += 2
            continue
        match = _SIMPLE.match(text, position)
        if match is not None and match.group("key") != "*":
            if match.group("descend") is not None:
                steps.append(Descend(match.group("descend")))
            elif match.group("key") is not None:
                steps.append(match.group("key"))
            elif match.group("index") is not None:
                steps.append(int(match.group("index")))
            elif match.group("single") is not None:
                steps.append(match.group("single"))
            elif match.group("double") is not None:
                steps.append(match.group("double"))
            else:
                steps.append(WILDCARD)
            position = match.end()
            continue
        match = _SLICE.match(text, position)
        if match is not None:
            start, stop, step = (None if g is None else int(g) for g in match.groups())
            if step is not None and step <= 0:
                raise ValueError(f"{path!r}: a slice's step must be above 0")
            steps.append(Slice(start, stop, step))
            position = match.end()
            continue
        union = _union(text, position)
        if union is not None:
            steps.append(union[0])
            position = union[1]
            continue
        hint = " (recursive descent reads a key: ..name)" if rest.startswith("..") else ""
        raise ValueError(f"{path!r}: cannot read {rest!r}{hint}")
    return steps


def _union(text: str, position: int) -> tuple[Union, int] | None:
    if not text.startswith("[", position):
        return None
    items: list[str | int] = []
    position += 1
    while True:
        match = _UNION_ITEM.match(text, position)
        if match is None:
            return None
        number, single, double, end = match.groups()
        items.append(int(number) if number is not None else single if single is not None
                     else double)  # fmt: skip
        position = match.end()
        if end == "]":
            return (Union(tuple(items)), position) if len(items) > 1 else None


def _filter(match: re.Match[str]) -> Filter:
    steps: list[str | int] = []
    for key, index, single, double in _FILTER_STEP.findall(match.group("path")):
        steps.append(int(index) if index else key or single or double)
    op, literal = match.group("op"), match.group("literal")
    if op is None:
        return Filter(tuple(steps), "exists", None)
    value: str | float | bool | None
    if literal[0] in "\"'":
        value = literal[1:-1]  # with <, <=, >, >=: compared as text
    elif literal in ("true", "false"):
        value = literal == "true"
        if op not in ("==", "!="):
            raise ValueError(f"{literal} compares with == or != only")
    elif literal == "null":
        value = None
        if op not in ("==", "!="):
            raise ValueError("null compares with == or != only")
    else:
        value = float(literal)
    return Filter(tuple(steps), op, value)


def _filter_hint(rest: str) -> str:
    if "=~" in rest:
        return " (regex filters =~ are not supported: compare with ==, !=, <, <=, >, >=)"
    if "&&" in rest or "||" in rest:
        return " (&& and || are not supported: one comparison per filter)"
    return (
        " (a filter is [?(@.field OP literal)], OP one of == != < <= > >=, the literal a "
        "quoted string, a number, true, false or null; or [?(@.field)])"
    )


def is_multi(steps: list[Step]) -> bool:
    """Whether the path can match several values."""
    return any(isinstance(step, Wildcard | Slice | Union | Descend | Filter) for step in steps)


def is_template(text: str) -> bool:
    """Whether a label value is a kubectl-style template (holds ``{ .path }``)."""
    return _TEMPLATE_START.search(text) is not None


def parse_template(text: str) -> Template:
    """``planet-{ .location }`` -> ``["planet-", ["location"]]``; ``ValueError`` for
    braces that do not hold a path."""
    parts: Template = []
    literal: list[str] = []
    position = 0
    while position < len(text):
        opening = text.find("{", position)
        if opening == -1:
            literal.append(text[position:])
            break
        literal.append(text[position:opening])
        closing = _closing(text, opening)
        if closing == -1:
            raise ValueError(f"{text!r}: a {{ without its }}")
        inner = text[opening + 1 : closing].strip()
        if inner in ("range", "end") or inner.startswith(("range ", "end ")):
            raise ValueError(f"{text!r}: {{range}} and {{end}} are not supported")
        if not inner.startswith(("$", "@", ".", "[")):
            raise ValueError(f"{text!r}: {{{inner}}} is not a JSONPath (write {{ .{inner} }})")
        if inner[0] in "$@":
            inner = inner[1:]
        if "".join(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(_steps("$" + inner, 1, text))
        position = closing + 1
    if "".join(literal):
        parts.append("".join(literal))
    return parts


def _closing(text: str, opening: int) -> int:
    """The ``}`` that closes the ``{`` at ``opening`` (quotes skipped), or -1."""
    quote = ""
    for index in range(opening + 1, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "}":
            return index
    return -1


def template_spans(text: str) -> list[tuple[int, int, str]]:
    """Where each ``{ ... }`` of a template is: (start, end after ``}``, the path inside,
    stripped)."""
    spans: list[tuple[int, int, str]] = []
    position = 0
    while True:
        opening = text.find("{", position)
        if opening == -1:
            return spans
        closing = _closing(text, opening)
        if closing == -1:
            return spans
        spans.append((opening, closing + 1, text[opening + 1 : closing].strip()))
        position = closing + 1
