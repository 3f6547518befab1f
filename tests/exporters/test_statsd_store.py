"""The StatsD series store and its exposition, fed through the ingest, no sockets:
TTL on a fake clock, caps, type conflicts, sets; promtool reads every page."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pillion.config.exporters import StatsdConfig
from pillion.exporters.statsd_exposition import StoreCollector
from pillion.exporters.statsd_ingest import StatsdIngest
from pillion.exporters.statsd_metrics import StatsdFamilies
from pillion.exporters.statsd_store import COUNTER, GAUGE, SeriesStore
from pillion.telemetry import Metrics
from tests.helpers import metric_value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """An ingest, its store and a registry serving them, on a fake clock."""

    def __init__(self, reserved: tuple[str, ...] = (), **settings: Any) -> None:
        self.clock = Clock()
        self.config = StatsdConfig.model_validate({"udp": None, "tcp": None, **settings})
        self.metrics = Metrics(process=False)
        self.families = self.metrics.family(
            "statsd", lambda registry: StatsdFamilies(registry, clock=self.clock)
        )
        config = self.config
        self.store = SeriesStore(ttl=config.ttl, max_series_per_metric=config.max_series_per_metric,
                                 max_series=config.max_series, max_metrics=config.max_metrics,
                                 reserved=reserved)  # fmt: skip
        self.ingest = StatsdIngest(config, self.store, self.families)
        self.collector = StoreCollector(self.store, self.families.is_exposed)
        self.metrics.add_section(self.collector)
        self.families.live.append(self.collector)

    def send(self, *lines: str) -> None:
        self.ingest.packet("\n".join(lines).encode(), self.clock.now)

    def page(self) -> bytes:
        return self.metrics.exposition(None)[0]

    def value(self, series: str) -> float | None:
        return metric_value(self.page(), series)

    def dropped(self, reason: str) -> float:
        return (
            self.registry.get_sample_value("pillion_statsd_dropped_total", {"reason": reason}) or 0
        )

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry


def promtool_accepts(page: bytes) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package; `make test` installs it"
    check = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True,
                           timeout=30, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_counters_with_sample_rates() -> None:
    pod = Harness()
    pod.send("jobs.done:1|c", "jobs.done:2|c|@0.5", "jobs.done:1|c|@0.1")
    assert pod.value("jobs_done_total") == 15.0
    assert pod.registry.get_sample_value("pillion_statsd_samples_total") == 3


def test_negative_counters_are_malformed() -> None:
    pod = Harness()
    pod.send("jobs:-1|c", "jobs:2|c")
    assert pod.value("jobs_total") == 2.0
    assert pod.dropped("malformed") == 1


def test_gauges_set_and_move() -> None:
    pod = Harness()
    pod.send("queue:10|g", "queue:+5|g", "queue:-3|g|@0.5")
    assert pod.value("queue") == 12.0
    pod.send("queue:4|g")
    assert pod.value("queue") == 4.0
    pod.send("fresh:-2|g")  # a delta on a new gauge starts from 0
    assert pod.value("fresh") == -2.0


def test_timers_are_seconds_in_a_histogram() -> None:
    pod = Harness(buckets=[0.1, 1])
    pod.send("db.query:50|ms", "db.query:500|ms", "db.query:100|ms", "db.query:2000|ms|@0.5")
    assert pod.value('db_query_bucket{le="0.1"}') == 2.0  # 0.1 is in the le="0.1" bucket
    assert pod.value('db_query_bucket{le="1.0"}') == 3.0
    assert pod.value('db_query_bucket{le="+Inf"}') == 5.0  # @0.5: counted twice
    assert pod.value("db_query_count") == 5.0
    assert pod.value("db_query_sum") == pytest.approx(0.05 + 0.5 + 0.1 + 2 * 2.0)
    promtool_accepts(pod.page())


def test_histograms_and_distributions_are_observed_as_they_are() -> None:
    pod = Harness(buckets=[100, 1000])
    pod.send("size:50|h", "size:5000|d")
    assert pod.value('size_bucket{le="100.0"}') == 1.0
    assert pod.value("size_sum") == 5050.0


def test_summaries_have_sum_and_count() -> None:
    pod = Harness(observer_type="summary")
    pod.send("rpc:200|ms", "rpc:300|ms")
    assert pod.value("rpc_count") == 2.0
    assert pod.value("rpc_sum") == pytest.approx(0.5)
    promtool_accepts(pod.page())


def test_mapping_scale_labels_and_observer() -> None:
    pod = Harness(
        mappings=[
            {"match": "api.*.size", "name": "api_size_bytes", "labels": {"api": "$1"},
             "scale": 1024, "observer_type": "summary"},
            {"match": "noise.*", "action": "drop"},
        ]
    )  # fmt: skip
    pod.send("api.users.size:2|h|#api:ignored,zone:a", "noise.x:1|c")
    assert pod.value('api_size_bytes_sum{api="users",zone="a"}') == 2048.0
    assert pod.dropped("mapping") == 1


def test_sets_count_distinct_values_within_the_ttl() -> None:
    pod = Harness(ttl="60s")
    pod.send("users:alice|s", "users:bob|s", "users:alice|s")
    assert pod.value("users") == 2.0
    pod.clock.now += 40
    pod.send("users:carol|s")
    assert pod.value("users") == 3.0
    pod.clock.now += 30  # alice and bob: 70s ago
    assert pod.value("users") == 1.0
    pod.clock.now += 31
    assert pod.value("users") is None


def test_a_set_holds_at_most_max_series_per_metric_values() -> None:
    pod = Harness(max_series_per_metric=3)
    pod.send(*(f"users:u{n}|s" for n in range(10)))
    assert pod.value("users") == 3.0
    assert pod.dropped("cardinality") == 7


def test_idle_series_expire_after_the_ttl() -> None:
    pod = Harness(ttl="5m")
    pod.send("a:1|c|#k:1", "a:1|c|#k:2")
    pod.clock.now += 200
    pod.send("a:1|c|#k:2")
    pod.clock.now += 101  # k=1 idle for 301s, k=2 for 101s
    page = pod.page()
    assert metric_value(page, 'a_total{k="1"}') is None
    assert metric_value(page, 'a_total{k="2"}') == 2.0
    assert pod.registry.get_sample_value("pillion_statsd_expired_total") == 1
    assert pod.registry.get_sample_value("pillion_statsd_series") == 1
    # an expired series comes back from zero
    pod.send("a:5|c|#k:1")
    assert pod.value('a_total{k="1"}') == 5.0


def test_a_ttl_of_zero_keeps_series() -> None:
    pod = Harness(ttl="0")
    pod.send("a:1|g")
    pod.clock.now += 10**7
    assert pod.value("a") == 1.0


def test_an_expired_metric_frees_its_name_for_another_type() -> None:
    pod = Harness(ttl="10s")
    pod.send("thing:1|c")
    pod.send("thing:1|g")
    assert pod.dropped("type_conflict") == 1
    pod.clock.now += 11
    pod.page()
    pod.send("thing:7|g")
    assert pod.value("thing") == 7.0
    promtool_accepts(pod.page())


def test_the_series_cap_per_metric_holds() -> None:
    pod = Harness(max_series_per_metric=100)
    pod.send(*(f"hits:1|c|#user:u{n}" for n in range(250)))
    pod.send("hits:1|c|#user:u0", "other:1|c")  # existing series and other metrics still work
    assert pod.registry.get_sample_value("pillion_statsd_series") == 101
    assert pod.value('hits_total{user="u0"}') == 2.0
    assert pod.value("other_total") == 1.0
    assert pod.dropped("cardinality") == 150


def test_the_total_series_cap_and_metric_cap_hold() -> None:
    pod = Harness(max_series=10, max_metrics=5)
    pod.send(*(f"m{n}:1|g" for n in range(8)))
    assert pod.registry.get_sample_value("pillion_statsd_series") == 5
    assert pod.dropped("too_many_metrics") == 3
    pod.send(*(f"m0:1|g|#n:{n}" for n in range(8)))
    assert pod.dropped("type_conflict") == 8  # m0 has no labels
    pod.send(*(f"m1,n={n}:1|g" for n in range(3)))
    assert pod.dropped("type_conflict") == 11


def test_total_series_cap() -> None:
    pod = Harness(max_series=10)
    pod.send(*(f"m:1|g|#n:{n}" for n in range(15)))
    assert pod.registry.get_sample_value("pillion_statsd_series") == 10
    assert pod.dropped("too_many_series") == 5
    pod.send("new:1|c")
    assert pod.dropped("too_many_series") == 6


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("x:1|c", "x:1|g"),
        ("x:1|g", "x:1|ms"),
        ("x:1|ms", "x:a|s"),
        ("x:1|c|#a:1", "x:1|c|#b:1"),
        ("x:1|c|#a:1", "x:1|c"),
        ("x:1|c", "x_total:1|c"),  # both are the family `x`
        ("x:1|c", "x_total:1|g"),
        ("x:1|ms", "x_bucket:1|g"),
        ("x:1|ms", "x_count:1|c"),
        ("x:1|h", "x_sum:1|g"),
    ],
)
def test_type_conflicts_are_counted_and_never_break_the_page(first: str, second: str) -> None:
    pod = Harness()
    pod.send(first)
    before = pod.page()
    pod.send(second, second)
    assert pod.dropped("type_conflict") == 2
    page = pod.page()
    assert page.replace(b"pillion_statsd_dropped_total", b"") != b""
    promtool_accepts(page)
    type_lines = [line for line in page.splitlines() if line.startswith(b"# TYPE")]
    assert len(type_lines) == len(set(type_lines))
    assert [line for line in before.splitlines() if not line.startswith(b"pillion_")] == [
        line for line in page.splitlines() if not line.startswith(b"pillion_")
    ]


def test_reserved_names_are_refused() -> None:
    pod = Harness(reserved=("queue_depth",))
    pod.send("pillion_statsd_series:1|g", "pillion.build:1|c", "queue_depth:1|g", "queue_depth:1|c")
    assert pod.dropped("reserved") == 4
    promtool_accepts(pod.page())


def test_histogram_and_summary_labels_le_and_quantile_are_left_out() -> None:
    pod = Harness(buckets=[1])
    pod.send("t:1|h|#le:5,zone:a")
    assert pod.value('t_count{zone="a"}') == 1.0
    assert pod.dropped("label") == 1
    promtool_accepts(pod.page())


def test_unusable_tags_are_counted_per_sample() -> None:
    pod = Harness()
    pod.send("a:1|c|#novalue,k:v", "a:1|c|#novalue,k:v")
    assert pod.value('a_total{k="v"}') == 2.0
    assert pod.dropped("label") == 2


def test_every_tag_dialect_gives_the_same_series() -> None:
    pod = Harness()
    pod.send("t:1|c|#env:prod", "t,env=prod:1|c", "t#env=prod:1|c", "t[env=prod]:1|c")
    assert pod.value('t_total{env="prod"}') == 4.0


def test_label_values_are_escaped_in_the_page() -> None:
    pod = Harness()
    pod.send('q:1|c|#path:/a"b\\c')
    page = pod.page()
    assert b'q_total{path="/a\\"b\\\\c"} 1.0' in page
    promtool_accepts(page)


def test_oversized_packets_are_dropped_whole() -> None:
    pod = Harness(max_packet_size=512)
    pod.ingest.packet(b"a:1|c\n" * 100, pod.clock.now)
    assert pod.dropped("too_large") == 1
    assert pod.value("a_total") is None


def test_tcp_lines_drop_only_the_long_ones() -> None:
    pod = Harness(max_packet_size=512)
    pod.ingest.lines(b"a:1|c\n" + b"b" * 600 + b":1|c\nc:1|c", pod.clock.now)
    assert pod.value("a_total") == 1.0
    assert pod.value("c_total") == 1.0
    assert pod.dropped("too_large") == 1
    assert pod.registry.get_sample_value("pillion_statsd_packets_total", {"transport": "tcp"}) == 3


def test_the_resolution_cache_forgets_expired_series() -> None:
    pod = Harness(ttl="10s")
    pod.send("a:1|c")
    pod.clock.now += 11
    pod.page()  # a scrape removes the series
    pod.send("a:1|c")  # a cached series would be updated without being seen
    assert pod.value("a_total") == 1.0


def test_a_reconfigured_ingest_applies_new_rules() -> None:
    pod = Harness()
    pod.send("a.b:1|c")
    pod.store.clear()
    pod.ingest.configure(StatsdConfig.model_validate(
        {"udp": None, "tcp": None, "mappings": [{"match": "a.*", "name": "renamed"}]}
    ))  # fmt: skip
    pod.send("a.b:1|c")
    assert pod.value("renamed_total") == 1.0
    assert pod.value("a_b_total") is None


def test_only_the_newest_live_collector_is_served() -> None:
    pod = Harness()
    pod.send("a:1|c")
    second = StoreCollector(pod.store, pod.families.is_exposed)  # a reload's replacement
    pod.metrics.add_section(second)
    pod.families.live.append(second)
    assert pod.page().count(b"# TYPE a_total counter") == 1
    pod.families.live.remove(second)
    pod.metrics.remove_section(second)
    assert pod.page().count(b"# TYPE a_total counter") == 1


def test_store_api_directly() -> None:
    store = SeriesStore(ttl=10, max_series_per_metric=2, max_series=10, max_metrics=10)
    first = store.series("m", COUNTER, {"a": "1"}, 0.0)
    assert store.series("m", COUNTER, {"a": "1"}, 1.0) is first
    assert store.series("m", GAUGE, {"a": "1"}, 1.0) == "type_conflict"
    assert store.series("m", COUNTER, {"b": "1"}, 1.0) == "type_conflict"
    assert store.series("_total", COUNTER, {}, 1.0) == "malformed"
    store.series("m", COUNTER, {"a": "2"}, 5.0)
    assert store.series("m", COUNTER, {"a": "3"}, 1.0) == "cardinality"
    generation = store.generation
    assert store.expire(10.5) == 1
    assert store.generation != generation
    assert store.series_count == 1
    store.clear()
    assert store.series_count == 0
    assert store.metrics == {}
