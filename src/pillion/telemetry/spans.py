"""Finished spans as Pillion keeps them, and their OTLP encoding (no I/O).

A ``Span`` is the few values a finished request leaves: ids as hex, times in
nanoseconds since the epoch, attributes as pairs. Nothing protobuf is made on
the request path: ``encode`` turns a batch into an ``ExportTraceServiceRequest``
(the official ``opentelemetry-proto`` messages) when the batch is sent. The
messages are imported on first use, so a Pillion without tracing never loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pillion import __version__

if TYPE_CHECKING:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

__all__ = ["CLIENT", "SERVER", "AttributeValue", "Attributes", "Span", "SpanEvent", "encode"]

AttributeValue = str | int | float | bool
Attributes = list[tuple[str, AttributeValue]]

# OTLP's SpanKind values (trace.proto)
SERVER = 2
CLIENT = 3
_STATUS_ERROR = 2


class SpanEvent:
    """Something that happened during a span (a retry), at ``time_ns``."""

    __slots__ = ("attributes", "name", "time_ns")

    def __init__(self, name: str, time_ns: int, attributes: Attributes) -> None:
        self.name = name
        self.time_ns = time_ns
        self.attributes = attributes


class Span:
    """One finished span. ``parent_id`` is ``""`` for a root; ``error`` sets the
    span's status to Error (with ``error`` as its message)."""

    __slots__ = (
        "attributes",
        "end_ns",
        "error",
        "events",
        "kind",
        "name",
        "parent_id",
        "span_id",
        "start_ns",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        *,
        name: str,
        kind: int,
        trace_id: str,
        span_id: str,
        parent_id: str,
        start_ns: int,
        end_ns: int,
        attributes: Attributes,
        events: Sequence[SpanEvent] = (),
        error: str | None = None,
        trace_state: str = "",
    ) -> None:
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.attributes = attributes
        self.events = events
        self.error = error
        self.trace_state = trace_state


def encode(spans: Sequence[Span], resource: Attributes) -> bytes:
    """An OTLP ``ExportTraceServiceRequest`` of ``spans``, serialized: one resource
    (this Pillion), one instrumentation scope (``pillion``)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(_key_values(resource))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "pillion"
    scope_spans.scope.version = __version__
    add = scope_spans.spans.add
    for span in spans:
        message = add(
            trace_id=bytes.fromhex(span.trace_id),
            span_id=bytes.fromhex(span.span_id),
            parent_span_id=bytes.fromhex(span.parent_id) if span.parent_id else b"",
            trace_state=span.trace_state,
            name=span.name,
            kind=span.kind,
            start_time_unix_nano=span.start_ns,
            end_time_unix_nano=span.end_ns,
        )
        message.attributes.extend(_key_values(span.attributes))
        for event in span.events:
            message.events.add(
                time_unix_nano=event.time_ns,
                name=event.name,
                attributes=_key_values(event.attributes),
            )
        if span.error is not None:
            message.status.code = _STATUS_ERROR
            message.status.message = span.error
    data: bytes = request.SerializeToString()
    return data


# Attributes repeat from span to span (the method, the listener, the route, the
# status...): each distinct pair is made into a message once and copied after,
# three times cheaper than making it again. Bounded: emptied when full.
_KEY_VALUES: dict[tuple[str, AttributeValue, type], KeyValue] = {}
_KEY_VALUES_KEPT = 4096


def _key_values(attributes: Attributes) -> list[KeyValue]:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    made = _KEY_VALUES
    values: list[KeyValue] = []
    for key, value in attributes:
        found = made.get((key, value, type(value)))
        if found is None:
            any_value: Any
            if isinstance(value, bool):
                any_value = AnyValue(bool_value=value)
            elif isinstance(value, int):
                any_value = AnyValue(int_value=value)
            elif isinstance(value, float):
                any_value = AnyValue(double_value=value)
            else:
                any_value = AnyValue(string_value=value)
            found = KeyValue(key=key, value=any_value)
            if len(made) >= _KEY_VALUES_KEPT:
                made.clear()
            made[(key, value, type(value))] = found
        values.append(found)
    return values
