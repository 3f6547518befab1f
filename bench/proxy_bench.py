"""Reverse-proxy benchmark: Pillion against nginx and HAProxy, in one run, on 127.0.0.1 only.

One upstream (nginx, 1 worker, a fixed 1 KiB body for every path, keep-alive on, no access
log) serves the subjects, each started here on free loopback ports:

* ``pillion``: ``pillion run -c CONFIG`` with its inbound proxy pointed at the upstream;
* ``nginx-proxy``: nginx as a reverse proxy (1 worker, upstream keepalive 64);
* ``haproxy``: HAProxy in http mode (1 thread, keep-alive, ``http-reuse always``);
* ``direct``: the upstream itself, no proxy (the baseline for added latency);
* ``pillion-outbound``: a second pillion process whose outbound listener forwards to a
  cluster ``upstream`` (the upstream nginx), chosen by the request's ``Host: upstream``;
* ``nginx-outbound``: the nginx-proxy config in a second nginx on another port, loaded
  the same way (``Host: upstream``, which nginx's ``proxy_pass`` ignores);
* ``pillion-routes``: a third pillion process whose inbound listener has 100 routes:
  ``/r0/`` ... ``/r98/`` (``prefix_rewrite: /``) and a catch-all ``/`` last; loaded on
  ``/r98/``, the last specific route (the worst case for a first-match table);
* ``nginx-routes``: nginx with the same 100 locations (``/rN/`` -> ``proxy_pass .../``,
  then ``location /``), loaded on ``/r98/``;
* ``pillion-tls``: a fourth pillion process terminating TLS on its inbound listener, with
  an ECDSA P-256 certificate made here by ``openssl`` for ``localhost``;
* ``nginx-tls``: nginx terminating TLS with the same certificate and key (TLS 1.2 and
  1.3), proxying like nginx-proxy;
* ``pillion-tls-handshake`` and ``nginx-tls-handshake``: the same two servers loaded with
  ``Connection: close``, so every request is a new TCP connection and a full TLS
  handshake (wrk does not resume sessions);
* ``pillion-traced-1.0`` and ``pillion-traced-0.01``: the plain pillion config plus
  ``telemetry.tracing``, exporting every request's span / 1 trace in 100, to a collector
  that takes each export and drops it (a second nginx answering 200 on ``/v1/traces``).

Per subject it measures:

* throughput: ``wrk -t2 -c64 -d<N>s``, the subjects interleaved round after round
  (3 rounds), reporting the median requests/s;
* latency at a fixed rate of 1000 requests/s: ``hey -z <N>s -c 10 -q 100`` once per round,
  reporting the median over the rounds of hey's p50 and p99, and the added latency
  (subject minus direct) in ms; for the first four subjects only (the outbound and routes
  pairs are compared on throughput);
* peak RSS in MiB: VmRSS of the subject's process and its children, sampled every 100 ms
  while wrk and hey run, the maximum kept;
* errors: before measuring, one request must return 200 with the 1 KiB body; wrk must report
  no non-2xx/3xx responses nor socket errors, and hey only 200s and no errors.

Once the servers are stopped, it also times pillion's route matching in-process (no server):
``RouteTable.match(b"GET", b"/r98/x", [])`` over the same 100 routes, with ``timeit`` in the
Python next to the pillion executable (the best of 5 runs of 200,000 matches).

It prints a table, the route matching cost, then as its LAST line exactly (one line, shown
on two here)::

    proxy_bench rps_vs_nginx=R1 rps_vs_haproxy=R2 added_p50_ms=A added_p99_ms=B rss_mib=M
        outbound_rps_vs_nginx=R3 routes_rps_vs_nginx=R4 tls_rps_vs_nginx=R5
        tls_handshakes_vs_nginx=H traced_rps_vs_untraced=T1 sampled_rps_vs_untraced=T2

R1 is pillion's median requests/s divided by nginx-proxy's, R2 divided by
haproxy's, A and B pillion's added p50 and p99 latency in ms (2 decimals each), M pillion's
peak RSS in MiB (1 decimal), R3 pillion-outbound's requests/s divided by nginx-outbound's,
R4 pillion-routes' divided by nginx-routes', R5 pillion-tls' divided by nginx-tls' (keep-alive
over TLS), H pillion-tls-handshake's requests/s (= handshakes/s) divided by
nginx-tls-handshake's, T1 and T2 pillion-traced-1.0's and pillion-traced-0.01's
requests/s divided by pillion's (what tracing costs). A value is ``nan`` when it could not be
measured cleanly: pillion (or the subject it is compared with) failed to start or to proxy,
or its load runs had errors.

Exit status: 0 when the run completed, even if pillion failed (its row says why); 1 when
the harness itself broke (a tool is missing, or the upstream or a reference proxy did not
work); 130 when interrupted. Every process started here is stopped, and the temp dir
removed, on every path out.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import string
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

HOST = "127.0.0.1"
# Exactly 1 KiB of letters and digits: nothing in it needs quoting in nginx's config.
BODY = ((string.ascii_letters + string.digits) * 17)[:1024]
ROUNDS = 3
WRK_THREADS = 2
WRK_CONNECTIONS = 64
HEY_WORKERS = 10
HEY_QPS_PER_WORKER = 100  # 10 workers * 100/s = 1000 requests/s in total
RSS_INTERVAL_S = 0.1
READY_TIMEOUT_S = 10.0
PILLION_READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
TOOL_GRACE_S = 30.0  # how much longer than its duration a wrk or hey run may take
REPO = Path(__file__).resolve().parent.parent

ROUTES = 100  # 99 prefix routes /r0/ ... /r98/, then a catch-all /
ROUTED_PATH = f"/r{ROUTES - 2}/"  # the last specific route: the worst case for first-match
CLUSTER = "upstream"  # the outbound cluster, named by the Host header
MATCH_ITERATIONS = 200_000
MATCH_REPEATS = 5
MATCH_TIMEOUT_S = 120.0

PILLION, NGINX, HAPROXY, DIRECT = "pillion", "nginx-proxy", "haproxy", "direct"
PILLION_OUTBOUND, NGINX_OUTBOUND = "pillion-outbound", "nginx-outbound"
PILLION_ROUTES, NGINX_ROUTES = "pillion-routes", "nginx-routes"
PILLION_TLS, NGINX_TLS = "pillion-tls", "nginx-tls"
PILLION_HANDSHAKE, NGINX_HANDSHAKE = "pillion-tls-handshake", "nginx-tls-handshake"
# the plain pillion with tracing on, every span exported / 1 trace in 100 (a collector
# that takes and drops the spans: a second nginx)
PILLION_TRACED, PILLION_SAMPLED = "pillion-traced-1.0", "pillion-traced-0.01"
COLLECTOR = "collector"
REFERENCES = (NGINX, HAPROXY, DIRECT, NGINX_OUTBOUND, NGINX_ROUTES, NGINX_TLS, NGINX_HANDSHAKE)


class HarnessError(Exception):
    """The benchmark itself could not run: not a result about a subject."""


# --- processes -------------------------------------------------------------------------


def tool(name: str) -> str:
    """The path of a command, also looking in the sbin folders (nginx and haproxy live there)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    if found is None:
        raise HarnessError(f"{name} not found: run `make bench-proxy` as root (it installs it)")
    return found


