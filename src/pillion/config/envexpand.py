"""``${NAME}`` and ``${NAME:-default}`` in the string values of ``pillion.yaml``.

Expansion runs on parsed scalar values, never on the raw text: a variable whose
value holds ``:`` or ``#`` cannot change the document's structure, and error
line numbers stay true. ``$${`` is a literal ``${``, and so is ``${1}`` (any digits):
no variable's name starts with a digit, and ``${1}`` is a capture reference in a
StatsD mapping or a regex replacement, left for them. Messages name variables,
never their values (they are often secrets); the values that were substituted
are returned too, so that the loader can hide them in validation messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Expansion", "ExpansionError", "expand_tree"]

_REFERENCE = re.compile(
    r"\$\$\{"  # escaped: a literal "${"
    r"|\$\{(?P<capture>\d+)\}"  # a capture reference (${1}): no variable starts with a digit
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$\{(?P<bad>[^}]*)\}?"
)

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class ExpansionError:
    """One reference that could not be expanded, at ``path`` in the document."""

    path: Path
    message: str


@dataclass
class _Expander:
    environ: Mapping[str, str]
    errors: list[ExpansionError] = field(default_factory=list)
    substituted: set[str] = field(default_factory=set)

    def string(self, text: str, path: Path) -> str:
        if "$" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            if match.group("capture") is not None:
                return match.group(0)
            name = match.group("name")
            if name is None:
                bad = match.group("bad")
                self.errors.append(
                    ExpansionError(
                        path,
                        f"invalid variable reference '${{{bad}': "
                        "write ${NAME} or ${NAME:-default}",
                    )
                )
                return ""
            value = self.environ.get(name)
            if value is not None:
                if value:
                    self.substituted.add(value)
                return value
            default = match.group("default")
            if default is not None:
                return default
            self.errors.append(
                ExpansionError(
                    path,
                    f"environment variable {name} is not set and has no default "
                    f"(write ${{{name}:-default}} to give one)",
                )
            )
            return ""

        return _REFERENCE.sub(replace, text)

    def tree(self, node: object, path: Path) -> object:
        if isinstance(node, str):
            return self.string(node, path)
        if isinstance(node, dict):
            return {key: self.tree(value, (*path, str(key))) for key, value in node.items()}
        if isinstance(node, list):
            return [self.tree(item, (*path, index)) for index, item in enumerate(node)]
        return node


@dataclass(frozen=True)
class Expansion:
    """The expanded document, every error, and the environment values used."""

    document: object
    errors: list[ExpansionError]
    substituted: frozenset[str]


def expand_tree(document: object, environ: Mapping[str, str]) -> Expansion:
    """Expand every string value in ``document``."""
    expander = _Expander(environ)
    expanded = expander.tree(document, ())
    return Expansion(expanded, expander.errors, frozenset(expander.substituted))
