"""The runtime's exception tree.

``RuntimeFailure`` (exit code 1) is the root of everything that stops the
sidecar once the configuration was accepted; ``ComponentStartError`` is a
component that could not start (e.g. its address is in use) and names it.
Configuration problems are ``pillion.config.ConfigError`` (exit code 2).
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_RUNTIME_FAILURE", "ComponentStartError", "RuntimeFailure"]

EXIT_OK = 0
EXIT_RUNTIME_FAILURE = 1


class RuntimeFailure(Exception):
    """The sidecar cannot go on; the process exits with ``exit_code``."""

    exit_code = EXIT_RUNTIME_FAILURE


class ComponentStartError(RuntimeFailure):
    """A component could not start; the message says which and why."""

    def __init__(self, component: str, reason: str) -> None:
        self.component = component
        self.reason = reason
        super().__init__(f"{component}: {reason}")