def tool_env() -> dict[str, str]:
    """The environment for children, without proxy variables: every request stays local."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def log_tail(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log file, shortened to ``limit`` characters."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    if not lines:
        return "(empty log)"
    last = lines[-1].strip()
    return last if len(last) <= limit else last[: limit - 3] + "..."


@dataclass
class Server:
    """A long-running process started by the benchmark, with its combined output log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def exit_reason(self) -> str | None:
        """Why the process is gone (its exit code and last log line), or None if it runs."""
        code = self.proc.poll()
        if code is None:
            return None
        return f"exited with code {code}: {log_tail(self.log)}"


class Servers:
    """Starts servers in their own session and stops every one of them on close."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._started: list[Server] = []

    def start(self, name: str, argv: list[str]) -> Server:
        log = self._workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
                env=tool_env(),
                start_new_session=True,  # Ctrl-C reaches only us; we stop it in close()
            )
        server = Server(name, proc, log)
        self._started.append(server)
        return server

    def close(self) -> None:
        for server in reversed(self._started):
            stop(server.proc)
        self._started.clear()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to the process group we created for it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT_S)
    # The group is the process's own (start_new_session): this ends only our children.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT_S)


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on the loopback address."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --- HTTP checks -----------------------------------------------------------------------

# No proxy handler: requests go straight to 127.0.0.1 whatever the environment says; https
# is to our own self-made certificate on 127.0.0.1, not verified.
_UNVERIFIED = ssl.create_default_context()
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE
_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=_UNVERIFIED)
)


def http_get(url: str, host: str | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET (with this Host header if given); HTTP error statuses are
    returned, not raised."""
    headers = {"Host": host} if host else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http://127.0.0.1 only)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def body_problem(url: str, host: str | None = None) -> str | None:
    """None if the URL answers 200 with the expected 1 KiB body, else what is wrong."""
    try:
        status, body = http_get(url, host)
    except urllib.error.URLError as error:
        return f"GET {url}: {error.reason}"
    except OSError as error:
        return f"GET {url}: {error}"
    if status != 200:
        return f"GET {url}: status {status}: {body[:120]!r}"
    if body != BODY.encode():
        return f"GET {url}: unexpected body ({len(body)} bytes)"
    return None


def status_problem(url: str) -> str | None:
    """None if the URL answers 200, else what is wrong."""
    try:
        status, _ = http_get(url)
    except urllib.error.URLError as error:
        return f"GET {url}: {error.reason}"
    except OSError as error:
        return f"GET {url}: {error}"
    return None if status == 200 else f"GET {url}: status {status}"


