"""StatsD lines as statsd_exporter reads them, through the ingest to the page.

One row per class of line: what statsd_exporter documents (its README and line
parser) and the DogStatsD datagram format say a line becomes, the series it
makes, the samples it counts and the drop reasons it bumps. The deliberate
differences (docs/statsd.md, "StatsD compatibility") have rows of their own.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.exporters.test_statsd_store import Harness, promtool_accepts


class Case(NamedTuple):
    packet: bytes
    series: dict[str, float]  # every series the packet makes (summaries: _count and _sum)
    samples: int = 0  # pillion_statsd_samples_total
    dropped: dict[str, float] = {}  # noqa: RUF012 - never mutated
    left_out: int = 0  # reason="label": tags left out of kept samples


CASES = {
    # DogStatsD: a `#` in front of each tag is not part of its name
    "dogstatsd_hash_on_each_tag": Case(
        b"foo:100|c|#tag1:bar,#tag2:baz", {'foo_total{tag1="bar",tag2="baz"}': 100}, 1
    ),
    "dogstatsd_several_tag_sections": Case(b"foo:1|c|#a:x|#b:y", {'foo_total{a="x",b="y"}': 1}, 1),
    "dogstatsd_tag_value_with_colons": Case(
        b"foo:1|c|#url:http://x:80", {'foo_total{url="http://x:80"}': 1}, 1
    ),
    # two tag dialects on one line: refused whole
    "mixed_influxdb_and_dogstatsd": Case(b"foo,tag1=a:100|c|#tag2:b", {}, 1, {"mixed_tags": 1}),
    "mixed_librato_and_dogstatsd": Case(b"foo#tag1=a:100|c|@0.1|#tag2:b", {}, 1, {"mixed_tags": 1}),
    "mixed_signalfx_and_dogstatsd": Case(b"foo[tag1=a]:100|c|#tag2:b", {}, 1, {"mixed_tags": 1}),
    # lines that are not UTF-8: refused whole, the rest of the packet is kept
    "invalid_utf8_in_the_name": Case(
        b"invalid\xc3\x28utf8:1|c\nok:1|c", {"ok_total": 1}, 1, {"invalid_utf8": 1}
    ),
    "invalid_utf8_in_a_tag_value": Case(
        b"foo:100|c|@0.1|#tag1:valid,tag2:\xc3\x28", {}, 0, {"invalid_utf8": 1}
    ),
    # DogStatsD extended aggregation: every value is a sample
    "aggregation_timer": Case(b"t:500:120:3000|ms", {"t_count": 3, "t_sum": 3.62}, 3),
    "aggregation_with_tags_and_rate": Case(
        b"t:1:2|h|@0.5|#a:b", {'t_count{a="b"}': 4, 't_sum{a="b"}': 6}, 2
    ),
    "aggregation_distribution_with_tags": Case(
        b"t:1:2:3|d|#a:b", {'t_count{a="b"}': 3, 't_sum{a="b"}': 6}, 3
    ),
    "aggregation_refused_for_counters": Case(b"c:1:2:3|c|#a:b", {}, 0, {"malformed": 1}),
    "aggregation_refused_for_gauges": Case(b"g:1:2|g", {}, 0, {"malformed": 1}),
    "multi_metric_line": Case(b"m:1|c:2|c|@0.5", {"m_total": 5}, 2),
    # a rate repeats a timer's observation 1 / rate times, rounded down
    "timer_rate_rounded_down": Case(b"t:100|ms|@0.35", {"t_count": 2, "t_sum": 0.2}, 1),
    # SignalFX: a lone bracket leaves the name whole (escaped), no tags
    "signalfx_opening_bracket_only": Case(
        b"[tag1=bar,tag2=bazfoo.test:100|c",
        {"_tag1_bar_tag2_bazfoo_test_total": 100},
        1,
        left_out=1,
    ),
    "signalfx_closing_bracket_only": Case(
        b"tag1=bar,tag2=baz]foo.test:100|c",
        {"tag1_bar_tag2_baz_foo_test_total": 100},
        1,
        left_out=1,
    ),
    "signalfx_block_inside_the_name": Case(
        b"foo.[tag1=bar]test:100|c", {'foo_test_total{tag1="bar"}': 100}, 1
    ),
    # escaping: a run of `-` is one `_`, anything else is replaced one by one
    "escaping_runs_of_invalid_characters": Case(
        b"my--app...hits:1|c\n9lives-x:1|c",
        {"my_app___hits_total": 1, "_9lives_x_total": 1},
        2,
    ),
    "escaping_tag_names": Case(
        b"foo:1|c|#app--name:x,09digits:0,tag.with.dots:1",
        {'foo_total{_09digits="0",app_name="x",tag_with_dots="1"}': 1},
        1,
    ),
    # the container ID field: read and ignored (statsd_exporter adds `container_id`)
    "container_id": Case(
        b"foo:100|c|@0.1|#service:web|c:sha256:3a88c2", {'foo_total{service="web"}': 1000}, 1
    ),
    "container_id_without_a_value": Case(b"foo:100|c|#a:b|c:", {}, 0, {"malformed": 1}),
    # DogStatsD 1.3 timestamps: accepted, not used (not even read)
    "timestamp_counter": Case(
        b"page.views:15|c|#env:dev|T1656581400", {'page_views_total{env="dev"}': 15}, 1
    ),
    "timestamp_gauge_with_everything": Case(
        b"temp:98.6|g|@0.5|#room:kitchen|c:abc|T1656581400", {'temp{room="kitchen"}': 98.6}, 1
    ),
    "timestamp_not_a_number": Case(b"foo:42|c|Tsoon", {"foo_total": 42}, 1),
    # sample rates statsd_exporter reads as 1: refused here (a deliberate difference)
    "sample_rate_unreadable": Case(b"foo:1|c|@bar", {}, 0, {"sample_rate": 1}),
    "sample_rate_zero": Case(b"foo:2|c|@0", {}, 0, {"sample_rate": 1}),
    "sample_rate_twice": Case(b"foo:2|c|@0.5|@0.5", {}, 0, {"sample_rate": 1}),
    # tags that are no labels: left out and counted, the sample is kept
    "tags_without_values": Case(
        b"foo:1|c|#tag_without_a_value,tag:value,,",
        {'foo_total{tag="value"}': 1},
        1,
        left_out=2,
    ),
    # lines that make nothing
    "no_colon": Case(b"foo", {}, 0, {"malformed": 1}),
    "no_type": Case(b"foo:1", {}, 0, {"malformed": 1}),
    "value_not_a_number": Case(b"foo:1o|c", {}, 0, {"malformed": 1}),
    "unknown_type": Case(b"foo:2|t", {}, 0, {"malformed": 1}),
    "empty_name": Case(b":100|ms", {}, 0, {"malformed": 1}),
    "empty_field": Case(b"foo:1|c|", {}, 0, {"malformed": 1}),
    "unknown_field": Case(b"foo:1|c|xyz", {}, 0, {"malformed": 1}),
    "seven_fields": Case(b"foo:100|c|@0.1|#a:b|c:id|T1|x", {}, 0, {"malformed": 1}),
    "text_split_over_lines": Case(
        b"karafka.cpu_idle:  0.1  -0.05 (  2.4)\n|h|#consumer:Kafka::Shared,partition:1",
        {},
        0,
        {"malformed": 2},
    ),
}


def series(page: bytes) -> dict[str, float]:
    """The StatsD series on a page (not Pillion's own, no buckets or `_created`)."""
    found = {}
    for family in text_string_to_metric_families(page.decode()):
        for sample in family.samples:
            if sample.name.startswith("pillion_") or sample.name.endswith("_created"):
                continue
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_statsd_exporter_compatibility(case: Case) -> None:
    pod = Harness(observer_type="summary")
    pod.ingest.packet(case.packet, pod.clock.now)
    page = pod.page()
    assert series(page) == pytest.approx(case.series)
    assert pod.registry.get_sample_value("pillion_statsd_samples_total") == case.samples
    for reason in ("malformed", "sample_rate", "invalid_utf8", "mixed_tags"):
        assert pod.dropped(reason) == case.dropped.get(reason, 0), reason
    assert pod.dropped("label") == case.left_out
    promtool_accepts(page)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_same_over_tcp_lines(case: Case) -> None:
    pod = Harness(observer_type="summary")
    pod.ingest.lines(case.packet, pod.clock.now)
    assert series(pod.page()) == pytest.approx(case.series)
    assert pod.registry.get_sample_value("pillion_statsd_samples_total") == case.samples
