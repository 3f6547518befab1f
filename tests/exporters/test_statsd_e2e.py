"""The StatsD server end to end: a real ``pillion run``, real UDP datagrams and TCP
lines, and ``/metrics`` on the status port read as Prometheus would (promtool)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, free_port, http, metric_value, running_pillion, wait_until

MAX_PACKET = 16384


class Pod:
    def __init__(self, process: PillionProcess, udp: int, tcp: int) -> None:
        self.process = process
        self.udp = udp
        self.tcp = tcp
        self.udp_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, *lines: str) -> None:
        self.datagram("\n".join(lines).encode())

    def datagram(self, data: bytes) -> None:
        self.udp_socket.sendto(data, ("127.0.0.1", self.udp))

    def tcp_send(self, data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", self.tcp), timeout=10) as connection:
            connection.sendall(data)

    def page(self) -> bytes:
        status, _, body = http("GET", f"{self.process.status_url}/metrics", timeout=30)
        assert status == 200
        return body

    def value(self, series: str) -> float | None:
        return metric_value(self.page(), series)

    def wait_value(self, series: str, expected: float) -> None:
        wait_until(lambda: self.value(series) == expected)

    def dropped(self, reason: str) -> float | None:
        return self.value(f'pillion_statsd_dropped_total{{reason="{reason}"}}')

    def rss_mib(self) -> float:
        with open(f"/proc/{self.process.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


def statsd_section(udp: int, tcp: int, extra: str = "") -> str:
    return (
        f"exporters:\n  statsd:\n    udp: 127.0.0.1:{udp}\n    tcp: 127.0.0.1:{tcp}\n"
        f"    max_packet_size: {MAX_PACKET}\n{extra}"
    )


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    udp, tcp = free_port(), free_port()
    mappings = (
        "    mappings:\n"
        "      - {match: 'api.*.*.latency', name: api_request_duration_seconds,\n"
        "         labels: {service: $1, endpoint: $2}, buckets: [0.05, 0.1, 0.5]}\n"
        "      - {match: 'debug.*', action: drop}\n"
        "      - {match: '^queue\\.(\\w+)\\.depth$', match_type: regex, name: queue_depth,\n"
        "         labels: {queue: $1}}\n"
    )
    with running_pillion(tmp_path, statsd_section(udp, tcp, mappings)) as process:
        pod = Pod(process, udp, tcp)
        try:
            yield pod
        finally:
            pod.udp_socket.close()


def promtool_accepts(page: bytes) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package; `make test` installs it"
    check = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True,
                           timeout=60, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_type_over_udp_with_values_and_labels(pod: Pod) -> None:
    pod.send(
        "orders.created:1|c|#region:eu",
        "orders.created:3|c|@0.5|#region:eu",
        "temperature:21.5|g",
        "temperature:+1|g",
        "api.users.get.latency:80|ms",
        "api.users.get.latency:300|ms",
        "payload_size:512|h:2048|h",
        "download_size:4096|d",
        "visitors:alice|s",
        "visitors:bob|s",
        "visitors:alice|s",
        "queue.mail.depth:7|g",
        "debug.noise:1|c",
        "jobs,queue=mail:2|c",
        "jobs#queue=sms:3|c",
        "jobs[queue=push]:4|c",
    )
    pod.wait_value('orders_created_total{region="eu"}', 7.0)
    page = pod.page()
    expected = {
        "temperature": 22.5,
        'api_request_duration_seconds_bucket{endpoint="get",le="0.1",service="users"}': 1.0,
        'api_request_duration_seconds_bucket{endpoint="get",le="+Inf",service="users"}': 2.0,
        'api_request_duration_seconds_count{endpoint="get",service="users"}': 2.0,
        "payload_size_count": 2.0,
        "payload_size_sum": 2560.0,
        "download_size_sum": 4096.0,
        "visitors": 2.0,
        'queue_depth{queue="mail"}': 7.0,
        'jobs_total{queue="mail"}': 2.0,
        'jobs_total{queue="sms"}': 3.0,
        'jobs_total{queue="push"}': 4.0,
        'pillion_statsd_dropped_total{reason="mapping"}': 1.0,
        'pillion_statsd_packets_total{transport="udp"}': 1.0,
        "pillion_statsd_samples_total": 17.0,
    }
    for series, value in expected.items():
        assert metric_value(page, series) == value, series
    assert metric_value(page, 'api_request_duration_seconds_sum{endpoint="get",service="users"}') \
        == pytest.approx(0.38)  # fmt: skip
    assert b"debug_noise" not in page
    promtool_accepts(page)


def test_tcp_lines_and_a_connection_cut_mid_line(pod: Pod) -> None:
    pod.tcp_send(b"tcp.hits:1|c\ntcp.hits:2|c\ntcp.level:5|g\ntcp.hits:100")
    pod.wait_value("tcp_hits_total", 3.0)
    assert pod.value("tcp_level") == 5.0
    wait_until(lambda: pod.dropped("truncated") == 1.0)
    # a partial line is read once its newline arrives, even in another segment
    with socket.create_connection(("127.0.0.1", pod.tcp), timeout=10) as connection:
        connection.sendall(b"tcp.hits:1")
        connection.sendall(b"0|c\n")
        pod.wait_value("tcp_hits_total", 13.0)
    assert pod.value('pillion_statsd_packets_total{transport="tcp"}') == 4.0


def test_huge_packets_and_lines(pod: Pod) -> None:
    lines = [f"bulk.metric:1|c|#n:{n % 50}" for n in range(700)]
    packet = "\n".join(lines).encode()
    assert MAX_PACKET - 2000 < len(packet) <= MAX_PACKET
    pod.datagram(packet)
    pod.wait_value('bulk_metric_total{n="0"}', 14.0)
    pod.datagram(b"over.sized:1|c\n" * (MAX_PACKET // 15 + 10))  # over max_packet_size
    wait_until(lambda: pod.dropped("too_large") == 1.0)
    pod.datagram(b"x" * 65000)
    wait_until(lambda: pod.dropped("too_large") == 2.0)
    long_line = b"long.name:1|c|#tag:" + b"v" * 100_000 + b"\n"
    pod.tcp_send(b"before:1|c\n" + long_line + b"after:1|c\n")
    pod.wait_value("after_total", 1.0)
    assert pod.value("before_total") == 1.0
    assert pod.dropped("too_large") == 3.0
    assert pod.value("over_sized_total") is None
    promtool_accepts(pod.page())


def test_garbage_is_counted_and_the_page_stays_valid(pod: Pod) -> None:
    pod.send("no colon", "x:1|zz", "x:abc|c", "y:1|c|@0", "y:1|c|@2", "y:1|c|@abc", "ok:1|c")
    pod.datagram(b"\xff\xfe\x00garbage:\x01|c\n\n\n")
    pod.datagram(b"")
    pod.wait_value("ok_total", 1.0)
    assert pod.dropped("sample_rate") == 3.0
    assert pod.dropped("malformed") == 3.0
    assert pod.dropped("invalid_utf8") == 1.0  # the first line of the second datagram
    promtool_accepts(pod.page())


def test_dogstatsd_clients_lines_as_statsd_exporter_reads_them(pod: Pod) -> None:
    pod.send(
        "dd.hits:100|c|#tag1:bar,#tag2:baz",
        "dd.timing:500:120:3000|ms|@0.5|#env:prod",
        "dd.hits:1|c|#tag1:bar,tag2:baz|c:3a88c2|T1656581400",
        "dd.mixed,a=1:1|c|#b:2",
        "dd.fruit:1:2|c",
        "[dd.sfx=x,y=z:1|c",
    )
    pod.datagram(b"dd.bad\xc3\x28:1|c\ndd.after:1|c")
    pod.wait_value("dd_after_total", 1.0)
    page = pod.page()
    assert metric_value(page, 'dd_hits_total{tag1="bar",tag2="baz"}') == 101.0
    assert metric_value(page, 'dd_timing_count{env="prod"}') == 6.0  # 3 values, rate 0.5
    assert metric_value(page, "_dd_sfx_x_y_z_total") == 1.0
    assert metric_value(page, "pillion_statsd_samples_total") == 8.0
    assert pod.dropped("mixed_tags") == 1.0
    assert pod.dropped("malformed") == 1.0  # the counter with several values
    assert pod.dropped("invalid_utf8") == 1.0
    promtool_accepts(page)


def test_type_conflicts_keep_metrics_valid(pod: Pod) -> None:
    pod.send("conflict.thing:1|c", "labels.thing:1|c|#a:1")
    pod.wait_value("conflict_thing_total", 1.0)
    pod.send(
        "conflict.thing:5|g",
        "conflict.thing:5|ms",
        "conflict.thing:x|s",
        "conflict.thing_total:1|c",
        "labels.thing:1|c|#b:1",
        "labels.thing:1|c",
        "pillion_statsd_series:1|g",
    )
    wait_until(lambda: pod.dropped("type_conflict") == 6.0)
    page = pod.page()
    assert pod.dropped("reserved") == 1.0
    assert metric_value(page, "conflict_thing_total") == 1.0
    type_lines = [line for line in page.splitlines() if line.startswith(b"# TYPE")]
    assert len(type_lines) == len(set(type_lines))
    promtool_accepts(page)
    # OpenMetrics too
    status, headers, body = http(
        "GET", f"{pod.process.status_url}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )  # fmt: skip
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_a_hundred_thousand_tag_values_stay_within_the_cap(pod: Pod) -> None:
    """The cap holds, the rest is counted, and the process stays small."""
    for start in range(0, 100_000, 5000):
        batch = "".join(f"user.logins:1|c|#user:u{n}\n" for n in range(start, start + 5000))
        pod.tcp_send(batch.encode())  # TCP: nothing lost, so the counts are exact
    wait_until(lambda: pod.dropped("cardinality") == 90_000.0, timeout=60)
    page = pod.page()
    assert metric_value(page, "pillion_statsd_series") == 10_000.0
    assert page.count(b"user_logins_total{") == 10_000
    assert metric_value(page, "pillion_statsd_samples_total") == 100_000.0
    # a memory bound, not a timing: 10,000 series are a few MiB
    assert pod.rss_mib() < 150, pod.rss_mib()
    promtool_accepts(page)


def test_a_port_in_use_fails_the_start(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        udp = taken.getsockname()[1]
        section = statsd_section(udp, free_port())
        with running_pillion(tmp_path, section, ready=False) as process:
            assert process.wait_exit() == 1
    assert f"cannot listen on UDP 127.0.0.1:{udp}: address already in use" in process.output()


def test_ttl_removes_idle_series(tmp_path: Path) -> None:
    udp, tcp = free_port(), free_port()
    with running_pillion(tmp_path, statsd_section(udp, tcp, "    ttl: 1s\n")) as process:
        pod = Pod(process, udp, tcp)
        pod.send("short.lived:1|g")
        pod.wait_value("short_lived", 1.0)
        wait_until(lambda: pod.value("short_lived") is None)
        assert (pod.value("pillion_statsd_expired_total") or 0) >= 1
        pod.udp_socket.close()


def test_reload_in_place_and_to_new_ports(tmp_path: Path) -> None:
    udp, tcp = free_port(), free_port()
    with running_pillion(tmp_path, statsd_section(udp, tcp)) as process:
        pod = Pod(process, udp, tcp)
        pod.send("reload.hits:1|c")
        pod.wait_value("reload_hits_total", 1.0)
        config = process.config.read_text()
        # new rules, same ports: in place; the names now map elsewhere
        process.config.write_text(
            config + "    mappings:\n      - {match: 'reload.*', name: renamed_$1}\n"
        )
        process.signal(signal.SIGHUP)
        process.wait_for_log("config reloaded")
        pod.send("reload.hits:1|c")
        pod.wait_value("renamed_hits_total", 1.0)
        assert pod.value("reload_hits_total") is None
        # new ports, same rules: the series carry over
        udp2, tcp2 = free_port(), free_port()
        process.config.write_text(
            config.replace(str(udp), str(udp2)).replace(str(tcp), str(tcp2))
            + "    mappings:\n      - {match: 'reload.*', name: renamed_$1}\n"
        )
        process.signal(signal.SIGHUP)
        process.wait_for_log("config reloaded", count=2)
        pod.udp = udp2
        pod.send("reload.hits:1|c")
        pod.wait_value("renamed_hits_total", 2.0)
        page = pod.page()
        assert page.count(b"# TYPE renamed_hits_total counter") == 1
        promtool_accepts(page)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", tcp), timeout=5).close()
        pod.udp_socket.close()
