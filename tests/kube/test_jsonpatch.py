"""``json_patch``: applied with the ``jsonpatch`` library, it turns before into after."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.kube.inject import InjectSettings, inject_pod, json_patch

CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    ({"a": 1}, {"a": 1}),
    ({"a": 1}, {"a": 2}),
    ({"a": 1}, {}),
    ({}, {"a/b": 1, "c~d": 2, "~/": 3, "": 4}),
    ({"a/b": 1, "m~n": {"x/y~z": [1]}}, {"a/b": 2, "m~n": {"x/y~z": [1, 2]}}),
    ({"a": [1, 2, 3]}, {"a": [0, 1, 2, 3]}),
    ({"a": [1, 2, 3]}, {"a": [1, 2, 3, 4]}),
    ({"a": [1, 2, 3]}, {"a": [1, 9, 2, 3]}),
    ({"a": [1, 2, 3]}, {"a": [3]}),
    ({"a": [1, 2, 3]}, {"a": []}),
    ({"a": [{"n": 1}, {"n": 2}]}, {"a": [{"n": 1, "m": 0}, {"n": 3}, {"n": 4}]}),
    ({"a": [1, 1, 1]}, {"a": [1, 1]}),
    ({"a": True}, {"a": 1}),
    ({"a": 1}, {"a": 1.0}),
    ({"a": {"b": 1}}, {"a": [1]}),
    ({"a": None}, {"a": {"b": None}}),
]


@pytest.mark.parametrize(("before", "after"), CASES)
def test_patch_applies(before: dict[str, Any], after: dict[str, Any]) -> None:
    patch = json_patch(before, after)
    result = jsonpatch.apply_patch(before, patch)
    assert result == after
    assert [type(v) for v in _leaves(result)] == [type(v) for v in _leaves(after)]
    assert {op["op"] for op in patch} <= {"add", "replace", "remove"}


def test_equal_documents_need_no_patch() -> None:
    assert json_patch({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == []


def test_escaping() -> None:
    patch = json_patch({}, {"a~/b": 1})
    assert patch == [{"op": "add", "path": "/a~0~1b", "value": 1}]


def test_insert_at_front_is_one_add() -> None:
    patch = json_patch({"a": [{"n": 1}, {"n": 2}]}, {"a": [{"n": 0}, {"n": 1}, {"n": 2}]})
    assert patch == [{"op": "add", "path": "/a/0", "value": {"n": 0}}]


def test_injection_patch() -> None:
    pod = {"metadata": {"name": "p", "annotations": {"prometheus.io/scrape": "true"}},
           "spec": {"initContainers": [{"name": "m", "image": "m"}],
                    "containers": [{"name": "a", "image": "a"}]}}  # fmt: skip
    decision = inject_pod(pod, InjectSettings(), "shop", {"pillion.dev/inject": "enabled"})
    assert jsonpatch.apply_patch(pod, json_patch(pod, decision.pod)) == decision.pod


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in _leaves(value[key])]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "~", "/", "a/~"]), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["x", "y/", "~z"]), _json, max_size=3),
       st.dictionaries(st.sampled_from(["x", "y/", "~z"]), _json, max_size=3))  # fmt: skip
def test_any_documents(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert jsonpatch.apply_patch(before, json_patch(before, after)) == after
