"""Filters: include, exclude, redact, set, rename, remove, in order."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pillion.config.logs import FilterConfig
from pillion.logs.filters import compile_filters

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
    assert run(steps, b"checkout", {"level": "debug"}) is None
    assert run(steps, b"login", {"level": "info"}) is None
    kept = run(steps, b"checkout done", {"level": "info", "msg": "m", "password": "x"})
    assert kept == (b"checkout done", {"level": "info", "summary": "m", "env": "prod"})
    assert run([{"exclude": {"field": "missing", "regex": "x"}}], b"m", None) == (b"m", None)


def test_a_step_sets_exactly_one_thing_and_regexes_compile() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        FilterConfig.model_validate({"set": {"a": "b"}, "remove": ["c"]})
    with pytest.raises(ValidationError, match="invalid regex"):
        FilterConfig.model_validate({"redact": {"regex": "(["}})
