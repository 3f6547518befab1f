"""statsd_exporter's mapping files as they are: loaded by a running Pillion, fed real
UDP lines, and the series checked against what statsd_exporter documents; the
constructs Pillion cannot honour refused by name when the config is checked."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pillion.config import ConfigError, load_config, parse_config
from pillion.exporters.statsd_mapping import Mapper
from pillion.exporters.statsd_quantiles import QuantileWindow
from tests.exporters.test_statsd_e2e import Pod, promtool_accepts, statsd_section
from tests.exporters.test_statsd_exposition import ACCEPTS, both_pages
from tests.exporters.test_statsd_store import Harness
from tests.helpers import free_port, metric_value, running_pillion, wait_until

FIXTURES = Path(__file__).parent / "fixtures"


def pod_with(tmp_path: Path, extra: str) -> Iterator[Pod]:
    udp, tcp = free_port(), free_port()
    with running_pillion(tmp_path, statsd_section(udp, tcp, extra)) as process:
        pod = Pod(process, udp, tcp)
        try:
            yield pod
        finally:
            pod.udp_socket.close()


@pytest.fixture
def basic(tmp_path: Path) -> Iterator[Pod]:
    yield from pod_with(tmp_path, f"    mapping_file: {FIXTURES / 'statsd_mapping_basic.yml'}\n")


@pytest.fixture
def with_defaults(tmp_path: Path) -> Iterator[Pod]:
    yield from pod_with(tmp_path, f"    mapping_file: {FIXTURES / 'statsd_mapping_defaults.yml'}\n")


def statsd_yaml(body: str) -> str:
    return f"exporters:\n  statsd:\n{body}"


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pillion", "validate", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def refused(tmp_path: Path, mapping_file: str, pillion_yaml: str = "") -> str:
    """The message `pillion validate` refuses a mapping file with (exit 2)."""
    (tmp_path / "statsd_mapping.yml").write_text(mapping_file)
    config = tmp_path / "pillion.yaml"
    config.write_text(statsd_yaml(f"    mapping_file: statsd_mapping.yml\n{pillion_yaml}"))
    result = validate(config)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "statsd_mapping.yml" in result.stderr
    return result.stderr


# --- the file, read as statsd_exporter reads it ---------------------------------------


def test_capture_references_in_pillion_yaml_are_left_to_the_rule() -> None:
    config = parse_config(
        statsd_yaml(
            "    mappings:\n"
            "      - match: 'test.*.*.counter'\n"
            '        name: "${2}_total"\n'
            '        labels: {provider: "$1", job: "${1}_server", home: "${HOME}"}\n'
        ),
        "pillion.yaml",
        {"HOME": "/root"},
    )
    assert config.exporters is not None
    assert config.exporters.statsd is not None
    rule = config.exporters.statsd.mappings[0]
    assert (rule.name, rule.labels["job"], rule.labels["home"]) == ("${2}_total", "${1}_server",
                                                                   "/root")  # fmt: skip
    mapped = Mapper(config.exporters.statsd.rules()).map("test.aws.requests.counter", "c")
    assert mapped is not None
    assert (mapped.name, mapped.labels["provider"]) == ("requests_total", "aws")


def test_a_relative_mapping_file_is_read_from_the_configs_directory(tmp_path: Path) -> None:
    (tmp_path / "statsd_mapping.yml").write_text(
        (FIXTURES / "statsd_mapping_basic.yml").read_text()
    )
    config_file = tmp_path / "pillion.yaml"
    config_file.write_text(statsd_yaml("    mapping_file: statsd_mapping.yml\n"))
    config = load_config(config_file)
    assert config.exporters is not None
    assert config.exporters.statsd is not None
    statsd = config.exporters.statsd
    assert statsd.mapping_file == str(tmp_path / "statsd_mapping.yml")
    rules = statsd.rules()
    assert len(rules.rules) == 14
    # no `defaults:`: statsd_exporter's own
    assert (rules.observer, rules.ttl, rules.summary.quantiles) == (
        "summary", 0.0, ((0.5, 0.05), (0.9, 0.01), (0.99, 0.001)))  # fmt: skip


def test_defaults_fill_each_rule_and_ordering_can_be_turned_off() -> None:
    config = parse_config(
        statsd_yaml(f"    mapping_file: {FIXTURES / 'statsd_mapping_defaults.yml'}\n"), "p.yaml", {}
    )
    assert config.exporters is not None
    assert config.exporters.statsd is not None
    rules = config.exporters.statsd.rules()
    assert (rules.observer, rules.buckets, rules.ttl) == ("histogram", (0.01, 0.1, 1.0), 2.0)
    assert rules.glob_disable_ordering
    by_match = {rule.config.match: rule for rule in rules.rules}
    assert by_match["size.*"].observer == "summary"
    assert by_match["size.*"].summary.quantiles == ((0.9, 0.01),)
    assert (by_match["size.*"].summary.max_age, by_match["size.*"].summary.age_buckets) == (300, 2)
    assert by_match["slow.*"].ttl == 3600
    mapper = Mapper(rules)
    assert mapper.map("orders.eu.paid", "c") == mapper.map("orders.eu.paid", "c")
    eu, us = mapper.map("orders.eu.paid", "c"), mapper.map("orders.us.paid", "c")
    assert eu is not None
    assert us is not None
    assert (eu.name, us.name) == ("orders_eu", "orders_any")


def test_with_ordering_the_first_glob_wins_and_regexes_come_after_globs() -> None:
    rules = parse_config(
        statsd_yaml(
            "    mappings:\n"
            "      - {match: '.*', match_type: regex, name: by_regex}\n"
            "      - {match: 'orders.*.*', name: orders_any}\n"
            "      - {match: 'orders.eu.*', name: orders_eu}\n"
        ),
        "p.yaml",
        {},
    )
    assert rules.exporters is not None
    assert rules.exporters.statsd is not None
    mapper = Mapper(rules.exporters.statsd.rules())
    names = {raw: getattr(mapper.map(raw, "c"), "name", None) for raw in
             ("orders.eu.paid", "orders.us.paid", "other")}  # fmt: skip
    assert names == {"orders.eu.paid": "orders_any", "orders.us.paid": "orders_any",
                     "other": "by_regex"}  # fmt: skip


def test_match_metric_type_sends_other_types_to_the_next_rule() -> None:
    config = parse_config(
        statsd_yaml(
            "    mappings:\n"
            "      - {match: 'x.*', match_metric_type: counter, name: x_events}\n"
            "      - {match: 'x.*', match_metric_type: observer, name: x_seconds}\n"
        ),
        "p.yaml",
        {},
    )
    assert config.exporters is not None
    assert config.exporters.statsd is not None
    mapper = Mapper(config.exporters.statsd.rules())
    found = {kind: getattr(mapper.map("x.a", kind), "name", None) for kind in
             ("c", "ms", "h", "d", "g", "s")}  # fmt: skip
    assert found == {"c": "x_events", "ms": "x_seconds", "h": "x_seconds", "d": "x_seconds",
                     "g": "x_a", "s": "x_a"}  # fmt: skip


def test_older_spellings_are_read_with_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "pillion.yaml"
    config.write_text(statsd_yaml(f"    mapping_file: {FIXTURES / 'statsd_mapping_legacy.yml'}\n"))
    result = validate(config)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 5
    for key in ("defaults.timer_type", "defaults.buckets", "mappings[0].timer_type",
                "mappings[0].quantiles", "mappings[1].match_metric_type"):  # fmt: skip
        assert any(f"{key}: statsd_exporter" in line for line in warnings), key
    assert "write observer_type" in result.stderr
    rules = load_config(config).exporters.statsd.rules()  # type: ignore[union-attr]
    assert (rules.observer, rules.buckets) == ("histogram", (0.1, 1.0, 10.0))
    timer, observed = rules.rules
    assert (timer.observer, timer.summary.quantiles) == ("summary", ((0.5, 0.05),))
    assert observed.config.match_metric_type == "observer"


def test_the_same_spellings_in_pillion_yaml_warn_too(tmp_path: Path) -> None:
    config = tmp_path / "pillion.yaml"
    rule = "      - {match: 'a.*', name: a, timer_type: summary}\n"
    config.write_text(statsd_yaml(f"    mappings:\n{rule}"))
    result = validate(config)
    assert result.returncode == 0
    assert "warning: exporters.statsd.mappings[0].timer_type (line 4): statsd_exporter renamed" \
        in result.stderr  # fmt: skip


# --- refusals: each names the construct and what to write instead --------------------


def test_native_histograms_are_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "pillion.yaml"
    config.write_text(statsd_yaml(f"    mapping_file: {FIXTURES / 'statsd_mapping_native.yml'}\n"))
    result = validate(config)
    assert result.returncode == 2
    expected = (
        "statsd_mapping_native.yml line 5: defaults.histogram_options: "
        "native_histogram_bucket_factor: Pillion serves classic histograms only"
    )
    assert expected in result.stderr
    assert "keep `buckets`" in result.stderr


def test_native_histogram_max_buckets_in_a_rule_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, "mappings:\n  - match: a.*\n    name: a\n"
                      "    histogram_options: {native_histogram_max_buckets: 100}\n")  # fmt: skip
    assert "mappings[0].histogram_options: native_histogram_max_buckets: Pillion serves " \
        "classic histograms only" in message  # fmt: skip


def test_a_rules_ttl_0_under_a_default_ttl_is_refused(tmp_path: Path) -> None:
    message = refused(
        tmp_path, "defaults: {ttl: 5m}\nmappings:\n  - {match: a.*, name: a, ttl: 0}\n"
    )
    assert "statsd_mapping.yml line 3: mappings[0]: ttl: 0 does not turn expiry off when the " \
        "default ttl is 5m" in message  # fmt: skip
    assert "remove it to keep the default, or set the default ttl to 0" in message


def test_summary_options_on_a_histogram_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, "defaults: {observer_type: histogram}\nmappings:\n"
                      "  - {match: a.*, name: a, summary_options: {max_age: 1m}}\n")  # fmt: skip
    assert "summary_options on a histogram" in message
    assert "set observer_type: summary, or remove summary_options" in message


def test_histogram_options_on_a_summary_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, "mappings:\n  - {match: a.*, name: a, histogram_options: "
                      "{buckets: [1, 2]}}\n")  # fmt: skip
    # no observer_type anywhere: statsd_exporter's default, a summary
    assert "histogram_options on a summary" in message
    assert "set observer_type: histogram, or remove histogram_options" in message


def test_timer_type_and_observer_type_together_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, "mappings:\n  - {match: a.*, name: a, timer_type: summary, "
                      "observer_type: histogram}\n")  # fmt: skip
    assert "write only observer_type" in message


def test_quantiles_in_both_places_are_refused(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        "mappings:\n  - match: a.*\n    name: a\n"
        "    quantiles: [{quantile: 0.5, error: 0.05}]\n"
        "    summary_options: {quantiles: [{quantile: 0.9, error: 0.01}]}\n",
    )
    assert "quantiles in a mapping and in summary_options" in message
    assert "write them only there" in message


def test_buckets_in_both_places_are_refused(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        "defaults: {observer_type: histogram}\nmappings:\n"
        "  - {match: a.*, name: a, buckets: [1], histogram_options: {buckets: [2]}}\n",
    )
    assert "buckets and histogram_options.buckets: write them once" in message


def test_a_default_also_set_in_pillion_yaml_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, "defaults: {ttl: 1m}\nmappings: []\n", "    ttl: 10m\n")
    assert "statsd_mapping.yml line 1: defaults.ttl: also set in pillion.yaml " \
        "(exporters.statsd.ttl): write it once" in message  # fmt: skip


def test_unknown_keys_are_refused_as_statsd_exporter_refuses_them(tmp_path: Path) -> None:
    message = refused(tmp_path, "mappings:\n  - {match: a.*, name: a, lables: {x: y}}\n")
    assert "statsd_mapping.yml line 2: mappings[0].lables: unknown key" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("mappings:\n  - {match: a.*, name: a}\n  - {match: a.*, name: a, name: b}\n",
         "line 3: mappings[1].name: duplicate key"),
        ("mappings: [\n", "YAML error"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("mappings:\n  - {match: '(', match_type: regex, name: a}\n", "invalid regex"),
        ("mappings:\n  - {match: a.*, name: a, observer_type: timer}\n",
         "Input should be 'histogram' or 'summary'"),
        ("defaults: {match_type: regex}\nmappings:\n  - {match: 'a(', name: a}\n",
         "invalid regex"),
    ],
)  # fmt: skip
def test_a_broken_file_is_refused_with_its_line(
    tmp_path: Path, content: str, expected: str
) -> None:
    assert expected in refused(tmp_path, content)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "pillion.yaml"
    config.write_text(statsd_yaml("    mapping_file: nowhere.yml\n"))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert [str(issue) for issue in caught.value.issues] == [
        f"exporters.statsd.mapping_file (line 3): {tmp_path / 'nowhere.yml'}: cannot read: "
        "No such file or directory"
    ]


# --- quantiles -------------------------------------------------------------------------


def test_quantiles_are_exact_for_a_few_values_and_within_their_error_for_many() -> None:
    targets = ((0.5, 0.05), (0.9, 0.01), (0.99, 0.001))
    window = QuantileWindow(targets, 600.0, 5, 500, 0.0)
    for value in (5.0, 1.0, 4.0, 2.0, 3.0):
        window.add(value, 1, 0.0)
    assert window.values() == [3.0, 5.0, 5.0]
    generator = random.Random(7)
    values = [generator.random() for _ in range(50_000)]
    window = QuantileWindow(targets, 600.0, 5, 500, 0.0)
    for value in values:
        window.add(value, 1, 1.0)
    ordered = sorted(values)
    for (quantile, error), estimate in zip(targets, window.values(), strict=True):
        rank = ordered.index(estimate) / len(ordered)
        assert abs(rank - quantile) <= error, (quantile, rank)


def test_the_window_forgets_what_is_older_than_max_age() -> None:
    window = QuantileWindow(((0.5, 0.05),), 60.0, 3, 500, 0.0)
    window.add(100.0, 1, 0.0)
    window.flush(25.0)
    window.add(1.0, 3, 25.0)  # a sample rate of 1/3: three observations
    assert window.values() == [1.0]  # four observations, three of them 1
    window.flush(61.0)  # the streams that saw 100 are emptied in turn
    assert window.values() == [1.0]
    window.flush(200.0)
    assert all(math.isnan(value) for value in window.values())


# --- a running Pillion, real UDP lines ---------------------------------------------------


def test_a_mapping_file_without_defaults(basic: Pod) -> None:
    basic.send(
        "shop.checkout.card.pay.ok:1|c",
        "web.login.github.fail:2|c",
        "jobs.mail.sent.counter:3|c",
        "stock.berlin.apples.level:42|g",
        "http.hits.200:1|c",
        "render.timing.home:100|ms",
        "render.timing.home:300|ms",
        "render.timing.home:200|ms",
        "upload.size.image:2048|h",
        "db.query.users:10|ms",
        "db.query.users:30|ms",
        "payload.kb:2|g",
        "api.calls.login:1|c|#region:eu",
        "api.calls.login:1|c|#endpoint:signup",
        "cache.items.local:1|c",
        "cache.items.local:5|g",
        "debug.noise:1|c",
        "misc.thing:1|c",
    )
    basic.wait_value("misc_thing_total", 1.0)
    page = basic.page()
    expected = {
        'checkout_events_total{job="shop_checkout",method="card",outcome="ok",step="pay"}': 1,
        'login_events_total{job="web_frontend",outcome="fail",provider="github"}': 2,
        'sent_jobs_total{queue="mail"}': 3,
        'stock_apples{warehouse="berlin"}': 42,
        'http_hits_total{code="200"}': 1,
        # a summary with its own quantiles (few values: exact)
        'render_seconds{page="home",quantile="0.5"}': 0.2,
        'render_seconds{page="home",quantile="0.99"}': 0.3,
        'render_seconds_count{page="home"}': 3,
        'upload_bytes_bucket{kind="image",le="1024.0"}': 0,
        'upload_bytes_bucket{kind="image",le="65536.0"}': 1,
        'upload_bytes_count{kind="image"}': 1,
        # statsd_exporter's default observer and quantiles
        'db_query_seconds{quantile="0.5",table="users"}': 0.01,
        'db_query_seconds{quantile="0.9",table="users"}': 0.03,
        'db_query_seconds{quantile="0.99",table="users"}': 0.03,
        'db_query_seconds_count{table="users"}': 2,
        "payload_bytes": 2048,
        # honor_labels: the tag wins, the rule's label is the default
        'api_calls_total{endpoint="login",region="eu"}': 1,
        'api_calls_total{endpoint="signup",region="unknown"}': 1,
        'cache_item_events_total{cache="local"}': 1,
        'cache_items{cache="local"}': 5,
        'pillion_statsd_dropped_total{reason="mapping"}': 1,
    }
    for series, value in expected.items():
        assert metric_value(page, series) == pytest.approx(value), series
    assert b"# HELP http_hits_total HTTP requests by status code\n" in page
    assert b'render_seconds{page="home",quantile="0.9"}' not in page  # its own quantiles only
    assert b"debug_noise" not in page
    promtool_accepts(page)


def test_a_rules_ttl_expires_its_series_and_no_default_ttl_keeps_the_rest(basic: Pod) -> None:
    basic.send("flaky.probe:1|g", "stock.berlin.pears.level:7|g")
    basic.wait_value("flaky_probe", 1.0)
    wait_until(lambda: basic.value("flaky_probe") is None)
    assert basic.value('stock_pears{warehouse="berlin"}') == 7.0  # statsd_exporter: ttl 0


def test_a_mapping_file_with_defaults(with_defaults: Pod) -> None:
    with_defaults.send(
        "orders.eu.paid:1|c",
        "orders.us.paid:2|c",
        "latency.api:250|ms",
        "size.img:10|h",
        "size.img:30|h",
        "slow.jobs:4|g",
        "misc.thing:1|c",
    )
    with_defaults.wait_value('misc_thing_total{statsd_metric_name="misc.thing"}', 1.0)
    page = with_defaults.page()
    expected = {
        # unordered globs: the most specific wins, the regex written first only gets the rest
        'orders_eu_total{what="paid"}': 1,
        'orders_any_total{shop="us",what="paid"}': 2,
        'latency_seconds_bucket{le="0.1",route="api"}': 0,
        'latency_seconds_bucket{le="1.0",route="api"}': 1,
        'size_bytes{kind="img",quantile="0.9"}': 30,
        'size_bytes_sum{kind="img"}': 40,
        "slow_jobs": 4,
    }
    for series, value in expected.items():
        assert metric_value(page, series) == pytest.approx(value), series
    assert b'latency_seconds_bucket{le="2.5"' not in page  # the file's buckets, not Pillion's
    promtool_accepts(page)
    # the default ttl (2s) removes the idle series; the rule's own (1h) keeps its
    wait_until(lambda: with_defaults.value('orders_eu_total{what="paid"}') is None, timeout=20)
    assert with_defaults.value("slow_jobs") == 4.0


def test_inline_rules_with_capture_references_in_a_running_pillion(tmp_path: Path) -> None:
    rules = (
        "    mappings:\n"
        "      - match: 'test.*.*.counter'\n"
        '        name: "${2}_total"\n'
        '        labels: {provider: "$1", job: "${1}_server"}\n'
    )
    for pod in pod_with(tmp_path, rules):
        pod.send("test.aws.requests.counter:5|c")
        pod.wait_value('requests_total{job="aws_server",provider="aws"}', 5.0)


def test_the_documented_starter_file_is_refused_until_its_native_histograms_go(
    tmp_path: Path,
) -> None:
    """statsd_exporter's starter config uses native histograms: refused by name; with
    those two keys removed it runs."""
    text = (FIXTURES / "statsd_mapping_native.yml").read_text()
    (tmp_path / "statsd_mapping.yml").write_text(text)
    config = tmp_path / "pillion.yaml"
    config.write_text(statsd_yaml("    mapping_file: statsd_mapping.yml\n"))
    assert validate(config).returncode == 2
    kept = [line for line in text.splitlines() if "native_histogram" not in line]
    (tmp_path / "statsd_mapping.yml").write_text("\n".join(kept) + "\n")
    result = validate(config)
    assert result.returncode == 0, result.stderr
    assert os.path.exists(tmp_path / "statsd_mapping.yml")


@pytest.mark.parametrize("accept", ACCEPTS)
def test_a_summarys_quantiles_are_on_the_page_as_the_encoders_write_them(
    accept: str | None,
) -> None:
    quantiles = [{"quantile": 0.99, "error": 0.001}, {"quantile": 0.5, "error": 0.05}]
    pod = Harness(mappings=[{"match": "rpc.*", "name": "rpc_seconds", "labels": {"zone": "$1"},
                             "observer_type": "summary",
                             "summary_options": {"quantiles": quantiles}}])  # fmt: skip
    pod.send("rpc.a:100|ms|#method:get", "rpc.a:300|ms|#method:get", "rpc.a:200|ms|#method:get")
    direct, generic = both_pages(pod, accept)
    assert direct == generic
    assert b'quantile="0.5",zone="a"} 0.2\n' in direct  # names escaped as the scrape asks
    assert b'quantile="0.99",zone="a"} 0.3\n' in direct
