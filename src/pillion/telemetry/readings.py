"""One reading of Pillion's own series (``pillion_*``) from its metrics registry.

The registry's ``collect()`` also sums what proxy worker processes count
(``MultiProcessCollector``), so a reading covers every process. Only families
named ``pillion_`` are kept: the exporters' series (an app's metrics, StatsD)
are what Pillion serves for others, never what it reads about itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

__all__ = ["Labels", "Reading", "read_registry"]

PREFIX = "pillion_"

Labels = dict[str, str]


class Reading:
    """Samples by sample name (``pillion_requests_total``, ``..._bucket``...)."""

    def __init__(self, samples: dict[str, list[tuple[Labels, float]]]) -> None:
        self._samples = samples

    @classmethod
    def of(cls, families: Iterable[Metric]) -> Reading:
        samples: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
        for family in families:
            if not family.name.startswith(PREFIX):
                continue
            for sample in family.samples:
                samples[sample.name].append((dict(sample.labels), float(sample.value)))
        return cls(dict(samples))

    def samples(self, name: str) -> list[tuple[Labels, float]]:
        return self._samples.get(name, [])

    def value(self, name: str, **labels: str) -> float | None:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        found = [v for have, v in self.samples(name) if _matches(have, labels)]
        return sum(found) if found else None

    def by(self, name: str, *keys: str, **labels: str) -> dict[tuple[str, ...], float]:
        """Sums of ``name``'s samples matching ``labels``, grouped by the ``keys`` labels."""
        sums: dict[tuple[str, ...], float] = defaultdict(float)
        for have, value in self.samples(name):
            if _matches(have, labels):
                sums[tuple(have.get(key, "") for key in keys)] += value
        return dict(sums)

    def names(self) -> list[str]:
        return sorted(self._samples)


def _matches(have: Labels, wanted: dict[str, str]) -> bool:
    return all(have.get(key) == value for key, value in wanted.items())


def read_registry(registry: CollectorRegistry) -> Reading:
    """Pillion's own series in ``registry`` now."""
    return Reading.of(registry.collect())
