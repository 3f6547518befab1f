"""Mapping rules: a StatsD name to a Prometheus name, labels and observer. No I/O.

Glob rules are tried first, in their order, then regex rules, in theirs, as
statsd_exporter does; the first that matches applies. A rule with a
``match_metric_type`` only matches samples of that type (``observer``: timers,
histograms, distributions; a set matches no typed rule). With
``glob_disable_ordering`` (a mapping file's default) the glob rule that matches
is the most specific one instead, whatever its place: at each dotted component
from the left, a literal wins over ``*`` (statsd_exporter's unordered mode). A
glob's ``*`` matches one dotted component (possibly empty), captured as ``$1``,
``$2``...; a regex is searched in the name, its groups are ``$1``... (``$0`` the
whole match) and ``${name}``. A name no rule matches keeps its own, with invalid
characters turned into ``_``.

Results are cached per raw name (and type, when a rule names one) in a bounded
dict: the rules run once per distinct name, however many samples it has.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

from pillion.config.statsd import StatsdMappingConfig, StatsdRule, StatsdRules, SummarySettings
from pillion.exporters.statsd_parse import metric_name

__all__ = ["Mapped", "Mapper", "metric_type"]

_REFERENCE = re.compile(r"\$(?:\{(\d+)\}|(\d+)|\{([a-zA-Z_][a-zA-Z0-9_]*)\})")

Template = Callable[["re.Match[str]"], str]

_TYPES = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}


def metric_type(kind: str) -> str:
    """The `match_metric_type` of a StatsD type (``c``, ``ms``...); "" for a set."""
    return _TYPES.get(kind, "")


class Mapped(NamedTuple):
    """What a StatsD name becomes. ``name`` is empty when nothing valid is left; the
    other fields are None where the defaults apply."""

    name: str
    labels: dict[str, str]
    observer: str | None = None  # histogram or summary
    buckets: tuple[float, ...] | None = None
    scale: float = 1.0
    help: str | None = None
    honor_labels: bool = False  # the sample's tags win over `labels`
    ttl: float | None = None
    summary: SummarySettings | None = None


class _Rule:
    def __init__(self, rule: StatsdRule | StatsdMappingConfig, order: int) -> None:
        if isinstance(rule, StatsdRule):
            config = rule.config
            self.observer: str | None = rule.observer
            self.buckets: tuple[float, ...] | None = rule.buckets
            self.summary: SummarySettings | None = rule.summary
            self.ttl: float | None = rule.ttl
        else:  # a rule alone: the defaults are the caller's
            config = rule
            self.observer = rule.observer_type
            own = rule.bucket_list()
            self.buckets = tuple(own) if own is not None else None
            self.summary, self.ttl = None, rule.ttl or None
        self.order = order
        self.glob = config.match_type == "glob"
        self.drop = config.action == "drop"
        self.metric_type = config.match_metric_type or ""
        if self.glob:
            pattern = "^" + "([^.]*)".join(map(re.escape, config.match.split("*"))) + "$"
            self.pattern = re.compile(pattern)
            # unordered globs: at each component from the left, a literal beats `*`
            self.specificity = tuple("*" in part for part in config.match.split("."))
        else:
            self.pattern = re.compile(config.match)
            self.specificity = ()
        self.name = _template(config.name or "")
        self.labels = [(key, _template(value)) for key, value in config.labels.items()]
        self.honor_labels = config.honor_labels
        self.scale = config.scale
        self.help = config.help or f"StatsD samples matching {config.match}."

    def apply(self, match: re.Match[str]) -> Mapped | None:
        if self.drop:
            return None
        labels = {key: value(match) for key, value in self.labels}
        return Mapped(metric_name(self.name(match)), labels, self.observer, self.buckets,
                      self.scale, self.help, self.honor_labels, self.ttl,
                      self.summary)  # fmt: skip


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

    def __init__(
        self, rules: StatsdRules | Sequence[StatsdMappingConfig], cache_size: int = 10_000
    ) -> None:
        listed: Sequence[StatsdRule | StatsdMappingConfig] = (
            rules.rules if isinstance(rules, StatsdRules) else rules
        )
        compiled = [_Rule(rule, order) for order, rule in enumerate(listed)]
        self.globs = [rule for rule in compiled if rule.glob]
        self.regexes = [rule for rule in compiled if not rule.glob]
        self.rules = self.globs + self.regexes
        self.unordered = isinstance(rules, StatsdRules) and rules.glob_disable_ordering
        self.typed = any(rule.metric_type for rule in compiled)
        self.cache_size = cache_size
        self._cache: dict[str, Mapped | None] = {}

    def map(self, name: str, kind: str = "") -> Mapped | None:
        """What ``name`` (a sample of StatsD type ``kind``: ``c``, ``g``, ``ms``...)
        becomes; None when a rule drops it."""
        key = f"{name}\0{metric_type(kind)}" if self.typed else name
        try:
            return self._cache[key]
        except KeyError:
            pass
        result = self._map(name, metric_type(kind) if self.typed else "")
        if len(self._cache) >= self.cache_size:
            self._cache.clear()  # bounded; the hot names come back at once
        self._cache[key] = result
        return result

    def _map(self, name: str, kind: str) -> Mapped | None:
        if self.unordered:
            best: tuple[_Rule, re.Match[str]] | None = None
            for rule in self.globs:
                if rule.metric_type and rule.metric_type != kind:
                    continue
                match = rule.pattern.search(name)
                if match is not None and (best is None or rule.specificity < best[0].specificity):
                    best = (rule, match)
            if best is not None:
                return best[0].apply(best[1])
            candidates = self.regexes
        else:
            candidates = self.rules
        for rule in candidates:
            if rule.metric_type and rule.metric_type != kind:
                continue
            # a glob is anchored at both ends already; a regex is searched
            match = rule.pattern.search(name)
            if match is not None:
                return rule.apply(match)
        return Mapped(metric_name(name), {})
