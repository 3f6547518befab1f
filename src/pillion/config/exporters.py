"""Models of the ``exporters`` section: Prometheus metrics for apps that have
none (JSON scraping, StatsD, metrics from log lines) and the app's own
``/metrics`` merged into Pillion's."""

from __future__ import annotations

import re
import warnings
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from pillion.config.json_metrics import METRIC_NAME, JsonMetricConfig
from pillion.config.json_modules import ModuleRules, translate_config, translate_module
from pillion.config.jsonpath import parse_path
from pillion.config.statsd import StatsdConfig, StatsdMappingConfig, bucket_bounds, label_names
from pillion.config.types import HeaderMap, HttpUrl, Regex, Section
from pillion.config.units import Duration
from pillion.config.yamlfile import FileProblem, config_path, problems_error, read_yaml

__all__ = [
    "ExportersConfig",
    "FromLogsConfig",
    "FromLogsMetricConfig",
    "JsonExporterConfig",
    "JsonMetricConfig",
    "MergeAppConfig",
    "StatsdConfig",
    "StatsdMappingConfig",
    "parse_path",
]

_METRIC_NAME = METRIC_NAME
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NAME = r"^[a-z0-9][a-z0-9_-]*$"


_label_names = label_names
_bucket_bounds = bucket_bounds


class JsonExporterConfig(Section):
    """An app's JSON endpoint, turned into metrics: the `metrics` here, and a
    json_exporter module's (`module_file` and `module`, or `json_exporter`)."""

    _module: ModuleRules | None = PrivateAttr(default=None)
    _notes: tuple[tuple[tuple[str | int, ...], str], ...] = PrivateAttr(default=())

    name: str = Field(pattern=_NAME, description="The target's name (label `target`).")
    url: HttpUrl = Field(description="The JSON endpoint, e.g. `http://127.0.0.1:8080/stats`.")
    timeout: Duration = Field(2.0, description="Longest wait for the endpoint. Default 2s.")
    interval: Duration | None = Field(
        None,
        description="Fetch on this interval and serve the cached values; default: fetch "
        "on each scrape of `/metrics`.",
    )
    headers: HeaderMap = Field(
        default_factory=dict,
        description="Header fields sent with each fetch (credential-like ones are shown as "
        "`***`). `Accept: application/json` unless given.",
    )
    metrics: list[JsonMetricConfig] = Field(
        default_factory=list,
        description="The metrics. At least one, here or in the json_exporter module.",
    )
    module_file: str | None = Field(
        None,
        description="json_exporter's config file (`modules: <name>: {headers, metrics, "
        "http_client_config, body, valid_status_codes}`), read as it is: no `${ENV}` "
        "expansion. A relative path is read from this config file's directory. Its module "
        "`module` gives this target's metrics (with those of `metrics`), the series "
        "json_exporter gives; what Pillion cannot do the same way is refused by name. Read "
        "again when the config is reloaded.",
    )
    module: str | None = Field(
        None,
        description="The module of `module_file` (json_exporter's `module` parameter). "
        "Default: `default`, as json_exporter's.",
    )
    json_exporter: dict[str, Any] | None = Field(
        None,
        description="A json_exporter module written here (its `headers`, `metrics`, "
        "`http_client_config`, `body`, `valid_status_codes`), instead of `module_file`.",
    )

    @field_validator("module_file")
    @classmethod
    def _absolute(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else config_path(value, info)

    @model_validator(mode="after")
    def _read_module(self) -> JsonExporterConfig:
        if self.module is not None and self.module_file is None:
            raise ValueError("module names a module of module_file: set module_file")
        if self.module_file is not None and self.json_exporter is not None:
            raise ValueError("module_file and json_exporter: give the module in one place")
        notes: list[tuple[tuple[str | int, ...], str]] = []
        if self.module_file is not None:
            source = self.module_file
            loaded, problems = read_yaml(source)
            if loaded is not None:
                rules, found, warnings = translate_config(loaded.document, self.module or "default")
                problems = [
                    FileProblem(path, message, loaded.line(path)) for path, message in found
                ]
                notes = [
                    (("module_file",), FileProblem(path, message, loaded.line(path)).text(source))
                    for path, message in warnings
                ]
                self._module = rules
            if problems:
                raise problems_error(type(self).__name__, "module_file", source, problems)
        elif self.json_exporter is not None:
            rules, found, warnings = translate_module(self.json_exporter)
            if found:
                problems = [FileProblem(path, message) for path, message in found]
                raise problems_error(type(self).__name__, "json_exporter", "json_exporter",
                                     problems)  # fmt: skip
            notes = [(("json_exporter", *path), message) for path, message in warnings]
            self._module = rules
        self._notes = tuple(notes)
        if not self.all_metrics():
            raise ValueError("no metrics: give metrics, or a json_exporter module")
        if self._module is not None:
            for name in self._module.headers:
                if name.lower() in {key.lower() for key in self.headers}:
                    raise ValueError(f"header {name} set here and in the json_exporter module: "
                                     "write it once")  # fmt: skip
        names = [metric.name for metric in self.all_metrics()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"metric {twice[0]} is defined twice for this target")
        return self

    def all_metrics(self) -> tuple[JsonMetricConfig, ...]:
        """The metrics here, then the module's."""
        module = self._module.metrics if self._module is not None else ()
        return (*self.metrics, *module)

    def request_headers(self) -> dict[str, str]:
        """The header fields each fetch sends."""
        found = {**(self._module.headers if self._module is not None else {}), **self.headers}
        if not any(name.lower() == "accept" for name in found):
            found["Accept"] = "application/json"
        return found

    def request_body(self) -> str | None:
        """The body POSTed by each fetch; None: a GET."""
        return self._module.body if self._module is not None else None

    def status_codes(self) -> tuple[int, ...]:
        """The statuses that are an answer; () : any 2xx."""
        return self._module.status_codes if self._module is not None else ()

    def follow_redirects(self) -> bool:
        return self._module.follow_redirects if self._module is not None else True

    def deprecations(self) -> list[tuple[tuple[str | int, ...], str]]:
        """The warnings about what json_exporter ignores, which the module still has."""
        return list(self._notes)


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
            # targets may share a metric (a module for several apps): one family, one type
            types: dict[str, tuple[str, str]] = {}
            for target in self.json:
                for metric in target.all_metrics():
                    first = types.setdefault(metric.name, (metric.type, target.name))
                    if first[0] != metric.type:
                        raise ValueError(f"metric {metric.name} is a {first[0]} for target "
                                         f"{first[1]} and a {metric.type} for {target.name}: "
                                         "one name, one type")  # fmt: skip
            return self

        def deprecations(self) -> list[tuple[tuple[str | int, ...], str]]:
            """(path, message) of what the other tools' files (or the same constructs
            here) hold that is read with a warning: their older spellings, and what
            json_exporter itself ignores."""
            found: list[tuple[tuple[str | int, ...], str]] = []
            if self.statsd is not None:
                found += [
                    (("exporters", "statsd", *path), m) for path, m in self.statsd.deprecations()
                ]
            for index, target in enumerate(self.json):
                found += [
                    (("exporters", "json", index, *path), m) for path, m in target.deprecations()
                ]
            return found

        def declared_metric_names(self) -> frozenset[str]:
            """The names of the `json` and `from_logs` metrics: neither StatsD nor the
            merged app metrics may take them."""
            names = {metric.name for target in self.json for metric in target.all_metrics()}
            names |= {metric.name for source in self.from_logs for metric in source.metrics}
            return frozenset(names)
