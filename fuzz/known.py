"""Defects the fuzz targets found in modules this harness does not fix, each
pinned by an expected failure in ``tests/fuzz/test_known_defects.py``.

A check that meets one of these tolerates it (and tallies it in ``seen``, which
``make fuzz`` prints) instead of failing, so that a known defect does not stop
a fuzzing run from finding the next one. When a defect is fixed, its pinned
test starts passing, fails as an unexpected pass, and its entry goes.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["KNOWN", "seen", "tolerate"]

KNOWN: dict[str, str] = {
    "openmetrics-negative-sum": (
        "pillion.exporters.statsd_exposition: a negative timer or histogram value "
        "(`t:-1|ms`) makes a negative _sum, which OpenMetrics forbids for histograms and "
        "summaries (their sum is a counter); prometheus_client's OpenMetrics parser "
        "refuses the page. Kept as statsd_exporter has it: the text format is valid"
    ),
}

seen: Counter[str] = Counter()


def tolerate(name: str) -> None:
    """A check met the known defect ``name``: count it, and go on."""
    if name not in KNOWN:
        raise KeyError(f"not a known defect: {name}")
    seen[name] += 1
