"""The runtime: the supervisor, the component interface, the admin and status servers."""

from pillion.components import Component, ComponentStartError, RuntimeFailure
from pillion.runtime.main import run_sidecar
from pillion.runtime.supervisor import Supervisor

__all__ = ["Component", "ComponentStartError", "RuntimeFailure", "Supervisor", "run_sidecar"]
