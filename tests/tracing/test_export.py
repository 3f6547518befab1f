"""The span exporter against real collectors (OTLP/HTTP and a grpcio OTLP/gRPC
server): down, never answering, busy with Retry-After, refusing, partial success,
headers, gzip, TLS, and what a stop does with the spans left. The exporter is
not compiled, so these run once (not again in the pure-Python pass)."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import grpc

from pillion.tls.devca import issue, new_ca
from tests.helpers import (
    blackholed_port,
    free_port,
    http,
    metric_value,
    wait_until,
)
from tests.proxy.otlp_receiver import attributes, grpc_receiver, otlp_receiver
from tests.proxy.tracing_pod import (
    CLIENT_SPAN,
    CLIENT_TRACE,
    SERVER,
    pod,
)


def test_collector_headers_and_gzip_reach_the_collector_but_not_the_config(
    tmp_path: Path,
) -> None:
    tracing = """    otlp:
      endpoint: "{otlp}/v1/traces"
      flush_interval: 100ms
      gzip: true
      headers: {{Authorization: "Bearer COLLECTOR-TOKEN"}}"""
    with pod(tmp_path, tracing) as p:
        assert p.get("/x") == 200
        wait_until(lambda: p.by_kind(SERVER))
        export = p.receiver.exports[0]
        assert export.path == "/v1/traces"  # a full traces URL is used as it is
        assert export.headers["Content-Encoding"] == "gzip"
        assert export.headers["Authorization"] == "Bearer COLLECTOR-TOKEN"
        _, _, config = http("GET", f"{p.pillion.admin_url}/config")
        assert b"COLLECTOR-TOKEN" not in config
        assert "COLLECTOR-TOKEN" not in p.pillion.output()


def test_a_collector_down_costs_bounded_spans_and_no_requests(tmp_path: Path) -> None:
    port = free_port()  # nothing listens yet: every export is refused
    tracing = f"""    otlp: {{{{endpoint: "http://127.0.0.1:{port}", flush_interval: 50ms,
            queue_size: 20, batch_size: 5, max_retry_time: 1m}}}}"""
    with contextlib.ExitStack() as stack:
        p = stack.enter_context(pod(tmp_path, tracing))
        for _ in range(100):
            assert p.get("/during-outage") == 200  # requests never wait for spans
        metrics = p.metrics()
        dropped = metric_value(metrics, 'pillion_tracing_spans_dropped_total{reason="queue_full"}')
        assert dropped is not None
        assert dropped >= 100 - 20 - 5  # kept: the queue, and the batch being tried
        assert metric_value(metrics, "pillion_tracing_spans_exported_total") == 0
        retries = 'pillion_tracing_export_requests_total{result="retry"}'
        wait_until(lambda: (metric_value(p.metrics(), retries) or 0) >= 1)
        assert "tracing collector failed: retrying" in p.pillion.output()
        # the collector comes back: what was kept is delivered, once
        late = stack.enter_context(otlp_receiver(port))

        def settled() -> bool:
            page = p.metrics()
            exported = metric_value(page, "pillion_tracing_spans_exported_total") or 0
            lost = metric_value(page, 'pillion_tracing_spans_dropped_total{reason="queue_full"}')
            return exported + (lost or 0) == 100

        wait_until(settled, timeout=60)
        spans = late.spans()
        assert 0 < len(spans) <= 25
        assert len({span.span_id for span in spans}) == len(spans)


def test_a_busy_collector_is_retried_after_its_retry_after(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver())
        receiver.answers = [(429, {"Retry-After": "1"}), (503, {})]
        tracing = f"""    otlp: {{{{endpoint: "{receiver.url}", flush_interval: 50ms}}}}"""
        p = stack.enter_context(pod(tmp_path, tracing))
        assert p.get("/x") == 200
        wait_until(lambda: receiver.spans(), timeout=30)
        assert receiver.attempts == 3
        assert len(receiver.spans()) == 1
        page = p.metrics()
        assert metric_value(page, 'pillion_tracing_export_requests_total{result="retry"}') == 2
        assert metric_value(page, "pillion_tracing_spans_exported_total") == 1


def test_a_refusing_collector_drops_and_counts(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver())
        receiver.answers = [(400, {})]
        tracing = f"""    otlp: {{{{endpoint: "{receiver.url}", flush_interval: 50ms}}}}"""
        p = stack.enter_context(pod(tmp_path, tracing))
        assert p.get("/refused") == 200
        rejected = 'pillion_tracing_spans_dropped_total{reason="rejected"}'
        wait_until(lambda: metric_value(p.metrics(), rejected) == 1)
        assert p.get("/accepted") == 200
        wait_until(lambda: receiver.spans())
        assert "tracing collector refused spans" in p.pillion.output()
        # a partial success counts the spans it rejected
        receiver.partial_rejects = 1
        assert p.get("/partly") == 200
        wait_until(lambda: metric_value(p.metrics(), rejected) == 2)


def test_spans_of_the_last_requests_are_sent_on_shutdown(tmp_path: Path) -> None:
    tracing = """    otlp: {{endpoint: "{otlp}", flush_interval: 1h, batch_size: 1000}}"""
    with pod(tmp_path, tracing) as p:
        for _ in range(3):
            assert p.get("/late") == 200
        assert p.receiver.spans() == []  # waiting for a batch that will not fill
        p.pillion.stop()
        assert p.pillion.wait_exit() == 0
        assert len(p.receiver.spans()) == 3


def test_otlp_grpc_to_a_real_grpc_collector(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(grpc_receiver())
        receiver.codes = [grpc.StatusCode.UNAVAILABLE]  # retried
        tracing = f"""    otlp:
      endpoint: "{receiver.url}"
      protocol: grpc
      flush_interval: 50ms
      headers: {{{{x-scope: "SEKRET-G"}}}}"""
        p = stack.enter_context(pod(tmp_path, tracing))
        assert (
            p.get("/grpc-exported", {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}) == 200
        )
        wait_until(lambda: receiver.spans(), timeout=30)
        (span,) = receiver.spans()
        assert span.trace_id.hex() == CLIENT_TRACE
        assert attributes(span.attributes)["url.path"] == "/grpc-exported"
        assert receiver.metadata[0]["x-scope"] == "SEKRET-G"
        assert receiver.attempts == 2
        # an invalid argument is not retried: dropped and counted
        receiver.codes = [grpc.StatusCode.INVALID_ARGUMENT]
        assert p.get("/refused") == 200
        rejected = 'pillion_tracing_spans_dropped_total{reason="rejected"}'
        wait_until(lambda: metric_value(p.metrics(), rejected) == 1)
        # the connection is kept and used again
        assert p.get("/again") == 200
        wait_until(lambda: len(receiver.spans()) == 2)
        assert "SEKRET-G" not in p.pillion.output()


def test_otlp_grpc_over_tls_with_gzip(tmp_path: Path) -> None:
    ca = new_ca()
    server = issue(ca, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(grpc_receiver(tls=(server.cert_pem, server.key_pem)))
        tracing = f"""    otlp:
      endpoint: "https://localhost:{receiver.port}"
      protocol: grpc
      gzip: true
      flush_interval: 50ms
      tls: {{{{ca: {tmp_path / "ca.crt"}}}}}"""
        p = stack.enter_context(pod(tmp_path, tracing))
        assert p.get("/over-tls") == 200
        # grpcio read the compressed message: it takes gzip only as grpc-encoding says
        wait_until(lambda: receiver.spans(), timeout=30)
        assert attributes(receiver.spans()[0].attributes)["url.path"] == "/over-tls"
        p.pillion.stop()  # the kept TLS connection does not hold up the stop
        assert p.pillion.wait_exit() == 0


def test_a_collector_that_never_answers_holds_up_no_request(tmp_path: Path) -> None:
    with blackholed_port() as port:  # connections hang: no refusal, no answer
        tracing = f"""    otlp: {{{{endpoint: "http://127.0.0.1:{port}", flush_interval: 50ms,
            timeout: 500ms, queue_size: 10, batch_size: 5, max_retry_time: 1s}}}}"""
        with pod(tmp_path, tracing) as p:
            for _ in range(60):
                assert p.get("/while-hanging") == 200
            full = 'pillion_tracing_spans_dropped_total{reason="queue_full"}'
            exhausted = 'pillion_tracing_spans_dropped_total{reason="retries_exhausted"}'

            def dropped(reason: str) -> float:
                return metric_value(p.metrics(), reason) or 0

            assert dropped(full) > 0  # the queue was full while requests went on
            # every span kept is tried until max_retry_time, then dropped: all counted
            wait_until(lambda: dropped(full) + dropped(exhausted) == 60, timeout=90)
            assert dropped(exhausted) >= 5
            assert metric_value(p.metrics(), "pillion_tracing_spans_exported_total") == 0


def test_otlp_http_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    ca = new_ca()
    server = issue(ca, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    client = issue(ca, spiffe_id="spiffe://cluster.local/ns/shop/sa/pillion")
    for name, pem in (("ca.crt", ca.cert_pem), ("server.crt", server.cert_pem),
                      ("server.key", server.key_pem), ("client.crt", client.cert_pem),
                      ("client.key", client.key_pem)):  # fmt: skip
        (tmp_path / name).write_bytes(pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.crt"))
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED  # the collector asks for Pillion's certificate
    with otlp_receiver(tls=context) as receiver:
        tracing = f"""    otlp:
      endpoint: "https://localhost:{receiver.port}"
      flush_interval: 50ms
      tls: {{{{ca: {tmp_path / "ca.crt"}, cert: {tmp_path / "client.crt"},
             key: {tmp_path / "client.key"}}}}}"""
        with pod(tmp_path, tracing) as p:
            assert p.get("/over-https") == 200
            wait_until(lambda: receiver.spans())
            assert attributes(receiver.spans()[0].attributes)["url.path"] == "/over-https"
            p.pillion.stop()
            assert p.pillion.wait_exit() == 0
