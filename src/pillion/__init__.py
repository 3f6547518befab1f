"""Pillion: a Kubernetes sidecar for the cross-cutting work of an application's pod.

The package is layered (checked by import-linter, see ``pyproject.toml``):
``cli`` > ``demo`` > ``runtime`` > features > ``telemetry`` > ``config``.
"""

__version__ = "0.1.0"

from pillion import extensions as _extensions

_extensions.install()  # compiled hot path, or its source (PILLION_NO_EXTENSIONS=1)
