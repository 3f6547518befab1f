"""Filters: include, exclude, redact, set, rename, remove, in order."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pillion.config.logs import FilterConfig
from pillion.logs.filters import MAX_THROTTLE_KEYS, compile_filters

CARD = r"\b\d(?:[ -]?\d){12,15}\b"


def run(steps: list[dict[str, Any]], message: bytes, fields: dict[str, Any] | None) -> Any:
    chain = compile_filters([FilterConfig.model_validate(step) for step in steps])
    assert chain is not None
    return chain(message, fields)


def test_redaction_reaches_the_message_and_nested_fields() -> None:
    message = b"paid with 4111 1111 1111 1111 ok"
    fields = {"card": "4111-1111-1111-1111", "nested": {"list": ["4111111111111111", 7]}}
    redacted, out = run([{"redact": {"regex": CARD, "replacement": "[card]"}}], message, fields)
    assert redacted == b"paid with [card] ok"
    assert out == {"card": "[card]", "nested": {"list": ["[card]", 7]}}
    assert fields["card"] == "4111-1111-1111-1111"  # the input is not changed in place


def test_include_exclude_and_edits_in_order() -> None:
    steps: list[dict[str, Any]] = [
        {"exclude": {"field": "level", "regex": "^debug$"}},
        {"include": {"regex": "checkout"}},
        {"rename": {"msg": "summary"}},
        {"set": {"env": "prod"}},
        {"remove": ["password"]},
    ]
    assert run(steps, b"checkout", {"level": "debug"}) == "filtered"
    assert run(steps, b"login", {"level": "info"}) == "filtered"
    kept = run(steps, b"checkout done", {"level": "info", "msg": "m", "password": "x"})
    assert kept == (b"checkout done", {"level": "info", "summary": "m", "env": "prod"})
    assert run([{"exclude": {"field": "missing", "regex": "x"}}], b"m", None) == (b"m", None)


def test_a_step_sets_exactly_one_thing_and_regexes_compile() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        FilterConfig.model_validate({"set": {"a": "b"}, "remove": ["c"]})
    with pytest.raises(ValidationError, match="invalid regex"):
        FilterConfig.model_validate({"redact": {"regex": "(["}})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_throttle_keeps_threshold_per_window_for_each_key() -> None:
    clock = Clock()
    step = FilterConfig.model_validate(
        {"throttle": {"threshold": 3, "window": "10s", "key": "kubernetes.pod"}}
    )
    chain = compile_filters([step], clock)
    assert chain is not None

    def send(pod: str | None) -> bool:
        fields = {"kubernetes": {"pod": pod}} if pod else None
        return not isinstance(chain(b"m", fields), str)

    assert [send("a") for _ in range(5)] == [True, True, True, False, False]
    assert [send("b") for _ in range(4)] == [True, True, True, False]  # its own bucket
    assert chain(b"m", {"kubernetes": {"pod": "a"}}) == "throttled"
    clock.now += 4  # 1.2 tokens back for each key
    assert [send("a") for _ in range(2)] == [True, False]
    clock.now += 3600  # a full bucket, never more than the threshold
    assert [send("a") for _ in range(4)] == [True, True, True, False]
    assert [send(None) for _ in range(4)] == [True, True, True, False]  # no key: one bucket


def test_throttle_without_key_and_bounded_keys() -> None:
    clock = Clock()
    chain = compile_filters([FilterConfig.model_validate({"throttle": {"threshold": 1}})], clock)
    assert chain is not None
    assert chain(b"a", None) == (b"a", None)
    assert chain(b"b", {"x": 1}) == "throttled"  # the whole input shares one bucket
    keyed = compile_filters(
        [FilterConfig.model_validate({"throttle": {"threshold": 1, "key": "message"}})], clock
    )
    assert keyed is not None
    for n in range(MAX_THROTTLE_KEYS + 10):  # more keys than kept: the oldest are dropped
        assert keyed(str(n).encode(), None) == (str(n).encode(), None)
    assert keyed(str(MAX_THROTTLE_KEYS + 9).encode(), None) == "throttled"  # recent: kept
    assert keyed(b"0", None) == (b"0", None)  # forgotten: a new, full bucket


@pytest.mark.parametrize(
    "throttle",
    [
        {"threshold": 0},
        {"threshold": 5, "window": "0s"},
        {"window": "1s"},
        {"threshold": 1, "per": "1s"},
    ],
)
def test_bad_throttle_is_refused(throttle: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="throttle"):
        FilterConfig.model_validate({"throttle": throttle})


@pytest.mark.parametrize(
    "path",
    [
        'kubernetes.labels."app.kubernetes.io/name"',
        "kubernetes.labels['app.kubernetes.io/name']",
        'kubernetes.labels["app.kubernetes.io/name"]',
    ],
)
def test_a_key_with_dots_is_reached_quoted_or_bracketed(path: str) -> None:
    labels = {"app.kubernetes.io/name": "shop", "app": "other"}
    fields = {"kubernetes": {"labels": labels}}
    steps: list[dict[str, Any]] = [{"include": {"field": path, "regex": "^shop$"}}]
    assert run(steps, b"m", fields) == (b"m", fields)
    assert run(steps, b"m", {"kubernetes": {"labels": {"app": "shop"}}}) == "filtered"
    throttle: list[dict[str, Any]] = [{"throttle": {"threshold": 1, "key": path}}]
    chain = compile_filters([FilterConfig.model_validate(step) for step in throttle])
    assert chain is not None
    assert chain(b"1", fields) == (b"1", fields)
    assert chain(b"2", fields) == "throttled"  # same key
    other = {"kubernetes": {"labels": {"app.kubernetes.io/name": "cart"}}}
    assert chain(b"3", other) == (b"3", other)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ('kubernetes.labels."app', "cannot read"),
        ("kubernetes.", "ends with a dot"),
        ("a..b", "cannot read '.b'"),
        ("a['b'", "cannot read"),
        ("", "at least one field"),
    ],
)
def test_a_field_path_that_is_not_one_is_refused(path: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        FilterConfig.model_validate({"include": {"field": path, "regex": "x"}})
    with pytest.raises(ValidationError, match=error):
        FilterConfig.model_validate({"throttle": {"threshold": 1, "key": path}})
