"""``examples/full.yaml`` shows every key of the schema, and every example validates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pillion.config import ConfigError, PillionConfig, parse_config
from pillion.config.redaction import REVEAL
from pillion.config.reference import key_paths

EXAMPLES = Path(__file__).parents[2] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))
FULL = str(EXAMPLES / "full.yaml")  # its relative paths (a mapping file) are read from there

# Keys the schema has at a place where they are refused: the model is shared with
# a place where they apply. Each must stay refused here (tested below).
REFUSED_HERE: dict[str, Any] = {
    "proxy.outbound[].routes[].jwt_required": True,
    "proxy.outbound[].routes[].api_key_required": True,
    "proxy.outbound[].routes[].authorization": {"identities": ["spiffe://x/y"]},
    "config.sources[].kv_version": 1,
    "config.sources[].version": 2,
    "config.sources[].refresh": "1m",
    "config.sources[].common_name": "app.example",
    "config.sources[].alt_names": ["app.example"],
    "config.sources[].ip_sans": ["10.0.0.1"],
    "config.sources[].ttl": "1h",
    "config.sources[].renew_at": 0.5,
}


def written_paths(value: object, prefix: str = "") -> set[str]:
    """The dotted paths of ``value``'s keys, in ``key_paths`` notation."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            found |= {path} | written_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            found |= written_paths(item, prefix + "[]")
    return found


def full() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((EXAMPLES / "full.yaml").read_text())
    return document


def test_full_yaml_has_every_key_of_the_schema() -> None:
    written = written_paths(full())
    missing = [
        path
        for path in key_paths()
        if path not in written and not any(path.startswith(k) for k in REFUSED_HERE)
    ]
    assert missing == [], f"examples/full.yaml lacks {missing}"


def test_full_yaml_turns_every_section_on() -> None:
    config = parse_config((EXAMPLES / "full.yaml").read_text(), FULL, {})
    for section in ("proxy", "logs", "secrets", "config", "exporters"):
        assert getattr(config, section) is not None, section


@pytest.mark.parametrize("path", sorted(REFUSED_HERE))
def test_a_key_left_out_of_full_yaml_is_refused_where_it_would_go(path: str) -> None:
    document = full()
    *parents, key = path.split(".")
    place: Any = document
    for part in parents:
        place = place[part.removesuffix("[]")]
        if part.endswith("[]"):
            place = place[0]
    place[key] = REFUSED_HERE[path]
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(document), FULL, {})
    assert any(key in issue.message or issue.path.endswith(key) for issue in caught.value.issues)


# What the injector sets in Pillion's container, which an example may read.
POD_ENV = {"POD_NAMESPACE": "shop", "POD_NAME": "shop-0", "POD_UID": "0",
           "NODE_NAME": "node-1", "CONTAINER_NAME": "app"}  # fmt: skip


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_example_validates(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **POD_ENV},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: valid")


def test_full_yaml_read_back_from_its_dump_is_the_same_config() -> None:
    """Worker processes get the config as a dump, with every key spelled out: no
    check may take a key given its default for one the user wrote."""
    config = parse_config((EXAMPLES / "full.yaml").read_text(), FULL, {})
    dumped = json.dumps(config.model_dump(mode="json", context=REVEAL))
    assert PillionConfig.model_validate(json.loads(dumped)) == config
