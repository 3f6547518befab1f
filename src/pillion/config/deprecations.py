"""Renamed keys: a config written for an earlier version keeps working. No I/O.

A key renamed in version N is still read, under its old name, for at least one
minor version after N: the loader moves its value to the new name before the
models see it, and reports a deprecation (logged and counted by ``pillion run``
as ``pillion_config_deprecations_total{key}``, printed by ``pillion validate``),
never an error. Writing both the old and the new name is an error: which one was
meant cannot be known.

``RENAMED`` lists the renames in effect. It is empty: no key has been renamed
since the first release. The loader and its tests use the same code for any
table, so a rename is one line here plus its note in ``docs/upgrading.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pillion.config.errors import ConfigIssue, format_path

__all__ = ["RENAMED", "Renamed", "rename_deprecated"]

_Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Renamed:
    """The key ``old`` (a dotted path; ``[]`` stands for every item of a list, e.g.
    ``proxy.inbound[].timeouts.upstream_idle``) is now called ``new`` (the last part
    only: the key stays where it is). Read under its old name until ``removal``."""

    old: str
    new: str
    since: str
    removal: str

    def steps(self) -> list[str]:
        return self.old.replace("[]", ".[]").split(".")


RENAMED: tuple[Renamed, ...] = ()


def rename_deprecated(
    document: dict[str, Any],
    lines: Mapping[_Path, int],
    renamed: tuple[Renamed, ...] = RENAMED,
) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """Move each old key of ``document`` (in place) to its new name. Returns the
    errors (both names written) and the deprecations, each with its path and line."""
    errors: list[ConfigIssue] = []
    notes: list[ConfigIssue] = []
    for rename in renamed:
        *parents, old = rename.steps()
        for path, holder in _holders(document, parents, ()):
            if old not in holder:
                continue
            where = (*path, old)
            line = _line(where, lines)
            if rename.new in holder:
                message = (f"{old} was renamed {rename.new} in {rename.since}: write only "
                           f"{rename.new}")  # fmt: skip
                errors.append(ConfigIssue(format_path(where), message, line))
                del holder[old]  # said once, not again as an unknown key
                continue
            holder[rename.new] = holder.pop(old)
            message = (f"{old} is deprecated since {rename.since} and read until "
                       f"{rename.removal}: write {rename.new}")  # fmt: skip
            notes.append(ConfigIssue(format_path(where), message, line))
    return errors, notes


def _holders(value: object, steps: list[str], path: _Path) -> list[tuple[_Path, dict[str, Any]]]:
    """The mappings ``steps`` lead to in ``value``, with their paths."""
    if not steps:
        return [(path, value)] if isinstance(value, dict) else []
    step, rest = steps[0], steps[1:]
    if step == "[]":
        if not isinstance(value, list):
            return []
        return [found for index, item in enumerate(value)
                for found in _holders(item, rest, (*path, index))]  # fmt: skip
    if not isinstance(value, dict) or step not in value:
        return []
    return _holders(value[step], rest, (*path, step))


def _line(path: _Path, lines: Mapping[_Path, int]) -> int | None:
    for end in range(len(path), -1, -1):
        found = lines.get(path[:end])
        if found is not None:
            return found
    return None