def wait_until(server: Server, check: Callable[[], str | None], timeout: float) -> str | None:
    """Poll ``check`` until it passes (None) or ``timeout``; returns the reason it did not."""
    deadline = time.monotonic() + timeout
    problem = "not checked"
    while time.monotonic() < deadline:
        gone = server.exit_reason()
        if gone is not None:
            return gone
        found = check()
        if found is None:
            return None
        problem = found
        time.sleep(0.1)
    return f"not ready after {timeout:.0f}s: {problem}"


# --- configs ---------------------------------------------------------------------------


def nginx_config(prefix: Path, http_block: str) -> str:
    """A 1-worker nginx config whose pid, logs and temp paths all live under ``prefix``."""
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
{temp_paths}
{http_block}
}}
"""


def upstream_http_block(port: int) -> str:
    return f"""    server {{
        listen {HOST}:{port};
        default_type text/plain;
        location / {{ return 200 "{BODY}"; }}
    }}"""


def collector_http_block(port: int) -> str:
    """An OTLP/HTTP receiver that takes every export and keeps nothing."""
    return f"""    server {{
        listen {HOST}:{port};
        client_max_body_size 0;
        location /v1/traces {{ return 200; }}
    }}"""


def nginx_proxy_http_block(port: int, upstream_port: int, routes: bool = False) -> str:
    """nginx as a reverse proxy; with ``routes``, the 100 locations of the routes pair."""
    # A URI on proxy_pass replaces the matched location prefix: /r98/x goes up as /x.
    specific = [f"location /r{n}/ {{ proxy_pass http://app/; }}" for n in range(ROUTES - 1)]
    locations = [*(specific if routes else []), "location / { proxy_pass http://app; }"]
    indented = "\n".join(f"        {location}" for location in locations)
    return f"""    upstream app {{
        server {HOST}:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {HOST}:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
{indented}
    }}"""


def nginx_tls_http_block(port: int, upstream_port: int, cert: Path, key: Path) -> str:
    """nginx-proxy's config, listening with TLS on ``port``."""
    plain = nginx_proxy_http_block(port, upstream_port)
    return plain.replace(
        f"listen {HOST}:{port};",
        f"listen {HOST}:{port} ssl;\n        ssl_certificate {cert};\n"
        f"        ssl_certificate_key {key};\n        ssl_protocols TLSv1.2 TLSv1.3;",
    )


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, by openssl."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    key.chmod(0o644)  # nginx workers run as nobody when we are root
    return cert, key


def haproxy_config(port: int, upstream_port: int) -> str:
    return f"""global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend bench
    bind {HOST}:{port}
    default_backend app

backend app
    server upstream {HOST}:{upstream_port}
"""


def pillion_config(
    upstream_port: int, admin: int, status: int, proxy: str, log: Path, telemetry: str = ""
) -> str:
    """A pillion config; ``proxy`` is the YAML of its listeners (and clusters)."""
    return f"""app:
  port: {upstream_port}
admin:
  listen: {HOST}:{admin}
status:
  listen: {HOST}:{status}
{telemetry}proxy:
{textwrap.indent(proxy, "  ")}  access_log:
    path: {log}
"""


def pillion_inbound(port: int) -> str:
    return f"""inbound:
  - listen: {HOST}:{port}
"""


def pillion_outbound(inbound: int, outbound: int, upstream_port: int) -> str:
    """The usual inbound listener, plus an outbound one to a cluster named by the Host."""
    return f"""{pillion_inbound(inbound)}outbound:
  - listen: {HOST}:{outbound}
clusters:
  - name: {CLUSTER}
    endpoints: ["{HOST}:{upstream_port}"]
"""


def pillion_tls(inbound: int, cert: Path, key: Path) -> str:
    return f"""{pillion_inbound(inbound)}    tls:
      certificates: [{{cert: {cert}, key: {key}}}]
"""


def pillion_tracing(collector: int, ratio: float) -> str:
    return f"""telemetry:
  tracing:
    otlp: {{endpoint: "http://{HOST}:{collector}"}}
    sampling: {{ratio: {ratio}}}
"""


def pillion_routes(inbound: int) -> str:
    """An inbound listener with 99 prefix routes to the app, then a catch-all (kept last:
    a route that can never match is refused)."""
    specific = "".join(
        f"    - match: {{prefix: /r{n}/}}\n      prefix_rewrite: /\n" for n in range(ROUTES - 1)
    )
    return f"""{pillion_inbound(inbound)}    routes:
{specific}    - match: {{prefix: /}}
"""


# --- subjects --------------------------------------------------------------------------


