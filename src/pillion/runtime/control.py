"""What the admin and status servers may see of and ask from the supervisor.

A protocol, so the servers do not depend on the supervisor's class and tests can
hand them a plain object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pillion.config import PillionConfig

__all__ = ["ComponentHealth", "Control", "Health"]


@dataclass(frozen=True)
class ComponentHealth:
    state: str
    started: bool
    ready: bool
    problems: tuple[str, ...] = ()  # see Component.problems


@dataclass(frozen=True)
class Health:
    """A snapshot of the sidecar's state for the probes."""

    started: bool
    live: bool
    ready: bool
    draining: bool
    components: dict[str, ComponentHealth] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "started": self.started,
            "live": self.live,
            "ready": self.ready,
            "draining": self.draining,
            "components": {name: _component_json(c) for name, c in self.components.items()},
        }


def _component_json(component: ComponentHealth) -> dict[str, object]:
    shown: dict[str, object] = {
        "state": component.state,
        "started": component.started,
        "ready": component.ready,
    }
    if component.problems:
        shown["problems"] = list(component.problems)
    return shown


class Control(Protocol):
    """The supervisor, as the admin and status servers see it."""

    @property
    def config(self) -> PillionConfig: ...

    def health(self) -> Health: ...

    def begin_drain(self) -> None:
        """Stop taking new traffic (readiness fails) but keep running."""

    def request_exit(self) -> None:
        """Drain, then exit 0."""

    async def drain_inbound(self) -> None:
        """Stop taking inbound traffic (readiness fails); return once the inbound
        requests in flight are done, or at the drain deadline."""
