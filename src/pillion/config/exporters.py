"""Models of the ``exporters`` section: Prometheus metrics for apps that have
none (JSON scraping, StatsD, metrics from log lines) and the app's own
``/metrics`` merged into Pillion's."""

from __future__ import annotations

import re
import warnings
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pillion.config.statsd import StatsdConfig, StatsdMappingConfig, bucket_bounds, label_names
from pillion.config.types import HttpUrl, Regex, Section
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


_label_names = label_names
_bucket_bounds = bucket_bounds


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

        def deprecations(self) -> list[tuple[tuple[str | int, ...], str]]:
            """(path, message) of the other tools' older spellings the section (or a
            file it reads) used: read as those tools read them, to be reported."""
            found: list[tuple[tuple[str | int, ...], str]] = []
            if self.statsd is not None:
                found += [
                    (("exporters", "statsd", *path), m) for path, m in self.statsd.deprecations()
                ]
            return found

        def declared_metric_names(self) -> frozenset[str]:
            """The names of the `json` and `from_logs` metrics: neither StatsD nor the
            merged app metrics may take them."""
            names = {metric.name for target in self.json for metric in target.metrics}
            names |= {metric.name for source in self.from_logs for metric in source.metrics}
            return frozenset(names)
