"""Parts of ``/metrics`` that write themselves, and what they need to know to do it.

prometheus_client's encoders build a ``Sample`` (a named tuple and a label dict)
for every line of the page, and then format it: fine for Pillion's own few
hundred lines, slow for an exporter's tens of thousands (the StatsD store's
10k series are 36k lines). A ``PageSection`` writes its families itself, in
the format this scrape asked for, and they are added to the page after the
registry's (before OpenMetrics' ``# EOF``). A section owns its names as a
collector would: no family of its may also be in the registry.

What it writes must be what the encoder would have written: a section writes
directly only the families whose names the page's escaping leaves as they are
(``PageFormat.direct``), and hands the others to ``PageFormat.encode``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

__all__ = ["PageFormat", "PageSection", "page_format"]

_EOF = b"# EOF\n"


@dataclass(frozen=True)
class PageFormat:
    """How this scrape's page is written."""

    openmetrics: bool
    direct: bool  # legacy names stay as they are: a section may write its families itself
    encoder: Callable[[Collector], bytes]

    def encode(self, families: Iterable[Metric]) -> bytes:
        """``families`` as the page's encoder writes them, without OpenMetrics' ``# EOF``."""
        body = self.encoder(_Families(families))
        return body[: -len(_EOF)] if self.openmetrics and body.endswith(_EOF) else body


class PageSection(Protocol):
    def expose(self, page: PageFormat) -> bytes:
        """This section's families, as ``page`` says (``b""`` for none)."""
        ...


def page_format(encoder: Callable[[Collector], bytes]) -> PageFormat:
    """What ``prometheus_client.exposition.choose_encoder`` chose: its encoder is a
    ``generate_latest``, maybe with an ``escaping`` bound. Any other is written
    by itself only (``direct`` False)."""
    function: object = encoder
    keywords: dict[str, object] = {}
    if isinstance(encoder, functools.partial):
        function, keywords = encoder.func, encoder.keywords
    escaping = keywords.get("escaping", openmetrics.UNDERSCORES)
    is_openmetrics = function is openmetrics.generate_latest
    known = is_openmetrics or function is exposition.generate_latest
    # `underscores` and `allow-utf-8` leave a legacy name as it is; `dots` and
    # `values` rewrite every `_` (and OpenMetrics' `values` prefixes `U__`)
    direct = known and escaping in (openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8)
    return PageFormat(openmetrics=is_openmetrics, direct=direct, encoder=encoder)


class _Families:
    """A collector of families already made (what ``PageFormat.encode`` encodes)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families
