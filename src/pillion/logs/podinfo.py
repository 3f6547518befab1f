"""Pod metadata for records: the Downward API's environment variables and files.

Kubernetes writes labels and annotations as ``key="value"`` lines (values
escaped like Go strings) into files of a ``downwardAPI`` volume; the namespace,
pod and container names are usually passed as environment variables.
"""

from __future__ import annotations

import json
import os

__all__ = ["parse_downward_file", "pod_fields"]


def parse_downward_file(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key:
            continue
        try:
            fields[key] = json.loads(value) if value.startswith('"') else value
        except ValueError:
            fields[key] = value.strip('"')
    return fields


def pod_fields(
    *, labels_file: str | None, annotations_file: str | None, environ: dict[str, str]
) -> dict[str, object]:
    """``kubernetes`` metadata: names from POD_NAMESPACE, POD_NAME, CONTAINER_NAME and
    NODE_NAME when set, labels and annotations from their files when readable."""
    pod: dict[str, object] = {}
    for field, variable in (
        ("namespace", "POD_NAMESPACE"),
        ("pod", "POD_NAME"),
        ("container", "CONTAINER_NAME"),
        ("node", "NODE_NAME"),
    ):
        if environ.get(variable):
            pod[field] = environ[variable]
    for field, path in (("labels", labels_file), ("annotations", annotations_file)):
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as file:
                pod[field] = parse_downward_file(file.read())
    return pod
