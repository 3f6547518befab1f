"""The one interface every long-running part of Pillion implements.

The supervisor calls ``start()`` once (bind, begin; raise ``ComponentStartError``
on a fatal problem), reads ``started`` and ``ready`` for the probes, calls
``drain(deadline)`` to stop taking new work and finish what is in flight by the
event-loop time ``deadline``, and finally ``close()``. On a reload it asks
``can_reconfigure(config)``; if true it calls ``reconfigure(config)`` in place,
otherwise it starts a replacement built from the new config and drains this one.
"""

from __future__ import annotations

import abc
from typing import Literal

from pillion.config import PillionConfig

__all__ = ["Component", "ComponentKind"]

ComponentKind = Literal["control", "traffic"]
"""``control`` parts (admin, status) keep serving through ``POST /drain`` and are
drained last on exit; ``traffic`` parts (proxy, logs...) drain first."""


class Component(abc.ABC):
    """A long-running part of the sidecar, started and stopped by the supervisor."""

    name: str
    kind: ComponentKind = "traffic"
    hold_until_started: bool = False
    """The components after this one start only once it is ``started`` (secrets: the
    files they render, such as certificates, exist before the proxy loads them)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Bind and begin. Raise ``ComponentStartError`` if it cannot."""

    @property
    @abc.abstractmethod
    def started(self) -> bool:
        """True once the component has done its start-up work."""

    async def wait_started(self) -> None:
        """Return once ``started`` is true (only awaited when ``hold_until_started``,
        so components that do not hold never need it)."""
        raise NotImplementedError(f"{self.name} does not hold the components after it")

    @property
    def ready(self) -> bool:
        """True while the component can take new work (defaults to ``started``)."""
        return self.started

    @property
    def problems(self) -> list[str]:
        """What is wrong now that the component is working around (a full disk, a
        directory gone read-only), one sentence each, for the probes' JSON body.
        Reported whether or not the component is ``ready``: a problem of its own
        files need not take the pod out of its Service. Default: none."""
        return []

    @abc.abstractmethod
    async def drain(self, deadline: float) -> None:
        """Stop taking new work; finish in-flight work by loop time ``deadline``."""

    async def drain_inbound(self, deadline: float) -> None:
        """Stop taking traffic from outside the pod, keep serving the app's own calls;
        return once the inbound work in flight is done, by ``deadline``. Default:
        nothing (a component with no inbound side)."""
        _ = deadline

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything; called once, after ``drain`` or a failed ``start``."""

    def can_reconfigure(self, config: PillionConfig) -> bool:
        """Whether ``reconfigure(config)`` can apply the new config in place."""
        return False

    def take_over(self, previous: Component) -> None:
        """Before ``start``, when this component replaces ``previous`` on a reload:
        take what can be shared (a listening socket, say). Default: nothing."""
        _ = previous

    def reconfigure(self, config: PillionConfig) -> None:
        """Apply ``config`` in place; only called after ``can_reconfigure`` said yes."""
        raise NotImplementedError(f"{self.name} cannot be reconfigured in place")
