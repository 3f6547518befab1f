"""The ``exporters.statsd`` models, and statsd_exporter's mapping files.

A mapping rule is written as statsd_exporter writes it (``match``, ``match_type``,
``name``, ``labels``, ``honor_labels``, ``action``, ``match_metric_type``,
``observer_type``, ``histogram_options``, ``summary_options``, ``ttl``, ``help``,
``scale``), in ``pillion.yaml`` or in statsd_exporter's own file
(``mapping_file``: top-level ``defaults:`` and ``mappings:``, read as it is, with
no ``${ENV}`` expansion). Its older spellings (``timer_type``, top-level
``quantiles``, ``match_metric_type: timer``) are read with a deprecation, as
statsd_exporter read them; what Pillion cannot do (native histograms) is refused
by name with what to write instead, never ignored.

``StatsdConfig.rules()`` gives every rule with its defaults filled in: Pillion's
(``observer_type``, ``buckets``, ``ttl`` here) or, with a mapping file,
statsd_exporter's (its ``defaults:``; where it sets none, statsd_exporter's own:
summaries with quantiles 0.5, 0.9, 0.99, and no expiry).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pillion.config.types import Listen, ListenAddress, Section, compile_regex
from pillion.config.units import Duration, format_duration
from pillion.config.yamlfile import FileProblem, config_path, problems_error, read_yaml

__all__ = [
    "STATSD_EXPORTER_QUANTILES",
    "StatsdConfig",
    "StatsdHistogramOptions",
    "StatsdMappingConfig",
    "StatsdMappingDefaults",
    "StatsdMappingFile",
    "StatsdQuantile",
    "StatsdRule",
    "StatsdRules",
    "StatsdSummaryOptions",
    "SummarySettings",
    "label_names",
]

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_CAPTURE = re.compile(r"\$(?:\{(\d+)\}|(\d+)|\{([a-zA-Z_][a-zA-Z0-9_]*)\})")
_METRIC_TEMPLATE = re.compile(r"^[a-zA-Z0-9_:.-]+$")

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATSD_EXPORTER_QUANTILES = ((0.5, 0.05), (0.9, 0.01), (0.99, 0.001))
"""statsd_exporter's quantiles (and their errors) when a file names none."""
SUMMARY_MAX_AGE = 600.0  # client_golang's: 10m, in 5 age buckets, a buffer of 500
SUMMARY_AGE_BUCKETS = 5
SUMMARY_BUF_CAP = 500

_Notes = tuple[tuple[tuple[str | int, ...], str], ...]


def label_names(labels: dict[str, str]) -> dict[str, str]:
    for name in labels:
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"invalid label name {name!r}")
    return labels


def bucket_bounds(bounds: list[float]) -> list[float]:
    if not bounds:
        raise ValueError("give at least one bucket")
    if not all(math.isfinite(b) for b in bounds):
        raise ValueError("buckets are finite numbers (+Inf is always added)")
    if any(b >= c for b, c in itertools.pairwise(bounds)):
        raise ValueError("buckets must increase")
    return bounds


_NATIVE = ("native_histogram_bucket_factor", "native_histogram_max_buckets")


class StatsdHistogramOptions(Section):
    """statsd_exporter's `histogram_options`."""

    buckets: list[float] | None = Field(
        None,
        description="Histogram buckets (upper bounds, increasing; `+Inf` is implied). "
        "Default: the default's.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_native(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _NATIVE:
                if key in data:
                    raise ValueError(
                        f"{key}: Pillion serves classic histograms only (the text and "
                        "OpenMetrics formats carry no native histograms); remove the "
                        "native_histogram_* keys and keep `buckets`: a scrape gets the "
                        "series statsd_exporter serves to a text scrape"
                    )
        return data

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: list[float] | None) -> list[float] | None:
        return None if value is None else bucket_bounds(value)


class StatsdQuantile(Section):
    """A quantile a summary reports, with its allowed rank error."""

    quantile: float = Field(gt=0, lt=1, description="The quantile, e.g. 0.99.")
    error: float = Field(
        ge=0, lt=1, description="The rank error allowed, e.g. 0.001: 0.99 ± 0.001."
    )


