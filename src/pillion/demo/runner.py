"""Start the demo pod (demo app + Pillion), print what to try, stop both on Ctrl-C.

Both run as child processes, as two containers of a pod would; their shared
volume is a work directory. Pillion's own logs go to ``pillion.log`` there.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import FrameType

__all__ = ["DEMO_STATS_TOKEN", "DemoPorts", "run_demo"]

# the token Pillion sends with its scrapes of the app's JSON stats: a secret-typed
# field, which /config shows as *** (the admin server stays loopback-only and
# token-less, so the dashboard opens in a browser)
DEMO_STATS_TOKEN = "demo-stats-token"  # noqa: S105 - a demo value
_START_TIMEOUT = 60.0  # a loaded laptop or CI runner starts every process of the pod slowly
_STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class DemoPorts:
    app: int = 8080
    admin: int = 15000
    status: int = 15020
    proxy: int = 15006
    limited: int = 15007
    tcp: int = 15008
    outbound: int = 15001
    backend: int = 8081
    tls: int = 15443
    statsd: int = 9125
    grpc: int = 50051
    collector: int = 4318


def _demo_environment(ports: DemoPorts, root: Path) -> dict[str, str]:
    """What the built-in config reads: the ports and the pod's directory."""
    return {
        "PILLION_DEMO_APP_PORT": str(ports.app),
        "PILLION_DEMO_ADMIN_PORT": str(ports.admin),
        "PILLION_DEMO_STATUS_PORT": str(ports.status),
        "PILLION_DEMO_STATS_TOKEN": DEMO_STATS_TOKEN,
        "PILLION_DEMO_PROXY_PORT": str(ports.proxy),
        "PILLION_DEMO_LIMITED_PORT": str(ports.limited),
        "PILLION_DEMO_TCP_PORT": str(ports.tcp),
        "PILLION_DEMO_OUTBOUND_PORT": str(ports.outbound),
        "PILLION_DEMO_BACKEND_PORT": str(ports.backend),
        "PILLION_DEMO_TLS_PORT": str(ports.tls),
        "PILLION_DEMO_STATSD_PORT": str(ports.statsd),
        "PILLION_DEMO_GRPC_PORT": str(ports.grpc),
        "PILLION_DEMO_COLLECTOR_PORT": str(ports.collector),
        "PILLION_DEMO_WORKDIR": str(root),
    }


_DEMO_VARIABLE = re.compile(r"\$\{(PILLION_DEMO_[A-Z_]+)(?::-[^}]*)?\}")


def demo_config(ports: DemoPorts, workdir: str) -> str:
    """The demo's built-in ``pillion.yaml`` with these ports and this directory
    written in, comments kept: a config to start from (``pillion demo --print-config``)."""
    text = (resources.files("pillion.demo") / "pillion.yaml").read_text()
    values = _demo_environment(ports, Path(workdir))
    header = (
        "# Printed by `pillion demo --print-config`, with its ports written in. The\n"
        f"# certificates and files under {workdir} are what `pillion demo --workdir\n"
        f"# {workdir}` makes; edit the paths to your own to run it elsewhere.\n"
    )
    return header + _DEMO_VARIABLE.sub(lambda match: values[match.group(1)], text)


