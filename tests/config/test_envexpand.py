from __future__ import annotations

from pillion.config.envexpand import expand_tree

ENV = {"PORT": "9090", "HOST": "10.0.0.1", "EMPTY": "", "TRICKY": "a: b # c"}


def test_expands_values_anywhere_in_the_tree() -> None:
    document = {"a": "${HOST}:${PORT}", "b": ["x${PORT}", {"c": "${EMPTY}"}], "n": 5}
    result = expand_tree(document, ENV)
    expanded, errors = result.document, result.errors
    assert errors == []
    assert expanded == {"a": "10.0.0.1:9090", "b": ["x9090", {"c": ""}], "n": 5}


def test_default_used_only_when_unset() -> None:
    result = expand_tree(
        {"a": "${NOPE:-fallback}", "b": "${PORT:-1}", "c": "${EMPTY:-d}", "e": "${NOPE:-}"}, ENV
    )
    expanded, errors = result.document, result.errors
    assert errors == []
    assert expanded == {"a": "fallback", "b": "9090", "c": "", "e": ""}


def test_values_with_yaml_syntax_stay_plain_strings() -> None:
    expanded = expand_tree({"a": "${TRICKY}"}, ENV).document
    assert expanded == {"a": "a: b # c"}


def test_escaped_reference_is_literal() -> None:
    result = expand_tree({"a": "$${PORT} and $$ and $x"}, ENV)
    expanded, errors = result.document, result.errors
    assert errors == []
    assert expanded == {"a": "${PORT} and $$ and $x"}


def test_every_missing_variable_reported_with_its_path() -> None:
    errors = expand_tree({"a": {"b": ["${MISSING_ONE}", "${MISSING_TWO}"]}}, ENV).errors
    assert [(e.path, "MISSING" in e.message) for e in errors] == [
        (("a", "b", 0), True),
        (("a", "b", 1), True),
    ]
    assert "MISSING_ONE is not set" in errors[0].message


def test_malformed_references() -> None:
    errors = expand_tree({"a": "${1BAD}", "b": "${UNCLOSED", "c": "${}"}, ENV).errors
    assert [e.path for e in errors] == [("a",), ("b",), ("c",)]
    assert all("invalid variable reference" in e.message for e in errors)


def test_messages_never_contain_values() -> None:
    secret_env = {"TOKEN": "hunter2-secret"}
    errors = expand_tree({"a": "${TOKEN}${NOPE}"}, secret_env).errors
    assert errors
    assert all("hunter2" not in e.message for e in errors)


def test_substituted_values_are_reported_for_hiding() -> None:
    result = expand_tree({"a": "${HOST}", "b": "${EMPTY}", "c": "${NOPE:-x}"}, ENV)
    assert result.substituted == {"10.0.0.1"}


def test_capture_references_are_left_as_they_are() -> None:
    """``${1}`` is a StatsD mapping's (or a regex replacement's) capture: no variable's
    name starts with a digit."""
    result = expand_tree({"name": "${2}_total", "job": "${1}_server ${10} $1", "x": "${HOST}"}, ENV)
    assert result.errors == []
    assert result.document == {"name": "${2}_total", "job": "${1}_server ${10} $1", "x": "10.0.0.1"}
