"""Running Pillion's HTTP/1.1 parsers over bytes and recording what they do.

The parsers ship twice, compiled (mypyc) and as source; ``implementations``
gives both when they differ (the installed modules, and the ``.py`` files loaded
again under other names), so that every check also compares the two.

An ``Outcome`` is the events a parser gave (heads as plain tuples, body bytes
joined, ends) and the error it raised, if any. Feeding the same bytes whole or
in pieces must give the same events, except that an error may come earlier or
later (the head-size limit counts bytes differently when a head comes in
pieces): then one outcome's events are a prefix of the other's.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pillion.http.request as request_module
import pillion.http.response as response_module
from pillion.http.errors import HttpError

__all__ = ["Event", "Outcome", "Recorder", "consistent", "implementations", "is_prefix", "pieces"]

Event = tuple[Any, ...]


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    error: HttpError | None = None
    heads: list[Any] = field(default_factory=list)  # the head objects, as delivered

    def bodies(self) -> list[bytes]:
        return [event[1] for event in self.events if event[0] == "body"]

    def ended(self) -> int:
        return sum(1 for event in self.events if event[0] == "end")


class Recorder:
    """Both handler protocols at once: requests and responses."""

    def __init__(self) -> None:
        self.outcome = Outcome()

    def _head(self, head: Any, fields: tuple[Any, ...]) -> None:
        self.outcome.heads.append(head)
        self.outcome.events.append(("head", *fields))

    def _body(self, data: bytes) -> None:
        events = self.outcome.events
        if events and events[-1][0] == "body":
            events[-1] = ("body", events[-1][1] + data)
        else:
            events.append(("body", data))

    def on_request(self, head: Any) -> None:
        self._head(
            head,
            (
                head.method,
                head.target,
                head.version,
                tuple(head.headers),
                head.host,
                head.keep_alive,
                head.body,
                head.content_length,
                frozenset(head.connection_names),
                head.expect_continue,
                head.upgrade,
            ),
        )

    def on_response(self, head: Any) -> None:
        self._head(
            head,
            (
                head.status,
                tuple(head.headers),
                head.keep_alive,
                head.body,
                head.content_length,
                frozenset(head.connection_names),
            ),
        )

    on_request_body = on_response_body = _body

    def on_request_end(self) -> None:
        self.outcome.events.append(("end",))

    on_response_end = on_request_end


def _load_source(module: ModuleType) -> ModuleType:
    stem = module.__name__.rsplit(".", 1)[-1]
    name = f"_fuzz_source_{stem}"
    path = Path(module.__file__ or "").with_name(f"{stem}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    source = importlib.util.module_from_spec(spec)
    sys.modules[name] = source  # dataclasses look their module up
    spec.loader.exec_module(source)
    return source


@cache
def implementations() -> tuple[tuple[ModuleType, ModuleType], ...]:
    """``(request, response)`` modules: the installed ones, then their source when
    the installed ones are compiled."""
    installed = (request_module, response_module)
    if Path(request_module.__file__ or "").suffix == ".py":
        return (installed,)
    return installed, (_load_source(request_module), _load_source(response_module))


def pieces(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets."""
    points = sorted({min(max(cut, 0), len(data)) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def is_prefix(short: list[Event], long: list[Event]) -> bool:
    """Whether ``short`` is how ``long`` begins, its last body possibly cut short."""
    if len(short) > len(long):
        return False
    for index, (mine, theirs) in enumerate(zip(short, long, strict=False)):
        if mine == theirs:
            continue
        last = index == len(short) - 1
        if not (last and mine[0] == theirs[0] == "body" and theirs[1].startswith(mine[1])):
            return False
    return True


def consistent(a: Outcome, b: Outcome) -> bool:
    """Two feedings of the same bytes agree (see the module docstring)."""
    if a.error is None and b.error is None:
        return a.events == b.events
    if a.error is None:
        return is_prefix(b.events, a.events)
    if b.error is None:
        return is_prefix(a.events, b.events)
    return is_prefix(a.events, b.events) or is_prefix(b.events, a.events)