def run_demo(ports: DemoPorts, workdir: str | None = None) -> int:
    """Run the demo until SIGINT / SIGTERM; 0 after a clean stop, 1 if a part failed."""
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="pillion-demo-"))
    _prepare(root)
    stop = _StopFlag()
    with resources.as_file(resources.files("pillion.demo") / "pillion.yaml") as config:
        env = {**os.environ, **_demo_environment(ports, root)}
        with (root / "app.out").open("wb") as app_out, (root / "pillion.log").open("wb") as log:
            app = subprocess.Popen(
                [sys.executable, "-m", "pillion.demo.app", "--port", str(ports.app),
                 "--workdir", str(root),
                 "--outbound", f"http://127.0.0.1:{ports.outbound}",
                 "--statsd-port", str(ports.statsd)],
                stdout=app_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            # a second service, the app's dependency: every second request fails
            backend = subprocess.Popen(
                [sys.executable, "-m", "pillion.demo.app", "--port", str(ports.backend),
                 "--workdir", str(root / "backend"), "--name", "backend", "--fail-every", "2"],
                stdout=app_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            # a gRPC service behind the same inbound port (HTTP/2 told by its preface)
            grpc_service = subprocess.Popen(
                [sys.executable, "-m", "pillion.demo.grpc_echo", "serve",
                 "--port", str(ports.grpc), "--name", "demo-grpc"],
                stdout=app_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            # where Pillion sends its spans, as an OpenTelemetry Collector would take them
            collector = subprocess.Popen(
                [sys.executable, "-m", "pillion.demo.collector", "--port", str(ports.collector),
                 "--workdir", str(root)],
                stdout=app_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            pillion = subprocess.Popen(
                [sys.executable, "-m", "pillion", "run", "-c", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
            children = {
                "demo app": app,
                "backend": backend,
                "grpc service": grpc_service,
                "trace collector": collector,
                "pillion": pillion,
            }
            try:
                if not _wait_ready(ports, children, stop):
                    return 1 if not stop.set else 0
                _print_tour(ports, root, pillion.pid)
                while not stop.set:
                    for name, child in children.items():
                        if child.poll() is not None:
                            print(f"{name} exited with {child.returncode}; see {root}", flush=True)
                            return 1
                    time.sleep(0.2)
                print("stopping the demo pod...", flush=True)
                return 0
            finally:
                codes = _stop(children)
                if stop.set:
                    print(f"stopped: {', '.join(f'{n} exit {c}' for n, c in codes.items())}")


class _StopFlag:
    """Set by SIGINT or SIGTERM; the demo then stops its children cleanly."""

    def __init__(self) -> None:
        self.set = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.set = True


def _prepare(root: Path) -> None:
    """The pod's volumes: the sources Pillion renders the app's files from (as a
    mounted Secret and a config file), and the folders the app reads and writes."""
    for folder in ("logs", "config", "secrets", "sources/secret"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    source = root / "sources" / "app.yaml"
    source.write_text("greeting: hello\nfeature_flags:\n  new_ui: true\n")
    secret = root / "sources" / "secret" / "api-key"
    secret.write_text("demo-api-key-" + os.urandom(8).hex() + "\n")
    secret.chmod(0o600)
    _make_certificates(root / "tls")


DEMO_CLIENT_ID = "spiffe://cluster.local/ns/demo/sa/client"


def _make_certificates(directory: Path) -> None:
    """A dev CA, a server certificate for localhost, and a client certificate
    whose SPIFFE ID the app will see (what `pillion certs` makes)."""
    from pillion.tls.devca import issue, new_ca  # cryptography: only when the demo runs

    directory.mkdir(parents=True, exist_ok=True)
    ca = new_ca("Pillion demo CA", days=7)
    server = issue(ca, dns_names=("localhost",), ip_addresses=("127.0.0.1",), days=7)
    client = issue(ca, spiffe_id=DEMO_CLIENT_ID, days=7)
    for name, issued in (("ca", ca), ("server", server), ("client", client)):
        key = directory / f"{name}.key"
        if key.exists():
            key.chmod(0o600)
        key.write_bytes(issued.key_pem)
        key.chmod(0o600)
        (directory / f"{name}.crt").write_bytes(issued.cert_pem)


def _wait_ready(
    ports: DemoPorts, children: dict[str, subprocess.Popen[bytes]], stop: _StopFlag
) -> bool:
    urls = [
        f"http://127.0.0.1:{ports.app}/healthz",
        f"http://127.0.0.1:{ports.backend}/healthz",
        f"http://127.0.0.1:{ports.status}/healthz/ready",
        f"http://127.0.0.1:{ports.proxy}/healthz",
        f"http://127.0.0.1:{ports.collector}/traces",
    ]
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline and not stop.set:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode} while starting", file=sys.stderr)
                return False
        if all(_answers(url) for url in urls) and _listening(ports.grpc):
            return True
        time.sleep(0.1)
    if not stop.set:
        print(f"the demo pod did not become ready in {_START_TIMEOUT:.0f}s", file=sys.stderr)
    return False


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _print_tour(ports: DemoPorts, root: Path, pillion_pid: int) -> None:
    admin = f"http://127.0.0.1:{ports.admin}"
    status = f"http://127.0.0.1:{ports.status}"
    proxy = f"http://127.0.0.1:{ports.proxy}"
    limited = f"http://127.0.0.1:{ports.limited}"
    outbound = f"http://127.0.0.1:{ports.outbound}"
    smuggle = "-H 'Content-Length: 1' -H 'Transfer-Encoding: chunked'"
    tls_dir = root / "tls"
    secure = f"https://localhost:{ports.tls}"
    tls_client = f"--cacert {tls_dir}/ca.crt --cert {tls_dir}/client.crt --key {tls_dir}/client.key"
    tour = [
        ("the app, through Pillion", f"curl -s {proxy}/"),
        ("with your own request id", f"curl -s -H 'X-Request-Id: demo-1' {proxy}/stats"),
        ("a smuggling attempt: 400", f"curl -s {smuggle} {proxy}/"),
        ("rate limit, 3rd call: 429", f"curl -s {limited}/ {limited}/ {limited}/"),
        ("mTLS: your identity reaches the app", f"curl -s {tls_client} {secure}/"),
        ("TLS without a client cert: 403", f"curl -s --cacert {tls_dir}/ca.crt {secure}/"),
        ("app -> backend via outbound, retried", f"curl -s {proxy}/call"),
        (
            "that call's trace, at the collector",
            f"curl -s http://127.0.0.1:{ports.collector}/traces",
        ),
        ("HTTP/2 on the same port", f"curl -s --http2-prior-knowledge {proxy}/"),
        ("rate-limited route, 4th call: 429", f"curl -s {' '.join([f'{proxy}/call'] * 4)}"),
        ("raw TCP passthrough", f"curl -s http://127.0.0.1:{ports.tcp}/stats"),
        ("outbound, cluster by host", f"curl -s -H 'Host: demo-app' {outbound}/stats"),
        ("outbound, unknown host: 404", f"curl -s -H 'Host: elsewhere' {outbound}/"),
        ("the app itself, direct", f"curl -s http://127.0.0.1:{ports.app}/"),
        ("the app's JSON stats", f"curl -s http://127.0.0.1:{ports.app}/stats"),
        ("startup probe", f"curl -s {status}/healthz/started"),
        ("readiness probe", f"curl -s {status}/healthz/ready"),
        ("Prometheus metrics", f"curl -s {status}/metrics"),
        ("the dashboard's data", f"curl -s {admin}/stats"),
        ("effective config (secrets ***)", f"curl -s {admin}/config"),
        ("log level", f"curl -s {admin}/logging"),
        ("set log level", f"curl -s -X POST '{admin}/logging?level=debug'"),
    ]
    grpc_call = f"{sys.executable} -m pillion.demo.grpc_echo call --target 127.0.0.1:{ports.proxy}"
    width = max(len(label) for label, _ in tour)
    print(f"\nPillion demo pod is running (shared files in {root})\n")
    print(f"  the live dashboard, in a browser: {admin}/\n")
    for label, command in tour:
        print(f"  {label:<{width}}  {command}")
    print(f"  {'a gRPC call through Pillion':<{width}}  {grpc_call}")
    print(
        f"\n  reload the config: kill -HUP {pillion_pid}    Pillion's logs: {root / 'pillion.log'}"
    )
    print(f"  the app's log file: {root / 'logs' / 'app.log'}")
    print(f"  the proxy's access log: {root / 'access.log'}")
    print(f"  the app's log lines, shipped by Pillion: tail -f {root / 'shipped.jsonl'}")
    print(f"  every request's span, as the collector got it: tail -f {root / 'traces.jsonl'}")
    print(f"  the app's JSON stats and StatsD, as Prometheus metrics: {status}/metrics "
          "(demo_app_*, demo_http_*)")  # fmt: skip
    print(
        f"  the app's config, rendered by Pillion from {root / 'sources' / 'app.yaml'}: edit "
        f"it, and the app reports the reload at http://127.0.0.1:{ports.app}/"
    )
    print("\nCtrl-C stops the pod.\n", flush=True)


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> dict[str, int]:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes: dict[str, int] = {}
    for name, child in children.items():
        try:
            codes[name] = child.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            codes[name] = child.wait()
    return codes
