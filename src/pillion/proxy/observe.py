"""What a listener records of each finished exchange: its metrics and its access
log line. Compiled with the rest of the per-request path (``setup.py``).

Once a second at most, the duration observation carries the request's trace id
as an exemplar (OpenMetrics); the others are tallied (``ListenerMetrics``). With
tracing, the span is made here (``ExchangeTracer``), and exemplars carry the
trace and span ids of exported spans only, so each leads to a trace that exists.
"""

from __future__ import annotations

import time
from time import perf_counter
from typing import Final

from pillion.proxy.accesslog import AccessLog
from pillion.proxy.exchange import Exchange
from pillion.proxy.gate import Peer
from pillion.proxy.metrics import ListenerMetrics
from pillion.proxy.tracing import ExchangeTracer
from pillion.telemetry.tracecontext import trace_id

__all__ = ["EXEMPLAR_INTERVAL", "ExchangeObserver"]

EXEMPLAR_INTERVAL: Final = 1.0  # seconds between trace-id exemplars on the duration histogram


class ExchangeObserver:
    """Counts and logs the finished exchanges of one listener."""

    __slots__ = ("_exemplar_at", "access_log", "metrics", "name", "tracer")

    def __init__(self, name: str, metrics: ListenerMetrics, access_log: AccessLog | None) -> None:
        self.name = name
        self.metrics = metrics
        self.access_log = access_log
        self.tracer: ExchangeTracer | None = None
        self._exemplar_at = -EXEMPLAR_INTERVAL  # when the last exemplar was attached

    def finished(self, exchange: Exchange) -> None:
        duration = perf_counter() - exchange.started_at
        head = exchange.head
        target = exchange.target
        grpc = exchange.grpc_status
        labels = ("", "") if target is None else target.labels
        if target is not None and target.tracked:
            target.finished(exchange.status, exchange.flags, retrying=exchange.retrying)
        forwarded = exchange.forwarded
        now = exchange.started_at + duration
        exemplar: dict[str, str] | None = None
        tracer = self.tracer
        if tracer is not None:
            span = tracer.finished(exchange, duration, time.time())
            if span is not None and now - self._exemplar_at >= EXEMPLAR_INTERVAL:
                self._exemplar_at = now
                exemplar = {
                    "trace_id": span.trace_id.decode("ascii"),
                    "span_id": span.span_id.decode("ascii"),
                }
        elif forwarded is not None and now - self._exemplar_at >= EXEMPLAR_INTERVAL:
            # the trace id of a request in the bucket, for OpenMetrics scrapers
            # (exemplars cost too much to attach to every request)
            self._exemplar_at = now
            exemplar = {"trace_id": trace_id(forwarded.traceparent)}
        self.metrics.finished(
            head.method, exchange.status, exchange.flags, labels, grpc,
            duration, exchange.bytes_in, exchange.bytes_out, exemplar,
        )  # fmt: skip
        access_log = self.access_log
        if access_log is not None:
            access_log.record(
                (
                    time.time() - duration,
                    self.name,
                    exchange.down.client_ip,
                    head,
                    exchange.status,
                    exchange.flags,
                    exchange.bytes_in,
                    exchange.bytes_out,
                    duration,
                    exchange.upstream_seconds,
                    forwarded.request_id if forwarded else b"",
                    forwarded.traceparent if forwarded else b"",
                    target,
                    exchange.attempts,
                    exchange.down.identity,
                    grpc,
                    exchange.grpc_message,
                    exchange.user,
                )
            )

    def rejected(self, peer: Peer, status: int, flag: str) -> None:
        """A request refused before it had an exchange (400, 408, 431...)."""
        self.metrics.request(b"OTHER", status, flag).inc()
        if self.access_log is not None:
            self.access_log.record(
                (time.time(), self.name, peer.client_ip, None, status, flag,
                 0, 0, 0.0, -1.0, b"", b"", None, 0, peer.identity, None, None, None)
            )  # fmt: skip
