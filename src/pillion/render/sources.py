"""Reading local sources, for secrets and config alike: a file's keys (JSON,
YAML, dotenv, or its whole content), a mounted ConfigMap or Secret directory (a
key per file), environment variables.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pillion.config.secrets import SecretSourceConfig

__all__ = ["SourceError", "parse_dotenv", "read_source"]

_ESCAPE = re.compile(r"\\(.)")


class SourceError(Exception):
    """A source could not be read or parsed; the message names the file, never a value."""


def read_source(source: SecretSourceConfig, environ: Mapping[str, str]) -> dict[str, Any]:
    if source.type == "env":
        prefix = source.prefix or ""
        return {k[len(prefix) :]: v for k, v in environ.items() if k.startswith(prefix)}
    assert source.path is not None
    if source.type == "directory":
        return read_directory(source.path)
    return read_file(source.path)


def read_file(path: str) -> dict[str, Any]:
    """A JSON (``.json``), YAML (``.yaml``, ``.yml``) or dotenv (``.env``) file's keys;
    any other file is one key, ``content``."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {_reason(exc)}") from None
    suffix = Path(path).suffix
    try:
        if suffix == ".json":
            parsed = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            parsed = yaml.safe_load(text)
        elif suffix == ".env":
            parsed = parse_dotenv(text)
        else:
            return {"content": text}
    except (ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = getattr(exc, "lineno", None) or (mark.line + 1 if mark is not None else None)
        where = f" (line {line})" if line else ""
        detail = str(exc) if suffix == ".env" else type(exc).__name__  # never a value
        raise SourceError(f"cannot parse {path}{where}: {detail}") from None
    if not isinstance(parsed, dict):
        raise SourceError(f"{path}: expected a mapping of keys to values")
    return parsed


def read_directory(path: str) -> dict[str, str]:
    """A mounted ConfigMap: each visible file is a key, read through its symlink (the
    ``..data`` machinery and hidden files are skipped)."""
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise SourceError(f"cannot read directory {path}: {_reason(exc)}") from None
    values: dict[str, str] = {}
    for name in names:
        file = Path(path, name)
        if name.startswith(".") or not file.is_file():
            continue
        try:
            values[name] = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read {file}: {_reason(exc)}") from None
    return values


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=value`` lines; ``#`` comments, ``export``, single or double quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise ValueError(f"line {number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = _ESCAPE.sub(lambda m: "\n" if m[1] == "n" else m[1], value)
        values[key.strip()] = value
    return values


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