class StatsdSummaryOptions(Section):
    """statsd_exporter's `summary_options`: the quantiles a summary reports, over a
    sliding window of `max_age` in `age_buckets` steps (client_golang's)."""

    quantiles: list[StatsdQuantile] | None = Field(
        None,
        description="Quantiles reported (`{quantile: 0.99, error: 0.001}`). Default: "
        "the default's (with a mapping file, statsd_exporter's 0.5, 0.9 and 0.99; "
        "otherwise none: `_sum` and `_count` only).",
    )
    max_age: Duration | None = Field(
        None, description="The window quantiles are computed over. Default 10m."
    )
    age_buckets: int | None = Field(
        None, ge=1, le=100, description="The window moves in this many steps. Default 5."
    )
    buf_cap: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Samples buffered before they are merged into the window. Default 500.",
    )

    @field_validator("max_age")
    @classmethod
    def _max_age(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("max_age must be above 0")
        return value


# statsd_exporter read these until its 0.30.0 release (deprecated since 0.15.0 and 0.17.0)
_TIMER_TYPE = (
    "statsd_exporter renamed timer_type observer_type in 0.17.0 (read until its 0.30.0): "
    "write observer_type"
)
_QUANTILES = (
    "statsd_exporter moved quantiles into summary_options in 0.15.0 (read until its "
    "0.30.0): write summary_options: {quantiles: [...]}"
)
_TIMER = (
    "statsd_exporter renamed match_metric_type: timer `observer` in 0.17.0 (read until its "
    "0.30.0): write match_metric_type: observer"
)
_BUCKETS = (
    "statsd_exporter moved the default buckets into histogram_options in 0.15.0 (read until "
    "its 0.30.0): write histogram_options: {buckets: [...]}"
)


def _legacy(data: dict[str, Any], where: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """statsd_exporter's older spellings, read as it read them: the new data and a
    deprecation note per spelling (key, message)."""
    data = dict(data)
    notes: list[tuple[str, str]] = []
    if "timer_type" in data:
        if "observer_type" in data:
            raise ValueError(
                "timer_type and observer_type: statsd_exporter renamed timer_type "
                "observer_type (0.17.0); write only observer_type"
            )
        data["observer_type"] = data.pop("timer_type")
        notes.append(("timer_type", _TIMER_TYPE))
    if "quantiles" in data:
        options = data.get("summary_options")
        if isinstance(options, dict) and "quantiles" in options:
            raise ValueError(
                f"quantiles in {where} and in summary_options: statsd_exporter moved "
                "quantiles into summary_options (0.15.0); write them only there"
            )
        data["summary_options"] = {**(options or {}), "quantiles": data.pop("quantiles")}
        notes.append(("quantiles", _QUANTILES))
    if data.get("match_metric_type") == "timer":
        data["match_metric_type"] = "observer"
        notes.append(("match_metric_type", _TIMER))
    return data, notes


class StatsdMappingConfig(Section):
    """A mapping rule for StatsD names, as statsd_exporter writes it. Glob rules are
    tried first, in order, then regex rules, in order; the first that matches (and
    whose `match_metric_type` is the sample's) applies."""

    _notes: _Notes = PrivateAttr(default=())

    match: str = Field(
        min_length=1,
        description="A glob over the dotted name (`*` is one component, captured as $1, "
        "$2...) or, with `match_type: regex`, a regex searched in the name (groups are "
        "$1... or ${1}..., named groups `${name}`, the whole match $0; anchor it with "
        "`^...$` to match the whole name). In `pillion.yaml`, `${1}` is left to the rule "
        "(no variable's name starts with a digit); `${name}` is an environment variable "
        "there, write `$${name}`.",
    )
    match_type: Literal["glob", "regex"] = Field(
        "glob", description="How `match` reads. Default glob (a mapping file: its default)."
    )
    name: str | None = Field(
        None,
        description="The metric's name, with $n captures (characters not allowed in a "
        "metric name become `_`). Required unless dropping.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels, with $n captures in the values; they win over the sample's "
        "own tags of the same name (unless `honor_labels`).",
    )
    honor_labels: bool = Field(
        False,
        description="A tag of the sample wins over a label of the same name here, which "
        "is then a default.",
    )
    action: Literal["map", "drop"] = Field(
        "map", description='`drop`: ignore the sample (counted as `reason="mapping"`).'
    )
    match_metric_type: Literal["counter", "gauge", "observer"] | None = Field(
        None,
        description="Only samples of this type match the rule (`observer`: timers, "
        "histograms, distributions). Default: every type.",
    )
    observer_type: Literal["histogram", "summary"] | None = Field(
        None,
        description="For timers, histograms and distributions: a histogram (buckets, "
        "`_sum`, `_count`) or a summary (quantiles from `summary_options`, `_sum`, "
        "`_count`). Default `statsd.observer_type` (a mapping file: its default). "
        "statsd_exporter's older `timer_type` is read with a deprecation.",
    )
    buckets: list[float] | None = Field(
        None,
        description="Histogram buckets (upper bounds, increasing; `+Inf` is implied), in "
        "the metric's unit (seconds for timers); the same as `histogram_options.buckets`. "
        "Default `statsd.buckets`.",
    )
    histogram_options: StatsdHistogramOptions | None = Field(
        None,
        description="statsd_exporter's histogram options: `buckets`. Native histograms "
        "(`native_histogram_*`) are refused: Pillion serves classic ones.",
    )
    summary_options: StatsdSummaryOptions | None = Field(
        None,
        description="For a summary: its quantiles and their window. Keys not given take "
        "the default's.",
    )
    ttl: Duration | None = Field(
        None,
        description="A series of this rule with no sample for this long is removed. "
        "Default (and `0`, as in statsd_exporter): `statsd.ttl` (a mapping file: its "
        "default); a rule cannot turn expiry off when the default has one.",
    )
    scale: float = Field(
        1.0,
        description="Multiply each value by this, after a timer's milliseconds became "
        "seconds (e.g. 0.001 for a histogram sent in milliseconds). Default 1.",
    )
    help: str | None = Field(
        None, description="The metric's HELP text. Default: the StatsD type and name."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _older_spellings(
        cls, data: Any, handler: ModelWrapValidatorHandler[StatsdMappingConfig]
    ) -> StatsdMappingConfig:
        notes: list[tuple[str, str]] = []
        if isinstance(data, dict):
            data, notes = _legacy(data, "a mapping")
        rule = handler(data)
        if notes:
            rule._notes = tuple(((key,), message) for key, message in notes)
        return rule

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return label_names(value)

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: list[float] | None) -> list[float] | None:
        return None if value is None else bucket_bounds(value)

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
        if (
            self.buckets is not None
            and self.histogram_options is not None
            and self.histogram_options.buckets is not None
        ):
            raise ValueError("buckets and histogram_options.buckets: write them once")
        return self

    def bucket_list(self) -> list[float] | None:
        if self.histogram_options is not None and self.histogram_options.buckets is not None:
            return self.histogram_options.buckets
        return self.buckets


class StatsdMappingDefaults(Section):
    """statsd_exporter's `defaults:`, in a mapping file."""

    _notes: _Notes = PrivateAttr(default=())

    observer_type: Literal["histogram", "summary"] | None = None
    match_type: Literal["glob", "regex"] | None = None
    glob_disable_ordering: bool = False
    ttl: Duration | None = None
    histogram_options: StatsdHistogramOptions | None = None
    summary_options: StatsdSummaryOptions | None = None
    buckets: list[float] | None = None  # statsd_exporter's older spelling, read as it is

    @model_validator(mode="wrap")
    @classmethod
    def _older_spellings(
        cls, data: Any, handler: ModelWrapValidatorHandler[StatsdMappingDefaults]
    ) -> StatsdMappingDefaults:
        notes: list[tuple[str, str]] = []
        if isinstance(data, dict):
            data, notes = _legacy(data, "defaults")
            if "buckets" in data:
                notes.append(("buckets", _BUCKETS))
        defaults = handler(data)
        if notes:
            defaults._notes = tuple(((key,), message) for key, message in notes)
        return defaults

    @model_validator(mode="after")
    def _one_bucket_list(self) -> StatsdMappingDefaults:
        options = self.histogram_options
        if self.buckets is not None and options is not None and options.buckets is not None:
            raise ValueError("buckets and histogram_options.buckets: write them once")
        if self.buckets is not None:
            bucket_bounds(self.buckets)
        return self

    def bucket_list(self) -> list[float] | None:
        if self.histogram_options is not None and self.histogram_options.buckets is not None:
            return self.histogram_options.buckets
        return self.buckets


class StatsdMappingFile(Section):
    """statsd_exporter's mapping file: `defaults:` and `mappings:`."""

    defaults: StatsdMappingDefaults = Field(default_factory=StatsdMappingDefaults)
    mappings: list[StatsdMappingConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _default_match_type(cls, data: Any) -> Any:
        """A rule without `match_type` takes the file's default one, before its
        `match` is read as a glob or a regex."""
        if not isinstance(data, dict):
            return data
        defaults = data.get("defaults")
        default = defaults.get("match_type") if isinstance(defaults, dict) else None
        mappings = data.get("mappings")
        if default is not None and isinstance(mappings, list):
            data = {**data, "mappings": [
                {"match_type": default, **rule} if isinstance(rule, dict) else rule
                for rule in mappings
            ]}  # fmt: skip
        return data


@dataclass(frozen=True)
class SummarySettings:
    """A summary's quantiles ((quantile, error), ascending) and their window."""

    quantiles: tuple[tuple[float, float], ...] = ()
    max_age: float = SUMMARY_MAX_AGE
    age_buckets: int = SUMMARY_AGE_BUCKETS
    buf_cap: int = SUMMARY_BUF_CAP


@dataclass(frozen=True)
class StatsdRule:
    """A rule with every default filled in."""

    config: StatsdMappingConfig
    observer: str
    buckets: tuple[float, ...]
    summary: SummarySettings
    ttl: float | None  # None: the default's


@dataclass(frozen=True)
class StatsdRules:
    """What the names map to: the rules in their order, and the defaults of the names
    no rule matches."""

    rules: tuple[StatsdRule, ...]
    observer: str
    buckets: tuple[float, ...]
    summary: SummarySettings
    ttl: float
    glob_disable_ordering: bool = False

    def mapping(self) -> tuple[object, ...]:
        """What decides the metrics names map to (the default ttl does not)."""
        return (self.rules, self.observer, self.buckets, self.summary,
                self.glob_disable_ordering)  # fmt: skip


def _summary(options: StatsdSummaryOptions | None, default: SummarySettings) -> SummarySettings:
    if options is None:
        return default
    quantiles = default.quantiles
    if options.quantiles is not None:
        quantiles = tuple(sorted((q.quantile, q.error) for q in options.quantiles))
    return SummarySettings(
        quantiles,
        options.max_age if options.max_age is not None else default.max_age,
        options.age_buckets if options.age_buckets is not None else default.age_buckets,
        options.buf_cap if options.buf_cap is not None else default.buf_cap,
    )


def _resolve(rule: StatsdMappingConfig, observer: str, buckets: tuple[float, ...],
             summary: SummarySettings, ttl: float) -> StatsdRule:  # fmt: skip
    """``rule`` with the defaults; ``ValueError`` for what statsd_exporter refuses too."""
    kind = rule.observer_type or observer
    if kind == "histogram" and rule.summary_options is not None:
        raise ValueError(
            "summary_options on a histogram (the observer type here, or the default's): "
            "set observer_type: summary, or remove summary_options"
        )
    if kind == "summary" and rule.histogram_options is not None:
        raise ValueError(
            "histogram_options on a summary (the observer type here, or the default's): "
            "set observer_type: histogram, or remove histogram_options"
        )
    if rule.ttl == 0 and ttl > 0:
        raise ValueError(
            f"ttl: 0 does not turn expiry off when the default ttl is {format_duration(ttl)} "
            "(statsd_exporter then uses the default): remove it to keep the default, or set "
            "the default ttl to 0"
        )
    own = rule.bucket_list()
    return StatsdRule(rule, kind, tuple(own) if own is not None else buckets,
                      _summary(rule.summary_options, summary), rule.ttl or None)  # fmt: skip


class StatsdConfig(Section):
    """A StatsD server (UDP and TCP) whose samples become Prometheus metrics, served on
    the status port's `/metrics` (counters with `_total`, timers in seconds)."""

    _file: StatsdMappingFile | None = PrivateAttr(default=None)
    _file_notes: tuple[str, ...] = PrivateAttr(default=())

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
        "characters become `_`). With `mapping_file`, these come before the file's.",
    )
    mapping_file: str | None = Field(
        None,
        description="statsd_exporter's mapping file (`defaults:` and `mappings:`, its "
        "`--statsd.mapping-config`), read as it is: no `${ENV}` expansion. A relative path "
        "is read from this config file's directory. Its `defaults:` replace "
        "`observer_type`, `buckets` and `ttl` here, which must then keep their own "
        "defaults; what it leaves out is statsd_exporter's default (timers as summaries "
        "with quantiles 0.5, 0.9 and 0.99; no expiry). Read again when the config is "
        "reloaded (SIGHUP, or a change of pillion.yaml), as statsd_exporter reads its file "
        "again on SIGHUP.",
    )
    observer_type: Literal["histogram", "summary"] = Field(
        "histogram", description="Timers and histograms become this by default."
    )
    buckets: list[float] = Field(
        default_factory=lambda: list(DEFAULT_BUCKETS),
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
        return bucket_bounds(value)

    @field_validator("mapping_file")
    @classmethod
    def _absolute(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else config_path(value, info)

    @model_validator(mode="after")
    def _read_mapping_file(self) -> StatsdConfig:
        if self.mapping_file is None:
            self.rules()  # what statsd_exporter refuses in a rule, given the defaults
            return self
        source = self.mapping_file
        loaded, problems = read_yaml(source)
        if loaded is not None:
            document = {} if loaded.document is None else loaded.document
            if not isinstance(document, dict):
                problems = [FileProblem((), "the top level must be a mapping (defaults:, "
                                        "mappings:)", 1)]  # fmt: skip
            else:
                try:
                    self._file = StatsdMappingFile.model_validate(document)
                except ValidationError as exc:
                    problems = loaded.problems(exc)
        if self._file is not None and loaded is not None:
            problems += self._overridden(loaded.line)
            self._file_notes = tuple(
                FileProblem(path, message, loaded.line(path)).text(source)
                for path, message in self._notes_in_file()
            )
            try:
                self.rules()
            except _RuleError as exc:
                problems.append(FileProblem(exc.path, exc.message, loaded.line(exc.path)))
        if problems:
            raise problems_error(type(self).__name__, "mapping_file", source, problems)
        return self

    def _overridden(self, line: Any) -> list[FileProblem]:
        """A key set both here and in the file's `defaults:`."""
        assert self._file is not None
        defaults = self._file.defaults
        given = {
            "observer_type": defaults.observer_type is not None,
            "buckets": defaults.bucket_list() is not None,
            "ttl": defaults.ttl is not None,
        }
        found = []
        for key, in_file in given.items():
            if in_file and not self.is_default(key):
                where = ("defaults", "histogram_options" if key == "buckets" else key)
                message = f"also set in pillion.yaml (exporters.statsd.{key}): write it once"
                found.append(FileProblem(where, message, line(where)))
        return found

    def _notes_in_file(self) -> list[tuple[tuple[str | int, ...], str]]:
        assert self._file is not None
        notes = [(("defaults", *path), m) for path, m in self._file.defaults._notes]
        for index, rule in enumerate(self._file.mappings):
            notes += [(("mappings", index, *path), m) for path, m in rule._notes]
        return notes

    def deprecations(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(path under `exporters.statsd`, message) of the older spellings used."""
        found = [
            (("mappings", index, *path), message)
            for index, rule in enumerate(self.mappings)
            for path, message in rule._notes
        ]
        found += [(("mapping_file",), note) for note in self._file_notes]
        return found

    def rules(self) -> StatsdRules:
        """Every rule (here, then the mapping file's) with its defaults filled in."""
        summary = SummarySettings()
        observer, ttl = self.observer_type, self.ttl
        buckets = tuple(self.buckets)
        ordering_off = False
        if self._file is not None:
            defaults = self._file.defaults
            observer = defaults.observer_type or (
                "summary" if self.is_default("observer_type") else self.observer_type
            )  # statsd_exporter's default observer is a summary
            own = defaults.bucket_list()
            buckets = tuple(own) if own is not None else buckets
            ttl = defaults.ttl if defaults.ttl is not None else (0.0 if self.is_default("ttl")
                                                                 else self.ttl)  # fmt: skip
            summary = _summary(defaults.summary_options,
                               SummarySettings(STATSD_EXPORTER_QUANTILES))  # fmt: skip
            ordering_off = defaults.glob_disable_ordering
        resolved = []
        for index, rule in enumerate(self.mappings):
            try:
                resolved.append(_resolve(rule, observer, buckets, summary, ttl))
            except ValueError as exc:
                raise ValueError(f"mappings[{index}]: {exc}") from None
        for index, rule in enumerate(self._file.mappings if self._file is not None else []):
            try:
                resolved.append(_resolve(rule, observer, buckets, summary, ttl))
            except ValueError as exc:
                raise _RuleError(("mappings", index), str(exc)) from None
        return StatsdRules(tuple(resolved), observer, buckets, summary, ttl, ordering_off)


class _RuleError(ValueError):
    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
