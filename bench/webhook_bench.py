"""Injection webhook benchmark: AdmissionReview round trips over HTTPS at a fixed rate.

Starts ``pillion webhook`` on 127.0.0.1 with a dev-CA certificate, then sends Pod
CREATE reviews (a two-container pod with an init container, to be injected) at
``--rate`` requests per second for ``--duration`` seconds over keep-alive
connections, as the API server does, and reports the latency of each round trip
(sending the review, the injection, the patch, reading the answer). The last
line is exactly::

    webhook_bench p50_ms=A p99_ms=B

The target is a p99 under 10 ms: injection must never be the slow part of a rollout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
SERVICE = "pillion-webhook.pillion-system.svc"


def review(uid: int) -> bytes:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"web-{uid}", "namespace": "shop", "labels": {"app": "web"},
                     "annotations": {"pillion.dev/inject": "true"}},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "shop/migrate:1"}],
            "containers": [{"name": "web", "image": "shop/web:1",
                            "ports": [{"containerPort": 8080}]},
                           {"name": "worker", "image": "shop/worker:1"}],
        },
    }  # fmt: skip
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": f"uid-{uid}", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "namespace": "shop", "operation": "CREATE", "object": pod},
    }).encode()  # fmt: skip


async def load(port: int, ca: Path, rate: float, duration: float) -> list[float]:
    context = ssl.create_default_context(cafile=str(ca))
    latencies: list[float] = []
    url = f"https://{SERVICE}:{port}/inject"

    class Resolver(aiohttp.abc.AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: int = 0
        ) -> list[dict[str, object]]:
            return [{"hostname": host, "host": "127.0.0.1", "port": port,
                     "family": socket.AF_INET, "proto": 0, "flags": 0}]  # fmt: skip

        async def close(self) -> None:
            pass

    connector = aiohttp.TCPConnector(ssl=context, limit=8, resolver=Resolver())
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(uid: int) -> None:
            started = time.perf_counter()
            async with session.post(
                url, data=review(uid), headers={"Content-Type": "application/json"}
            ) as answer:
                body = await answer.read()
            assert answer.status == 200, body[:200]
            latencies.append(time.perf_counter() - started)

        tasks = []
        began = time.perf_counter()
        total = int(rate * duration)
        for uid in range(total):
            delay = began + uid / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(uid)))
        await asyncio.gather(*tasks)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=200.0, help="reviews per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)
    from pillion.tls.devca import issue, new_ca

    work = Path(tempfile.mkdtemp(prefix="pillion-webhook-bench-"))
    authority = new_ca("bench CA")
    (work / "ca.pem").write_bytes(authority.cert_pem)
    pair = issue(authority, dns_names=(SERVICE,))
    (work / "tls.crt").write_bytes(pair.cert_pem)
    (work / "tls.key").write_bytes(pair.key_pem)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "pillion"), "webhook", "--listen", f"127.0.0.1:{port}",
         "--cert", str(work / "tls.crt"), "--key", str(work / "tls.key")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    print("webhook_bench: the webhook did not start", file=sys.stderr)
                    return 1
                time.sleep(0.05)
        asyncio.run(load(port, work / "ca.pem", args.rate, 1.0))  # warm-up
        latencies = asyncio.run(load(port, work / "ca.pem", args.rate, args.duration))
    finally:
        server.terminate()
        server.wait(timeout=20)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"\nwebhook_bench: {len(latencies)} reviews at {args.rate:g}/s over HTTPS keep-alive")
    print(f"  p50 {p50:.2f} ms   p99 {p99:.2f} ms   max {latencies[-1] * 1000:.2f} ms\n")
    print(f"webhook_bench p50_ms={p50:.2f} p99_ms={p99:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
