"""The JSON exporter's JSONPath: wildcards, slices, unions, recursive descent, filters
and kubectl-style templates, what they match, and what is refused when the config
loads."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pillion.config.exporters import JsonMetricConfig
from pillion.config.jsonpath import (
    WILDCARD,
    Descend,
    Filter,
    Slice,
    Union,
    is_multi,
    parse_path,
    parse_template,
)
from pillion.exporters.jsonvalues import PATH_PROBLEMS, extract, go_text, matches

DOC: dict[str, Any] = {
    "counter": 1234,
    "location": "mars",
    "values": [
        {"id": "id-A", "count": 1, "state": "ACTIVE", "ok": True},
        {"id": "id-B", "count": 2, "state": "INACTIVE", "ok": True},
        {"id": "id-C", "count": 3.5, "state": "ACTIVE", "ok": False},
        {"id": "id-D", "state": None},
    ],
    "queues": {"mail": {"depth": 3}, "sms": {"depth": 0}},
    "nested": {"a": {"count": 10}, "b": [{"count": 20}]},
}


def rule(**fields: Any) -> JsonMetricConfig:
    return JsonMetricConfig.model_validate({"name": "m", **fields})


def values_of(path: str) -> list[Any]:
    return [value for _, value in matches(DOC, parse_path(path))]


def test_both_spellings_parse_to_the_same_steps() -> None:
    assert parse_path("{ .values[0].id }") == parse_path("$.values[0].id") == ["values", 0, "id"]
    assert parse_path("{$.counter}") == parse_path("{@.counter}") == ["counter"]
    assert parse_path("{ [*] }") == [WILDCARD]
    assert parse_path("$.values[*].id") == ["values", WILDCARD, "id"]
    assert parse_path("$.queues.*") == ["queues", WILDCARD]
    assert parse_path("$.values[1:3]") == ["values", Slice(1, 3, None)]
    assert parse_path("$.values[0,2]") == ["values", Union((0, 2))]
    assert parse_path("$..count") == [Descend("count")]
    assert parse_path('$.values[?(@.state == "ACTIVE")]') == [
        "values", Filter(("state",), "==", "ACTIVE")]  # fmt: skip
    assert parse_path("$.values[?(@.count>1)]") == ["values", Filter(("count",), ">", 1.0)]
    assert parse_path("$.values[?(@.count)]") == ["values", Filter(("count",), "exists", None)]
    assert not is_multi(parse_path("$.values[-1].id"))
    assert is_multi(parse_path("$.values[?(@.ok == true)]"))


def test_what_each_step_matches() -> None:
    assert values_of("$.values[*].id") == ["id-A", "id-B", "id-C", "id-D"]
    assert values_of("$.queues.*.depth") == [3, 0]
    assert values_of("$.values[1:3].id") == ["id-B", "id-C"]
    assert values_of("$.values[::2].id") == ["id-A", "id-C"]
    assert values_of("$.values[0,2].id") == ["id-A", "id-C"]
    assert values_of("$.values[-1].id") == ["id-D"]
    assert values_of("$..count") == [1, 2, 3.5, 10, 20]
    assert values_of("$.values[7].id") == []
    assert [key for key, _ in matches(DOC, parse_path("$.queues.*"))] == ["mail", "sms"]


@pytest.mark.parametrize(
    ("filter_", "ids"),
    [
        ('@.state == "ACTIVE"', ["id-A", "id-C"]),
        ("@.state == 'INACTIVE'", ["id-B"]),
        ('@.state != "ACTIVE"', ["id-B", "id-D"]),
        ("@.count > 1", ["id-B", "id-C"]),
        ("@.count >= 2", ["id-B", "id-C"]),
        ("@.count < 2", ["id-A"]),
        ("@.count <= 1.0", ["id-A"]),
        ("@.count == 2", ["id-B"]),  # numbers compare as numbers, 2 == 2.0
        ("@.ok == true", ["id-A", "id-B"]),
        ("@.ok != false", ["id-A", "id-B"]),
        ("@.state == null", ["id-D"]),
        ("@.count", ["id-A", "id-B", "id-C"]),  # has the field
        ('@.id > "id-B"', ["id-C", "id-D"]),  # text compares as text
        ('@.count == "1"', []),  # a number is no string
    ],
)
def test_filters(filter_: str, ids: list[str]) -> None:
    # an element without the field, or with one of another type, is not matched
    assert values_of(f"$.values[?({filter_})].id") == ids


def test_templates_mix_text_and_paths() -> None:
    assert parse_template("planet-{ .location }") == ["planet-", ["location"]]
    labelled = rule(path="$.count", each="$.values[*]",
                    labels={"where": "planet-{ .id }/{.state}", "fixed": "x"})  # fmt: skip
    samples = extract(DOC, labelled).samples
    assert samples[:2] == [(("planet-id-A/ACTIVE", "x"), 1.0), (("planet-id-B/INACTIVE", "x"), 2.0)]
    # several matches are written with spaces, as kubectl writes them; a missing path
    # leaves the whole label empty, as json_exporter does
    listed = rule(path="$.counter", labels={"ids": "{ .values[*].id }", "nope": "x-{.nope}"})
    assert extract(DOC, listed).samples == [(("id-A id-B id-C id-D", ""), 1234.0)]


def test_each_over_the_matches_of_a_path() -> None:
    active = rule(path="{.count}", each='{.values[?(@.state == "ACTIVE")]}',
                  labels={"id": "{.id}", "key": "$.@key"})  # fmt: skip
    assert extract(DOC, active).samples == [(("id-A", "0"), 1.0), (("id-C", "2"), 3.5)]
    # without a wildcard, each is a list or map whose elements are taken (as before)
    queues = rule(path="$.depth", each="$.queues", labels={"queue": "$.@key"})
    assert extract(DOC, queues).samples == [(("mail",), 3.0), (("sms",), 0.0)]
    assert extract(DOC, rule(value=1, each="$.values[*]", labels={"id": "$.id"})).samples == [
        (("id-A",), 1.0), (("id-B",), 1.0), (("id-C",), 1.0), (("id-D",), 1.0)]  # fmt: skip


def test_a_path_that_does_not_fit_the_rule_is_a_path_problem() -> None:
    several = extract(DOC, rule(path="$.values[*].count"))
    assert several.samples == []
    assert several.problems == {"several_values": 1}
    assert "matched 3 values where one is needed" in several.details["several_values"]
    one = extract(DOC, rule(path='$.values[?(@.id == "id-B")].count'))
    assert one.samples == [((), 2.0)]
    scalar = extract(DOC, rule(path="$.x", each="$.counter"))
    assert scalar.problems == {"not_a_list": 1}
    twice = extract(DOC, rule(path="$.count", each="$.values[*]", labels={"s": "$.state"}))
    assert twice.samples == [(("ACTIVE",), 1.0), (("INACTIVE",), 2.0)]
    assert twice.problems == {"duplicate_series": 1, "missing": 1}
    assert set(several.problems) | set(scalar.problems) | {"duplicate_series"} <= PATH_PROBLEMS


def test_a_huge_integer_is_not_a_number_rather_than_an_error() -> None:
    assert extract({"n": 10**400}, rule(path="$.n")).problems == {"not_a_number": 1}


def test_label_text_as_go_writes_it() -> None:
    assert [go_text(v, go=True) for v in (1234, 1.5, 1e6, 0.00001, True, None, "x")] == [
        "1234", "1.5", "1e+06", "1e-05", "true", "<nil>", "x"]  # fmt: skip
    assert go_text({"b": 1, "a": [1]}, go=False) == '{"a":[1],"b":1}'
    assert [go_text(v, go=False) for v in (1234, 1.5, None)] == ["1234", "1.5", ""]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ('$.a[?(@.x =~ "y")]', "regex filters =~ are not supported"),
        ("$.a[?(@.x == 1 && @.y == 2)]", "&& and || are not supported"),
        ("$.a[?(@.x > true)]", "true compares with == or != only"),
        ("$..*", "recursive descent reads a key"),
        ("$.a[::0]", "a slice's step must be above 0"),
        ("{.a} x", "one JSONPath in braces, with no text around it"),
        ("{ range .a }", "{range} and {end} are not supported"),
        ("a.b", "a JSONPath starts with $"),
    ],
)
def test_what_is_not_in_the_language_is_refused(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_path(path)
