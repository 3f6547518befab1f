"""Start-up benchmark: how long ``pillion run`` takes from exec to ``/healthz/ready``,
and what it holds once idle.

Two configs, on free loopback ports:

- ``minimal``: the app's port only (``examples/minimal.yaml`` with its ports moved);
- ``proxy+logs+exporters``: an inbound and an outbound listener, a log input (an
  empty directory) shipping to syslog over TCP, and the StatsD exporter (UDP).

Each is started ``--runs`` times (default 7). A run is timed from just before the
process is spawned to the first 200 of ``/healthz/ready`` on the status port
(polled every 2 ms); then, after a second of idling, its VmRSS is read and it is
stopped with SIGTERM. The table gives the median, min and max start time and the
median idle RSS. Byte code is compiled once before the first run
(``compileall``), as an installed package or the image has it; otherwise a
checkout run with ``PYTHONDONTWRITEBYTECODE`` would compile every edited module
at each start and time the compiler.

The last line is exactly::

    start_bench ready_ms=S all_ready_ms=A idle_rss_mib=M all_idle_rss_mib=N

S and A the median start-to-ready in ms (minimal; proxy+logs+exporters), M and N
the median idle VmRSS in MiB. A value is ``nan`` when that config failed (the
output says why). Exit status: 0 when the run completed, 1 when the harness broke.
"""

from __future__ import annotations

import argparse
import compileall
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
IDLE_SECONDS = 1.0
READY_TIMEOUT = 30.0


@dataclass
class Result:
    name: str
    ready_ms: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    failure: str | None = None


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def ports_section() -> tuple[str, int]:
    status = free_port()
    return f"admin: {{listen: {HOST}:{free_port()}}}\nstatus: {{listen: {HOST}:{status}}}\n", status


def minimal(work: Path) -> tuple[Path, int]:
    ports, status = ports_section()
    path = work / "minimal.yaml"
    path.write_text(f"app: {{port: {free_port()}}}\n{ports}")
    return path, status


def everything(work: Path) -> tuple[Path, int]:
    ports, status = ports_section()
    (work / "logs").mkdir(exist_ok=True)
    path = work / "all.yaml"
    path.write_text(
        f"app: {{port: {free_port()}}}\n{ports}"
        "proxy:\n"
        f"  inbound: [{{name: inbound, listen: '{HOST}:{free_port()}'}}]\n"
        f"  outbound: [{{name: outbound, listen: '{HOST}:{free_port()}'}}]\n"
        "logs:\n"
        f"  checkpoints: {work}/checkpoints.db\n"
        f"  inputs: [{{name: app, paths: ['{work}/logs/*.log']}}]\n"
        f"  outputs: [{{name: out, type: syslog, address: '{HOST}:{free_port()}'}}]\n"
        "exporters:\n"
        f"  statsd: {{udp: '{HOST}:{free_port(socket.SOCK_DGRAM)}'}}\n"
    )
    return path, status


def ready(status: int) -> bool:
    url = f"http://{HOST}:{status}/healthz/ready"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def start_once(pillion: Path, config: Path, status: int, result: Result) -> None:
    started = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 - our own executable
        [str(pillion), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while not ready(status):
            if proc.poll() is not None:
                error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"exited {proc.returncode}: {error.strip()[-300:]}")
            if time.perf_counter() - started > READY_TIMEOUT:
                raise RuntimeError(f"not ready after {READY_TIMEOUT:.0f} s")
            time.sleep(0.002)
        result.ready_ms.append((time.perf_counter() - started) * 1000)
        time.sleep(IDLE_SECONDS)
        result.rss_mib.append(rss_mib(proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(results: list[Result]) -> None:
    print(f"\n{'config':24} {'ready ms (median)':>18} {'min':>7} {'max':>7} {'idle RSS MiB':>13}")
    for result in results:
        if result.failure is not None:
            print(f"{result.name:24} failed: {result.failure}")
            continue
        print(
            f"{result.name:24} {median(result.ready_ms):18.0f} {min(result.ready_ms):7.0f} "
            f"{max(result.ready_ms):7.0f} {median(result.rss_mib):13.1f}"
        )
    first, second = results

    def value(result: Result, values: list[float], spec: str) -> str:
        return "nan" if result.failure is not None else format(median(values), spec)

    print(
        f"\nstart_bench ready_ms={value(first, first.ready_ms, '.0f')} "
        f"all_ready_ms={value(second, second.ready_ms, '.0f')} "
        f"idle_rss_mib={value(first, first.rss_mib, '.1f')} "
        f"all_idle_rss_mib={value(second, second.rss_mib, '.1f')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="starts per config (default 7)")
    parser.add_argument("--pillion", type=Path, default=REPO / ".venv/bin/pillion")
    args = parser.parse_args(argv)
    if not args.pillion.exists():
        print(f"start_bench: no {args.pillion} (make demo installs it)", file=sys.stderr)
        return 1
    compileall.compile_dir(REPO / "src" / "pillion", quiet=1)
    print(f"start_bench: {args.runs} starts per config, interleaved; ready = /healthz/ready 200")
    with tempfile.TemporaryDirectory(prefix="start-bench-") as tmp:
        work = Path(tmp)
        configs = [minimal(work), everything(work)]
        results = [Result("minimal"), Result("proxy+logs+exporters")]
        for _ in range(args.runs):
            for (config, status), result in zip(configs, results, strict=True):
                if result.failure is None:
                    try:
                        start_once(args.pillion, config, status, result)
                    except RuntimeError as exc:
                        result.failure = str(exc)
    report(results)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
