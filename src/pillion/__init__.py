"""Pillion: a Kubernetes sidecar for the cross-cutting work of an application's pod.

The package is layered (checked by import-linter, see ``pyproject.toml``):
``cli`` > ``demo`` > ``runtime`` > features > ``telemetry`` > ``config``.
"""

__version__ = "0.1.0"