@dataclass
class Subject:
    """One thing under load, and everything measured about it."""

    name: str
    url: str = ""
    host: str | None = None  # the Host header to send (outbound: names the cluster)
    latency: bool = True  # also measured with hey (the outbound and routes pairs are not)
    close: bool = False  # a new connection per request (Connection: close): handshakes
    pid: int | None = None
    server: Server | None = None
    failure: str | None = None
    rps: list[float] = field(default_factory=list)
    p50_s: list[float] = field(default_factory=list)
    p99_s: list[float] = field(default_factory=list)
    peak_rss_kib: int = 0
    wrk_errors: list[str] = field(default_factory=list)
    hey_errors: list[str] = field(default_factory=list)

    def usable(self) -> bool:
        """Still worth loading: started, proxied, and its process is alive."""
        if self.failure is None and self.server is not None:
            gone = self.server.exit_reason()
            if gone is not None:
                self.failure = f"died during the run: {gone}"
        return self.failure is None


def start_nginx(servers: Servers, tmp: Path, name: str, http_block: str) -> Server:
    prefix = tmp / name
    prefix.mkdir()
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(prefix, http_block))
    argv = [tool("nginx"), "-p", f"{prefix}/", "-e", f"{prefix}/error.log", "-c", str(config)]
    return servers.start(name, [*argv, "-g", "daemon off;"])


def ready_subject(subject: Subject, server: Server, timeout: float = READY_TIMEOUT_S) -> Subject:
    """The subject, started as ``server``: marked failed with the reason unless its URL
    serves the body."""
    subject.pid, subject.server = server.proc.pid, server
    url, host = subject.url, subject.host
    subject.failure = wait_until(server, lambda: body_problem(url, host), timeout)
    return subject


def start_pillion(
    servers: Servers, tmp: Path, pillion: Path, subject: Subject, config_text: str, status: int
) -> Subject:
    """Start pillion with this config (its status listener on ``status``) as the subject."""
    config = tmp / f"{subject.name}.yaml"
    config.write_text(config_text)
    if not pillion.exists():
        subject.failure = f"{pillion} not found (run make first)"
        return subject
    server = servers.start(subject.name, [str(pillion), "run", "-c", str(config)])
    ready_url = f"http://{HOST}:{status}/healthz/ready"
    problem = wait_until(server, lambda: status_problem(ready_url), PILLION_READY_TIMEOUT_S)
    if problem is not None:
        subject.pid, subject.server, subject.failure = server.proc.pid, server, problem
        return subject
    ready_subject(subject, server, timeout=3.0)
    if subject.failure is not None:
        subject.failure = f"ready but does not proxy: {subject.failure}"
    return subject


def start_pillions(
    servers: Servers,
    tmp: Path,
    pillion: Path,
    upstream: int,
    ports: Iterator[int],
    certificate: tuple[Path, Path],
    collector: int,
) -> list[Subject]:
    """The six pillion processes: plain inbound, outbound to a cluster, 100 routes, TLS,
    and plain inbound with tracing (every request; 1 in 100)."""
    subjects = []
    for name in (
        PILLION, PILLION_OUTBOUND, PILLION_ROUTES, PILLION_TLS, PILLION_TRACED, PILLION_SAMPLED
    ):  # fmt: skip
        admin, status, inbound = next(ports), next(ports), next(ports)
        telemetry = ""
        if name == PILLION_OUTBOUND:
            outbound = next(ports)
            subject = Subject(name, f"http://{HOST}:{outbound}/", CLUSTER, latency=False)
            proxy = pillion_outbound(inbound, outbound, upstream)
        elif name == PILLION_ROUTES:
            subject = Subject(name, f"http://{HOST}:{inbound}{ROUTED_PATH}", latency=False)
            proxy = pillion_routes(inbound)
        elif name == PILLION_TLS:
            subject = Subject(name, f"https://{HOST}:{inbound}/", latency=False)
            proxy = pillion_tls(inbound, *certificate)
        elif name in (PILLION_TRACED, PILLION_SAMPLED):
            subject = Subject(name, url=f"http://{HOST}:{inbound}/", latency=False)
            proxy = pillion_inbound(inbound)
            telemetry = pillion_tracing(collector, 1.0 if name == PILLION_TRACED else 0.01)
        else:
            subject = Subject(name, url=f"http://{HOST}:{inbound}/")
            proxy = pillion_inbound(inbound)
        log = tmp / f"{name}-access.log"
        config = pillion_config(upstream, admin, status, proxy, log, telemetry)
        subjects.append(start_pillion(servers, tmp, pillion, subject, config, status))
    return subjects


def start_nginx_proxy(
    servers: Servers, tmp: Path, subject: Subject, port: int, upstream: int, routes: bool = False
) -> Subject:
    """nginx as a reverse proxy on ``port`` (with the 100 locations if ``routes``)."""
    block = nginx_proxy_http_block(port, upstream, routes=routes)
    return ready_subject(subject, start_nginx(servers, tmp, subject.name, block))


