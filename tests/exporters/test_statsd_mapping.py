"""StatsD mapping rules: globs, regexes, order, drop, scale; and their config checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pillion.config.exporters import StatsdConfig, StatsdMappingConfig
from pillion.exporters.statsd_mapping import Mapped, Mapper


def mapper(*rules: dict[str, Any]) -> Mapper:
    return Mapper([StatsdMappingConfig.model_validate(rule) for rule in rules])


def mapped(rules: Mapper, raw: str) -> tuple[str, dict[str, str]]:
    """The name and labels ``raw`` maps to."""
    result = rules.map(raw)
    assert result is not None
    return result.name, result.labels


def name_of(rules: Mapper, raw: str) -> str:
    mapped = rules.map(raw)
    assert mapped is not None
    return mapped.name


def test_unmatched_names_keep_their_own_made_valid() -> None:
    rules = mapper()
    assert rules.map("my.app.hits") == Mapped("my_app_hits", {})
    assert rules.map("9-lives") == Mapped("_9_lives", {})


def test_glob_captures_each_star_as_one_component() -> None:
    rules = mapper(
        {"match": "api.*.*.latency", "name": "api_latency_seconds",
         "labels": {"service": "$1", "endpoint": "${2}", "fixed": "x"}}
    )  # fmt: skip
    assert mapped(rules, "api.users.get.latency") == (
        "api_latency_seconds",
        {"service": "users", "endpoint": "get", "fixed": "x"},
    )
    # a star never spans a dot: four components are needed
    assert name_of(rules, "api.users.get.extra.latency") == "api_users_get_extra_latency"
    assert name_of(rules, "api.users.latency") == "api_users_latency"
    # nor does the glob match part of a name
    assert name_of(rules, "xapi.users.get.latency") == "xapi_users_get_latency"


def test_glob_star_inside_a_component_and_captures_in_the_name() -> None:
    rules = mapper({"match": "jobs.*_total.*", "name": "jobs_$1", "labels": {"queue": "$2"}})
    assert mapped(rules, "jobs.done_total.mail") == ("jobs_done", {"queue": "mail"})


def test_glob_dots_and_specials_are_literal() -> None:
    rules = mapper({"match": "a+b.*", "name": "plus"})
    assert name_of(rules, "a+b.x") == "plus"
    assert name_of(rules, "aab.x") == "aab_x"


def test_regex_groups_and_named_groups() -> None:
    rules = mapper(
        {"match": r"^db\.(?P<table>\w+)\.(select|insert)$", "match_type": "regex",
         "name": "db_queries", "labels": {"table": "${table}", "op": "$2"}}
    )  # fmt: skip
    assert mapped(rules, "db.users.select") == ("db_queries", {"table": "users", "op": "select"})
    assert name_of(rules, "db.users.delete") == "db_users_delete"


def test_a_regex_is_searched_unless_anchored() -> None:
    rules = mapper({"match": r"errors", "match_type": "regex", "name": "all_errors"})
    assert name_of(rules, "app.errors.count") == "all_errors"


def test_first_matching_rule_wins_globs_before_regexes() -> None:
    rules = mapper(
        {"match": r".*", "match_type": "regex", "name": "by_regex"},
        {"match": "a.*", "name": "first_glob"},
        {"match": "a.b", "name": "second_glob"},
    )
    assert name_of(rules, "a.b") == "first_glob"
    assert name_of(rules, "zzz") == "by_regex"


def test_drop_action() -> None:
    rules = mapper({"match": "debug.*", "action": "drop"}, {"match": "*.*", "name": "kept_$1"})
    assert rules.map("debug.x") is None
    assert rules.map("prod.x") == Mapped("kept_prod", {}, help="StatsD samples matching *.*.")


def test_scale_observer_buckets_and_help_come_with_the_result() -> None:
    rules = mapper(
        {"match": "size.*", "name": "size_bytes", "scale": 1024, "observer_type": "summary",
         "buckets": [1, 10], "help": "Sizes."}
    )  # fmt: skip
    assert rules.map("size.x") == Mapped("size_bytes", {}, "summary", (1.0, 10.0), 1024.0, "Sizes.")


def test_captures_that_make_an_invalid_name_are_made_valid() -> None:
    rules = mapper({"match": "m.*", "name": "m_$1"})
    assert name_of(rules, "m.a-b/c") == "m_a_b_c"


def test_a_missing_optional_group_is_empty() -> None:
    rules = mapper(
        {"match": r"^x(\d+)?$", "match_type": "regex", "name": "x", "labels": {"n": "$1"}}
    )
    assert mapped(rules, "x") == ("x", {"n": ""})


def test_results_are_cached_and_the_cache_is_bounded() -> None:
    rules = Mapper([], cache_size=10)
    first = rules.map("a.b")
    assert rules.map("a.b") is first
    for number in range(25):
        rules.map(f"name{number}")
    assert len(rules._cache) <= 10


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"match": "a.*"}, "set `name`"),
        ({"match": "a.*", "name": "x_$2"}, "has 1 captures"),
        ({"match": "(a)", "match_type": "regex", "name": "x_${nope}"}, "no such named group"),
        ({"match": "(", "match_type": "regex", "name": "x"}, "invalid regex"),
        ({"match": "a b", "name": "x"}, "no spaces"),
        ({"match": "a", "name": "bad name"}, "invalid metric name"),
        ({"match": "a", "name": "x", "labels": {"bad-label": "v"}}, "invalid label name"),
        ({"match": "a", "name": "x", "labels": {"__x": "v"}}, "invalid label name"),
        ({"match": "a", "name": "x", "buckets": [1, 1]}, "buckets must increase"),
        ({"match": "a", "name": "x", "buckets": []}, "at least one bucket"),
        ({"match": "a", "name": "x", "buckets": [1, float("inf")]}, "finite"),
        ({"match": "a", "name": "x", "scale": 0}, "scale"),
        ({"match": "", "name": "x"}, "at least 1 character"),
        ({"match": "a", "name": "x", "extra": 1}, "Extra inputs"),
    ],
)
def test_rules_are_checked_when_the_config_loads(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StatsdMappingConfig.model_validate(rule)


def test_drop_rules_need_no_name_and_defaults_are_sane() -> None:
    StatsdMappingConfig.model_validate({"match": "x.*", "action": "drop"})
    config = StatsdConfig()
    assert str(config.udp) == "127.0.0.1:9125"
    assert config.ttl == 300.0
    with pytest.raises(ValidationError, match="buckets must increase"):
        StatsdConfig.model_validate({"buckets": [2, 1]})
    assert StatsdConfig.model_validate({"udp": None, "tcp": None, "ttl": "0"}).ttl == 0
