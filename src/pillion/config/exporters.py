"""Models of the ``exporters`` section: Prometheus metrics for apps that have
none (JSON scraping, StatsD, metrics from log lines) and the app's own
``/metrics`` merged into Pillion's."""

from __future__ import annotations

import itertools
import math
import re
import warnings
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pillion.config.types import HttpUrl, Listen, ListenAddress, Regex, Section, compile_regex
from pillion.config.units import Duration

__all__ = [
    "ExportersConfig",
    "FromLogsConfig",
    "FromLogsMetricConfig",
    "JsonExporterConfig",
    "JsonMetricConfig",
    "MergeAppConfig",
    "StatsdConfig",
    "StatsdMappingConfig",
]

_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NAME = r"^[a-z0-9][a-z0-9_-]*$"
_CAPTURE = re.compile(r"\$(?:\{(\d+)\}|(\d+)|\{([a-zA-Z_][a-zA-Z0-9_]*)\})")
_METRIC_TEMPLATE = re.compile(r"^[a-zA-Z0-9_:.-]+$")


def _label_names(labels: dict[str, str]) -> dict[str, str]:
    for name in labels:
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"invalid label name {name!r}")
    return labels


def _bucket_bounds(bounds: list[float]) -> list[float]:
    if not bounds:
        raise ValueError("give at least one bucket")
    if not all(math.isfinite(b) for b in bounds):
        raise ValueError("buckets are finite numbers (+Inf is always added)")
    if any(b >= c for b, c in itertools.pairwise(bounds)):
        raise ValueError("buckets must increase")
    return bounds