def start_subjects(servers: Servers, tmp: Path, pillion: Path) -> list[Subject]:
    """Start the upstream and the eight subjects; raise HarnessError if the upstream fails.

    Every port is picked in one go, so no two can be the same."""
    ports = iter(free_ports(26))
    upstream_port = next(ports)
    upstream = start_nginx(servers, tmp, "upstream", upstream_http_block(upstream_port))
    direct = ready_subject(Subject(DIRECT, url=f"http://{HOST}:{upstream_port}/"), upstream)
    if direct.failure is not None:
        raise HarnessError(f"the upstream nginx did not start: {direct.failure}")
    # The routes pairs rewrite /r98/ to /, but the upstream must serve the body on any path.
    routed = body_problem(f"http://{HOST}:{upstream_port}{ROUTED_PATH}")
    if routed is not None:
        raise HarnessError(f"the upstream nginx does not serve {ROUTED_PATH}: {routed}")

    nginx_port, haproxy_port, outbound_port, routes_port = (next(ports) for _ in range(4))
    nginx = Subject(NGINX, url=f"http://{HOST}:{nginx_port}/")
    start_nginx_proxy(servers, tmp, nginx, nginx_port, upstream_port)

    haproxy_cfg = tmp / "haproxy.cfg"
    haproxy_cfg.write_text(haproxy_config(haproxy_port, upstream_port))
    haproxy_server = servers.start(HAPROXY, [tool("haproxy"), "-f", str(haproxy_cfg), "-db"])
    haproxy = ready_subject(Subject(HAPROXY, url=f"http://{HOST}:{haproxy_port}/"), haproxy_server)

    outbound_url, routes_url = f"http://{HOST}:{outbound_port}/", f"http://{HOST}:{routes_port}"
    nginx_outbound = Subject(NGINX_OUTBOUND, outbound_url, CLUSTER, latency=False)
    start_nginx_proxy(servers, tmp, nginx_outbound, outbound_port, upstream_port)
    nginx_routes = Subject(NGINX_ROUTES, routes_url + ROUTED_PATH, latency=False)
    start_nginx_proxy(servers, tmp, nginx_routes, routes_port, upstream_port, routes=True)

    certificate = make_certificate(tmp)
    tls_port = next(ports)
    nginx_tls = Subject(NGINX_TLS, f"https://{HOST}:{tls_port}/", latency=False)
    tls_block = nginx_tls_http_block(tls_port, upstream_port, *certificate)
    ready_subject(nginx_tls, start_nginx(servers, tmp, NGINX_TLS, tls_block))

    collector_port = next(ports)
    start_nginx(servers, tmp, COLLECTOR, collector_http_block(collector_port))
    plain, outbound, routes, tls, traced, sampled = start_pillions(
        servers, tmp, pillion, upstream_port, ports, certificate, collector_port
    )
    return [
        plain,
        nginx,
        haproxy,
        direct,
        outbound,
        nginx_outbound,
        routes,
        nginx_routes,
        tls,
        nginx_tls,
        handshakes(PILLION_HANDSHAKE, tls),
        handshakes(NGINX_HANDSHAKE, nginx_tls),
        traced,
        sampled,
    ]


def handshakes(name: str, keep_alive: Subject) -> Subject:
    """The same server as ``keep_alive``, loaded with a new connection per request."""
    return Subject(
        name,
        keep_alive.url,
        latency=False,
        close=True,
        pid=keep_alive.pid,
        server=keep_alive.server,
        failure=keep_alive.failure,
    )


# --- RSS sampling ----------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, found through /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process exited while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_kib(pids: list[int]) -> int:
    """Sum of VmRSS over the processes, in KiB (processes that are gone count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


class RssSampler:
    """Samples a process tree's RSS every 100 ms in a thread, keeping the peak."""

    def __init__(self, pid: int) -> None:
        self.peak_kib = 0
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, rss_kib(process_tree(self._pid)))
            if self._stop.wait(RSS_INTERVAL_S):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def sampling_rss(subject: Subject) -> Iterator[None]:
    """Record the subject's peak RSS while the body of the ``with`` runs."""
    if subject.pid is None:
        yield
        return
    with RssSampler(subject.pid) as sampler:
        yield
    subject.peak_rss_kib = max(subject.peak_rss_kib, sampler.peak_kib)


# --- load generators -------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    rps: float | None
    errors: list[str]


@dataclass(frozen=True)
class HeyResult:
    p50_s: float | None
    p99_s: float | None
    errors: list[str]


