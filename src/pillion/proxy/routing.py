"""Route matching, compiled once from the routes as declared. No I/O.

The first declared route that matches wins (as in Envoy). Matching is compiled,
not interpreted: exact paths are one dict lookup, prefixes one lookup per
distinct prefix length, regexes are tried only if there are any; method and
header conditions are checked only on the candidates. Routes that can never
match are refused when the configuration loads (``RouteMatchConfig.covers``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from pillion.config.proxy import RouteMatchConfig
from pillion.http.headers import Headers

__all__ = ["HeaderMatch", "RouteMatch", "RouteTable", "compile_match"]

T = TypeVar("T")


@dataclass(frozen=True)
class HeaderMatch:
    """A condition on one request header (name compared case-insensitively)."""

    name: bytes
    exact: bytes | None = None  # the value must equal this
    regex: str | None = None  # the whole value must match this
    present: bool = True  # False: the header must be absent

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name.lower())
        if self.regex is not None:
            re.compile(self.regex)  # raises re.error on a bad pattern

    def matches(self, headers: Headers) -> bool:
        values = [value for name, value in headers if name.lower() == self.name]
        if not self.present:
            return not values
        if not values:
            return False
        if self.exact is not None:
            return any(value == self.exact for value in values)
        if self.regex is not None:
            pattern = _compiled(self.regex)
            return any(pattern.fullmatch(value.decode("latin-1")) for value in values)
        return True


@dataclass(frozen=True)
class RouteMatch:
    """What a request must look like: one path condition, methods, headers."""

    exact: bytes | None = None
    prefix: bytes | None = None
    regex: str | None = None
    methods: frozenset[bytes] = field(default_factory=frozenset)  # empty: any
    headers: tuple[HeaderMatch, ...] = ()

    def __post_init__(self) -> None:
        given = [c for c in (self.exact, self.prefix, self.regex) if c is not None]
        if len(given) > 1:
            raise ValueError("a route matches by exact path, prefix or regex: only one")
        if self.regex is not None:
            re.compile(self.regex)

    def conditions(self, method: bytes, headers: Headers) -> bool:
        """The method and header conditions (the path was matched already)."""
        if self.methods and method not in self.methods:
            return False
        return all(header.matches(headers) for header in self.headers)

    def path_matches(self, path: bytes) -> bool:
        if self.exact is not None:
            return path == self.exact
        if self.prefix is not None:
            return path.startswith(self.prefix)
        if self.regex is not None:
            return _compiled(self.regex).fullmatch(path.decode("latin-1")) is not None
        return True  # no path condition: every path


class RouteTable(Generic[T]):
    """First-match routing over ``(RouteMatch, target)`` pairs, compiled once."""

    def __init__(self, routes: Sequence[tuple[RouteMatch, T]]) -> None:
        self._routes = list(routes)
        self._exact: dict[bytes, list[int]] = {}
        self._prefixes: dict[bytes, list[int]] = {}
        self._regex: list[tuple[int, re.Pattern[str]]] = []
        self._always: list[int] = []  # routes without a path condition
        for index, (match, _) in enumerate(self._routes):
            if match.exact is not None:
                self._exact.setdefault(match.exact, []).append(index)
            elif match.prefix is not None:
                self._prefixes.setdefault(match.prefix, []).append(index)
            elif match.regex is not None:
                self._regex.append((index, _compiled(match.regex)))
            else:
                self._always.append(index)
        self._lengths = sorted({len(prefix) for prefix in self._prefixes})

    def match(self, method: bytes, target: bytes, headers: Headers) -> T | None:
        """The target of the first route matching this request, or ``None``."""
        path = target.split(b"?", 1)[0]
        candidates = list(self._exact.get(path, ()))
        prefixes = self._prefixes
        for length in self._lengths:
            if length > len(path):
                break
            found = prefixes.get(path[:length])
            if found:
                candidates.extend(found)
        if self._regex:
            text = path.decode("latin-1")
            candidates.extend(i for i, pattern in self._regex if pattern.fullmatch(text))
        candidates.extend(self._always)
        routes = self._routes
        for index in sorted(candidates):
            match, target_value = routes[index]
            if match.conditions(method, headers):
                return target_value
        return None


def compile_match(config: RouteMatchConfig) -> RouteMatch:
    """The matcher for a configured route (validated already: regexes compile)."""
    return RouteMatch(
        exact=config.exact.encode() if config.exact is not None else None,
        prefix=config.prefix.encode() if config.prefix is not None else None,
        regex=config.regex,
        methods=frozenset(method.encode() for method in config.methods),
        headers=tuple(
            HeaderMatch(
                header.name.encode(),
                exact=header.exact.encode() if header.exact is not None else None,
                regex=header.regex,
                present=header.present,
            )
            for header in config.headers
        ),
    )


_PATTERNS: Final[dict[str, re.Pattern[str]]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    found = _PATTERNS.get(pattern)
    if found is None:
        found = _PATTERNS[pattern] = re.compile(pattern)
    return found
