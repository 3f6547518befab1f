"""The shape of the pod fields the injector reads. No I/O.

The API server hands the webhook pods that fit the Pod schema, but anyone who
can reach the webhook (or write a manifest for ``pillion inject``) can send any
JSON: a ``metadata`` that is a list, a container that is a number, an annotation
whose value is not a string. ``shape_problem`` names the first such field, so
that the pod is refused with that reason instead of raising somewhere inside the
injection. It checks the types of what ``inject`` reads, nothing more: the rest
of the pod is carried through as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["shape_problem"]

_OBJECT, _LIST, _TEXT = "an object", "a list", "a string"
_ITEM_FIELDS = {
    "volumeMounts": _LIST,
    "env": _LIST,
    "lifecycle": _OBJECT,
    "securityContext": _OBJECT,
}


def shape_problem(pod: Mapping[str, Any]) -> str | None:
    """``"<path> is not <a kind>"`` for the first field of the wrong type, or None."""
    return _metadata(pod.get("metadata")) or _spec(pod.get("spec"))


def _metadata(metadata: Any) -> str | None:
    if not isinstance(metadata, dict):
        return _kind(metadata, "metadata", _OBJECT)
    annotations = metadata.get("annotations")
    problem = _text(metadata, "metadata", "namespace")
    if problem := problem or _kind(annotations, "metadata.annotations", _OBJECT):
        return problem
    for key, value in (annotations or {}).items():
        if problem := _kind(value, f"metadata.annotations[{key!r}]", _TEXT):
            return problem
    return None


def _spec(spec: Any) -> str | None:
    if not isinstance(spec, dict):
        return _kind(spec, "spec", _OBJECT)
    problem = _kind(spec.get("securityContext"), "spec.securityContext", _OBJECT)
    if problem := problem or _text(spec, "spec", "serviceAccountName"):
        return problem
    for key in ("containers", "initContainers", "volumes"):
        items = spec.get(key)
        if problem := _kind(items, f"spec.{key}", _LIST):
            return problem
        for index, item in enumerate(items or []):
            if problem := _item(item, f"spec.{key}[{index}]"):
                return problem
    return None


def _item(item: Any, path: str) -> str | None:
    """A container or a volume (in a list: never null)."""
    if not isinstance(item, dict):
        return f"{path} is not {_OBJECT}"
    if problem := _text(item, path, "name"):
        return problem
    for key, kind in _ITEM_FIELDS.items():
        if problem := _kind(item.get(key), f"{path}.{key}", kind):
            return problem
    for index, mount in enumerate(item.get("volumeMounts") or []):
        where = f"{path}.volumeMounts[{index}]"
        if not isinstance(mount, dict):
            return f"{where} is not {_OBJECT}"
        if problem := _text(mount, where, "mountPath"):
            return problem
    return None


def _kind(value: Any, path: str, kind: str) -> str | None:
    """None when ``value`` is absent (null) or of ``kind``."""
    expected = {_OBJECT: dict, _LIST: list, _TEXT: str}[kind]
    if value is None or isinstance(value, expected):
        return None
    return f"{path} is not {kind}"


def _text(parent: Mapping[str, Any], path: str, key: str) -> str | None:
    return _kind(parent.get(key), f"{path}.{key}", _TEXT)
