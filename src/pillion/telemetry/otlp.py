"""Send finished spans to an OpenTelemetry collector (OTLP/HTTP with protobuf
bodies, or OTLP/gRPC).

The request path only appends a span to a bounded queue (``add``): never an
allocation beyond the span, never a wait. One task sends the queue in batches,
when a batch is full or ``flush_interval`` after its first span. A batch the
collector could not take (no connection, a timeout, 429, 502, 503, 504; over
gRPC the codes OTLP calls retryable) is
tried again after a growing, jittered pause, or the collector's
``Retry-After``, until ``max_retry_time``; then it is dropped. Meanwhile the
queue fills, and once full new spans are dropped: a collector down for minutes
costs a bounded amount of memory and no request latency. Every span is counted
as exported or dropped, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import random
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter

from pillion.config.redaction import redact_url
from pillion.telemetry.metrics import Metrics
from pillion.telemetry.spans import Attributes, Span, encode

if TYPE_CHECKING:  # loaded when an exporter starts: a proxy without tracing needs neither
    import aiohttp

    from pillion.telemetry.grpcunary import GrpcUnaryClient

__all__ = ["DROP_REASONS", "ExporterSettings", "OtlpExporter"]

log = logging.getLogger("pillion.tracing")

DROP_REASONS = ("queue_full", "rejected", "retries_exhausted", "shutdown")
_RETRYABLE = frozenset({408, 429, 502, 503, 504})
_FIRST_PAUSE = 0.5
_MAX_PAUSE = 30.0


_GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# the codes the OTLP specification says to retry: CANCELLED, DEADLINE_EXCEEDED,
# RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS
_GRPC_RETRYABLE = frozenset({1, 4, 8, 10, 11, 14, 15})


@dataclass(frozen=True)
class _Answer:
    """What one export request came to."""

    accepted: bool
    retry: bool = False  # failed, may be tried again
    retry_after: float | None = None
    rejected: int = 0  # spans a partial success rejected
    what: str = ""  # the status, for logs


@dataclass(frozen=True)
class ExporterSettings:
    url: str  # the full /v1/traces URL (OTLP/HTTP), or the collector's (gRPC)
    grpc: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False
    timeout: float = 10.0
    queue_size: int = 2048
    batch_size: int = 512
    flush_interval: float = 1.0
    max_retry_time: float = 60.0
    resource: Attributes = field(default_factory=list)


class _Families:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.exported = Counter(
            "pillion_tracing_spans_exported",
            "Spans the collector accepted.",
            registry=registry,
        )
        self.dropped = Counter(
            "pillion_tracing_spans_dropped",
            "Spans not exported, by reason: queue_full (the collector did not keep "
            "up), rejected (refused by the collector), retries_exhausted, shutdown.",
            ["reason"],
            registry=registry,
        )
        self.requests = Counter(
            "pillion_tracing_export_requests",
            "Export requests to the collector, by result: ok, retry (a failure tried "
            "again), rejected (refused for good), exhausted (retried until "
            "max_retry_time).",
            ["result"],
            registry=registry,
        )
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for result in ("ok", "retry", "rejected", "exhausted"):
            self.requests.labels(result)


class OtlpExporter:
    """The queue of finished spans and the task that sends it."""

    def __init__(self, settings: ExporterSettings, metrics: Metrics) -> None:
        self.settings = settings
        families = metrics.family("tracing", _Families)
        self._exported = families.exported
        self._dropped = {reason: families.dropped.labels(reason) for reason in DROP_REASONS}
        self._requests = families.requests
        self._queue: deque[Span] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing queued and nothing being sent
        self._idle.set()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flushing = False  # a flush asked: send what is queued without waiting
        self._sending = 0  # spans in the batch being sent (or retried)
        self._ssl: ssl.SSLContext | None = None
        self._grpc: GrpcUnaryClient | None = None
        self._failing = False  # the last request failed: logged once until one succeeds
        self._headers = dict(settings.headers)
        self._headers["Content-Type"] = "application/x-protobuf"
        if settings.gzip:
            self._headers["Content-Encoding"] = "gzip"

    @property
    def queued(self) -> int:
        return len(self._queue)

    def add(self, span: Span) -> None:
        """Queue a finished span (from the request path: never waits)."""
        queue = self._queue
        if len(queue) >= self.settings.queue_size or self._closing:
            self._dropped["queue_full" if not self._closing else "shutdown"].inc()
            return
        queue.append(span)
        if len(queue) == 1:
            self._idle.clear()
            self._wake.set()
        elif len(queue) >= self.settings.batch_size:
            self._wake.set()

    def use_tls(self, context: ssl.SSLContext) -> None:
        """Verify an ``https`` collector with ``context`` (before ``start``)."""
        self._ssl = context

    def start(self) -> None:
        import aiohttp

        if self.settings.grpc:
            from pillion.telemetry.grpcunary import GrpcUnaryClient

            parts = urlsplit(self.settings.url)
            secure = parts.scheme == "https"
            self._grpc = GrpcUnaryClient(
                parts.hostname or "localhost",
                parts.port or (443 if secure else 80),
                tls=self._grpc_tls() if secure else None,
                timeout=self.settings.timeout,
            )
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            trust_env=False,
            connector=aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None,
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="otlp-exporter")

    async def flush(self, deadline: float) -> None:
        """Send what is queued, until ``deadline`` (``loop.time()``) at the latest, and
        for no longer than one export request may take: a collector that is down does
        not hold up a drain."""
        self._flushing = True
        self._wake.set()
        timeout = min(deadline - asyncio.get_running_loop().time(), self.settings.timeout)
        if timeout > 0 and self._task is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop; spans still queued are dropped (counted as ``shutdown``)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        unsent = len(self._queue) + self._sending  # the batch being tried included
        if unsent:
            self._dropped["shutdown"].inc(unsent)
            self._queue.clear()
            self._sending = 0
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._grpc is not None:
            await self._grpc.close()
            self._grpc = None

    def _grpc_tls(self) -> ssl.SSLContext:
        context = self._ssl if self._ssl is not None else ssl.create_default_context()
        context.set_alpn_protocols(["h2"])
        return context

    async def _run(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._queue) < settings.batch_size:
                # a batch fills, or its first span has waited long enough
                filled_by = loop.time() + settings.flush_interval
                while len(self._queue) < settings.batch_size and not self._flushing:
                    left = filled_by - loop.time()
                    if left <= 0:
                        break
                    try:
                        async with asyncio.timeout(left):
                            await self._wake.wait()
                    except TimeoutError:
                        break
                    self._wake.clear()
            while self._queue:
                batch = [
                    self._queue.popleft() for _ in range(min(settings.batch_size, len(self._queue)))
                ]
                self._sending = len(batch)
                await self._send(batch)
                self._sending = 0
            self._idle.set()

    async def _send(self, batch: list[Span]) -> None:
        settings = self.settings
        body = encode(batch, settings.resource)
        if settings.gzip:
            body = await asyncio.to_thread(gzip.compress, body, 6)
        give_up_at = time.monotonic() + settings.max_retry_time
        pause = _FIRST_PAUSE
        url = redact_url(settings.url)
        while True:
            answer = await (self._call(body) if settings.grpc else self._post(body))
            if answer.accepted:
                self._requests.labels("ok").inc()
                if answer.rejected:
                    self._dropped["rejected"].inc(answer.rejected)
                self._exported.inc(len(batch) - answer.rejected)
                if self._failing:
                    self._failing = False
                    log.info("tracing collector reachable again", extra={"url": url})
                return
            if not answer.retry:
                self._requests.labels("rejected").inc()
                self._dropped["rejected"].inc(len(batch))
                log.warning(
                    "tracing collector refused spans",
                    extra={"url": url, "status": answer.what, "spans": len(batch)},
                )
                return
            jittered = pause * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
            wait = answer.retry_after if answer.retry_after is not None else jittered
            if time.monotonic() + wait > give_up_at:
                self._requests.labels("exhausted").inc()
                self._dropped["retries_exhausted"].inc(len(batch))
                log.warning(
                    "tracing collector unreachable: spans dropped",
                    extra={"url": url, "spans": len(batch)},
                )
                return
            self._requests.labels("retry").inc()
            if not self._failing:
                self._failing = True
                log.warning("tracing collector failed: retrying",
                            extra={"url": url, "status": answer.what})  # fmt: skip
            await asyncio.sleep(wait)
            pause = min(pause * 2, _MAX_PAUSE)

    async def _post(self, body: bytes) -> _Answer:
        """One OTLP/HTTP request."""
        import aiohttp

        assert self._session is not None
        try:
            async with self._session.post(
                self.settings.url, data=body, headers=self._headers
            ) as response:
                answer = await response.read()
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return _Answer(False, retry=True, what=type(exc).__name__)
        if status == 200:
            return _Answer(True, rejected=_rejected(answer))
        return _Answer(False, status in _RETRYABLE, retry_after, what=str(status))

    async def _call(self, body: bytes) -> _Answer:
        """One OTLP/gRPC call."""
        from pillion.telemetry.grpcunary import frame

        assert self._grpc is not None
        headers = [(name, value) for name, value in self.settings.headers.items()]
        if self.settings.gzip:
            headers.append(("grpc-encoding", "gzip"))
        result = await self._grpc.call(
            _GRPC_METHOD, frame(body, compressed=self.settings.gzip), headers
        )
        if result.status is None:
            return _Answer(False, retry=True, what=result.detail)
        if result.status == 0:
            return _Answer(True, rejected=_rejected(result.message))
        what = f"gRPC {result.status} {result.detail}".strip()
        return _Answer(False, result.status in _GRPC_RETRYABLE, what=what)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` in seconds (an HTTP date is ignored),
    capped."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), _MAX_PAUSE)


def _rejected(answer: bytes) -> int:
    """``partial_success.rejected_spans`` of an ``ExportTraceServiceResponse``."""
    if not answer:
        return 0
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    response = ExportTraceServiceResponse()
    try:
        response.ParseFromString(answer)
    except DecodeError:
        return 0
    return int(response.partial_success.rejected_spans)
