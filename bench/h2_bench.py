"""HTTP/2 and gRPC benchmark: Pillion against nginx, in one run, on 127.0.0.1 only.

Two upstreams, each one process:

* nginx (1 worker, access log off) answering every path with the same 1 KiB body over
  cleartext HTTP/2 (prior knowledge: ``listen PORT http2``) on one port and over HTTP/1.1
  on another;
* the demo's gRPC echo server (``python -m pillion.demo.grpc_echo serve``: grpcio's sync
  server, 8 threads), whose ``/pillion.demo.Echo/Unary`` returns the request.

Seven subjects, each started here on free loopback ports:

* ``pillion-h2``: ``pillion run -c CONFIG``, its inbound listener (HTTP/1.1 and HTTP/2 on
  one port) to the nginx HTTP/2 port, loaded with HTTP/2 GETs;
* ``nginx-h2``: nginx with an HTTP/2 listener and ``proxy_pass`` to the nginx HTTP/1.1
  port (nginx cannot proxy to an HTTP/2 upstream), upstream keepalive 64;
* ``direct-h2``: the nginx HTTP/2 port itself, no proxy (the baseline for added latency);
* ``pillion-grpc``: a second pillion process, its app the gRPC server, loaded with unary
  gRPC calls;
* ``nginx-grpc``: nginx with an HTTP/2 listener and ``grpc_pass`` to the gRPC server,
  upstream keepalive 64;
* ``direct-grpc``: the gRPC server itself (the baseline for gRPC's added latency);
* ``pillion-h1-to-h2``: the ``pillion-h2`` process loaded with HTTP/1.1 (wrk): HTTP/1.1
  in, HTTP/2 out.

Per subject it measures:

* throughput: ``h2load -c 16 -m 10 -t 1 -D <N>`` (16 connections of 10 streams each), or
  for ``pillion-h1-to-h2`` ``wrk -t2 -c64 -d<N>s``, the subjects interleaved round after
  round (3 rounds), reporting the median requests/s. gRPC calls are h2load POSTs of one
  length-prefixed message of 100 bytes to ``/pillion.demo.Echo/Unary`` with
  ``content-type: application/grpc`` and ``te: trailers``;
* latency at a fixed rate of 1000 requests/s: ``h2load -c 10 -m 1 --rps 100 -D <N>`` once
  per round with ``--log-file``, whose per-request times give p50 and p99 (nearest rank),
  the median over the rounds, and the added latency (subject minus its direct baseline) in
  ms; for the HTTP/2 and gRPC subjects (not ``pillion-h1-to-h2``);
* peak RSS in MiB: VmRSS of the subject's process and its children, sampled every 100 ms
  while the load runs, the maximum kept;
* errors: before measuring, the HTTP/2 subjects must answer one GET (nghttp, over HTTP/2)
  with 200 and the exact 1 KiB body, ``pillion-h1-to-h2`` the same over HTTP/1.1, and the
  gRPC subjects one grpcio call with the reply and the server's ``x-served-by``. h2load
  must report no failed, errored or timed-out requests and only 2xx, and at least the
  body's bytes of DATA per response: a gRPC error is a 200 with no message, so this is
  what catches them (h2load does not read ``grpc-status``). wrk: as in proxy_bench.

It prints a table, then as its LAST line exactly::

    h2_bench h2_rps_vs_nginx=R1 grpc_rps_vs_nginx=R2 added_p99_ms=A rss_mib=M

R1 is pillion-h2's median requests/s divided by nginx-h2's, R2 pillion-grpc's divided by
nginx-grpc's (2 decimals each), A pillion-grpc's p99 minus direct-grpc's in ms (2
decimals), M the peak RSS of the Pillion processes in MiB (the larger of the two, 1
decimal). A value is ``nan`` when it could not be measured cleanly: pillion (or the
subject it is compared with) failed to start or to proxy, or its load runs had errors.

Exit status: 0 when the run completed, even if pillion failed (its row says why); 1 when
the harness itself broke (a tool is missing, or an upstream or a reference subject did not
work); 130 when interrupted. Every process started here is stopped, and the temp dir
removed, on every path out.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# proxy_bench.py is next to this file, and Python puts a script's own folder first on
# sys.path: processes, ports, readiness, nginx, RSS sampling, wrk and the statistics are
# shared with it rather than copied.
from proxy_bench import (
    BODY,
    HOST,
    PILLION_READY_TIMEOUT_S,
    READY_TIMEOUT_S,
    REPO,
    ROUNDS,
    WRK_CONNECTIONS,
    WRK_THREADS,
    HarnessError,
    Server,
    Servers,
    Subject,
    body_problem,
    cell,
    clean_ms,
    clean_rps,
    errors_cell,
    free_ports,
    interrupt,
    median,
    minus,
    ratio,
    rss_mib,
    run_tool,
    run_wrk,
    sampling_rss,
    start_nginx,
    status_problem,
    to_ms,
    tool,
    tool_env,
    wait_until,
)

H2LOAD_CLIENTS = 16
H2LOAD_STREAMS = 10  # concurrent streams per connection: 160 requests in flight
LATENCY_CLIENTS = 10
LATENCY_RPS_PER_CLIENT = 100  # 10 connections * 100/s = 1000 requests/s in total
GRPC_PAYLOAD = b"h2_bench" + b"." * 92  # 100 bytes
GRPC_MESSAGE = b"\x00" + len(GRPC_PAYLOAD).to_bytes(4, "big") + GRPC_PAYLOAD  # not compressed
GRPC_MESSAGE_FILE = "grpc-message.bin"  # in the temp dir: what h2load posts (-d)
GRPC_PATH = "/pillion.demo.Echo/Unary"
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")
GRPC_UPSTREAM_NAME = "upstream"  # the gRPC server's x-served-by
GRPC_CALL_TIMEOUT_S = 15.0  # one `grpc_echo call`: a Python start-up, an import, a call

PILLION_H2, NGINX_H2, DIRECT_H2 = "pillion-h2", "nginx-h2", "direct-h2"
PILLION_GRPC, NGINX_GRPC, DIRECT_GRPC = "pillion-grpc", "nginx-grpc", "direct-grpc"
PILLION_H1_TO_H2 = "pillion-h1-to-h2"
REFERENCES = (NGINX_H2, DIRECT_H2, NGINX_GRPC, DIRECT_GRPC)
PILLIONS = (PILLION_H2, PILLION_GRPC, PILLION_H1_TO_H2)

H2, GRPC, H1 = "h2", "grpc", "h1"  # how a subject is loaded: h2load GET, h2load gRPC, wrk


def progress(message: str) -> None:
    print(f"h2_bench: {message}", file=sys.stderr, flush=True)


def h2_tool(name: str) -> str:
    """``tool``, naming the make target that installs what is missing."""
    try:
        return tool(name)
    except HarnessError:
        raise HarnessError(
            f"{name} not found: run `make bench-h2` as root (it installs it)"
        ) from None


# --- subjects --------------------------------------------------------------------------


@dataclass
class H2Subject(Subject):
    """A subject of this benchmark. ``wrk_errors`` holds its throughput runs' errors (h2load
    or wrk) and ``hey_errors`` its latency runs' (h2load at a fixed rate), so that
    proxy_bench's ``clean_rps`` and ``clean_ms`` apply unchanged."""

    load: str = H2
    baseline: str | None = None  # the direct subject its added latency is relative to


