"""Read ``pillion.yaml``: YAML -> ``${ENV}`` expansion -> pydantic models.

Every problem is collected and raised at once as a ``ConfigError``, each with
its field path and YAML line. Duplicate keys are errors (PyYAML would silently
keep the last one). Anchors and aliases work, but a document that expands to
more than ``MAX_NODES`` values is refused (the "billion laughs" file would
otherwise hang the expansion and validation). Nothing here starts or binds.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from pillion.config.deprecations import RENAMED, Renamed, rename_deprecated
from pillion.config.envexpand import expand_tree
from pillion.config.errors import ConfigError, ConfigIssue, format_path
from pillion.config.models import PillionConfig, model_in
from pillion.config.yamlfile import TooLarge, index_lines

__all__ = ["load_config", "parse_config", "parse_config_file", "read_config_file"]

# libyaml's loader when PyYAML was built with it; the pure-Python one otherwise.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_YamlPath = tuple[str | int, ...]

_T = TypeVar("_T")

MAX_NODES = 100_000
"""Most values a config may expand to; real ones have hundreds."""

_NULL = "tag:yaml.org,2002:null"

MAX_FILE_SIZE = 4 * 1024 * 1024
"""Largest config file read, in bytes; real ones are a few KiB (100 routes: ~20 KiB)."""


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> PillionConfig:
    """Load and validate the config file at ``path``."""
    source = os.fspath(path)
    return parse_config_file(
        read_config_file(source), source, os.environ if environ is None else environ
    )


def read_config_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the config file at ``path``, at most ``MAX_FILE_SIZE + 1`` of them
    (``parse_config_file`` refuses a file that long); a ``ConfigError`` when it cannot
    be read, caused by the ``OSError``."""
    source = os.fspath(path)
    try:
        with Path(source).open("rb") as file:
            return file.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(source, [ConfigIssue("(file)", f"cannot read: {reason}")]) from exc


def parse_config_file(data: bytes, source: str, environ: Mapping[str, str]) -> PillionConfig:
    """Validate what ``read_config_file`` read from ``source``."""
    if len(data) > MAX_FILE_SIZE:
        limit = MAX_FILE_SIZE // (1024 * 1024)
        message = f"larger than {limit} MiB: not read (is it the right file?)"
        raise ConfigError(source, [ConfigIssue("(file)", message)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [ConfigIssue("(file)", f"cannot read: {exc}")]) from exc
    return parse_config(text, source, environ)


def parse_config(
    text: str,
    source: str,
    environ: Mapping[str, str],
    renamed: tuple[Renamed, ...] | None = None,
) -> PillionConfig:
    """Validate config ``text``; ``source`` names it in messages, and the files the
    config points to by a relative path (a StatsD mapping file, a json_exporter
    config) are read from its directory. Keys ``renamed`` since are read under their
    new names and listed in ``config.deprecations``, with the older spellings of the
    other tools' files it reads."""
    root = _yaml(source, lambda: yaml.compose(text, Loader=_Loader))
    if root is None or root.tag == _NULL:  # a file being written, a ConfigMap key left blank
        message = "the file is empty or only comments: a config names at least one section"
        raise ConfigError(source, [ConfigIssue("(document)", message, 1)])
    try:
        lines, issues = _index_lines(root)
    except TooLarge:
        message = f"the document expands to more than {MAX_NODES} values (aliases?)"
        raise ConfigError(source, [ConfigIssue("(document)", message, 1)]) from None
    except RecursionError:
        message = "the document nests too deep (an alias inside itself?)"
        raise ConfigError(source, [ConfigIssue("(document)", message, 1)]) from None
    document = _yaml(source, lambda: _Loader("").construct_document(root))
    if not isinstance(document, dict):
        raise ConfigError(source, [ConfigIssue("(document)", "the top level must be a mapping", 1)])

    rename_errors, deprecations = rename_deprecated(
        document, lines, RENAMED if renamed is None else renamed
    )
    issues += rename_errors
    expansion = expand_tree(document, environ)
    issues += [
        ConfigIssue(format_path(err.path), err.message, _line_of(err.path, lines))
        for err in expansion.errors
    ]
    try:
        context = {"config_dir": os.path.dirname(os.path.abspath(source))}
        config = PillionConfig.model_validate(expansion.document, context=context)
    except ValidationError as exc:
        failed = {format_path(err.path) for err in expansion.errors}
        for detail in exc.errors(include_input=False, include_url=False):
            issue = _issue_from(detail, lines, expansion.substituted)
            if issue.path not in failed:  # already reported as a missing variable
                issues.append(issue)
        raise ConfigError(source, _sorted(issues)) from exc
    if issues:
        raise ConfigError(source, _sorted(issues))
    if config.exporters is not None:
        deprecations += [
            ConfigIssue(format_path(path), message, _line_of(path, lines))
            for path, message in config.exporters.deprecations()
        ]
    config._deprecations = tuple(deprecations)
    return config


def _yaml(source: str, step: Callable[[], _T]) -> _T:
    """Run a PyYAML step; any YAML error becomes a ``ConfigError`` with its line."""
    try:
        return step()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        if mark:
            problem = f"{problem} (column {mark.column + 1})"
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            problem = f"{exc.context} (line {exc.context_mark.line + 1}): {problem}"
        raise ConfigError(source, [ConfigIssue("(yaml)", f"YAML error: {problem}", line)]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(source, [ConfigIssue("(yaml)", f"YAML error: {exc}")]) from exc
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        # PyYAML's constructors let these out for malformed scalars ('!!int 0x', a
        # timestamp with month 13, an integer of 5000 digits): a YAML error all the same.
        problem = f"YAML error: a value cannot be read: {type(exc).__name__}: {exc}"
        raise ConfigError(source, [ConfigIssue("(yaml)", problem[:300])]) from exc


def _sorted(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda issue: (issue.line or 0, issue.path))


def _index_lines(root: yaml.Node) -> tuple[dict[_YamlPath, int], list[ConfigIssue]]:
    """Map each key path to its 1-based line; report duplicate keys."""
    lines, duplicates = index_lines(root, MAX_NODES)
    issues = [ConfigIssue(format_path(path), "duplicate key", line) for path, line in duplicates]
    return lines, issues


def _line_of(path: _YamlPath, lines: Mapping[_YamlPath, int]) -> int | None:
    """The line of ``path``, or of its nearest ancestor present in the file."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def _issue_from(
    detail: ErrorDetails, lines: Mapping[_YamlPath, int], hidden: frozenset[str]
) -> ConfigIssue:
    path: _YamlPath = tuple(detail["loc"])
    message = detail["msg"].removeprefix("Value error, ")
    # A value read from the environment may be a secret put in the wrong place.
    for value in sorted(hidden, key=len, reverse=True):
        message = message.replace(value, "<from environment>")
    if detail["type"] == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        message = "unknown key"
        if allowed:
            close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
            message += f" (did you mean {close[0]!r}?)" if close else ""
            message += f"; allowed: {', '.join(allowed)}"
    elif detail["type"] == "missing":
        message = "required key is missing"
    return ConfigIssue(format_path(path), message, _line_of(path, lines))


def _allowed_keys(path: _YamlPath) -> list[str]:
    """The field names of the model at ``path`` in ``PillionConfig``, if one is there."""
    model: type[BaseModel] | None = PillionConfig
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return []
        model = model_in(field.annotation)
    return list(model.model_fields) if model is not None else []
