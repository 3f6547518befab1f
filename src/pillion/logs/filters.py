"""An input's filters: each record through the steps in order. No I/O.

``include`` / ``exclude`` and ``throttle`` drop records (returning the reason,
which the caller counts); ``redact`` rewrites the message and every string
field; ``set``, ``rename`` and ``remove`` edit fields. A field named
``message`` is the record's message; a dotted name reaches into nested fields.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from pillion.config.logs import FilterConfig, ThrottleConfig, field_path

__all__ = ["FILTERED", "MAX_THROTTLE_KEYS", "THROTTLED", "Filtered", "compile_filters"]

FILTERED = "filtered"
THROTTLED = "throttled"
MAX_THROTTLE_KEYS = 10_000  # buckets kept per throttle step; idle ones go first

# (message, fields) -> (message, fields), or the reason the record is dropped
Filtered = tuple[bytes, dict[str, Any] | None]
Step = Callable[[bytes, dict[str, Any] | None], Filtered | str]


def _value(message: bytes, fields: dict[str, Any] | None, path: tuple[str, ...]) -> str | None:
    if path == _MESSAGE:
        return message.decode("utf-8", "replace")
    value: Any = fields
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return None if value is None else str(value)


_MESSAGE = ("message",)


def _matcher(field: str, regex: str, keep_on_match: bool) -> Step:
    pattern = re.compile(regex)
    path = field_path(field)

    def step(message: bytes, fields: dict[str, Any] | None) -> Filtered | str:
        value = _value(message, fields, path)
        matched = value is not None and pattern.search(value) is not None
        return (message, fields) if matched == keep_on_match else FILTERED

    return step


def _throttler(config: ThrottleConfig, clock: Callable[[], float]) -> Step:
    """A token bucket per key: ``threshold`` tokens, refilled at threshold/window
    per second; a record takes one or is dropped."""
    capacity = float(config.threshold)
    rate = capacity / config.window
    buckets: dict[str | None, tuple[float, float]] = {}  # key -> (tokens, at)
    key_path = None if config.key is None else field_path(config.key)

    def step(message: bytes, fields: dict[str, Any] | None) -> Filtered | str:
        key = None if key_path is None else _value(message, fields, key_path)
        now = clock()
        tokens, at = buckets.pop(key, (capacity, now))  # re-inserted: most recent last
        tokens = min(capacity, tokens + (now - at) * rate)
        if len(buckets) >= MAX_THROTTLE_KEYS:
            del buckets[next(iter(buckets))]  # the key seen longest ago
        if tokens < 1.0:
            buckets[key] = (tokens, now)
            return THROTTLED
        buckets[key] = (tokens - 1.0, now)
        return message, fields

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

    def step(message: bytes, fields: dict[str, Any] | None) -> Filtered | str:
        return raw.sub(new_raw, message), redact(fields) if fields else fields

    return step


def _editor(config: FilterConfig) -> Step:
    def step(message: bytes, fields: dict[str, Any] | None) -> Filtered | str:
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


def compile_filters(
    steps: list[FilterConfig], clock: Callable[[], float] = time.monotonic
) -> Step | None:
    """One function running the steps, or None when there are none."""
    compiled: list[Step] = []
    for config in steps:
        if config.include is not None:
            compiled.append(_matcher(config.include.field, config.include.regex, True))
        elif config.exclude is not None:
            compiled.append(_matcher(config.exclude.field, config.exclude.regex, False))
        elif config.redact is not None:
            compiled.append(_redactor(config.redact.regex, config.redact.replacement))
        elif config.throttle is not None:
            compiled.append(_throttler(config.throttle, clock))
        else:
            compiled.append(_editor(config))
    if not compiled:
        return None

    def run(message: bytes, fields: dict[str, Any] | None) -> Filtered | str:
        result: Filtered | str = (message, fields)
        for step in compiled:
            result = step(*result)
            if isinstance(result, str):
                return result
        return result

    return run
