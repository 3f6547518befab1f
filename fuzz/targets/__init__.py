"""The fuzz targets, one module each; every module defines ``TARGET``.

Modules are imported on demand, so that ``make fuzz`` can instrument a target's
code for coverage as it imports it.
"""

from __future__ import annotations

import importlib

from fuzz.target import Target

__all__ = ["MODULES", "load", "names"]

MODULES = {
    "http-request": "fuzz.targets.http_request",
    "http-response": "fuzz.targets.http_response",
    "http-chunked": "fuzz.targets.http_chunked",
    "http2": "fuzz.targets.http2",
    "statsd": "fuzz.targets.statsd",
    "log-lines": "fuzz.targets.log_lines",
    "log-parsers": "fuzz.targets.log_parsers",
    "config": "fuzz.targets.config",
    "admission": "fuzz.targets.admission",
}


def names() -> list[str]:
    return list(MODULES)


def load(name: str) -> Target:
    """The target called ``name``, or the ``TARGET`` of the module at the dotted path
    ``name`` (how the runner's own tests bring a target that fails)."""
    target = importlib.import_module(MODULES.get(name, name)).TARGET
    assert isinstance(target, Target)
    return target
