"""Another tool's YAML file that a config points to (a statsd_exporter mapping file,
a json_exporter config): read whole, its keys' lines kept for messages.

No ``${ENV}`` expansion: the file is the other tool's, written in its syntax
(``${1}`` in a mapping is a capture). Duplicate keys are errors, as they are to
both tools. Problems are ``FileProblem``s: where (a path in the file, a line) and
what; the model that points to the file reports them at its own key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError, ValidationInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from pillion.config.errors import format_path

__all__ = [
    "MAX_FILE_SIZE",
    "FileProblem",
    "TooLarge",
    "YamlFile",
    "config_path",
    "index_lines",
    "problems_error",
    "read_yaml",
]

MAX_FILE_SIZE = 1024 * 1024
"""Largest file read, in bytes; a mapping file of a thousand rules is 200 KiB."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class FileProblem:
    """One problem of the file: at ``path`` (in the file), line ``line``."""

    path: Path_
    message: str
    line: int | None = None

    def text(self, source: str) -> str:
        where = f"{source} line {self.line}" if self.line else source
        inside = format_path(self.path)
        return f"{where}: {inside}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass(frozen=True)
class YamlFile:
    """The document and where each key path is."""

    document: object
    lines: Mapping[Path_, int]

    def line(self, path: Path_) -> int | None:
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None

    def problems(self, exc: ValidationError, prefix: Path_ = ()) -> list[FileProblem]:
        """``exc``'s errors as problems of this file (``prefix``: where in the file
        the model that failed was read from)."""
        found = []
        for detail in exc.errors(include_input=False, include_url=False):
            path = (*prefix, *detail["loc"])
            message = detail["msg"].removeprefix("Value error, ")
            if detail["type"] == "extra_forbidden":
                message = "unknown key"
            elif detail["type"] == "missing":
                message = "required key is missing"
            found.append(FileProblem(path, message, self.line(path)))
        return found


def config_path(path: str, info: ValidationInfo) -> str:
    """``path`` made absolute: a relative one is read from the directory of the config
    file that names it (``config_dir`` in the validation context), else the current one."""
    if os.path.isabs(path):
        return path
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("config_dir") or os.getcwd()
    return os.path.normpath(os.path.join(str(base), path))


def read_yaml(path: str) -> tuple[YamlFile | None, list[FileProblem]]:
    """The file at ``path``, or the problems that kept it from being read."""
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        return None, [FileProblem((), f"cannot read: {exc.strerror or exc}")]
    if len(data) > MAX_FILE_SIZE:
        return None, [FileProblem((), f"larger than {MAX_FILE_SIZE // 1024} KiB: not read")]
    try:
        root = yaml.compose(data.decode("utf-8"), Loader=_Loader)
        lines: dict[Path_, int] = {}
        problems: list[FileProblem] = []
        if root is not None:
            lines, duplicates = index_lines(root, 100_000)
            problems = [FileProblem(path, "duplicate key", line) for path, line in duplicates]
        document = None if root is None else _Loader("").construct_document(root)
    except UnicodeDecodeError as exc:
        return None, [FileProblem((), f"not UTF-8: {exc}")]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        return None, [FileProblem((), f"YAML error: {exc.problem or exc.context}", line)]
    except (yaml.YAMLError, ValueError, RecursionError, TooLarge) as exc:
        return None, [FileProblem((), f"YAML error: {type(exc).__name__}: {exc}"[:300])]
    if problems:
        return None, problems
    return YamlFile(document, lines), []


class TooLarge(Exception):
    """A document expands (through aliases) to more values than allowed."""

    def __str__(self) -> str:
        return "the document expands to too many values (aliases?)"


def index_lines(
    root: yaml.Node, max_nodes: int
) -> tuple[dict[Path_, int], list[tuple[Path_, int]]]:
    """Each key path of the document at ``root`` with its 1-based line, and the
    duplicate keys (path, line); ``TooLarge`` past ``max_nodes`` values (an alias bomb)."""
    lines: dict[Path_, int] = {(): root.start_mark.line + 1}
    duplicates: list[tuple[Path_, int]] = []
    budget = [max_nodes]

    def walk(node: yaml.Node, path: Path_) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise TooLarge
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    duplicates.append((child, line))
                seen.add(key)
                lines[child] = line
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    walk(root, ())
    return lines, duplicates


def problems_error(
    title: str, key: str, source: str, problems: list[FileProblem]
) -> ValidationError:
    """The problems of the file at ``source`` as one validation error each, at ``key``
    of the model that names the file."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError(
                    "file_problem", "{message}", {"message": problem.text(source)}
                ),
                loc=(key,),
                input=source,
            )
            for problem in problems
        ],
    )
