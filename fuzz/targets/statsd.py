"""StatsD packets (``pillion.exporters.statsd_*``): UDP datagrams and TCP lines
from the app.

Property: nothing raises (a problem drops the sample and is counted by reason);
every sample ``split_packet`` keeps is consistent with its line (the name before
the first ``:``, a value and a type that are in the line, a rate in (0, 1]); a
line yields samples or drops, never nothing; the ingest's cached routes record
exactly what reading every line whole records; the same bytes through the TCP
framing, cut anywhere, record what they record as one packet; and the pages
(text format and OpenMetrics) parse with prometheus_client's own parsers, with no
metric left out of a scrape.
"""

from __future__ import annotations

import logging
from collections import Counter

from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from fuzz import known
from fuzz.target import Target
from pillion.config.exporters import StatsdConfig
from pillion.exporters.statsd_exposition import StoreCollector
from pillion.exporters.statsd_ingest import StatsdIngest
from pillion.exporters.statsd_metrics import StatsdFamilies
from pillion.exporters.statsd_parse import TYPES, RawSample, decode_packet, split_packet
from pillion.exporters.statsd_server import StatsdTcpProtocol
from pillion.exporters.statsd_store import SeriesStore
from pillion.telemetry import Metrics

__all__ = ["TARGET", "check"]

CONFIG = StatsdConfig.model_validate(
    {
        "udp": None,
        "tcp": None,
        "max_series_per_metric": 50,
        "max_packet_size": 4096,
        "mappings": [
            {"match": "app.*.time", "name": "app_${1}_seconds", "observer_type": "summary"},
            {"match": "drop.*", "action": "drop"},
            {"match": "^re_(\\w+)$", "match_type": "regex", "name": "regex_$1", "scale": 2},
        ],
    }
)
NOW = 1000.0
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Pod:
    """An ingest, its store and a page serving them."""

    def __init__(self, cache_size: int = 20_000) -> None:
        self.metrics = Metrics(process=False)
        self.families = self.metrics.family("statsd", StatsdFamilies)
        self.store = SeriesStore(
            ttl=0,
            max_series_per_metric=CONFIG.max_series_per_metric,
            max_series=200,
            max_metrics=100,
        )
        self.ingest = StatsdIngest(CONFIG, self.store, self.families, cache_size=cache_size)
        collector = StoreCollector(self.store, self.families.is_exposed)
        self.metrics.add_section(collector)
        self.families.live.append(collector)

    def page(self, accept: str | None = None) -> str:
        """The page, without the ``_created`` rows (they hold the time of creation)."""
        self.ingest.flush()
        page = self.metrics.exposition(accept)[0].decode()
        return "".join(row for row in page.splitlines(True) if "_created" not in row)


def check(data: bytes) -> None:
    _samples_match_lines(data)
    fast, whole_lines, tcp = Pod(), Pod(cache_size=0), Pod()
    for _ in range(2):  # the second time, every shape is cached
        fast.ingest.packet(data, NOW)
        whole_lines.ingest.packet(data, NOW)
    assert fast.page() == whole_lines.page(), "cached routes != whole lines"
    _through_tcp(tcp, data)
    lines_of = Pod()
    lines_of.ingest.lines(data, NOW)
    assert _series(tcp.page()) == _series(lines_of.page()), "TCP framing changed the samples"
    with _Refusals() as refusals:
        text, openmetrics = fast.page(), fast.page(OPENMETRICS)
    assert not refusals.records, "a metric was left out of the scrape"
    list(text_string_to_metric_families(text))
    try:
        list(om_families(openmetrics))  # type: ignore[no-untyped-call]
    except ValueError as exc:
        if not str(exc).startswith("Counter-like samples cannot be negative"):
            raise
        known.tolerate("openmetrics-negative-sum")


def _samples_match_lines(data: bytes) -> None:
    drops: Counter[str] = Counter()
    text = decode_packet(data, drops)
    for line in text.split("\n"):
        samples: list[RawSample] = []
        before = drops.total()
        split_packet(line, samples, drops)
        line = line.strip()
        if line:
            assert samples or drops.total() > before, f"line {line!r} left no trace"
        for head, value, kind, rate, tags in samples:
            assert head, line
            assert line.startswith(head + ":"), (line, head)
            rest = line[len(head) + 1 :]
            assert value, line
            assert value in rest, (line, value)
            assert "|" not in value, (line, value)
            assert kind in TYPES, (line, kind)
            assert f"|{kind}" in rest, (line, kind)
            assert 0.0 < rate <= 1.0, (line, rate)
            assert rate == 1.0 or "|@" in rest, (line, rate)
            assert not tags or tags.startswith("#"), (line, tags)
            assert all(tag in rest for tag in tags[1:].split(",")), (line, tags)


def _through_tcp(pod: Pod, data: bytes) -> None:
    """``data`` as one TCP connection's stream, in three pieces."""
    protocol = StatsdTcpProtocol(pod.ingest, set(), clock=lambda: NOW)
    third = len(data) // 3
    for piece in (data[:third], data[third : 2 * third], data[2 * third :], b"\n"):
        protocol.data_received(piece)
    protocol.connection_lost(None)


def _series(page: str) -> list[str]:
    """The page's StatsD series, without Pillion's own counters."""
    return [
        row
        for row in page.splitlines()
        if not row.startswith(("pillion_", "# HELP pillion_", "# TYPE pillion_"))
    ]


class _Refusals(logging.Handler):
    """Records what ``pillion.exporters`` logs while in use."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self._logger = logging.getLogger("pillion.exporters")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> _Refusals:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)


TARGET = Target(
    name="statsd",
    summary="StatsD lines: parse, map, store and expose (pillion.exporters.statsd_*)",
    check=check,
    tokens=(
        b"\n",
        b":",
        b"|",
        b"|c",
        b"|g",
        b"|ms",
        b"|h",
        b"|d",
        b"|s",
        b"|@0.5",
        b"|@0",
        b"|#",
        b"|#k:v,j:w",
        b"|c:abc",
        b"|T1656581400",
        b",k=v",
        b"#k=v",
        b"[k=v]",
        b"[",
        b"]",
        b":1",
        b":+1",
        b":-1",
        b":1e309",
        b":nan",
        b"app.x.time",
        b"drop.",
        b"re_a",
        b"pillion_",
        b"_total",
        b"le",
        b"quantile",
        b"\xff",
        b"\r",
    ),
    max_len=8192,
)