def run_tool(argv: list[str], duration: int) -> tuple[str, str | None]:
    """Run a load generator, bounded in time; its stdout and, if it failed, why."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration + TOOL_GRACE_S,
            env=tool_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "", f"{Path(argv[0]).name} did not finish within {duration + TOOL_GRACE_S:.0f}s"
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip())[-200:]
        return done.stdout, f"{Path(argv[0]).name} exit {done.returncode}: {detail}"
    return done.stdout, None


def parse_wrk(output: str) -> WrkResult:
    """Requests/s and any non-2xx/3xx responses or socket errors from wrk's report."""
    errors: list[str] = []
    rps_match = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        errors.append(f"wrk non-2xx={non_2xx.group(1)}")
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        kinds = ("connect", "read", "write", "timeout")
        counts = ", ".join(f"{k}={n}" for k, n in zip(kinds, sockets.groups(), strict=True))
        errors.append(f"wrk socket errors {counts}")
    if rps_match is None:
        errors.append("wrk printed no Requests/sec")
        return WrkResult(None, errors)
    return WrkResult(float(rps_match.group(1)), errors)


def hey_section(output: str, title: str) -> list[str]:
    """The indented lines under one of hey's section titles (e.g. 'Latency distribution:')."""
    lines = output.splitlines()
    try:
        start = lines.index(title) + 1
    except ValueError:
        return []
    section = []
    for line in lines[start:]:
        if not line.startswith((" ", "\t")) or not line.strip():
            break
        section.append(line.strip())
    return section


def parse_hey(output: str) -> HeyResult:
    """p50 and p99 (seconds, hey's unit) and any non-200 statuses or errors from hey."""
    percentiles: dict[int, float] = {}
    for line in hey_section(output, "Latency distribution:"):
        match = re.fullmatch(r"(\d+)% in ([\d.]+) secs", line)
        if match:
            percentiles[int(match.group(1))] = float(match.group(2))
    errors: list[str] = []
    for line in hey_section(output, "Status code distribution:"):
        match = re.fullmatch(r"\[(\d+)\]\s+(\d+) responses", line)
        if match and match.group(1) != "200":
            errors.append(f"hey status {match.group(1)} x{match.group(2)}")
    for line in hey_section(output, "Error distribution:"):
        match = re.fullmatch(r"\[(\d+)\]\s+(.*)", line)
        errors.append(f"hey error x{match.group(1)}: {match.group(2)[:120]}" if match else line)
    if 50 not in percentiles or 99 not in percentiles:
        errors.append("hey printed no latency distribution")
    return HeyResult(percentiles.get(50), percentiles.get(99), errors)


