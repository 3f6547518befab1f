"""What transparent capture costs: the app's outbound calls redirected by
``pillion iptables --mode all`` to Pillion's outbound listener (``original_destination``),
against calling a proxy by its address, nginx's and Pillion's. Needs root (network
namespaces and iptables); ``make bench-capture``.

Two network namespaces joined by a veth pair: ``pod`` (Pillion as uid 1337, the
explicit nginx proxy, and wrk as uid 1000, the app) and ``remote`` (the upstream:
nginx, 1 worker, the same 1 KiB body as ``proxy_bench``). Each round measures, with
capture off: ``direct`` (wrk to the upstream), ``nginx-outbound`` (wrk to nginx on
127.0.0.1, ``proxy_pass`` to the upstream, keepalive 64), ``pillion-outbound`` (wrk to
Pillion's listener on 127.0.0.1:15001, the Host naming its cluster); then capture on:
``pillion-captured`` (wrk to the upstream's own address, redirected). The ``-close``
subjects send ``Connection: close``: a new connection, so a new ``SO_ORIGINAL_DST``
and protocol detection, per request. Medians of the rounds; the last line sums up.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proxy_bench import BODY, HarnessError, nginx_config, parse_wrk, tool

ROUNDS = 3
WRK = ["-t2", "-c64"]
UPSTREAM_PORT = 8080
NGINX_PORT = 18080
OUTBOUND_PORT = 15001
APP_UID = 1000
PROXY_UID = 1337
SUBJECTS = (
    "direct",
    "nginx-outbound",
    "pillion-outbound",
    "pillion-captured",
    "nginx-outbound-close",
    "pillion-outbound-close",
    "pillion-captured-close",
)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=60)


class Namespaces:
    def __init__(self) -> None:
        tag = f"{random.randrange(16**5):05x}"  # noqa: S311 - names, not secrets
        subnet = random.randrange(1, 255)  # noqa: S311
        self.pod, self.remote = f"bpod-{tag}", f"bremote-{tag}"
        self.remote_ip = f"10.126.{subnet}.1"
        self.pod_ip = f"10.126.{subnet}.2"
        for name in (self.pod, self.remote):
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        veth = f"bv{tag}"
        sh("ip", "link", "add", veth, "netns", self.remote, "type", "veth",
           "peer", "name", f"{veth}p", "netns", self.pod)  # fmt: skip
        sh("ip", "-n", self.remote, "addr", "add", f"{self.remote_ip}/30", "dev", veth)
        sh("ip", "-n", self.pod, "addr", "add", f"{self.pod_ip}/30", "dev", f"{veth}p")
        sh("ip", "-n", self.remote, "link", "set", veth, "up")
        sh("ip", "-n", self.pod, "link", "set", f"{veth}p", "up")
        # the load generator's side, for every subject alike: with Connection: close, wrk
        # closes first, and thousands of TIME_WAITs towards one address make its
        # connect() scan for a free port (measured: captured-close fell from 7k to 1k/s
        # in the second round without it; Pillion was half idle)
        sh("ip", "netns", "exec", self.pod, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1")

    def popen(self, namespace: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(["ip", "netns", "exec", namespace, *argv],
                                    stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    def delete(self) -> None:
        for name in (self.pod, self.remote):
            sh("ip", "netns", "del", name, check=False)


def as_user(uid: int, argv: list[str], *, read_anywhere: bool = False) -> list[str]:
    caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            *(caps if read_anywhere else []), "--", *argv]  # fmt: skip


def wait_for(ns: Namespaces, url: str, host: str | None = None) -> None:
    header = ["-H", f"Host: {host}"] if host else []
    for _ in range(200):
        done = sh("ip", "netns", "exec", ns.pod, "curl", "-s", "-m", "2", *header, url,
                  check=False)  # fmt: skip
        if done.stdout == BODY:
            return
        time.sleep(0.1)
    raise HarnessError(f"{url} did not answer with the body")


def wrk(ns: Namespaces, url: str, duration: int, host: str | None, close: bool) -> float:
    headers = (["-H", f"Host: {host}"] if host else []) + (
        ["-H", "Connection: close"] if close else []
    )
    argv = as_user(APP_UID, [tool("wrk"), *WRK, f"-d{duration}s", *headers, url])
    done = subprocess.run(["ip", "netns", "exec", ns.pod, *argv], capture_output=True,
                          text=True, timeout=duration + 60, check=False)  # fmt: skip
    result = parse_wrk(done.stdout)
    if result.rps is None or result.errors:
        raise HarnessError(f"wrk {url}: {result.errors} {done.stderr[-200:]}")
    return result.rps


def capture(ns: Namespaces, on: bool) -> None:
    args = ["--mode", "all", "--proxy-uid", str(PROXY_UID)] if on else ["--cleanup"]
    pillion = Path(sys.executable).with_name("pillion")
    sh("ip", "netns", "exec", ns.pod, str(pillion), "iptables", *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--quick", action="store_true", help="--duration 2")
    options = parser.parse_args()
    duration = 2 if options.quick else options.duration
    ns = Namespaces()
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="capture-bench-"))
    tmp.chmod(0o755)
    try:
        upstream = f"""    server {{
        listen 0.0.0.0:{UPSTREAM_PORT};
        default_type text/plain;
        location / {{ return 200 "{BODY}"; }}
    }}"""
        proxy = f"""    upstream app {{
        server {ns.remote_ip}:{UPSTREAM_PORT};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{ proxy_pass http://app; }}
    }}"""
        for name, namespace, block in (("upstream", ns.remote, upstream),
                                       ("nginx", ns.pod, proxy)):  # fmt: skip
            prefix = tmp / name
            prefix.mkdir()
            (prefix / "nginx.conf").write_text(nginx_config(prefix, block))
            argv = [tool("nginx"), "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                    "-g", "daemon off;"]  # fmt: skip
            procs.append(ns.popen(namespace, argv, tmp / f"{name}.log"))
        config = tmp / "pillion.yaml"
        config.write_text(f"""admin: {{listen: 127.0.0.1:15000}}
status: {{listen: 127.0.0.1:15020}}
proxy:
  inbound: []
  outbound:
    - listen: 127.0.0.1:{OUTBOUND_PORT}
      original_destination: {{}}
  clusters:
    - name: upstream
      endpoints: ["{ns.remote_ip}:{UPSTREAM_PORT}"]
  access_log: {{path: {tmp}/pillion-access.log}}
""")
        (tmp / "pillion-access.log").touch()
        (tmp / "pillion-access.log").chmod(0o666)
        pillion = str(Path(sys.executable).with_name("pillion"))
        argv = as_user(PROXY_UID, [pillion, "run", "-c", str(config)], read_anywhere=True)
        procs.append(ns.popen(ns.pod, argv, tmp / "pillion.log"))
        remote = f"http://{ns.remote_ip}:{UPSTREAM_PORT}/"
        wait_for(ns, remote)
        wait_for(ns, f"http://127.0.0.1:{NGINX_PORT}/")
        wait_for(ns, f"http://127.0.0.1:{OUTBOUND_PORT}/", "upstream")
        targets = {
            "direct": (remote, None),
            "nginx-outbound": (f"http://127.0.0.1:{NGINX_PORT}/", None),
            "pillion-outbound": (f"http://127.0.0.1:{OUTBOUND_PORT}/", "upstream"),
            "pillion-captured": (remote, None),
        }
        results: dict[str, list[float]] = {name: [] for name in SUBJECTS}
        for round_ in range(1, ROUNDS + 1):
            print(f"capture_bench: round {round_}/{ROUNDS}, wrk {duration}s each", flush=True)
            for on in (False, True):
                capture(ns, on)
                for name in SUBJECTS:
                    if name.startswith("pillion-captured") != on:
                        continue
                    url, host = targets[name.removesuffix("-close")]
                    rps = wrk(ns, url, duration, host, close=name.endswith("-close"))
                    results[name].append(rps)
                    print(f"capture_bench:   {name}: {rps:,.0f} req/s", flush=True)
            capture(ns, False)
        medians = {name: statistics.median(values) for name, values in results.items()}
        print(
            f"\ncapture_bench: 1 KiB body; wrk {' '.join(WRK)} -d{duration}s from the pod "
            f"namespace as uid {APP_UID}; median of {ROUNDS}; -close: Connection: close\n"
        )
        print(f"{'subject':<26}{'rps median':>12}")
        for name in SUBJECTS:
            print(f"{name:<26}{medians[name]:>12,.0f}")

        def ratio(a: str, b: str) -> str:
            return f"{medians[a] / medians[b]:.2f}"

        print(
            "\ncapture_bench"
            f" captured_vs_outbound={ratio('pillion-captured', 'pillion-outbound')}"
            f" captured_vs_nginx={ratio('pillion-captured', 'nginx-outbound')}"
            f" close_captured_vs_outbound="
            f"{ratio('pillion-captured-close', 'pillion-outbound-close')}"
            f" close_captured_vs_nginx={ratio('pillion-captured-close', 'nginx-outbound-close')}"
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        ns.delete()


if __name__ == "__main__":
    try:
        main()
    except HarnessError as exc:
        print(f"capture_bench: error: {exc}", file=sys.stderr)
        sys.exit(1)
