"""Spans of proxied requests, exported to a real OTLP/HTTP receiver (decoded with
``opentelemetry-proto``): the trace tree client → inbound → app → outbound →
remote, attributes, sampling, B3, redaction, exemplars, HTTP/2 and gRPC, retries,
proxy workers. (The exporter against collectors that are down, busy or refusing:
tests/tracing.)"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from pillion.demo import grpc_echo
from tests.helpers import (
    free_port,
    metric_value,
    running_pillion,
    wait_until,
)
from tests.proxy.otlp_receiver import attributes, otlp_receiver
from tests.proxy.tracing_pod import (
    APP_SPAN,
    CLIENT,
    CLIENT_SPAN,
    CLIENT_TRACE,
    FAST,
    SERVER,
    pod,
)


def test_the_trace_tree_from_client_to_remote_nests_every_span(tmp_path: Path) -> None:
    env = {"POD_NAME": "shop-7d9f", "POD_NAMESPACE": "prod", "NODE_NAME": "node-1"}
    with pod(tmp_path, FAST + "\n    service_name: shop", env=env) as p:
        status = p.get(
            "/chain?page=2",
            {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "User-Agent": "curl/8.0",
             "tracestate": "vendor=1"},
        )  # fmt: skip
        assert status == 200
        wait_until(lambda: p.by_kind(SERVER) and p.by_kind(CLIENT))
        (server,) = p.by_kind(SERVER)
        (client,) = p.by_kind(CLIENT)
        # one trace: the client's
        assert server.trace_id.hex() == client.trace_id.hex() == CLIENT_TRACE
        # client → Pillion inbound (server span) → app
        assert server.parent_span_id.hex() == CLIENT_SPAN
        to_app = p.app.seen[0]["traceparent"]
        assert to_app == f"00-{CLIENT_TRACE}-{server.span_id.hex()}-01"
        # app (its own span) → Pillion outbound (client span) → remote
        assert client.parent_span_id.hex() == APP_SPAN
        assert p.remote.seen[0]["traceparent"] == f"00-{CLIENT_TRACE}-{client.span_id.hex()}-01"
        assert p.app.seen[0]["tracestate"] == "vendor=1"  # travels on as it came
        assert server.trace_state == "vendor=1"

        inbound = attributes(server.attributes)
        assert inbound["http.request.method"] == "GET"
        assert inbound["url.path"] == "/chain"
        assert inbound["url.query"] == "page=2"
        assert inbound["http.response.status_code"] == 200
        assert inbound["server.address"] == "127.0.0.1"
        assert inbound["server.port"] == p.inbound
        assert inbound["network.peer.address"] == "127.0.0.1"
        assert inbound["user_agent.original"] == "curl/8.0"
        assert inbound["pillion.route"] == "api"
        assert inbound["pillion.listener"] == "inbound"
        assert server.name == "GET api"
        assert server.end_time_unix_nano > server.start_time_unix_nano
        # the outbound call is inside the inbound one
        assert server.start_time_unix_nano <= client.start_time_unix_nano
        assert client.end_time_unix_nano <= server.end_time_unix_nano
        outbound = attributes(client.attributes)
        assert outbound["pillion.cluster"] == "remote"
        assert outbound["server.address"] == "remote"
        assert outbound["pillion.listener"] == "out"

        (resource,) = {tuple(sorted(r.items())) for r in p.receiver.resources()}
        assert isinstance(dict(resource)["process.pid"], int)
        assert dict(resource) | {
            "service.name": "shop",
            "k8s.pod.name": "shop-7d9f",
            "k8s.namespace.name": "prod",
            "k8s.node.name": "node-1",
        } == dict(resource)
        export = p.receiver.exports[0]
        assert export.path == "/v1/traces"
        assert export.headers["Content-Type"] == "application/x-protobuf"

        metrics = p.metrics()
        assert metric_value(metrics, "pillion_tracing_spans_exported_total") == 2


def test_a_request_without_a_trace_starts_one_and_the_app_continues_it(tmp_path: Path) -> None:
    with pod(tmp_path, FAST) as p:
        assert p.get("/plain") == 200
        wait_until(lambda: p.by_kind(SERVER))
        (server,) = p.by_kind(SERVER)
        assert server.parent_span_id == b""
        assert p.app.seen[0]["traceparent"] == (
            f"00-{server.trace_id.hex()}-{server.span_id.hex()}-01"
        )


def test_exemplars_are_the_ids_of_exported_spans(tmp_path: Path) -> None:
    with pod(tmp_path, FAST) as p:
        assert p.get("/one") == 200
        wait_until(lambda: p.by_kind(SERVER))
        (server,) = p.by_kind(SERVER)
        page = p.metrics("application/openmetrics-text; version=1.0.0").decode()
        exemplar = f'trace_id="{server.trace_id.hex()}"'
        lines = [line for line in page.splitlines() if exemplar in line]
        assert lines, page
        assert f'span_id="{server.span_id.hex()}"' in lines[0]


def test_sampling_follows_the_caller_and_the_ratio_but_keeps_errors_and_slow_ones(
    tmp_path: Path,
) -> None:
    tracing = FAST + "\n    sampling: {{ratio: 0.0, errors: true, slower_than: 300ms}}"
    with pod(tmp_path, tracing) as p:
        for _ in range(20):
            assert p.get("/unsampled") == 200  # roots at ratio 0: not sampled
        assert all(seen["traceparent"].endswith("-00") for seen in p.app.seen)
        # a caller that sampled its trace is followed (parent-based)
        assert p.get("/followed", {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}) == 200
        assert p.app.seen[-1]["traceparent"].endswith("-01")
        p.app.status = 503
        assert p.get("/failing") == 503  # an error is exported all the same
        p.app.status = 200
        p.app.hold = threading.Event()
        timer = threading.Timer(0.5, p.app.hold.set)
        timer.start()
        assert p.get("/slow") == 200  # so is a slow request
        timer.join()
        expected = {"/failing", "/followed", "/slow"}

        def by_path() -> dict[str, Any]:
            return {attributes(s.attributes)["url.path"]: s for s in p.by_kind(SERVER)}

        wait_until(lambda: expected <= set(by_path()))
        # an unsampled request is exported only as a slow one (a busy machine may
        # make one of them slow): never otherwise
        for path, exported in by_path().items():
            took = exported.end_time_unix_nano - exported.start_time_unix_nano
            assert path in expected or took >= 300_000_000, path
        failing = by_path()["/failing"]
        assert failing.status.code == 2  # Error
        assert attributes(failing.attributes)["error.type"] == "503"


def test_a_caller_that_did_not_sample_is_followed(tmp_path: Path) -> None:
    with pod(tmp_path, FAST) as p:  # ratio 1.0
        assert p.get("/no", {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"}) == 200
        assert p.get("/yes") == 200
        wait_until(lambda: p.by_kind(SERVER))
        assert [attributes(s.attributes)["url.path"] for s in p.by_kind(SERVER)] == ["/yes"]
        assert p.app.seen[0]["traceparent"].startswith(f"00-{CLIENT_TRACE}-")
        assert p.app.seen[0]["traceparent"].endswith("-00")


@pytest.mark.parametrize("form", ["single", "multi"])
def test_b3_is_read_and_written(tmp_path: Path, form: str) -> None:
    with pod(tmp_path, FAST + f"\n    b3: {form}") as p:
        # a Zipkin caller, 64-bit trace id, multi-header form
        assert p.get("/multi", {"X-B3-TraceId": "a3ce929d0e0e4736", "X-B3-SpanId": CLIENT_SPAN,
                                "X-B3-Sampled": "1"}) == 200  # fmt: skip
        # single-header form, 128-bit
        assert p.get("/single", {"b3": f"{CLIENT_TRACE}-{CLIENT_SPAN}-1"}) == 200
        # a valid traceparent wins over B3
        assert p.get("/both", {"traceparent": f"00-{CLIENT_TRACE}-{APP_SPAN}-01",
                               "b3": f"{'1' * 32}-{CLIENT_SPAN}-1"}) == 200  # fmt: skip
        # B3 that says "not sampled" is followed
        assert p.get("/denied", {"b3": "0"}) == 200
        wait_until(lambda: len(p.by_kind(SERVER)) == 3)
        spans = {attributes(s.attributes)["url.path"]: s for s in p.by_kind(SERVER)}
        assert spans["/multi"].trace_id.hex() == "0" * 16 + "a3ce929d0e0e4736"
        assert spans["/multi"].parent_span_id.hex() == CLIENT_SPAN
        assert spans["/single"].trace_id.hex() == CLIENT_TRACE
        assert spans["/both"].parent_span_id.hex() == APP_SPAN
        assert "/denied" not in spans
        seen = {s["path"]: s for s in p.app.seen}
        for path, span in spans.items():
            trace, me = span.trace_id.hex(), span.span_id.hex()
            assert seen[path]["traceparent"] == f"00-{trace}-{me}-01"
            if form == "single":
                assert seen[path]["b3"] == f"{trace}-{me}-1"
                assert "x-b3-traceid" not in seen[path]
            else:
                assert (seen[path]["x-b3-traceid"], seen[path]["x-b3-spanid"],
                        seen[path]["x-b3-sampled"]) == (trace, me, "1")  # fmt: skip
                assert "b3" not in seen[path]
        assert seen["/denied"].get("x-b3-sampled", "0") == "0"


def test_no_secret_reaches_a_span(tmp_path: Path) -> None:
    tracing = FAST + "\n    redact_query_params: [customer]"
    secrets = ["SEKRET-Q1", "SEKRET-Q2", "SEKRET-Q3", "SEKRET-H1", "SEKRET-H2", "SEKRET-H3",
               "SEKRET-Q4"]  # fmt: skip
    with pod(tmp_path, tracing) as p:
        target = ("/login?api_key=SEKRET-Q1&access_token=SEKRET-Q2&code=SEKRET-Q3"
                  "&customer=SEKRET-Q4&page=2")  # fmt: skip
        headers = {
            "Authorization": "Bearer SEKRET-H1",
            "Cookie": "session=SEKRET-H2",
            "X-Api-Key": "SEKRET-H3",
        }
        assert p.get(target, headers) == 200
        wait_until(lambda: p.by_kind(SERVER))
        (server,) = p.by_kind(SERVER)
        assert attributes(server.attributes)["url.query"] == (
            "api_key=***&access_token=***&code=***&customer=***&page=2"
        )
        raw = p.receiver.raw()
        for secret in secrets:
            assert secret.encode() not in raw


def test_http2_requests_have_spans_too(tmp_path: Path) -> None:
    with pod(tmp_path, FAST) as p:
        done = subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
             f"http://127.0.0.1:{p.inbound}/h2"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert done.stdout == "200"
        wait_until(lambda: p.by_kind(SERVER))
        (server,) = p.by_kind(SERVER)
        assert attributes(server.attributes)["network.protocol.version"] == "2"
        assert p.app.seen[0]["traceparent"].split("-")[2] == server.span_id.hex()


def test_each_proxy_worker_exports_its_spans(tmp_path: Path) -> None:
    with pod(tmp_path, FAST, workers=2) as p:
        for _ in range(40):
            assert p.get("/w") == 200
        wait_until(lambda: len(p.by_kind(SERVER)) == 40)
        assert len({span.span_id for span in p.by_kind(SERVER)}) == 40
        # both processes export (the kernel spreads the connections over them)
        pids = {resource["process.pid"] for resource in p.receiver.resources()}
        assert len(pids) == 2
        exported = "pillion_tracing_spans_exported_total"
        wait_until(lambda: metric_value(p.metrics(), exported) == 40)


def test_grpc_calls_carry_their_status(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver())
        echo = grpc_echo.serve(0, name="echo")
        stack.callback(echo.stop)
        inbound = free_port()
        body = f"""
