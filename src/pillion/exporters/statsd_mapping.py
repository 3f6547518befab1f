"""Mapping rules: a StatsD name to a Prometheus name, labels and observer. No I/O.

Glob rules are tried first, in their order, then regex rules, in theirs, as
statsd_exporter does; the first that matches applies. A glob's ``*`` matches
one dotted component (possibly empty), captured as ``$1``, ``$2``...; a regex
is searched in the name, its groups are ``$1``... and ``${name}``. A name no
rule matches keeps its own, with invalid characters turned into ``_``.

Results are cached per raw name in a bounded dict: the rules run once per
distinct name, however many samples it has.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

from pillion.config.exporters import StatsdMappingConfig
from pillion.exporters.statsd_parse import metric_name

__all__ = ["Mapped", "Mapper"]

_REFERENCE = re.compile(r"\$(?:\{(\d+)\}|(\d+)|\{([a-zA-Z_][a-zA-Z0-9_]*)\})")

Template = Callable[["re.Match[str]"], str]


class Mapped(NamedTuple):
    """What a StatsD name becomes. ``name`` is empty when nothing valid is left."""

    name: str
    labels: dict[str, str]
    observer: str | None = None  # histogram or summary; None: the default
    buckets: tuple[float, ...] | None = None  # None: the default
    scale: float = 1.0
    help: str | None = None


class _Rule:
    def __init__(self, config: StatsdMappingConfig) -> None:
        self.drop = config.action == "drop"
        if config.match_type == "glob":
            pattern = "^" + "([^.]*)".join(map(re.escape, config.match.split("*"))) + "$"
            self.pattern = re.compile(pattern)
        else:
            self.pattern = re.compile(config.match)
        self.name = _template(config.name or "")
        self.labels = [(key, _template(value)) for key, value in config.labels.items()]
        self.observer = config.observer_type
        self.buckets = tuple(config.buckets) if config.buckets is not None else None
        self.scale = config.scale
        self.help = config.help or f"StatsD samples matching {config.match}."

    def apply(self, match: re.Match[str]) -> Mapped | None:
        if self.drop:
            return None
        labels = {key: value(match) for key, value in self.labels}
        return Mapped(metric_name(self.name(match)), labels, self.observer, self.buckets,
                      self.scale, self.help)  # fmt: skip


def _template(text: str) -> Template:
    """``$1`` / ``${1}`` / ``${name}`` filled from a match; a group that did not
    take part (or does not exist) gives an empty string."""
    literals: list[str] = []
    groups: list[int | str] = []
    position = 0
    for reference in _REFERENCE.finditer(text):
        literals.append(text[position : reference.start()])
        braced, bare, named = reference.groups()
        groups.append(int(braced or bare) if (braced or bare) else named)
        position = reference.end()
    if not groups:
        return lambda match: text
    tail = text[position:]

    def fill(match: re.Match[str]) -> str:
        pieces = []
        for literal, group in zip(literals, groups, strict=True):
            pieces.append(literal)
            with contextlib.suppress(IndexError):
                pieces.append(match.group(group) or "")
        pieces.append(tail)
        return "".join(pieces)

    return fill


class Mapper:
    """The rules of one config, with a cache of their results per raw name."""

    def __init__(self, rules: Sequence[StatsdMappingConfig], cache_size: int = 10_000) -> None:
        compiled = [_Rule(rule) for rule in rules]
        globs = [r for r, c in zip(compiled, rules, strict=True) if c.match_type == "glob"]
        regexes = [r for r, c in zip(compiled, rules, strict=True) if c.match_type == "regex"]
        self.rules = globs + regexes
        self.cache_size = cache_size
        self._cache: dict[str, Mapped | None] = {}

    def map(self, name: str) -> Mapped | None:
        """What ``name`` becomes; None when a rule drops it."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        result = self._map(name)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()  # bounded; the hot names come back at once
        self._cache[name] = result
        return result

    def _map(self, name: str) -> Mapped | None:
        for rule in self.rules:
            # a glob is anchored at both ends already; a regex is searched
            match = rule.pattern.search(name)
            if match is not None:
                return rule.apply(match)
        return Mapped(metric_name(name), {})
