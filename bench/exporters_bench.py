"""StatsD exporter benchmark: Pillion's StatsD server, on 127.0.0.1 only.

One ``pillion run`` with ``exporters.statsd`` (UDP and TCP on free loopback
ports, the default limits) is measured in three phases:

1. **RSS with 10k series**: its VmRSS idle, then after 10,000 distinct series
   are sent over TCP (nothing lost): 100 metrics of 100 label values each, 50
   counters, 30 gauges and 20 timers (histograms, default 11 buckets), like an
   app with a few timed endpoints.
2. **/metrics render time with those 10k series**: the median of ``--renders``
   GETs of the status port's ``/metrics`` (one warm-up first), each timed from
   the request to the last byte.
3. **Ingestion at saturation**: a separate sender process sends UDP packets of
   ``--lines`` lines each (counters, timers and gauges with DogStatsD tags, about
   100 series) as fast as it can for ``--duration`` seconds. Pillion's own
   ``pillion_statsd_packets_total{transport="udp"}`` and
   ``pillion_statsd_samples_total`` before and after say what it parsed; what
   the kernel dropped because Pillion was busy is the loss.

No peer runs: Debian 12 has no ``prometheus-statsd-exporter`` package (checked
with ``apt-cache policy``), so there is nothing to compare with in the same
run; the table says so. The last line is exactly::

    exporters_bench statsd_pps=P render_ms=R rss_mib=M

P is the UDP packets per second Pillion parsed at saturation, R the median
render time of ``/metrics`` with 10k series in ms, M Pillion's VmRSS in MiB with
those 10k series. A value is ``nan`` when it could not be measured (the output
says why). Exit status: 0 when the run completed, 1 when the harness broke.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
SERIES_METRICS = 100  # phase 1: metrics x label values = 10,000 series
SERIES_VALUES = 100


@dataclass
class Result:
    rss_idle_mib: float | None = None
    rss_series_mib: float | None = None
    series: float | None = None
    render_ms: list[float] = field(default_factory=list)
    page_kib: float | None = None
    seconds: float | None = None
    sent: int = 0
    packets: float | None = None
    samples: float | None = None
    cpu_seconds: float | None = None
    peak_rss_mib: float | None = None
    hot_path: str = "unknown"
    failure: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
        return body


def sample(page: bytes, series: str) -> float | None:
    for row in page.decode().splitlines():
        name, _, value = row.rpartition(" ")
        if name == series:
            return float(value)
    return None


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def bench_packets(lines: int) -> list[bytes]:
    """64 different packets of ``lines`` lines: about 100 series in all."""
    packets = []
    for index in range(64):
        rows = []
        for line in range(lines):
            route = (index * lines + line) % 32
            kind = line % 3
            if kind == 0:
                rows.append(f"bench.requests:1|c|#route:/api/r{route},method:GET")
            elif kind == 1:
                rows.append(f"bench.latency:{(index * 7 + line) % 400}|ms|#route:/api/r{route}")
            else:
                rows.append(f"bench.inflight:{line}|g|#worker:w{route % 4}")
        packets.append("\n".join(rows).encode())
    return packets


def send(port: int, duration: float, lines: int) -> None:
    """The sender process: UDP as fast as it can; prints how many packets it sent."""
    packets = bench_packets(lines)
    address = (HOST, port)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sendto = sock.sendto
        end = time.monotonic() + duration
        while time.monotonic() < end:
            for packet in packets:
                try:
                    sendto(packet, address)
                except OSError:
                    continue  # ENOBUFS and the like: not sent, not counted
                sent += 1
    print(sent, flush=True)


def series_lines() -> bytes:
    rows = []
    for metric in range(SERIES_METRICS):
        for value in range(SERIES_VALUES):
            tags = f"|#endpoint:/api/e{value},region:eu-west-1"
            if metric < 50:
                rows.append(f"app.counter{metric}:1|c{tags}")
            elif metric < 80:
                rows.append(f"app.gauge{metric}:{value}|g{tags}")
            else:
                rows.append(f"app.timer{metric}:{value * 3}|ms{tags}")
    return ("\n".join(rows) + "\n").encode()


def hot_path(pillion: Path) -> str:
    """What ``pillion version`` says of the compiled hot path: a source edited since
    the last build runs as pure Python, several times slower, without a word."""
    try:
        out = subprocess.run([str(pillion), "version"], capture_output=True, text=True,
                             timeout=60, check=False).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    for row in out.splitlines():
        if row.startswith("hot path:"):
            return row.removeprefix("hot path:").strip()
    return "unknown"


def run(args: argparse.Namespace, work: Path) -> Result:
    result = Result(hot_path=hot_path(args.pillion))
    udp, tcp, admin, status = free_port(), free_port(), free_port(), free_port()
    config = work / "pillion.yaml"
    config.write_text(
        f"admin: {{listen: {HOST}:{admin}}}\nstatus: {{listen: {HOST}:{status}}}\n"
        f"telemetry: {{log_level: warning}}\n"
        f"exporters:\n  statsd: {{udp: {HOST}:{udp}, tcp: {HOST}:{tcp}}}\n"
    )
    metrics_url = f"http://{HOST}:{status}/metrics"
    log = work / "pillion.log"
    with log.open("wb") as output:
        proc = subprocess.Popen([str(args.pillion), "run", "-c", str(config)],
                                stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        if not wait_until(lambda: proc.poll() is not None or _ready(status), 30):
            result.failure = "not ready in 30s"
            return result
        if proc.poll() is not None:
            result.failure = f"exited {proc.returncode}: {log.read_text()[-300:]}"
            return result
        time.sleep(0.5)
        result.rss_idle_mib = rss_mib(proc.pid)

        with socket.create_connection((HOST, tcp), timeout=30) as connection:
            connection.sendall(series_lines())
        target = SERIES_METRICS * SERIES_VALUES
        if not wait_until(
            lambda: (sample(get(metrics_url), "pillion_statsd_series") or 0) >= target, 60
        ):
            result.failure = f"fewer than {target} series after 60s"
            return result
        result.series = sample(get(metrics_url), "pillion_statsd_series")
        result.rss_series_mib = rss_mib(proc.pid)

        get(metrics_url)  # warm-up
        for _ in range(args.renders):
            started = time.perf_counter()
            page = get(metrics_url)
            result.render_ms.append((time.perf_counter() - started) * 1000)
        result.page_kib = len(page) / 1024

        before = get(metrics_url)
        packets0 = sample(before, 'pillion_statsd_packets_total{transport="udp"}') or 0.0
        samples0 = sample(before, "pillion_statsd_samples_total") or 0.0
        cpu0 = cpu_seconds(proc.pid)
        sender = subprocess.Popen(
            [sys.executable, __file__, "--send", str(udp), "--duration", str(args.duration),
             "--lines", str(args.lines)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        peak = 0.0
        started = time.monotonic()
        while sender.poll() is None:
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.1)
        result.seconds = time.monotonic() - started
        result.cpu_seconds = cpu_seconds(proc.pid) - cpu0
        assert sender.stdout is not None
        result.sent = int(sender.stdout.read().strip() or 0)
        # what is still queued in the socket buffer is parsed in a moment
        last = -1.0
        while True:
            time.sleep(0.3)
            now = sample(get(metrics_url), "pillion_statsd_samples_total") or 0.0
            if now == last:
                break
            last = now
        after = get(metrics_url)
        result.packets = (
            sample(after, 'pillion_statsd_packets_total{transport="udp"}') or 0
        ) - packets0
        result.samples = (sample(after, "pillion_statsd_samples_total") or 0) - samples0
        result.peak_rss_mib = max(peak, rss_mib(proc.pid))
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(status: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{status}/healthz/ready", timeout=1):
            return True
    except OSError:
        return False


def show(value: float | None, spec: str) -> str:
    return "nan" if value is None else format(value, spec)


def report(result: Result, args: argparse.Namespace) -> None:
    print(f"\nexporters_bench: StatsD on {HOST}; {args.duration:g} s of UDP from one sender "
          f"process, {args.lines} lines per packet; /metrics with 10k series, median of "
          f"{args.renders} GETs\n")  # fmt: skip
    if result.failure:
        print(f"pillion: FAILED: {result.failure}")
    seconds = result.seconds or float("nan")
    pps = result.packets / seconds if result.packets is not None and result.seconds else None
    sps = result.samples / seconds if result.samples is not None and result.seconds else None
    sent_pps = result.sent / seconds if result.seconds else None
    loss = 1 - result.packets / result.sent if result.packets is not None and result.sent else None
    cpu = result.cpu_seconds / seconds * 100 if result.cpu_seconds is not None else None
    render = statistics.median(result.render_ms) if result.render_ms else None
    loss_pct = loss * 100 if loss is not None else None
    spread = (
        f"{min(result.render_ms):.1f} / {max(result.render_ms):.1f} ms"
        if result.render_ms
        else "nan"
    )
    rows = [
        ("UDP packets/s parsed (saturation)", show(pps, ",.0f")),
        ("samples/s parsed", show(sps, ",.0f")),
        ("packets/s sent", show(sent_pps, ",.0f")),
        ("lost in the kernel (Pillion busy)", show(loss_pct, ".1f") + " %"),
        ("Pillion CPU while sending", show(cpu, ".0f") + " % of a core"),
        ("RSS idle", show(result.rss_idle_mib, ".1f") + " MiB"),
        (
            f"RSS with {show(result.series, ',.0f')} series",
            show(result.rss_series_mib, ".1f") + " MiB",
        ),
        ("peak RSS while loaded", show(result.peak_rss_mib, ".1f") + " MiB"),
        ("/metrics render, 10k series (median)", show(render, ".1f") + " ms"),
        ("/metrics render min / max", spread),
        ("/metrics page size", show(result.page_kib, ",.0f") + " KiB"),
        ("hot path", result.hot_path),
    ]
    print(f"{'pillion':<40}value")
    for name, value in rows:
        print(f"  {name:<38}{value}")
    print("\nstatsd_exporter: not measured: no prometheus-statsd-exporter package in this "
          "Debian release, so no peer and no ratios")  # fmt: skip
    print(
        f"\nexporters_bench statsd_pps={show(pps, '.0f')} render_ms={show(render, '.1f')} "
        f"rss_mib={show(result.rss_series_mib, '.1f')}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of UDP (default 5)")
    parser.add_argument("--lines", type=int, default=10, help="lines per packet (default 10)")
    parser.add_argument("--renders", type=int, default=15, help="timed GETs (default 15)")
    parser.add_argument("--quick", action="store_true", help="2 s of UDP, 5 renders")
    parser.add_argument("--pillion", type=Path, default=REPO / ".venv" / "bin" / "pillion")
    parser.add_argument("--send", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.send is not None:
        send(args.send, args.duration, args.lines)
        return 0
    if args.quick:
        args.duration, args.renders = 2.0, 5
    if not args.pillion.exists():
        print(f"exporters_bench: {args.pillion} not found (make bench-exporters installs it)",
              file=sys.stderr)  # fmt: skip
        return 1
    with tempfile.TemporaryDirectory(prefix="pillion-exporters-bench-") as work:
        result = run(args, Path(work))
    report(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
