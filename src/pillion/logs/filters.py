"""An input's filters: each record through the steps in order. No I/O.

``include`` / ``exclude`` drop records (the caller counts them); ``redact``
rewrites the message and every string field; ``set``, ``rename`` and
``remove`` edit fields. A field named ``message`` is the record's message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pillion.config.logs import FilterConfig

__all__ = ["Filtered", "compile_filters"]

# (message, fields) -> (message, fields), or None to drop the record
Filtered = tuple[bytes, dict[str, Any] | None]
Step = Callable[[bytes, dict[str, Any] | None], Filtered | None]


def _value(message: bytes, fields: dict[str, Any] | None, name: str) -> str | None:
    if name == "message":
        return message.decode("utf-8", "replace")
    value = (fields or {}).get(name)
    return None if value is None else str(value)


def _matcher(field: str, regex: str, keep_on_match: bool) -> Step:
    pattern = re.compile(regex)

    def step(message: bytes, fields: dict[str, Any] | None) -> Filtered | None:
        value = _value(message, fields, field)
        matched = value is not None and pattern.search(value) is not None
        return (message, fields) if matched == keep_on_match else None

    return step


def _redactor(regex: str, replacement: str) -> Step:
    text, raw = re.compile(regex), re.compile(regex.encode())
    new_text, new_raw = replacement, replacement.encode()

    def redact(value: Any) -> Any:
        if isinstance(value, str):
            return text.sub(new_text, value)
        if isinstance(value, dict):
            return {k: redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(v) for v in value]
        return value

    def step(message: bytes, fields: dict[str, Any] | None) -> Filtered:
        return raw.sub(new_raw, message), redact(fields) if fields else fields

    return step


def _editor(config: FilterConfig) -> Step:
    def step(message: bytes, fields: dict[str, Any] | None) -> Filtered:
        edited = dict(fields or {})
        if config.set:
            edited.update(config.set)
        for old, new in (config.rename or {}).items():
            if old in edited:
                edited[new] = edited.pop(old)
        for name in config.remove or ():
            edited.pop(name, None)
        return message, edited or None

    return step


def compile_filters(steps: list[FilterConfig]) -> Callable[[bytes, dict[str, Any] | None],
                                                           Filtered | None] | None:  # fmt: skip
    """One function running the steps, or None when there are none."""
    compiled: list[Step] = []
    for config in steps:
        if config.include is not None:
            compiled.append(_matcher(config.include.field, config.include.regex, True))
        elif config.exclude is not None:
            compiled.append(_matcher(config.exclude.field, config.exclude.regex, False))
        elif config.redact is not None:
            compiled.append(_redactor(config.redact.regex, config.redact.replacement))
        else:
            compiled.append(_editor(config))
    if not compiled:
        return None

    def run(message: bytes, fields: dict[str, Any] | None) -> Filtered | None:
        result: Filtered | None = (message, fields)
        for step in compiled:
            assert result is not None
            result = step(*result)
            if result is None:
                return None
        return result

    return run
