"""A small OTLP/HTTP trace receiver for the tests: it decodes every export with the
official ``opentelemetry-proto`` messages and keeps the spans, the raw bodies and
the request headers. ``answers`` scripts its replies (status, headers) one request
at a time; once they run out it answers 200."""

from __future__ import annotations

import contextlib
import gzip
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.helpers import serve_http


@dataclass
class Export:
    path: str
    headers: dict[str, str]
    body: bytes  # as decoded (gunzipped)
    request: ExportTraceServiceRequest


@dataclass
class OtlpReceiver:
    port: int = 0
    exports: list[Export] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    partial_rejects: int = 0  # spans a 200 says it rejected (partial success)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[Span]:
        with self.lock:
            return spans_of([export.request for export in self.exports])

    def resources(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                attributes(resource.resource.attributes)
                for export in self.exports
                for resource in export.request.resource_spans
            ]

    def raw(self) -> bytes:
        with self.lock:
            return b"".join(export.body for export in self.exports)


def spans_of(requests: list[ExportTraceServiceRequest]) -> list[Span]:
    """Every span of these exports, in order."""
    return [
        span
        for request in requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


def attributes(pairs: Any) -> dict[str, Any]:
    """An OTLP attribute list as a dict of plain values."""
    found: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        found[pair.key] = getattr(pair.value, kind) if kind else None
    return found


@contextlib.contextmanager
def otlp_receiver(port: int = 0, tls: ssl.SSLContext | None = None) -> Iterator[OtlpReceiver]:
    """``tls``: serve HTTPS with this context (``url`` still says http)."""
    receiver = OtlpReceiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.attempts += 1
                answer = receiver.answers.pop(0) if receiver.answers else (200, {})
            status, headers = answer
            if status == 200:
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver.lock:
                    receiver.exports.append(
                        Export(self.path, dict(self.headers.items()), body, request)
                    )
                reply = ExportTraceServiceResponse()
                if receiver.partial_rejects:
                    reply.partial_success.rejected_spans = receiver.partial_rejects
                data = reply.SerializeToString()
            else:
                data = b"busy"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with serve_http(Handler, port=port, tls=tls) as bound:
        receiver.port = bound
        yield receiver


@dataclass
class GrpcReceiver:
    """A real grpcio server of OTLP's ``TraceService``; ``codes`` scripts the
    status of the next calls (then OK)."""

    port: int = 0
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    codes: list[Any] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[Span]:
        with self.lock:
            return spans_of(self.requests)


@contextlib.contextmanager
def grpc_receiver(
    tls: tuple[bytes, bytes] | None = None, compression: bool = False
) -> Iterator[GrpcReceiver]:
    """``tls``: the server's certificate chain and key (PEM)."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    receiver = GrpcReceiver()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(
            self, request: ExportTraceServiceRequest, context: Any
        ) -> ExportTraceServiceResponse:
            with receiver.lock:
                receiver.attempts += 1
                code = receiver.codes.pop(0) if receiver.codes else None
                if code is None:
                    receiver.requests.append(request)
                    receiver.metadata.append(dict(context.invocation_metadata()))
            if code is not None:
                context.abort(code, "scripted")
            return ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)  # type: ignore[no-untyped-call]
    if tls is not None:
        credentials = grpc.ssl_server_credentials([(tls[1], tls[0])])
        receiver.port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        receiver.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield receiver
    finally:
        server.stop(grace=None)
