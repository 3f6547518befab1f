"""The configuration reference (``docs/configuration.md``) and JSON Schema, from the models.

``pillion schema --format markdown`` prints the reference; a test fails when the
committed file differs, so the reference never drifts from the code.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from pillion.config.models import PillionConfig, model_in

__all__ = ["json_schema", "key_paths", "markdown_reference"]

_INTRO = """\
# `pillion.yaml` reference

Generated from the configuration models by `pillion schema --format markdown`;
do not edit by hand. Durations take a unit (`250ms`, `1.5s`, `5m`, `1h`); sizes
may (`512KiB`, `64MiB`; a plain integer is bytes). Any string value may read the
environment with `${NAME}` or `${NAME:-default}` (`$${` is a literal `${`).
Unknown keys are errors.
"""


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``pillion.yaml``, for editors and CI linting."""
    schema = PillionConfig.model_json_schema(mode="validation")
    _spell_defaults(schema, PillionConfig)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pillion.yaml"
    return schema


def _spell_defaults(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Show defaults as they are written in YAML (``"20s"``), not as stored (``20.0``)."""
    defs = schema.get("$defs", {})
    written = model.model_construct().model_dump(mode="json")
    properties = (schema if model is PillionConfig else defs[model.__name__])["properties"]
    for key, field in model.model_fields.items():
        nested = model_in(field.annotation)
        if nested is not None:
            _spell_defaults(schema, nested)
        elif "default" in properties[key]:
            properties[key]["default"] = written[key]


def markdown_reference() -> str:
    """One section per model: key, type, default, description."""
    schema = json_schema()
    lines = [_INTRO]
    scalars = {
        k: p for k, p in schema["properties"].items() if _resolve(p, schema["$defs"]) is None
    }
    if scalars:
        lines += ["## Top level", "", "| key | type | default | description |", "|---|---|---|---|"]
        for key, prop in scalars.items():
            default = f"`{json.dumps(prop['default'])}`" if "default" in prop else "required"
            description = prop.get("description", "").replace("|", "\\|")
            lines.append(f"| `{key}` | {_type_name(prop)} | {default} | {description} |")
        lines.append("")
    for key, prop in schema["properties"].items():
        _section(lines, key, prop, schema["$defs"])
    return "\n".join(lines).rstrip() + "\n"


def _section(lines: list[str], path: str, prop: dict[str, Any], defs: dict[str, Any]) -> None:
    model = _resolve(prop, defs)
    if model is None:
        return
    if prop.get("type") == "array":
        path += "[]"
    lines += [f"## `{path}`", "", model.get("description", ""), ""]
    if "default" in prop and prop["default"] is None:
        lines += ["Absent by default: the feature is off.", ""]
    fields: dict[str, Any] = model.get("properties", {})
    if not fields:
        lines += ["No settings yet; `{}` turns the section on.", ""]
        return
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    required = set(model.get("required", []))
    for key, field in fields.items():
        if "default" in field:
            default = f"`{json.dumps(field['default'])}`"
        elif key in required:
            default = "required"
        elif _resolve(field, defs) is not None and field.get("type") != "array":
            default = "see below"
        else:
            default = "see description"
        description = field.get("description", "").replace("|", "\\|")
        lines.append(f"| `{key}` | {_type_name(field)} | {default} | {description} |")
    lines.append("")
    for key, field in fields.items():
        _section(lines, f"{path}.{key}", field, defs)


def key_paths() -> list[str]:
    """Every key of ``pillion.yaml`` as a dotted path, ``[]`` after a list of
    sections (``proxy.inbound[].routes[].match.prefix``), in the models' order. Keys
    of free-form maps (headers, labels) are not paths."""
    schema = json_schema()
    paths: list[str] = []

    def walk(model: dict[str, Any], prefix: str) -> None:
        for key, field in model.get("properties", {}).items():
            path = f"{prefix}.{key}" if prefix else key
            paths.append(path)
            nested = _resolve(field, schema["$defs"])
            if nested is not None:
                is_list = "array" in {o.get("type") for o in [field, *field.get("anyOf", [])]}
                walk(nested, path + "[]" if is_list else path)

    walk(schema, "")
    return paths


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """The object schema ``prop`` refers to, directly, as ``X | None`` or ``list[X]``."""
    for option in [prop, prop.get("items", {}), *prop.get("anyOf", [])]:
        ref = option.get("$ref")
        if isinstance(ref, str):
            found: dict[str, Any] = defs[ref.rsplit("/", 1)[-1]]
            return found
    return None


def _type_name(prop: dict[str, Any]) -> str:
    if prop.get("format") in ("size", "duration"):
        return str(prop["format"])
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
    option = options[0] if options else prop
    if "enum" in option:
        return " \\| ".join(f"`{value}`" for value in option["enum"])
    if option.get("writeOnly"):
        return "secret"
    if option.get("format") == "duration":
        return "duration"
    if option.get("type") == "array":
        return "list"
    if option.get("format") == "host-port":
        return "address"
    return str(option.get("type", "object"))
