"""The one exception of the config layer: every problem of a file, at once.

``ConfigError`` carries a list of ``ConfigIssue`` (field path, YAML line, message)
and the exit code the CLI uses for it (2: bad configuration). Messages never
contain a secret: they name fields and variables, not values of secret fields.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXIT_BAD_CONFIG", "ConfigError", "ConfigIssue", "format_path"]

EXIT_BAD_CONFIG = 2


def format_path(path: tuple[str | int, ...]) -> str:
    """``('proxy', 'inbound', 0, 'listen')`` -> ``proxy.inbound[0].listen``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(document)"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: where (field path and line) and what."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration was refused; ``issues`` lists every reason."""

    exit_code = EXIT_BAD_CONFIG

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.issues)
        head = f"{self.source}: {count} error{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {issue}" for issue in self.issues)])
