from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from pillion.config.models import PillionConfig
from pillion.config.reference import json_schema, markdown_reference

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_committed_reference_matches_the_models() -> None:
    assert DOCS.read_text() == markdown_reference(), "run `make docs` and commit the result"


def _fields(model: type[BaseModel]) -> list[tuple[str, str | None]]:
    found = []
    for name, field in model.model_fields.items():
        found.append((f"{model.__name__}.{name}", field.description))
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found += _fields(candidate)
    return found


def test_every_field_is_documented() -> None:
    undocumented = [name for name, description in _fields(PillionConfig) if not description]
    assert undocumented == []


def test_schema_is_json_and_rejects_unknown_keys() -> None:
    schema = json.loads(json.dumps(json_schema()))
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) >= {
        "app", "admin", "status", "proxy", "logs", "secrets", "config", "exporters", "telemetry",
    }  # fmt: skip
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values())
    assert schema["$defs"]["AdminConfig"]["properties"]["auth_token"]["anyOf"][0]["writeOnly"]
