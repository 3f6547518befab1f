"""The span of each finished exchange, when tracing is on (``telemetry.tracing``).

An inbound listener's exchanges are server spans, an outbound listener's client
spans. Their attributes are OpenTelemetry's HTTP semantic conventions, plus
Pillion's route, cluster, listener and response flags; a retry is an event. A
span is exported when its trace is sampled, and also (``sampling``) when the
request failed or was slow, so those are never sampled away.

Nothing secret goes into a span: no header value but ``User-Agent``, and the
query with the values of credential-like parameters (``redact_query_params``
and any name with token, key, secret, password, sig, code... in it) as ``***``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

from pillion import __version__
from pillion.config.redaction import REDACTED, sensitive_name
from pillion.config.tracing import SamplingConfig, TracingConfig
from pillion.proxy import flags
from pillion.proxy.exchange import Exchange
from pillion.telemetry import Metrics
from pillion.telemetry.otlp import ExporterSettings, OtlpExporter
from pillion.telemetry.spans import CLIENT, SERVER, Attributes, Span, SpanEvent
from pillion.telemetry.tracecontext import Propagation, SpanContext
from pillion.tls import ClientTls

__all__ = ["ExchangeTracer", "Tracing", "resource_attributes"]

_NS = 1_000_000_000
_GRPC_SERVER_ERRORS = frozenset({b"2", b"4", b"12", b"13", b"14", b"15"})  # OTel's list


class ExchangeTracer:
    """Makes and queues the spans of one listener's exchanges."""

    __slots__ = ("_errors", "_exporter", "_kind", "_listener", "_redact", "_slower_than",
                 "propagation")  # fmt: skip

    def __init__(
        self,
        listener: str,
        *,
        outbound: bool,
        exporter: OtlpExporter,
        propagation: Propagation,
        sampling: SamplingConfig,
        redact_query_params: list[str],
    ) -> None:
        self._listener = listener
        self._kind = CLIENT if outbound else SERVER
        self._exporter = exporter
        self.propagation = propagation
        self._errors = sampling.errors
        self._slower_than = sampling.slower_than
        self._redact = frozenset(name.lower() for name in redact_query_params)

    def finished(self, exchange: Exchange, duration: float, end: float) -> SpanContext | None:
        """Queue the span of ``exchange`` (ended at ``end``, epoch seconds) if it is
        exported; the span's context if so (for exemplars)."""
        forwarded = exchange.forwarded
        context = forwarded.span if forwarded is not None else None
        failed = self._failed(exchange)
        if context is None:  # answered by Pillion before anything was forwarded
            context = self.propagation.incoming(exchange.head.headers)
        if not (
            context.sampled
            or (failed and self._errors)
            or (self._slower_than is not None and duration >= self._slower_than)
        ):
            return None
        self._exporter.add(self._span(exchange, context, duration, end, failed))
        return context

    def _failed(self, exchange: Exchange) -> bool:
        if exchange.status >= 500 or exchange.status == 0:
            return True
        if self._kind == CLIENT and exchange.status >= 400:
            return True
        grpc = exchange.grpc_status
        return grpc is not None and grpc in _GRPC_SERVER_ERRORS

    def _span(
        self, exchange: Exchange, context: SpanContext, duration: float, end: float, failed: bool
    ) -> Span:
        head = exchange.head
        path, _, query = head.target.partition(b"?")
        method = head.method.decode("latin-1")
        target = exchange.target
        route, cluster = ("", "") if target is None else target.labels
        attributes: Attributes = [
            ("http.request.method", method),
            ("url.path", path.decode("latin-1")),
            ("url.scheme", "https" if exchange.settings.scheme == b"https" else "http"),
            ("network.protocol.version", head.version.decode("latin-1")),
            ("network.peer.address", exchange.down.client_ip.decode("latin-1")),
            ("pillion.listener", self._listener),
        ]
        if query:
            attributes.append(("url.query", self._query(query)))
        host = head.host
        if host:
            name, port = _split_host(host.decode("latin-1"))
            attributes.append(("server.address", name))
            if port is not None:
                attributes.append(("server.port", port))
        agent = _field(exchange, b"user-agent")
        if agent:
            attributes.append(("user_agent.original", agent.decode("latin-1")))
        if exchange.status:
            attributes.append(("http.response.status_code", exchange.status))
        if route:
            attributes.append(("pillion.route", route))
        if cluster:
            attributes.append(("pillion.cluster", cluster))
        if exchange.flags != flags.NONE:
            attributes.append(("pillion.response_flags", exchange.flags))
        if exchange.bytes_in:
            attributes.append(("http.request.body.size", exchange.bytes_in))
        if exchange.bytes_out:
            attributes.append(("http.response.body.size", exchange.bytes_out))
        if exchange.attempts:
            attributes.append(("http.request.resend_count", exchange.attempts))
        grpc = exchange.grpc_status
        if grpc is not None:
            attributes.append(("rpc.system", "grpc"))
            attributes.append(("rpc.grpc.status_code", int(grpc) if grpc.isdigit() else -1))
        error: str | None = None
        if failed:
            error = (
                f"{exchange.status} {exchange.flags}".strip() if exchange.status else exchange.flags
            )
            attributes.append(("error.type", str(exchange.status or exchange.flags)))
        events = [
            SpanEvent(
                "retry",
                int(at * _NS),
                [
                    ("pillion.retry.reason", reason),
                    ("http.response.status_code", status),
                    ("pillion.response_flags", flag),
                ],
            )
            for at, reason, status, flag in exchange.retry_log or ()
        ]
        end_ns = int(end * _NS)
        tracestate = _field(exchange, b"tracestate")
        return Span(
            name=f"{method} {route}" if route else method,
            kind=self._kind,
            trace_id=context.trace_id.decode("ascii"),
            span_id=context.span_id.decode("ascii"),
            parent_id=context.parent_id.decode("ascii"),
            start_ns=end_ns - int(duration * _NS),
            end_ns=end_ns,
            attributes=attributes,
            events=events,
            error=error,
            trace_state=tracestate.decode("latin-1") if tracestate else "",
        )

    def _query(self, query: bytes) -> str:
        """The query with credential-like parameters' values as ``***``."""
        pairs = []
        for pair in query.split(b"&"):
            name, equals, value = pair.partition(b"=")
            text = unquote_to_bytes(name).decode("latin-1")
            if equals and value and (sensitive_name(text) or text.lower() in self._redact):
                pairs.append(f"{name.decode('latin-1')}={REDACTED}")
            else:
                pairs.append(pair.decode("latin-1"))
        return "&".join(pairs)


