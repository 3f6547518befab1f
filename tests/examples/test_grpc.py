"""``examples/grpc.yaml`` run for real: grpcio clients and servers (the demo's echo
service) on both sides, a gRPC call in to the app, and the app's calls out
balanced call by call over two inventory servers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from pillion.demo import grpc_echo
from tests.examples.running import running_example
from tests.helpers import PillionProcess, free_port, http, metric_value, wait_until


@dataclass
class Pod:
    pillion: PillionProcess
    inbound: int
    outbound: int

    def unary(self, data: bytes) -> tuple[bytes, dict[str, Any]]:
        """A ``Unary`` call in: the reply and its initial metadata."""
        with grpc_echo.channel(f"127.0.0.1:{self.inbound}") as channel:
            reply, initial, _ = grpc_echo.unary(channel, data, timeout=10)
        return reply, initial

    def metric(self, series: str) -> float | None:
        return metric_value(http("GET", f"{self.pillion.status_url}/metrics")[2], series)


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    inbound, outbound = free_port(), free_port()
    with (
        grpc_echo.serve(0, name="app") as app,
        grpc_echo.serve(0, name="inventory-a") as one,
        grpc_echo.serve(0, name="inventory-b") as two,
    ):
        moves = {
            "port: 50051": f"port: {app.port}",
            "0.0.0.0:15006": f"127.0.0.1:{inbound}",
            "127.0.0.1:15001": f"127.0.0.1:{outbound}",
            '["inventory.shop.svc.cluster.local:50051"]': f'["{one.target}", "{two.target}"]',
            # the echo service stands in for the app's own service
            "prefix: /shop.Orders/": f"prefix: /{grpc_echo.SERVICE}/",
        }
        with running_example("grpc.yaml", tmp_path, moves) as pillion:
            yield Pod(pillion, inbound, outbound)


def test_a_call_in_reaches_the_apps_grpc_server(pod: Pod) -> None:
    reply, initial = pod.unary(b"order-1")
    assert (reply, initial["x-served-by"]) == (b"order-1", "app")
    with grpc_echo.channel(f"127.0.0.1:{pod.inbound}") as channel:
        assert grpc_echo.server_stream(channel, b"3:2", timeout=10) == [b"aa", b"bb", b"cc"]
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary("/grpc.reflection.v1.ServerReflection/Info")(b"", timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as unknown:
            channel.unary_unary("/other.Service/Call")(b"", timeout=10)
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED  # no route
    labels = 'cluster="",code="200",flags="-",grpc_status="0",listener="grpc",method="POST"'
    assert pod.metric(f'pillion_requests_total{{{labels},route="orders"}}') == 2


def test_the_apps_calls_out_are_balanced_one_by_one_and_unavailable_is_retried(
    pod: Pod,
) -> None:
    served: Counter[str] = Counter()
    with grpc_echo.channel(f"127.0.0.1:{pod.outbound}") as channel:  # one connection
        for _ in range(20):
            _, initial, _ = grpc_echo.unary(channel, b"stock?", timeout=10)
            served[str(initial["x-served-by"])] += 1
        assert set(served) == {"inventory-a", "inventory-b"}
        # UNAVAILABLE from a server that did not start the call is tried again,
        # and the client sees the code only when every try got it
        with pytest.raises(grpc.RpcError) as failed:
            grpc_echo.unary(channel, b"status:14", timeout=10)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    wait_until(lambda: any(r.get("grpc_status") == 14 for r in pod.pillion.records()))
    [line] = [r for r in pod.pillion.records() if r.get("grpc_status") == 14]
    assert (line["listener"], line["cluster"], line["retries"]) == ("inventory", "inventory", 2)