# --- checks ----------------------------------------------------------------------------


def h2_body_problem(url: str, workdir: Path) -> str | None:
    """None if an HTTP/2 (prior knowledge) GET of the URL answers 200 with the 1 KiB
    body, else what is wrong. nghttp prints the body; its HAR file has the status."""
    har = workdir / "nghttp.har"
    har.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [h2_tool("nghttp"), "--har", str(har), url],
            capture_output=True,
            timeout=5,
            env=tool_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"GET {url} over HTTP/2: no answer within 5s"
    try:
        entries = json.loads(har.read_text())["log"]["entries"]
    except (OSError, ValueError, KeyError):
        entries = []
    if not entries:  # nghttp exits 0 when the server does not speak HTTP/2 too
        detail = done.stderr.decode(errors="replace").strip()[-160:] or "no response"
        return f"GET {url} over HTTP/2: {detail}"
    status = entries[0]["response"]["status"]
    if status != 200:
        return f"GET {url} over HTTP/2: status {status}: {done.stdout[:120]!r}"
    if done.stdout != BODY.encode():
        return f"GET {url} over HTTP/2: unexpected body ({len(done.stdout)} bytes)"
    return None


def grpc_problem(python: Path, target: str) -> str | None:
    """None if one unary call to ``target`` (a real grpcio client: ``grpc_echo call``)
    returns the message and the upstream's ``x-served-by``, else what is wrong."""
    message = GRPC_PAYLOAD.decode()
    argv = [str(python), "-m", "pillion.demo.grpc_echo", "call", "--target", target]
    try:
        done = subprocess.run(
            [*argv, "--message", message, "--timeout", "3"],
            capture_output=True,
            text=True,
            timeout=GRPC_CALL_TIMEOUT_S,
            env=tool_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"gRPC call to {target}: no answer within {GRPC_CALL_TIMEOUT_S:.0f}s"
    expected = f"reply={message!r} x-served-by={GRPC_UPSTREAM_NAME}"
    if done.returncode != 0 or done.stdout.strip() != expected:
        detail = (done.stderr.strip() or done.stdout.strip())[-200:]
        return f"gRPC call to {target}: exit {done.returncode}: {detail}"
    return None


def subject_check(subject: H2Subject, python: Path, workdir: Path) -> Callable[[], str | None]:
    """The check that the subject serves what it should, the way it is loaded."""
    if subject.load == GRPC:
        target = subject.url.removeprefix("http://").split("/", 1)[0]
        return lambda: grpc_problem(python, target)
    if subject.load == H2:
        return lambda: h2_body_problem(subject.url, workdir)
    return lambda: body_problem(subject.url)


def ready_subject(
    subject: H2Subject, server: Server, check: Callable[[], str | None], timeout: float
) -> H2Subject:
    """The subject, started as ``server``: marked failed with the reason unless it passes
    ``check`` within ``timeout``."""
    subject.pid, subject.server = server.proc.pid, server
    subject.failure = wait_until(server, check, timeout)
    return subject


# --- configs ---------------------------------------------------------------------------


def upstream_http_block(h1_port: int, h2_port: int) -> str:
    """The 1 KiB body on every path: HTTP/1.1 on one port, cleartext HTTP/2 on the other
    (``listen ... http2`` without ``ssl`` is prior-knowledge h2c in nginx 1.22)."""
    return f"""    server {{
        listen {HOST}:{h1_port};
        listen {HOST}:{h2_port} http2;
        default_type text/plain;
        location / {{ return 200 "{BODY}"; }}
    }}"""


def nginx_h2_http_block(port: int, h1_upstream: int) -> str:
    """HTTP/2 in, HTTP/1.1 to the upstream: nginx's proxy_pass has no HTTP/2."""
    return f"""    upstream app {{
        server {HOST}:{h1_upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {HOST}:{port} http2;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{ proxy_pass http://app; }}
    }}"""


def nginx_grpc_http_block(port: int, grpc_upstream: int) -> str:
    """gRPC in and out. nginx sends one call per upstream connection at a time (it does
    not multiplex streams upstream), so idle connections are kept for reuse."""
    return f"""    upstream grpc_app {{
        server {HOST}:{grpc_upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {HOST}:{port} http2;
        location / {{ grpc_pass grpc://grpc_app; }}
    }}"""


def pillion_config(upstream_port: int, admin: int, status: int, inbound: int, log: Path) -> str:
    """Pillion with an HTTP/2 app and one inbound listener taking HTTP/1.1 and cleartext
    HTTP/2 (told apart by the client's connection preface) on one port."""
    return f"""app:
  host: {HOST}
  port: {upstream_port}
  protocol: http2
admin:
  listen: {HOST}:{admin}
status:
  listen: {HOST}:{status}
proxy:
  inbound:
    - name: inbound
      listen: "{HOST}:{inbound}"
      protocols: [http1, http2]
  access_log:
    path: {log}
"""


# --- starting ----------------------------------------------------------------------------


def start_pillion(
    servers: Servers,
    tmp: Path,
    pillion: Path,
    name: str,
    config_text: str,
    status: int,
    subjects: list[H2Subject],
    python: Path,
) -> None:
    """Start one pillion process for these subjects (which share it); each is marked
    failed with the reason unless pillion is ready and then passes the subject's check."""
    if not pillion.exists():
        for subject in subjects:
            subject.failure = f"{pillion} not found (run make first)"
        return
    config = tmp / f"{name}.yaml"
    config.write_text(config_text)
    server = servers.start(name, [str(pillion), "run", "-c", str(config)])
    ready_url = f"http://{HOST}:{status}/healthz/ready"
    problem = wait_until(server, lambda: status_problem(ready_url), PILLION_READY_TIMEOUT_S)
    for subject in subjects:
        subject.pid, subject.server, subject.failure = server.proc.pid, server, problem
        if problem is None:
            ready_subject(subject, server, subject_check(subject, python, tmp), timeout=5.0)
            if subject.failure is not None:
                subject.failure = f"ready but does not proxy: {subject.failure}"


def start_grpc_upstream(servers: Servers, python: Path, port: int) -> Server:
    argv = [str(python), "-m", "pillion.demo.grpc_echo", "serve", "--port", str(port)]
    return servers.start("grpc-upstream", [*argv, "--name", GRPC_UPSTREAM_NAME])


def start_subjects(servers: Servers, tmp: Path, pillion: Path, python: Path) -> list[H2Subject]:
    """Start the two upstreams and the subjects; raise HarnessError if an upstream fails.

    Every port is picked in one go, so no two can be the same."""
    ports = iter(free_ports(11))
    h1_port, h2_port, grpc_port = next(ports), next(ports), next(ports)

    upstream = start_nginx(servers, tmp, "upstream", upstream_http_block(h1_port, h2_port))
    direct_h2 = H2Subject(DIRECT_H2, url=f"http://{HOST}:{h2_port}/")
    ready_subject(direct_h2, upstream, subject_check(direct_h2, python, tmp), READY_TIMEOUT_S)
    if direct_h2.failure is not None:
        raise HarnessError(f"the upstream nginx does not serve HTTP/2: {direct_h2.failure}")
    plain = body_problem(f"http://{HOST}:{h1_port}/")
    if plain is not None:
        raise HarnessError(f"the upstream nginx does not serve HTTP/1.1: {plain}")

    grpc_server = start_grpc_upstream(servers, python, grpc_port)
    direct_grpc = H2Subject(DIRECT_GRPC, url=f"http://{HOST}:{grpc_port}{GRPC_PATH}", load=GRPC)
    check = subject_check(direct_grpc, python, tmp)
    ready_subject(direct_grpc, grpc_server, check, PILLION_READY_TIMEOUT_S)
    if direct_grpc.failure is not None:
        raise HarnessError(f"the gRPC upstream did not start: {direct_grpc.failure}")

    nginx_h2_port, nginx_grpc_port = next(ports), next(ports)
    nginx_h2 = H2Subject(NGINX_H2, url=f"http://{HOST}:{nginx_h2_port}/", baseline=DIRECT_H2)
    block = nginx_h2_http_block(nginx_h2_port, h1_port)
    server = start_nginx(servers, tmp, NGINX_H2, block)
    ready_subject(nginx_h2, server, subject_check(nginx_h2, python, tmp), READY_TIMEOUT_S)
    nginx_grpc = H2Subject(
        NGINX_GRPC, f"http://{HOST}:{nginx_grpc_port}{GRPC_PATH}", load=GRPC, baseline=DIRECT_GRPC
    )
    server = start_nginx(
        servers, tmp, NGINX_GRPC, nginx_grpc_http_block(nginx_grpc_port, grpc_port)
    )
    ready_subject(nginx_grpc, server, subject_check(nginx_grpc, python, tmp), READY_TIMEOUT_S)

    admin, status, inbound = next(ports), next(ports), next(ports)
    pillion_h2 = H2Subject(PILLION_H2, url=f"http://{HOST}:{inbound}/", baseline=DIRECT_H2)
    h1_to_h2 = H2Subject(PILLION_H1_TO_H2, url=f"http://{HOST}:{inbound}/", load=H1)
    h1_to_h2.latency = False
    config = pillion_config(h2_port, admin, status, inbound, tmp / f"{PILLION_H2}-access.log")
    start_pillion(servers, tmp, pillion, PILLION_H2, config, status, [pillion_h2, h1_to_h2], python)

    admin, status, inbound = next(ports), next(ports), next(ports)
    pillion_grpc = H2Subject(
        PILLION_GRPC, f"http://{HOST}:{inbound}{GRPC_PATH}", load=GRPC, baseline=DIRECT_GRPC
    )
    config = pillion_config(grpc_port, admin, status, inbound, tmp / f"{PILLION_GRPC}-access.log")
    start_pillion(servers, tmp, pillion, PILLION_GRPC, config, status, [pillion_grpc], python)

    return [pillion_h2, nginx_h2, direct_h2, pillion_grpc, nginx_grpc, direct_grpc, h1_to_h2]


# --- h2load ----------------------------------------------------------------------------


@dataclass(frozen=True)
class H2loadResult:
    rps: float | None
    times_us: list[int] = field(default_factory=list)  # per request, from --log-file
    errors: list[str] = field(default_factory=list)


def parse_h2load(output: str, body_bytes: int) -> H2loadResult:
    """Requests/s and any failed, non-2xx or short responses from h2load's report.

    With ``-D``, "started" exceeds "done" by the requests cut off when time is up: those
    are not failures."""
    errors: list[str] = []
    finished = re.search(r"^finished in [^,]+, ([\d.]+) req/s", output, re.MULTILINE)
    requests = re.search(
        r"^requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        output,
        re.MULTILINE,
    )
    codes = re.search(r"^status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output, re.M)
    traffic = re.search(r"^traffic: .*\((\d+)\) data$", output, re.MULTILINE)
    if finished is None or requests is None or codes is None or traffic is None:
        return H2loadResult(None, errors=["h2load printed no summary"])
    succeeded, *bad = (int(n) for n in requests.groups())
    problems = dict(zip(("failed", "errored", "timeout"), bad, strict=True))
    problems.update(zip(("3xx", "4xx", "5xx"), (int(n) for n in codes.groups()), strict=True))
    counted = ", ".join(f"{kind}={n}" for kind, n in problems.items() if n)
    if counted:
        errors.append(f"h2load {counted}")
    if succeeded == 0:
        errors.append("h2load: no request succeeded")
    short = succeeded - int(traffic.group(1)) // body_bytes
    if short > 0:  # a gRPC error is a 200 whose body has no message
        errors.append(f"h2load: {short} responses without the full body")
    return H2loadResult(float(finished.group(1)), errors=errors)


def log_times(log: Path) -> tuple[list[int], list[str]]:
    """Per-request microseconds of the 200s in an h2load --log-file, and its other rows."""
    try:
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    except OSError as error:
        return [], [f"h2load log: {error}"]
    others = [row[1] for row in rows if len(row) < 3 or row[1] != "200"]
    times = [int(row[2]) for row in rows if len(row) >= 3 and row[1] == "200"]
    if others:  # -1: a failed stream
        return times, [f"h2load log: {len(others)} requests not 200 (e.g. {others[0]})"]
    return times, []


def run_h2load(subject: H2Subject, duration: int, tmp: Path, latency: bool = False) -> H2loadResult:
    """One h2load run on the subject: at saturation, or with ``latency`` at the fixed rate
    (the per-request times read back from its log file)."""
    argv = [h2_tool("h2load"), "-t", "1", "-D", str(duration)]
    log = tmp / f"{subject.name}-latency.tsv"
    if not latency:
        argv += ["-c", str(H2LOAD_CLIENTS), "-m", str(H2LOAD_STREAMS)]
    else:
        log.unlink(missing_ok=True)  # h2load appends to an existing log file
        argv += ["-c", str(LATENCY_CLIENTS), "-m", "1", "--rps", str(LATENCY_RPS_PER_CLIENT)]
        argv += [f"--log-file={log}"]
    body_bytes = len(BODY)
    if subject.load == GRPC:
        argv += [arg for header in GRPC_HEADERS for arg in ("-H", header)]
        argv += ["-d", str(tmp / GRPC_MESSAGE_FILE)]
        body_bytes = len(GRPC_MESSAGE)
    output, failed = run_tool([*argv, subject.url], duration)
    result = parse_h2load(output, body_bytes)
    errors = [failed, *result.errors] if failed else list(result.errors)
    times: list[int] = []
    if latency:
        times, log_errors = log_times(log)
        errors += log_errors
    return H2loadResult(result.rps, times, errors)


def percentile(values: list[int], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of non-empty ``values``."""
    ordered = sorted(values)
    return float(ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1])


# --- the run ---------------------------------------------------------------------------


def shown_errors(errors: list[str]) -> str:
    return " " + "; ".join(errors) if errors else ""


def measure_throughput(subject: H2Subject, duration: int, tmp: Path) -> None:
    with sampling_rss(subject):
        if subject.load == H1:
            wrk = run_wrk(subject.url, duration)
            rps, errors = wrk.rps, wrk.errors
        else:
            h2load = run_h2load(subject, duration, tmp)
            rps, errors = h2load.rps, h2load.errors
    if rps is not None:
        subject.rps.append(rps)
    subject.wrk_errors += errors
    shown = f"{rps:,.0f} req/s" if rps is not None else "no result"
    tool_name = "wrk" if subject.load == H1 else "h2load"
    progress(f"  {tool_name} {subject.name}: {shown}{shown_errors(errors)}")


def measure_latency(subject: H2Subject, duration: int, tmp: Path) -> None:
    with sampling_rss(subject):
        result = run_h2load(subject, duration, tmp, latency=True)
    if result.times_us:
        subject.p50_s.append(percentile(result.times_us, 50) / 1e6)
        subject.p99_s.append(percentile(result.times_us, 99) / 1e6)
        shown = f"p50 {subject.p50_s[-1] * 1000:.2f} ms, p99 {subject.p99_s[-1] * 1000:.2f} ms"
    else:
        shown = "no result"
    subject.hey_errors += result.errors
    progress(f"  h2load --rps {subject.name}: {shown}{shown_errors(result.errors)}")


def measure(subjects: list[H2Subject], duration: int, warmup: int, tmp: Path) -> None:
    """Warm up, then load the subjects interleaved, round after round: throughput for all,
    then latency for those measured for it."""
    if warmup > 0:
        progress(f"warm-up: {warmup}s per subject")
        for subject in subjects:
            if subject.usable():
                if subject.load == H1:
                    run_wrk(subject.url, warmup)
                else:
                    run_h2load(subject, warmup, tmp)
    for round_number in range(1, ROUNDS + 1):
        progress(f"round {round_number}/{ROUNDS}: throughput then latency, {duration}s each")
        for subject in subjects:
            if subject.usable():
                measure_throughput(subject, duration, tmp)
        for subject in subjects:
            if subject.latency and subject.usable():
                measure_latency(subject, duration, tmp)
    for subject in subjects:
        subject.usable()  # record a process that died in the last measurement


# --- report ----------------------------------------------------------------------------


def row(subject: H2Subject, by_name: dict[str, H2Subject]) -> list[str]:
    """One table row. Added latency is against the baseline's clean medians."""
    p50, p99 = to_ms(median(subject.p50_s)), to_ms(median(subject.p99_s))
    if subject.baseline is None:
        added = ["", ""]
    else:
        base = by_name[subject.baseline]
        added = [
            cell(minus(p50, clean_ms(base, base.p50_s)), "+.2f"),
            cell(minus(p99, clean_ms(base, base.p99_s)), "+.2f"),
        ]
    numbers = [cell(median(subject.rps), ",.0f"), cell(p50, ".2f"), cell(p99, ".2f")]
    return [subject.name, *numbers, *added, cell(rss_mib(subject), ".1f"), errors_cell(subject)]


def table(subjects: list[H2Subject]) -> str:
    """The human table: name left-aligned, numbers right-aligned, errors last."""
    by_name = {subject.name: subject for subject in subjects}
    header = ["subject", "rps median", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "RSS MiB"]
    rows = [[*header, "errors"], *(row(subject, by_name) for subject in subjects)]
    widths = [max(len(cells[i]) for cells in rows) for i in range(len(header))]
    lines = []
    for cells in rows:
        numbers = (value.rjust(width) for value, width in zip(cells[1:-1], widths[1:], strict=True))
        lines.append("  ".join([cells[0].ljust(widths[0]), *numbers, cells[-1]]))
    return "\n".join(lines)


def pillion_rss(by_name: dict[str, H2Subject]) -> float | None:
    """The larger peak of the Pillion processes, only if every Pillion subject worked."""
    pillions = [by_name[name] for name in PILLIONS]
    if any(subject.failure is not None for subject in pillions):
        return None
    peaks = [peak for peak in map(rss_mib, pillions) if peak is not None]
    return max(peaks) if peaks else None


def last_line(subjects: list[H2Subject]) -> str:
    """The machine-readable summary; see the module docstring for its format."""
    by_name = {subject.name: subject for subject in subjects}
    grpc, direct = by_name[PILLION_GRPC], by_name[DIRECT_GRPC]
    values = {
        "h2_rps_vs_nginx": (
            ratio(clean_rps(by_name[PILLION_H2]), clean_rps(by_name[NGINX_H2])),
            ".2f",
        ),
        "grpc_rps_vs_nginx": (ratio(clean_rps(grpc), clean_rps(by_name[NGINX_GRPC])), ".2f"),
        "added_p99_ms": (minus(clean_ms(grpc, grpc.p99_s), clean_ms(direct, direct.p99_s)), ".2f"),
        "rss_mib": (pillion_rss(by_name), ".1f"),
    }
    pairs = (
        f"{key}={'nan' if value is None else format(value, spec)}"
        for key, (value, spec) in values.items()
    )
    return " ".join(["h2_bench", *pairs])


def report(subjects: list[H2Subject], duration: int) -> None:
    print(
        f"\nh2_bench: via 127.0.0.1; h2load -c{H2LOAD_CLIENTS} -m{H2LOAD_STREAMS} -t1 "
        f"-D{duration} (median of {ROUNDS}), h2/h1 rows a 1 KiB GET, grpc rows a unary call "
        f"of {len(GRPC_PAYLOAD)} bytes; {PILLION_H1_TO_H2}: wrk -t{WRK_THREADS} "
        f"-c{WRK_CONNECTIONS} -d{duration}s; latency: h2load {LATENCY_CLIENTS}x"
        f"{LATENCY_RPS_PER_CLIENT}/s = {LATENCY_CLIENTS * LATENCY_RPS_PER_CLIENT}/s for "
        f"{duration}s (median of {ROUNDS}); +p50/+p99 = minus direct-h2 or direct-grpc; "
        f"RSS = peak VmRSS of the process tree\n"
    )
    print(table(subjects))
    print()
    print(last_line(subjects), flush=True)


# --- entry point -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=5, help="seconds per load run (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load per subject first")
    parser.add_argument("--quick", action="store_true", help="a 2 s smoke run (--duration 2)")
    parser.add_argument(
        "--pillion",
        type=Path,
        default=REPO / ".venv" / "bin" / "pillion",
        help="the pillion executable (default: the project's .venv); the gRPC server and "
        "client run with the python next to it",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 2
    if args.duration < 1 or args.warmup < 0:
        parser.error("--duration must be at least 1 and --warmup at least 0")
    return args


def grpc_python(pillion: Path) -> Path:
    """The Python with pillion and grpcio: the one next to the pillion executable, else
    the one running this script."""
    beside = pillion.parent / "python"
    return beside if beside.exists() else Path(sys.executable)


def run(args: argparse.Namespace) -> list[H2Subject]:
    """Start everything, measure, stop everything; the subjects with their results."""
    for name in ("nginx", "h2load", "nghttp", "wrk"):
        h2_tool(name)  # fail early, before starting anything
    python = grpc_python(args.pillion)
    tmp = Path(tempfile.mkdtemp(prefix="pillion-h2-bench-"))
    tmp.chmod(0o755)  # nginx workers run as nobody when we are root
    (tmp / GRPC_MESSAGE_FILE).write_bytes(GRPC_MESSAGE)
    servers = Servers(tmp)
    try:
        subjects = start_subjects(servers, tmp, args.pillion, python)
        for subject in subjects:
            state = "ready" if subject.failure is None else f"FAILED: {subject.failure}"
            progress(f"{subject.name} at {subject.url}: {state}")
        measure(subjects, args.duration, args.warmup, tmp)
        return subjects
    finally:
        servers.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        subjects = run(args)
    except HarnessError as error:
        progress(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        progress("interrupted; every process started was stopped")
        return 130
    broken = [s.name for s in subjects if s.name in REFERENCES and s.failure is not None]
    if broken:  # said before the report, whose summary line must stay the last line
        progress(f"error: reference subjects failed: {', '.join(broken)}")
    report(subjects, args.duration)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
