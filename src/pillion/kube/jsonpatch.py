"""RFC 6902 JSON Patch from the difference of two JSON documents. No I/O.

The webhook answers with the patch that turns the pod it was sent into the
injected pod, so the injector itself only ever builds a pod. Arrays are diffed
by their common head and tail, so inserting a container at the front of a list
is one ``add``, not a ``replace`` of every element after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["escape_pointer", "json_patch"]


def escape_pointer(token: str) -> str:
    """One reference token of a JSON Pointer: ``~`` as ``~0``, then ``/`` as ``~1``
    (RFC 6901 section 3; the order matters, or ``/`` would become ``~01``)."""
    return token.replace("~", "~0").replace("/", "~1")


def same(a: Any, b: Any) -> bool:
    """JSON equality: unlike ``==``, ``true`` is not ``1`` and ``1`` is not ``1.0``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def json_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``add`` / ``replace`` / ``remove`` operations that turn ``before`` into
    ``after``, applied in order; none when they are equal."""
    ops: list[dict[str, Any]] = []
    _diff_objects("", before, after, ops)
    return ops


def _diff(path: str, a: Any, b: Any, ops: list[dict[str, Any]]) -> None:
    if same(a, b):
        return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        _diff_objects(path, a, b, ops)
    elif isinstance(a, list) and isinstance(b, list):
        _diff_arrays(path, a, b, ops)
    else:
        ops.append({"op": "replace", "path": path, "value": b})


def _diff_objects(
    path: str, a: Mapping[str, Any], b: Mapping[str, Any], ops: list[dict[str, Any]]
) -> None:
    for key in a:
        if key not in b:
            ops.append({"op": "remove", "path": f"{path}/{escape_pointer(key)}"})
    for key, value in b.items():
        child = f"{path}/{escape_pointer(key)}"
        if key in a:
            _diff(child, a[key], value, ops)
        else:
            ops.append({"op": "add", "path": child, "value": value})


def _diff_arrays(path: str, a: list[Any], b: list[Any], ops: list[dict[str, Any]]) -> None:
    head = 0
    while head < min(len(a), len(b)) and same(a[head], b[head]):
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and same(a[-1 - tail], b[-1 - tail]):
        tail += 1
    old, new = a[head : len(a) - tail], b[head : len(b) - tail]
    paired = min(len(old), len(new))
    for index in range(paired):
        _diff(f"{path}/{head + index}", old[index], new[index], ops)
    # Removals from the end of the middle first, so earlier indices stay valid.
    for index in reversed(range(paired, len(old))):
        ops.append({"op": "remove", "path": f"{path}/{head + index}"})
    for index in range(paired, len(new)):
        ops.append({"op": "add", "path": f"{path}/{head + index}", "value": new[index]})