def run_wrk(url: str, duration: int, host: str | None = None, close: bool = False) -> WrkResult:
    argv = [tool("wrk"), f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{duration}s"]
    if host is not None:
        argv += ["-H", f"Host: {host}"]
    if close:
        argv += ["-H", "Connection: close"]
    output, failed = run_tool([*argv, url], duration)
    result = parse_wrk(output)
    return WrkResult(result.rps, [failed, *result.errors] if failed else result.errors)


def run_hey(url: str, duration: int) -> HeyResult:
    argv = [tool("hey"), "-z", f"{duration}s", "-c", str(HEY_WORKERS)]
    output, failed = run_tool([*argv, "-q", str(HEY_QPS_PER_WORKER), url], duration)
    result = parse_hey(output)
    errors = [failed, *result.errors] if failed else result.errors
    return HeyResult(result.p50_s, result.p99_s, errors)


# --- route matching, in-process ---------------------------------------------------------

# Run by pillion's own Python: argv = routes, path, iterations per run, runs.
MATCH_SCRIPT = """\
import sys, timeit
from pillion.proxy.routing import RouteMatch, RouteTable
routes, path = int(sys.argv[1]), sys.argv[2].encode()
number, repeat = int(sys.argv[3]), int(sys.argv[4])
specific = [(RouteMatch(prefix=f"/r{n}/".encode()), n) for n in range(routes - 1)]
table = RouteTable([*specific, (RouteMatch(prefix=b"/"), routes - 1)])
if table.match(b"GET", path, []) != routes - 2:
    sys.exit(f"{path!r} did not match route {routes - 2}")
scope = {"match": table.match, "path": path}
runs = timeit.repeat("match(b'GET', path, [])", globals=scope, number=number, repeat=repeat)
print(min(runs) / number * 1e6)
"""


def route_matching(python: Path) -> tuple[float | None, str]:
    """Microseconds per ``RouteTable.match`` of the last specific route among ``ROUTES``
    (the best of ``MATCH_REPEATS`` timeit runs), or None and why it was not measured."""
    if not python.exists():
        return None, f"{python} not found"
    args = [str(ROUTES), f"{ROUTED_PATH}x", str(MATCH_ITERATIONS), str(MATCH_REPEATS)]
    try:
        done = subprocess.run(
            [str(python), "-c", MATCH_SCRIPT, *args],
            capture_output=True,
            text=True,
            timeout=MATCH_TIMEOUT_S,
            env=tool_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"did not finish within {MATCH_TIMEOUT_S:.0f}s"
    output = done.stdout.strip()
    if done.returncode != 0 or not output:
        return None, f"exit {done.returncode}: {(done.stderr.strip() or output)[-200:]}"
    try:
        return float(output.splitlines()[-1]), ""
    except ValueError:
        return None, f"unexpected output: {output[-200:]!r}"


# --- the run ---------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"proxy_bench: {message}", file=sys.stderr, flush=True)


def measure_throughput(subject: Subject, duration: int) -> None:
    with sampling_rss(subject):
        result = run_wrk(subject.url, duration, subject.host, subject.close)
    if result.rps is not None:
        subject.rps.append(result.rps)
    subject.wrk_errors += result.errors
    shown = f"{result.rps:,.0f} req/s" if result.rps is not None else "no result"
    progress(
        f"  wrk {subject.name}: {shown}{' ' + '; '.join(result.errors) if result.errors else ''}"
    )


def measure_latency(subject: Subject, duration: int) -> None:
    with sampling_rss(subject):
        result = run_hey(subject.url, duration)
    if result.p50_s is not None and result.p99_s is not None:
        subject.p50_s.append(result.p50_s)
        subject.p99_s.append(result.p99_s)
        shown = f"p50 {result.p50_s * 1000:.1f} ms, p99 {result.p99_s * 1000:.1f} ms"
    else:
        shown = "no result"
    subject.hey_errors += result.errors
    progress(
        f"  hey {subject.name}: {shown}{' ' + '; '.join(result.errors) if result.errors else ''}"
    )


def measure(subjects: list[Subject], duration: int, warmup: int) -> None:
    """Warm up, then load the subjects interleaved, round after round (hey only those
    measured for latency)."""
    if warmup > 0:
        progress(f"warm-up: wrk {warmup}s per subject")
        for subject in subjects:
            if subject.usable():
                run_wrk(subject.url, warmup, subject.host, subject.close)
    for round_number in range(1, ROUNDS + 1):
        progress(f"round {round_number}/{ROUNDS}: wrk then hey, {duration}s each")
        for subject in subjects:
            if subject.usable():
                measure_throughput(subject, duration)
        for subject in subjects:
            if subject.latency and subject.usable():
                measure_latency(subject, duration)
    for subject in subjects:
        subject.usable()  # record a process that died in the last measurement


# --- report ----------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def to_ms(seconds: float | None) -> float | None:
    return seconds * 1000 if seconds is not None else None


def rss_mib(subject: Subject) -> float | None:
    return subject.peak_rss_kib / 1024 if subject.peak_rss_kib else None


def clean_rps(subject: Subject) -> float | None:
    """Median requests/s, only if the subject worked and wrk saw no errors."""
    ok = subject.failure is None and not subject.wrk_errors
    return median(subject.rps) if ok else None


def clean_ms(subject: Subject, samples: list[float]) -> float | None:
    """Median of latency samples in ms, only if the subject worked and hey saw no errors."""
    ok = subject.failure is None and not subject.hey_errors
    return to_ms(median(samples)) if ok else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def minus(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def errors_cell(subject: Subject) -> str:
    if subject.failure is not None:
        return f"FAILED: {subject.failure}"
    unique = list(dict.fromkeys(subject.wrk_errors + subject.hey_errors))
    return "; ".join(unique) if unique else "-"


def row(subject: Subject, direct: Subject) -> list[str]:
    """One table row. Added latency is against direct's clean medians (blank for direct)."""
    p50, p99 = to_ms(median(subject.p50_s)), to_ms(median(subject.p99_s))
    if subject is direct:
        added = ["", ""]
    else:
        added = [
            cell(minus(p50, clean_ms(direct, direct.p50_s)), "+.2f"),
            cell(minus(p99, clean_ms(direct, direct.p99_s)), "+.2f"),
        ]
    numbers = [cell(median(subject.rps), ",.0f"), cell(p50, ".2f"), cell(p99, ".2f")]
    return [subject.name, *numbers, *added, cell(rss_mib(subject), ".1f"), errors_cell(subject)]


def table(subjects: list[Subject]) -> str:
    """The human table: name left-aligned, numbers right-aligned, errors last."""
    direct = next(subject for subject in subjects if subject.name == DIRECT)
    header = ["subject", "rps median", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "RSS MiB"]
    rows = [[*header, "errors"], *(row(subject, direct) for subject in subjects)]
    widths = [max(len(cells[i]) for cells in rows) for i in range(len(header))]
    lines = []
    for cells in rows:
        numbers = (value.rjust(width) for value, width in zip(cells[1:-1], widths[1:], strict=True))
        lines.append("  ".join([cells[0].ljust(widths[0]), *numbers, cells[-1]]))
    return "\n".join(lines)


def last_line(subjects: list[Subject]) -> str:
    """The machine-readable summary; see the module docstring for its format."""
    by_name = {subject.name: subject for subject in subjects}
    pillion, direct = by_name[PILLION], by_name[DIRECT]
    pillion_rps = clean_rps(pillion)
    outbound = ratio(clean_rps(by_name[PILLION_OUTBOUND]), clean_rps(by_name[NGINX_OUTBOUND]))
    routes = ratio(clean_rps(by_name[PILLION_ROUTES]), clean_rps(by_name[NGINX_ROUTES]))
    tls = ratio(clean_rps(by_name[PILLION_TLS]), clean_rps(by_name[NGINX_TLS]))
    shakes = ratio(clean_rps(by_name[PILLION_HANDSHAKE]), clean_rps(by_name[NGINX_HANDSHAKE]))
    pillion_rss = rss_mib(pillion) if pillion.failure is None else None
    values = {
        "rps_vs_nginx": (ratio(pillion_rps, clean_rps(by_name[NGINX])), ".2f"),
        "rps_vs_haproxy": (ratio(pillion_rps, clean_rps(by_name[HAPROXY])), ".2f"),
        "added_p50_ms": (
            minus(clean_ms(pillion, pillion.p50_s), clean_ms(direct, direct.p50_s)),
            ".2f",
        ),
        "added_p99_ms": (
            minus(clean_ms(pillion, pillion.p99_s), clean_ms(direct, direct.p99_s)),
            ".2f",
        ),
        "rss_mib": (pillion_rss, ".1f"),
        "outbound_rps_vs_nginx": (outbound, ".2f"),
        "routes_rps_vs_nginx": (routes, ".2f"),
        "tls_rps_vs_nginx": (tls, ".2f"),
        "tls_handshakes_vs_nginx": (shakes, ".2f"),
        "traced_rps_vs_untraced": (ratio(clean_rps(by_name[PILLION_TRACED]), pillion_rps), ".2f"),
        "sampled_rps_vs_untraced": (
            ratio(clean_rps(by_name[PILLION_SAMPLED]), pillion_rps),
            ".2f",
        ),
    }
    pairs = (
        f"{key}={'nan' if value is None else format(value, spec)}"
        for key, (value, spec) in values.items()
    )
    return " ".join(["proxy_bench", *pairs])


def matching_line(matching: tuple[float | None, str]) -> str:
    us, why = matching
    shown = f"{us:.2f} us per request" if us is not None else f"not measured: {why}"
    return f"route matching ({ROUTES} routes, last match): {shown}"


def report(subjects: list[Subject], duration: int, matching: tuple[float | None, str]) -> None:
    print(
        f"\nproxy_bench: 1 KiB body via 127.0.0.1; wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} "
        f"-d{duration}s (median of {ROUNDS}); hey {HEY_WORKERS}x{HEY_QPS_PER_WORKER}/s "
        f"= {HEY_WORKERS * HEY_QPS_PER_WORKER}/s for {duration}s (median of {ROUNDS}); "
        f"+p50/+p99 = minus direct; RSS = peak VmRSS of the process tree; *-outbound: "
        f"Host: {CLUSTER}; *-routes: {ROUTES} routes, GET {ROUTED_PATH}; *-tls: https "
        f"keep-alive; *-tls-handshake: Connection: close, a handshake per request; "
        f"these wrk only\n"
    )
    print(table(subjects))
    print()
    print(matching_line(matching))
    print()
    print(last_line(subjects), flush=True)


# --- entry point -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--duration", type=int, default=5, help="seconds per wrk and hey run (default 5)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk per subject first")
    parser.add_argument("--quick", action="store_true", help="a 2 s smoke run (--duration 2)")
    parser.add_argument(
        "--pillion",
        type=Path,
        default=REPO / ".venv" / "bin" / "pillion",
        help="the pillion executable (default: the project's .venv)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 2
    if args.duration < 1 or args.warmup < 0:
        parser.error("--duration must be at least 1 and --warmup at least 0")
    return args


def interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> list[Subject]:
    """Start everything, measure, stop everything; the subjects with their results."""
    for name in ("nginx", "haproxy", "wrk", "hey", "openssl"):
        tool(name)  # fail early, before starting anything
    tmp = Path(tempfile.mkdtemp(prefix="pillion-proxy-bench-"))
    tmp.chmod(0o755)  # nginx workers run as nobody when we are root
    servers = Servers(tmp)
    try:
        subjects = start_subjects(servers, tmp, args.pillion)
        for subject in subjects:
            state = "ready" if subject.failure is None else f"FAILED: {subject.failure}"
            progress(f"{subject.name} at {subject.url}: {state}")
        measure(subjects, args.duration, args.warmup)
        return subjects
    finally:
        servers.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        subjects = run(args)
        progress(f"route matching: {ROUTES} routes, in-process, {MATCH_REPEATS} timeit runs")
        matching = route_matching(args.pillion.parent / "python")
    except HarnessError as error:
        progress(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        progress("interrupted; every process started was stopped")
        return 130
    broken = [s.name for s in subjects if s.name in REFERENCES and s.failure is not None]
    if broken:  # said before the report, whose summary line must stay the last line
        progress(f"error: reference subjects failed: {', '.join(broken)}")
    report(subjects, args.duration, matching)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
