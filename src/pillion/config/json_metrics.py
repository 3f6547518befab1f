"""The model of one metric of ``exporters.json[]``: a JSONPath (or a fixed value), its
labels and how text becomes a number. Its paths are checked when the config loads
(``pillion.config.jsonpath``); what a rule does with a document is
``pillion.exporters.jsonvalues``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from pillion.config.jsonpath import is_template, parse_path, parse_template
from pillion.config.statsd import label_names
from pillion.config.types import Section

__all__ = ["METRIC_NAME", "JsonMetricConfig"]

METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


class JsonMetricConfig(Section):
    """One metric (or one per element, in object mode) from the JSON document."""

    # Read from a json_exporter module: its text values are read as json_exporter reads
    # them (value_map keys in any case, Go's true/false spellings, null as NaN) and its
    # label values written as Go writes them.
    _json_exporter: bool = PrivateAttr(default=False)
    _fold_case: bool = PrivateAttr(default=False)  # value_map keys in lower case, any case read

    name: str = Field(pattern=METRIC_NAME, description="The metric's name.")
    help: str = Field("", description="Its HELP text. Default: the JSON path.")
    type: Literal["gauge", "counter", "untyped"] = Field(
        "gauge",
        description="gauge, counter (exposed with `_total`) or untyped (json_exporter's default).",
    )
    path: str | None = Field(
        None,
        description="JSONPath of the value, e.g. `$.queue.depth` or `{ .queue.depth }`; in "
        "object mode, relative to each element (`$.depth`), or `$.@key` for the element's "
        "key. Wildcards (`[*]`, `.*`), slices, unions, `..key` and filters "
        '(`[?(@.state == "up")]`, `[?(@.lag > 5)]`) are read; a path that matches several '
        "values where one is needed is a scrape problem. Required unless `value` is given.",
    )
    value: float | None = Field(
        None,
        description="A fixed value instead of `path`, e.g. 1 for a series per element whose "
        "labels carry the information.",
    )
    each: str | None = Field(
        None,
        description="Object mode: JSONPath of a list or map (e.g. `$.queues`), one series "
        "per element; or a path that matches several values (`$.queues[*]`, "
        '`$.values[?(@.state == "ACTIVE")]`), one series per match.',
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels: a value starting with `$` is a JSONPath (relative to the "
        "element in object mode; `$.@key` is the element's key); text with `{ .path }` in "
        "it is a template (`planet-{ .location }`); anything else is fixed. Several matches "
        "are written with a space between them, a missing one gives an empty value.",
    )
    value_map: dict[str, float] = Field(
        default_factory=dict,
        description='Text values to numbers, e.g. `{"up": 1, "degraded": 0.5, "down": '
        "0}`. Booleans are 1 and 0 without a map.",
    )
    optional: bool = Field(
        False,
        description="A missing value (or list, in object mode) is skipped silently; "
        'otherwise it is counted in `pillion_exporter_json_errors_total{reason="missing"}`.',
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return label_names(value)

    @field_validator("path", "each")
    @classmethod
    def _jsonpath(cls, value: str | None) -> str | None:
        if value is not None:
            parse_path(value)
        return value

    @field_validator("labels")
    @classmethod
    def _label_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            try:
                if text.startswith("$"):
                    parse_path(text)
                elif is_template(text):
                    parse_template(text)
            except ValueError as exc:
                raise ValueError(f"label {name}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _path_or_value(self) -> JsonMetricConfig:
        if (self.path is None) == (self.value is None):
            raise ValueError("give `path` (a JSONPath) or `value` (a fixed number), one of them")
        return self
