"""The component interface every long-running part implements, and its errors.

A shared layer: features (``proxy``, ...) implement ``Component``; the runtime's
supervisor drives them. Neither needs the other's code.
"""

from pillion.components.base import Component, ComponentKind
from pillion.components.errors import (
    EXIT_OK,
    EXIT_RUNTIME_FAILURE,
    ComponentStartError,
    RuntimeFailure,
)
from pillion.components.tasks import cancel_and_wait

__all__ = [
    "EXIT_OK",
    "EXIT_RUNTIME_FAILURE",
    "Component",
    "ComponentKind",
    "ComponentStartError",
    "RuntimeFailure",
    "cancel_and_wait",
]