app: {{port: {echo.port}, protocol: http2}}
telemetry:
  tracing:
    otlp: {{endpoint: "{receiver.url}", flush_interval: 100ms}}
    sampling: {{ratio: 0.0}}
proxy:
  access_log: null
  inbound:
    - {{name: in, listen: 127.0.0.1:{inbound}}}
"""
        stack.enter_context(running_pillion(tmp_path, body))
        with grpc_echo.channel(f"127.0.0.1:{inbound}") as channel:
            assert grpc_echo.unary(channel, b"fine")[0] == b"fine"  # OK, not sampled: no span
            with pytest.raises(grpc.RpcError) as failed:
                grpc_echo.unary(channel, b"status:14")  # UNAVAILABLE: an error, exported
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        wait_until(lambda: receiver.spans())
        (span,) = receiver.spans()
        found = attributes(span.attributes)
        assert found["rpc.system"] == "grpc"
        assert found["rpc.grpc.status_code"] == 14
        assert found["http.response.status_code"] == 200
        assert found["url.path"] == "/pillion.demo.Echo/Unary"
        assert span.status.code == 2


def test_a_retry_is_an_event_of_the_span(tmp_path: Path) -> None:
    with pod(tmp_path, FAST) as p:
        p.remote.fail_next = 1
        assert p.get("/chain") == 200
        wait_until(lambda: p.by_kind(CLIENT))
        (client,) = p.by_kind(CLIENT)
        assert attributes(client.attributes)["http.request.resend_count"] == 1
        (event,) = client.events
        assert event.name == "retry"
        assert attributes(event.attributes)["http.response.status_code"] == 503
        assert client.start_time_unix_nano <= event.time_unix_nano <= client.end_time_unix_nano
        assert len(p.remote.seen) == 2


def test_an_answer_of_pillions_own_has_a_span_in_the_callers_trace(tmp_path: Path) -> None:
    with pod(tmp_path, FAST) as p:
        assert p.get("/healthz", {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}) == 200
        wait_until(lambda: p.by_kind(SERVER))
        (server,) = p.by_kind(SERVER)
        assert (server.trace_id.hex(), server.parent_span_id.hex()) == (CLIENT_TRACE, CLIENT_SPAN)
        assert attributes(server.attributes)["pillion.route"] == "health"
        assert p.app.seen == []