class JsonMetricConfig(Section):
    """One metric (or one per element, in object mode) from the JSON document."""

    name: str = Field(pattern=_METRIC_NAME, description="The metric's name.")
    help: str = Field("", description="Its HELP text. Default: the JSON path.")
    type: Literal["gauge", "counter"] = Field("gauge", description="gauge or counter.")
    path: str = Field(
        description="JSONPath of the value, e.g. `$.queue.depth`; in object mode, "
        "relative to each element (`$.depth`), or `$.@key` for the element's key."
    )
    each: str | None = Field(
        None,
        description="Object mode: JSONPath of a list or map (e.g. `$.queues`); one "
        "series per element.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels: a value starting with `$` is a JSONPath (relative to the "
        "element in object mode; `$.@key` is the element's key), anything else is fixed.",
    )
    value_map: dict[str, float] = Field(
        default_factory=dict,
        description='Text values to numbers, e.g. `{"up": 1, "degraded": 0.5, "down": '
        "0}`. Booleans are 1 and 0 without a map.",
    )
    optional: bool = Field(
        False,
        description="A missing value is skipped silently; otherwise it is counted in "
        '`pillion_exporter_json_errors_total{reason="missing"}`.',
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _label_names(value)

    @field_validator("path", "each")
    @classmethod
    def _jsonpath(cls, value: str | None) -> str | None:
        if value is not None:
            parse_path(value)
        return value

    @field_validator("labels")
    @classmethod
    def _label_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            if text.startswith("$"):
                parse_path(text)
        return value


_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def parse_path(path: str) -> list[str | int]:
    """``$.a['b.c'][0]`` -> ``["a", "b.c", 0]``: the JSONPath subset the JSON exporter
    reads (``$``, ``.key``, ``['key']``, ``[index]``, ``.@key``); ``ValueError`` naming
    what is not in it."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r}: a JSONPath starts with $")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None or match.group(1) == "*":
            rest = path[position:]
            hint = ""
            if rest.startswith(("[*]", ".*", "..", "[?", "[-", "[:")) or ":" in rest.split("]")[0]:
                hint = (
                    " (wildcards, recursive descent, filters and slices are not supported: "
                    "for one series per element, put the list or map in `each` and the "
                    "path within an element in `path`)"
                )
            raise ValueError(f"{path!r}: cannot read {rest!r}{hint}")
        key, index, quoted, double = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(key if key is not None else quoted if quoted is not None else double)
        position = match.end()
    return steps


class JsonExporterConfig(Section):
    """An app's JSON endpoint, turned into metrics."""

    name: str = Field(pattern=_NAME, description="The target's name (label `target`).")
    url: HttpUrl = Field(description="The JSON endpoint, e.g. `http://127.0.0.1:8080/stats`.")
    timeout: Duration = Field(2.0, description="Longest wait for the endpoint. Default 2s.")
    interval: Duration | None = Field(
        None,
        description="Fetch on this interval and serve the cached values; default: fetch "
        "on each scrape of `/metrics`.",
    )
    metrics: list[JsonMetricConfig] = Field(min_length=1, description="The metrics.")


class StatsdMappingConfig(Section):
    """A mapping rule for StatsD names. Glob rules are tried first, in order, then
    regex rules, in order; the first that matches applies."""

    match: str = Field(
        min_length=1,
        description="A glob over the dotted name (`*` is one component, captured as $1, "
        "$2...) or, with `match_type: regex`, a regex searched in the name (groups are "
        "$1..., named groups `${name}`; anchor it with `^...$` to match the whole name).",
    )
    match_type: Literal["glob", "regex"] = Field("glob", description="How `match` reads.")
    name: str | None = Field(
        None,
        description="The metric's name, with $n captures (characters not allowed in a "
        "metric name become `_`). Required unless dropping.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels, with $n captures in the values; they win over the sample's "
        "own tags of the same name.",
    )
    action: Literal["map", "drop"] = Field(
        "map", description='`drop`: ignore the sample (counted as `reason="mapping"`).'
    )
    observer_type: Literal["histogram", "summary"] | None = Field(
        None,
        description="For timers and histograms: a histogram (buckets, `_sum`, `_count`) or "
        "a summary (`_sum` and `_count` only, no quantiles). Default `statsd.observer_type`.",
    )
    buckets: list[float] | None = Field(
        None,
        description="Histogram buckets (upper bounds, increasing; `+Inf` is implied), in "
        "the metric's unit (seconds for timers). Default `statsd.buckets`.",
    )
    scale: float = Field(
        1.0,
        description="Multiply each value by this, after a timer's milliseconds became "
        "seconds (e.g. 0.001 for a histogram sent in milliseconds). Default 1.",
    )
    help: str | None = Field(
        None, description="The metric's HELP text. Default: the StatsD type and name."
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _label_names(value)

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: list[float] | None) -> list[float] | None:
        return None if value is None else _bucket_bounds(value)

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: float) -> float:
        if not math.isfinite(value) or value == 0:
            raise ValueError("scale must be a finite number other than 0")
        return value

    @model_validator(mode="after")
    def _rule(self) -> StatsdMappingConfig:
        if self.match_type == "regex":
            compiled = compile_regex(self.match)  # not typed `Regex`: a glob otherwise
            groups, names = compiled.groups, set(compiled.groupindex)
        else:
            if any(c.isspace() for c in self.match):
                raise ValueError(f"invalid glob {self.match!r}: StatsD names have no spaces")
            groups, names = self.match.count("*"), set()
        if self.action == "map" and self.name is None:
            raise ValueError("set `name` (or `action: drop`)")
        for template in [self.name or "", *self.labels.values()]:
            for braced, bare, named in _CAPTURE.findall(template):
                number = braced or bare
                if number and int(number) > groups:
                    raise ValueError(f"${number} in {template!r}: `match` has {groups} captures")
                if named and named not in names:
                    raise ValueError(f"${{{named}}} in {template!r}: no such named group")
        if self.name is not None and not _METRIC_TEMPLATE.match(_CAPTURE.sub("x", self.name)):
            raise ValueError(f"invalid metric name {self.name!r}")
        return self


class StatsdConfig(Section):
    """A StatsD server (UDP and TCP) whose samples become Prometheus metrics, served on
    the status port's `/metrics` (counters with `_total`, timers in seconds)."""

    udp: Listen | None = Field(
        ListenAddress("127.0.0.1", 9125),
        description="UDP address; null for none. Default: loopback, the app's own pod.",
    )
    tcp: Listen | None = Field(
        ListenAddress("127.0.0.1", 9125),
        description="TCP address (newline-delimited lines); null for none. Default: loopback.",
    )
    mappings: list[StatsdMappingConfig] = Field(
        default_factory=list,
        description="Rules: the glob rules in order, then the regex rules in order; the "
        "first match wins. Unmatched names are used as they are (dots and other invalid "
        "characters become `_`).",
    )
    observer_type: Literal["histogram", "summary"] = Field(
        "histogram", description="Timers and histograms become this by default."
    )
    buckets: list[float] = Field(
        default_factory=lambda: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        description="Default histogram buckets (seconds for timers): Prometheus' defaults, "
        "made for request durations.",
    )
    ttl: Duration = Field(
        300.0,
        description="A series with no sample for this long is removed, and a set forgets "
        "a value not seen for this long. 0: never. Default 5m: a few scrapes after the app "
        "stops sending it.",
    )
    max_series_per_metric: int = Field(
        10_000,
        ge=1,
        description="Series kept per metric (and values per set); samples for new series "
        'past it are dropped and counted (`pillion_statsd_dropped_total{reason="cardinality"}`).',
    )
    max_series: int = Field(
        100_000,
        ge=1,
        description="Series kept in all; samples for new series past it are dropped and "
        'counted (`reason="too_many_series"`). Default 100000: tens of MiB at most.',
    )
    max_metrics: int = Field(
        10_000,
        ge=1,
        description="Metric names kept; samples for new names past it are dropped and "
        'counted (`reason="too_many_metrics"`).',
    )
    max_packet_size: int = Field(
        65535,
        ge=512,
        description="Largest UDP packet or TCP line read, in bytes; longer ones are dropped "
        'and counted (`reason="too_large"`). Default: the largest UDP datagram.',
    )

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: list[float]) -> list[float]:
        return _bucket_bounds(value)


