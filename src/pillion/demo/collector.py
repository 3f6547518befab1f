"""The demo pod's trace collector: an OTLP/HTTP receiver, as an OpenTelemetry
Collector's would be on port 4318.

It decodes each export (``opentelemetry-proto``), appends every span to
``<workdir>/traces.jsonl`` as one JSON object, and serves the last traces as
indented trees at ``GET /traces``, each span under its parent.

Run: ``python -m pillion.demo.collector --port 4318 --workdir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["Collector", "main", "span_record", "trees"]

_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_KEPT_TRACES = 20


def span_record(span: Any, service: str) -> dict[str, Any]:
    """One OTLP span as a plain JSON object."""
    attributes = {}
    for pair in span.attributes:
        kind = pair.value.WhichOneof("value")
        attributes[pair.key] = getattr(pair.value, kind) if kind else None
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "name": span.name,
        "kind": _KINDS.get(span.kind, "unspecified"),
        "service": service,
        "start_unix_nano": span.start_time_unix_nano,
        "duration_ms": round((span.end_time_unix_nano - span.start_time_unix_nano) / 1e6, 3),
        "error": span.status.code == 2,
        "attributes": attributes,
        "events": [event.name for event in span.events],
    }


def trees(traces: dict[str, list[dict[str, Any]]]) -> str:
    """Each trace as an indented tree, children under their parent, oldest trace first."""
    lines: list[str] = []
    for trace_id, spans in traces.items():
        lines.append(f"trace {trace_id}")
        ids = {span["span_id"] for span in spans}
        children: dict[str, list[dict[str, Any]]] = {}
        for span in sorted(spans, key=lambda s: s["start_unix_nano"]):
            parent = span["parent_span_id"] if span["parent_span_id"] in ids else ""
            children.setdefault(parent, []).append(span)
        _walk(children, "", 1, lines)
    return "\n".join(lines) + "\n" if lines else "no traces yet\n"


def _walk(
    children: dict[str, list[dict[str, Any]]], parent: str, depth: int, lines: list[str]
) -> None:
    for span in children.get(parent, []):
        attributes = span["attributes"]
        status = attributes.get("http.response.status_code", "")
        where = attributes.get("pillion.listener", "")
        extra = f" ({', '.join(span['events'])})" if span["events"] else ""
        flag = " ERROR" if span["error"] else ""
        lines.append(
            f"{'  ' * depth}- {span['kind']} {span['name']} -> {status} "
            f"[{span['service']}/{where}] {span['duration_ms']} ms{flag}{extra}"
        )
        _walk(children, span["span_id"], depth + 1, lines)


class Collector:
    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "traces.jsonl"
        self.traces: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    async def export(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        try:
            message.ParseFromString(body)
        except DecodeError:
            return web.Response(status=400, text="not an ExportTraceServiceRequest\n")
        records = []
        for resource in message.resource_spans:
            service = next(
                (p.value.string_value for p in resource.resource.attributes
                 if p.key == "service.name"), "",
            )  # fmt: skip
            for scope in resource.scope_spans:
                records += [span_record(span, service) for span in scope.spans]
        with self.path.open("ab") as out:
            for record in records:
                out.write(orjson.dumps(record) + b"\n")
                self.traces.setdefault(record["trace_id"], []).append(record)
                self.traces.move_to_end(record["trace_id"])
        while len(self.traces) > _KEPT_TRACES:
            self.traces.popitem(last=False)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def show(self, request: web.Request) -> web.Response:
        return web.Response(text=trees(self.traces))


async def _serve(port: int, workdir: Path) -> None:
    collector = Collector(workdir)
    app = web.Application(client_max_size=16 << 20)
    app.router.add_post("/v1/traces", collector.export)
    app.router.add_get("/traces", collector.show)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pillion.demo.collector")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_serve(args.port, args.workdir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
