"""``pillion proxy-status``: which pods run Pillion, at which version, for which
injector revision, as a native or classic sidecar, and why the others do not. No
I/O: the text ``kubectl get pods -A -o json`` (or ``-o yaml``) prints goes in; rows,
a summary per namespace, a table and JSON come out.

Where each fact comes from (the injector writes them):

- ``pillion.dev/status``: ``{"injected": bool, "reason": str, "version": <injector
  version>, "revision": <revision>}``; no ``revision`` means ``default``, and a pod
  without the annotation was never seen by the injector (``not seen``; an
  unreadable one counts the same, with the problem as its reason: the injector
  would decide afresh too);
- ``pillion.dev/version``: the sidecar's version; without it, the tag of the
  ``pillion`` container's image (``…/pillion:0.1.0`` -> ``0.1.0``; no tag, or a
  digest only -> ``unknown``; with a tag and a digest, the tag);
- the container named ``pillion``: an init container with ``restartPolicy:
  Always`` is a native sidecar, a container a classic one.

A version is its release numbers (``0.2.0``, ``v1.2``; ``0.2`` == ``0.2.0``); any
other (``latest``, ``0.3.0rc1``, ``unknown``) cannot be compared: it is never
counted as older, but as unknown.

JSON (``render_json``), keys in this order::

    {"older_than": "0.2.0",
     "pods": [{"namespace": str, "name": str,
               "status": "injected" | "not injected" | "not seen",
               "reason": str | null,             # the injector's, or the problem
               "sidecar": "native" | "classic" | null,
               "sidecar_version": str | null,    # null: no sidecar and no annotation
               "version_source": "annotation" | "image" | null,
               "version_check": "older" | "ok" | "unknown" | null,  # null: no version
               "revision": str | null,           # null: not seen
               "injector_version": str | null}, ...],   # sorted by namespace, name
     "namespaces": [{"namespace": str, "pods": int, "injected": int,
                     "not_injected": int, "not_seen": int, "native": int,
                     "classic": int, "older": int, "unknown_version": int,
                     "versions": {version: pods}, "revisions": {revision: pods},
                     "older_pods": [name, ...]}, ...]}     # sorted by namespace

``versions`` counts the pods with a sidecar version, ``revisions`` the injected
pods; both most frequent first.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from pillion.kube.annotations import image_version
from pillion.kube.containers import SIDECAR_NAME
from pillion.kube.inject import DEFAULT_REVISION, STATUS, VERSION

__all__ = [
    "NamespaceSummary",
    "NotAPodList",
    "PodRow",
    "load_pods",
    "parse_version",
    "pod_rows",
    "render_json",
    "render_table",
    "summarise",
]

UNKNOWN = "unknown"
LIST_KINDS = ("List", "PodList")

Status = Literal["injected", "not injected", "not seen"]
Mode = Literal["native", "classic"]
Check = Literal["older", "ok", "unknown"]
Source = Literal["annotation", "image"]

# Release numbers, each small enough for int() and a comparison to mean something.
_RELEASE = re.compile(r"v?(\d{1,18}(?:\.\d{1,18}){0,9})")


class NotAPodList(ValueError):
    """The input is not pods: unreadable, or something else; the message says what."""


@dataclass(frozen=True)
class PodRow:
    """One pod, as ``proxy-status`` reports it (see the module's JSON shape)."""

    namespace: str
    name: str
    status: Status
    reason: str | None
    sidecar: Mode | None
    sidecar_version: str | None
    version_source: Source | None
    version_check: Check | None
    revision: str | None
    injector_version: str | None


@dataclass(frozen=True)
class NamespaceSummary:
    namespace: str
    pods: int
    injected: int
    not_injected: int
    not_seen: int
    native: int
    classic: int
    older: int
    unknown_version: int
    versions: dict[str, int] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    older_pods: list[str] = field(default_factory=list)


def parse_version(text: str) -> tuple[int, ...] | None:
    """``0.2.0`` -> ``(0, 2)`` (trailing zeros dropped: ``0.2`` == ``0.2.0``);
    None for anything but release numbers."""
    match = _RELEASE.fullmatch(text.strip())
    if match is None:
        return None
    parts = [int(part) for part in match.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def load_pods(text: str) -> list[Mapping[str, Any]]:
    """The pods in ``kubectl get pods -o json|yaml`` output: a ``List`` or ``PodList``
    of Pods, or a Pod (several YAML documents of these too). Raises ``NotAPodList``
    naming what was found instead."""
    documents = _documents(text)
    if not documents:
        raise NotAPodList("no input: expected a Pod, a List of Pods or a PodList")
    pods: list[Mapping[str, Any]] = []
    for index, document in enumerate(documents, 1):
        where = "the input" if len(documents) == 1 else f"document {index}"
        kind = document.get("kind") if isinstance(document, Mapping) else None
        if isinstance(document, Mapping) and kind in LIST_KINDS:
            items = document.get("items")
            if items is None:
                continue
            if not isinstance(items, list):
                raise NotAPodList(f"{where}: a {kind} whose items are {_describe(items)}")
            for number, item in enumerate(items, 1):
                # an API server's PodList leaves out its items' kind; kubectl's List has it
                implied = kind == "PodList" and isinstance(item, Mapping) and "kind" not in item
                at = f"item {number} of the {kind}"
                pods.append(_pod(item, at if len(documents) == 1 else f"{where}: {at}", implied))
        else:
            pods.append(_pod(document, where, False, "a Pod, a List of Pods or a PodList"))
    return pods


def pod_rows(pods: Sequence[Mapping[str, Any]], older_than: str) -> list[PodRow]:
    """One row per pod, by namespace and name; ``older_than`` must be a version
    ``parse_version`` reads."""
    threshold = parse_version(older_than)
    if threshold is None:
        raise ValueError(f"not a version: {older_than!r}")
    rows = [_row(pod, threshold) for pod in pods]
    return sorted(rows, key=lambda row: (row.namespace, row.name))


def summarise(rows: Sequence[PodRow]) -> list[NamespaceSummary]:
    """A summary per namespace, by name."""
    by_namespace: dict[str, list[PodRow]] = {}
    for row in rows:
        by_namespace.setdefault(row.namespace, []).append(row)
    return [_summary(namespace, by_namespace[namespace]) for namespace in sorted(by_namespace)]


def render_json(rows: Sequence[PodRow], older_than: str) -> str:
    document = {
        "older_than": older_than,
        "pods": [
            {
                "namespace": row.namespace,
                "name": row.name,
                "status": row.status,
                "reason": row.reason,
                "sidecar": row.sidecar,
                "sidecar_version": row.sidecar_version,
                "version_source": row.version_source,
                "version_check": row.version_check,
                "revision": row.revision,
                "injector_version": row.injector_version,
            }
            for row in rows
        ],
        "namespaces": [
            {
                "namespace": summary.namespace,
                "pods": summary.pods,
                "injected": summary.injected,
                "not_injected": summary.not_injected,
                "not_seen": summary.not_seen,
                "native": summary.native,
                "classic": summary.classic,
                "older": summary.older,
                "unknown_version": summary.unknown_version,
                "versions": summary.versions,
                "revisions": summary.revisions,
                "older_pods": summary.older_pods,
            }
            for summary in summarise(rows)
        ],
    }
    return json.dumps(document, indent=2) + "\n"


SUMMARY_HEADER = ("NAMESPACE", "PODS", "INJECTED", "NOT INJECTED", "NOT SEEN", "NATIVE",
                  "CLASSIC", "OLDER", "UNKNOWN VERSION", "VERSIONS", "REVISIONS")  # fmt: skip
_OLDER = {"older": "yes", "ok": "no", "unknown": UNKNOWN}


def render_table(rows: Sequence[PodRow], older_than: str) -> str:
    """The pods, then a summary per namespace, in kubectl's column layout; the pods'
    column ``OLDER THAN <older_than>`` says yes, no, unknown, or - without a sidecar."""
    header = ("NAMESPACE", "POD", "STATUS", "SIDECAR", "VERSION", f"OLDER THAN {older_than}",
              "REVISION", "REASON")  # fmt: skip
    pods = [
        (
            row.namespace,
            row.name,
            row.status,
            row.sidecar or "-",
            row.sidecar_version or "-",
            _OLDER[row.version_check] if row.version_check else "-",
            row.revision or "-",
            row.reason if row.reason and row.reason != row.status else "-",
        )
        for row in rows
    ]
    summaries = [
        (
            s.namespace,
            *(str(n) for n in (s.pods, s.injected, s.not_injected, s.not_seen, s.native)),
            *(str(n) for n in (s.classic, s.older, s.unknown_version)),
            _counts(s.versions),
            _counts(s.revisions),
        )
        for s in summarise(rows)
    ]
    lines = [*_table(header, pods), "", *_table(SUMMARY_HEADER, summaries)]
    return "\n".join(lines) + "\n"


# --- reading ------------------------------------------------------------------------


def _documents(text: str) -> list[Any]:
    try:  # kubectl's JSON: the json module reads it far faster than YAML
        return [json.loads(text)]
    except RecursionError as exc:
        raise NotAPodList("nested too deeply to be pods") from exc
    except ValueError:
        pass
    try:
        return [document for document in yaml.safe_load_all(text) if document is not None]
    except RecursionError as exc:
        raise NotAPodList("nested too deeply to be pods") from exc
    except yaml.YAMLError as exc:
        raise NotAPodList(f"neither JSON nor YAML: {_one_line(str(exc))}") from exc


def _pod(item: Any, where: str, implied: bool, expected: str = "a Pod") -> Mapping[str, Any]:
    if not isinstance(item, Mapping) or not (implied or item.get("kind") == "Pod"):
        raise NotAPodList(f"{where} is {_describe(item)}; expected {expected}")
    if item.get("apiVersion", "v1") != "v1":
        raise NotAPodList(f"{where} is {_describe(item)}; expected a core v1 Pod")
    metadata = _mapping(item.get("metadata"), f"{where}: metadata")
    name = f"{where}: Pod {_name(item)}"
    for key in ("name", "namespace"):
        if metadata.get(key) is not None and not isinstance(metadata.get(key), str):
            raise NotAPodList(f"{name}: metadata.{key} is {_describe(metadata.get(key))}")
    annotations = _mapping(metadata.get("annotations"), f"{name}: metadata.annotations")
    for key in (STATUS, VERSION):
        if annotations.get(key) is not None and not isinstance(annotations.get(key), str):
            raise NotAPodList(f"{name}: annotation {key} is {_describe(annotations.get(key))}, "
                              "not a string")  # fmt: skip
    spec = _mapping(item.get("spec"), f"{name}: spec")
    for key in ("initContainers", "containers"):
        containers = spec.get(key)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise NotAPodList(f"{name}: spec.{key} is {_describe(containers)}, not a list")
        for container in containers:
            if not isinstance(container, Mapping):
                raise NotAPodList(f"{name}: spec.{key} holds {_describe(container)}")
    return item


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise NotAPodList(f"{where} is {_describe(value)}, not a mapping")
    return value


def _name(item: Mapping[str, Any]) -> str:
    metadata = item.get("metadata")
    if not isinstance(metadata, Mapping):
        return "(unnamed)"
    name = metadata.get("name") or metadata.get("generateName") or "(unnamed)"
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespace else str(name)


def _describe(value: Any) -> str:
    """What a document is, for a message: ``Deployment shop/web (apps/v1)``, ``a list``."""
    if isinstance(value, Mapping):
        kind = value.get("kind")
        if not isinstance(kind, str) or not kind:
            return "an object with no kind"
        described = f"{_cell(kind)} {_cell(_name(value))}"
        api = value.get("apiVersion")
        return described + (f" ({_cell(str(api))})" if api else "")
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number"}  # fmt: skip
    return names.get(type(value), f"a {type(value).__name__}")


# --- rows ---------------------------------------------------------------------------


def _row(pod: Mapping[str, Any], threshold: tuple[int, ...]) -> PodRow:
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    status, reason, injector_version, revision = _status(annotations.get(STATUS))
    sidecar, image = _sidecar(pod.get("spec") or {})
    version, source = _version(annotations.get(VERSION), sidecar, image)
    return PodRow(
        namespace=metadata.get("namespace") or "default",
        name=str(metadata.get("name") or metadata.get("generateName") or "(unnamed)"),
        status=status,
        reason=reason,
        sidecar=sidecar,
        sidecar_version=version,
        version_source=source,
        version_check=None if version is None else _check(version, threshold),
        revision=revision,
        injector_version=injector_version,
    )


def _status(raw: str | None) -> tuple[Status, str | None, str | None, str | None]:
    """(status, reason, injector version, revision) from ``pillion.dev/status``."""
    if raw is None:
        return "not seen", None, None, None
    try:
        decided = json.loads(raw)
    except (ValueError, RecursionError):
        return "not seen", f"unreadable {STATUS}: not JSON", None, None
    if not isinstance(decided, dict) or not isinstance(decided.get("injected"), bool):
        return "not seen", f'unreadable {STATUS}: no "injected": true or false', None, None
    reason, version, revision = (decided.get(key) for key in ("reason", "version", "revision"))
    return (
        "injected" if decided["injected"] else "not injected",
        reason if isinstance(reason, str) else None,
        version if isinstance(version, str) and version else None,
        revision if isinstance(revision, str) and revision else DEFAULT_REVISION,
    )


def _sidecar(spec: Mapping[str, Any]) -> tuple[Mode | None, str | None]:
    """Native or classic, and its image; (None, None) without a sidecar."""
    for container in spec.get("initContainers") or []:
        if container.get("name") == SIDECAR_NAME and container.get("restartPolicy") == "Always":
            return "native", _string(container.get("image"))
    for container in spec.get("containers") or []:
        if container.get("name") == SIDECAR_NAME:
            return "classic", _string(container.get("image"))
    return None, None


def _version(
    annotated: str | None, sidecar: Mode | None, image: str | None
) -> tuple[str | None, Source | None]:
    if annotated:
        return annotated.strip(), "annotation"
    if sidecar is None:
        return None, None
    return (image_version(image) if image else None) or UNKNOWN, "image"


def _check(version: str, threshold: tuple[int, ...]) -> Check:
    parsed = parse_version(version)
    if parsed is None:
        return "unknown"
    return "older" if parsed < threshold else "ok"


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _summary(namespace: str, rows: Sequence[PodRow]) -> NamespaceSummary:
    statuses = Counter(row.status for row in rows)
    sidecars = Counter(row.sidecar for row in rows)
    checks = Counter(row.version_check for row in rows)
    versions = Counter(row.sidecar_version for row in rows if row.sidecar_version is not None)
    revisions = Counter(row.revision for row in rows
                        if row.status == "injected" and row.revision is not None)  # fmt: skip
    return NamespaceSummary(
        namespace=namespace,
        pods=len(rows),
        injected=statuses["injected"],
        not_injected=statuses["not injected"],
        not_seen=statuses["not seen"],
        native=sidecars["native"],
        classic=sidecars["classic"],
        older=checks["older"],
        unknown_version=checks["unknown"],
        versions=_frequent_first(versions),
        revisions=_frequent_first(revisions),
        older_pods=[row.name for row in rows if row.version_check == "older"],
    )


def _frequent_first(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


# --- the table ----------------------------------------------------------------------


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key} ({count})" for key, count in counts.items()) or "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [list(header), *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return ["   ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
            .rstrip() for row in cells]  # fmt: skip


def _cell(value: str) -> str:
    """Printable on one line: annotations are anyone's text, a terminal's escapes too."""
    return "".join(
        char if char == " " or unicodedata.category(char)[0] not in "CZ" else "?" for char in value
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())