class FromLogsMetricConfig(Section):
    """A metric from the records of a log input that match `regex`."""

    name: str = Field(pattern=_METRIC_NAME, description="The metric's name.")
    help: str = Field("", description="Its HELP text.")
    type: Literal["counter", "gauge", "histogram"] = Field(
        "counter",
        description="`counter`: +1 per matching record (or + `value`); `gauge`: set to "
        "`value`; `histogram`: observe `value`.",
    )
    regex: Regex = Field(description="Searched in the message; named groups are usable below.")
    value: str | None = Field(
        None, description="The named group holding the number (gauge, histogram; counter: +n)."
    )
    labels: list[str] = Field(default_factory=list, description="Named groups that become labels.")
    buckets: list[float] | None = Field(None, description="For histograms.")

    @model_validator(mode="after")
    def _groups(self) -> FromLogsMetricConfig:
        compiled = re.compile(self.regex)
        for group in [*self.labels, *([self.value] if self.value else [])]:
            if group not in compiled.groupindex:
                raise ValueError(f"the regex has no named group {group!r}")
        for label in self.labels:
            _label_names({label: ""})
        if self.type in ("gauge", "histogram") and self.value is None:
            raise ValueError(f"a {self.type} needs `value`")
        return self


class FromLogsConfig(Section):
    """Metrics from one log input's records (after its parser and filters)."""

    input: str = Field(description="The `logs.inputs[]` name.")
    max_series_per_metric: int = Field(
        10_000, ge=1, description="Series kept per metric; more are dropped and counted."
    )
    metrics: list[FromLogsMetricConfig] = Field(min_length=1, description="The metrics.")


class MergeAppConfig(Section):
    """The app's own Prometheus endpoint, fetched on each scrape and merged into
    Pillion's `/metrics`."""

    url: HttpUrl = Field(
        description="The app's metrics URL, e.g. `http://127.0.0.1:8080/metrics`.",
    )
    timeout: Duration = Field(2.0, description="Longest wait for it. Default 2s.")
    prefix: str = Field(
        "",
        pattern=r"^([a-zA-Z_:][a-zA-Z0-9_:]*)?$",
        description="Put before the app's metric names. Default: none, but a name that "
        "collides with one of Pillion's always gets `app_`.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every app series."
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _label_names(value)


# `json` is the key people write; here it is a field, which hides BaseModel's
# deprecated `json` method of the same name on this model only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class ExportersConfig(Section):
        """Prometheus metrics for apps that have none, served on the status port's
        `/metrics` next to Pillion's own."""

        json: list[JsonExporterConfig] = Field(  # type: ignore[assignment]
            default_factory=list, description="JSON endpoints to scrape."
        )
        statsd: StatsdConfig | None = Field(None, description="A StatsD server. Default: off.")
        from_logs: list[FromLogsConfig] = Field(
            default_factory=list, description="Metrics from log lines."
        )
        merge_app: MergeAppConfig | None = Field(
            None, description="Merge the app's own `/metrics`. Default: off."
        )

        @model_validator(mode="after")
        def _distinct(self) -> ExportersConfig:
            names = [target.name for target in self.json]
            if len(set(names)) != len(names):
                raise ValueError("json target names must be distinct")
            return self

        def declared_metric_names(self) -> frozenset[str]:
            """The names of the `json` and `from_logs` metrics: neither StatsD nor the
            merged app metrics may take them."""
            names = {metric.name for target in self.json for metric in target.metrics}
            names |= {metric.name for source in self.from_logs for metric in source.metrics}
            return frozenset(names)
