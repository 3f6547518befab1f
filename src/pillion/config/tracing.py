"""``telemetry.tracing``: a span per proxied request, exported over OTLP (HTTP or gRPC)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from pillion.config.proxy import UpstreamTlsConfig
from pillion.config.types import HttpUrl, Secret, Section
from pillion.config.units import Duration

__all__ = ["OtlpConfig", "SamplingConfig", "TracingConfig"]

_TRACES_PATH = "/v1/traces"


class OtlpConfig(Section):
    """Where spans go: an OpenTelemetry collector's OTLP/HTTP receiver (protobuf)."""

    endpoint: HttpUrl = Field(
        description="The collector's base URL. OTLP/HTTP: e.g. "
        "`http://otel-collector:4318`; spans are POSTed to `<endpoint>/v1/traces` (a URL "
        "that already ends in `/v1/traces` is used as it is). gRPC: e.g. "
        "`http://otel-collector:4317` (cleartext HTTP/2) or `https://...` (TLS), no path."
    )
    protocol: Literal["http/protobuf", "grpc"] = Field(
        "http/protobuf",
        description="`http/protobuf` (OTLP/HTTP, the collector's port 4318) or `grpc` "
        "(OTLP/gRPC, port 4317), as OpenTelemetry's `OTEL_EXPORTER_OTLP_PROTOCOL`. "
        "Default http/protobuf.",
    )
    headers: dict[str, Secret] = Field(
        default_factory=dict,
        description="Request headers (e.g. `Authorization` or an API key header); shown "
        "as *** everywhere.",
    )
    gzip: bool = Field(False, description="Compress request bodies with gzip.")
    timeout: Duration = Field(
        10.0, gt=0, description="How long one export request may take. Default 10s."
    )
    tls: UpstreamTlsConfig | None = Field(
        None,
        description="The CA (and client certificate) for an `https` endpoint. "
        "Default: the system's CAs.",
    )
    queue_size: int = Field(
        2048,
        ge=1,
        description="Spans kept while waiting to be sent; when full (a collector down "
        "or slow), new spans are dropped and counted "
        '(`pillion_tracing_spans_dropped_total{reason="queue_full"}`): memory stays '
        "bounded and requests never wait. Default 2048.",
    )
    batch_size: int = Field(512, ge=1, description="Most spans in one request. Default 512.")
    flush_interval: Duration = Field(
        1.0,
        gt=0,
        description="How long a span may wait for its batch to fill before it is sent. Default 1s.",
    )
    max_retry_time: Duration = Field(
        60.0,
        ge=0,
        description="How long a batch is retried (with backoff, and the collector's "
        "`Retry-After`) after a connection failure, a timeout, or a 429, 502, 503 or "
        "504, before it is dropped and counted. Default 1m.",
    )

    @field_validator("endpoint")
    @classmethod
    def _no_query(cls, value: str) -> str:
        if "?" in value or "#" in value:
            raise ValueError("give the collector's base URL, without a query or fragment")
        return value

    @model_validator(mode="after")
    def _grpc_has_no_path(self) -> OtlpConfig:
        if self.protocol == "grpc" and urlsplit(self.endpoint).path not in ("", "/"):
            raise ValueError(
                "a gRPC endpoint is the collector's address (http://host:4317), without "
                "a path: gRPC names the method itself"
            )
        return self

    def traces_url(self) -> str:
        """Where spans go: the OTLP/HTTP URL, or the gRPC collector's address."""
        base = self.endpoint.rstrip("/")
        if self.protocol == "grpc":
            return base
        return base if base.endswith(_TRACES_PATH) else base + _TRACES_PATH


class SamplingConfig(Section):
    """Which requests' spans are exported."""

    ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="The share of new traces (requests that come without a sampling "
        "decision) that are sampled, by trace id, so every hop with the same ratio "
        "agrees. A request whose caller decided (`traceparent` flags, B3 sampled) "
        "follows that decision (parent-based). Default 1.0.",
    )
    errors: bool = Field(
        True,
        description="Also export the span of every request that failed, sampled or "
        "not: a 5xx, no response, a gRPC server error (UNKNOWN, DEADLINE_EXCEEDED, "
        "UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS), and on outbound listeners a "
        "4xx. Default true.",
    )
    slower_than: Duration | None = Field(
        None,
        gt=0,
        description="Also export the span of every request that took at least this "
        "long, sampled or not. Default: none.",
    )


class TracingConfig(Section):
    """A span per proxied request (inbound: server spans; outbound: client spans),
    sent to an OpenTelemetry collector. Absent: no spans; `traceparent` still
    travels on as it came."""

    otlp: OtlpConfig = Field(description="The collector.")
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="Which spans are exported."
    )
    b3: Literal["off", "single", "multi"] = Field(
        "off",
        description="W3C `traceparent` is always read and written. With `single` or "
        "`multi`, B3 headers (both forms) are also read from requests without a valid "
        "`traceparent`, and written to the app in this form (`b3`, or `X-B3-TraceId`, "
        "`X-B3-SpanId`, `X-B3-Sampled`). Default off.",
    )
    service_name: str = Field(
        "pillion",
        min_length=1,
        description="The spans' `service.name` resource attribute. Default `pillion`; "
        "the pod's name, namespace and node come from `POD_NAME`, `POD_NAMESPACE` and "
        "`NODE_NAME` when set.",
    )
    resource_attributes: dict[str, str] = Field(
        default_factory=dict,
        description="More resource attributes, e.g. `{deployment.environment: prod}`.",
    )
    redact_query_params: list[str] = Field(
        default_factory=list,
        description="Query parameters whose values are replaced by `***` in the "
        "`url.query` attribute, beside those redacted always (any name containing "
        "token, key, secret, password, sig, code, session, auth, ...). Header values "
        "are never recorded, except `User-Agent`.",
    )