def _field(exchange: Exchange, name: bytes) -> bytes | None:
    for key, value in exchange.head.headers:
        if key.lower() == name:
            return value
    return None


def _split_host(host: str) -> tuple[str, int | None]:
    if host.startswith("["):  # [v6]:port
        address, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return address, int(port) if port.isdigit() else None
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return name, int(port)
    return host, None


class Tracing:
    """The proxy's tracing: one exporter and one way of propagating, shared by
    its HTTP listeners (each has its own ``ExchangeTracer``)."""

    def __init__(self, config: TracingConfig, metrics: Metrics) -> None:
        self.config = config
        self.propagation = Propagation(config.sampling.ratio, config.b3)
        otlp = config.otlp
        self.exporter = OtlpExporter(
            ExporterSettings(
                url=otlp.traces_url(),
                grpc=otlp.protocol == "grpc",
                headers={name: value.get_secret_value() for name, value in otlp.headers.items()},
                gzip=otlp.gzip,
                timeout=otlp.timeout,
                queue_size=otlp.queue_size,
                batch_size=otlp.batch_size,
                flush_interval=otlp.flush_interval,
                max_retry_time=otlp.max_retry_time,
                resource=resource_attributes(config, os.environ),
            ),
            metrics,
        )

    def tracer(self, listener: str, *, outbound: bool) -> ExchangeTracer:
        return ExchangeTracer(
            listener,
            outbound=outbound,
            exporter=self.exporter,
            propagation=self.propagation,
            sampling=self.config.sampling,
            redact_query_params=self.config.redact_query_params,
        )

    def start(self) -> None:
        """Begin sending (``TlsLoadError`` when the collector's TLS files are unusable)."""
        otlp = self.config.otlp
        if otlp.tls is not None:
            client = ClientTls.of(
                otlp.tls, alpn=("h2",) if otlp.protocol == "grpc" else ("http/1.1",)
            )
            client.load()
            self.exporter.use_tls(client.context)
        self.exporter.start()

    async def flush(self, deadline: float) -> None:
        await self.exporter.flush(deadline)

    async def close(self) -> None:
        await self.exporter.close()


def resource_attributes(config: TracingConfig, environ: Mapping[str, str]) -> Attributes:
    """This Pillion as the spans' resource: its service name, the pod it runs in
    (from the Downward API variables the injector sets), and the configured extras."""
    attributes: Attributes = [
        ("service.name", config.service_name),
        ("telemetry.sdk.name", "pillion"),
        ("telemetry.sdk.language", "python"),
        ("telemetry.sdk.version", __version__),
        ("process.pid", os.getpid()),  # a proxy worker's own
    ]
    for variable, key in (("POD_NAME", "k8s.pod.name"), ("POD_NAMESPACE", "k8s.namespace.name"),
                          ("NODE_NAME", "k8s.node.name")):  # fmt: skip
        value = environ.get(variable)
        if value:
            attributes.append((key, value))
    named = {key for key, _ in attributes}
    attributes += [(k, v) for k, v in config.resource_attributes.items() if k not in named]
    if any(key == "service.name" for key in config.resource_attributes):
        attributes = [(k, v) for k, v in attributes if k != "service.name"]
        attributes.insert(0, ("service.name", config.resource_attributes["service.name"]))
    return attributes
