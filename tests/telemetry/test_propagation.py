"""Reading and writing trace context with tracing on: W3C ``traceparent`` first,
B3 (single and multi) when there is none, parent-based sampling, and a ratio of
trace ids for new traces."""

from __future__ import annotations

import pytest

from pillion.telemetry.tracecontext import Propagation, valid_traceparent

TRACE = b"4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = b"00f067aa0ba902b7"


def test_a_traceparent_is_continued_with_a_new_span_and_its_decision() -> None:
    propagation = Propagation(0.0)
    for flag, sampled in ((b"01", True), (b"00", False), (b"03", True)):
        span = propagation.start(b"00-" + TRACE + b"-" + SPAN + b"-" + flag, None)
        assert (span.trace_id, span.parent_id, span.sampled) == (TRACE, SPAN, sampled)
        assert span.span_id != SPAN
        assert len(span.span_id) == 16
        assert valid_traceparent(span.traceparent())
        assert span.traceparent().endswith(b"-01" if sampled else b"-00")


@pytest.mark.parametrize(
    "bad",
    [b"00-" + b"0" * 32 + b"-" + SPAN + b"-01", b"00-" + TRACE + b"-" + b"0" * 16 + b"-01",
     b"ff-" + TRACE + b"-" + SPAN + b"-01", b"00-" + TRACE.upper() + b"-" + SPAN + b"-01",
     b"00-" + TRACE + b"-" + SPAN + b"-01-extra", b"garbage", b""],
)  # fmt: skip
def test_an_invalid_traceparent_starts_a_new_trace(bad: bytes) -> None:
    span = Propagation(1.0).start(bad, None)
    assert span.trace_id != TRACE
    assert span.parent_id == b""
    assert span.sampled


def test_the_ratio_decides_by_trace_id_so_every_hop_agrees() -> None:
    assert not any(Propagation(0.0).start(b"", None).sampled for _ in range(200))
    assert all(Propagation(1.0).start(b"", None).sampled for _ in range(200))
    half = Propagation(0.5)
    decisions = [half.start(b"", None) for _ in range(2000)]
    share = sum(span.sampled for span in decisions) / len(decisions)
    assert 0.4 < share < 0.6
    # the same trace id, met again without a decision (B3 deferred), gets the same one
    for span in decisions[:50]:
        again = half.start(b"", [(b"x-b3-traceid", span.trace_id), (b"x-b3-spanid", SPAN)])
        assert again.sampled == span.sampled


@pytest.mark.parametrize(
    ("fields", "trace", "parent", "sampled"),
    [
        ([(b"b3", TRACE + b"-" + SPAN + b"-1")], TRACE, SPAN, True),
        ([(b"b3", TRACE + b"-" + SPAN + b"-0")], TRACE, SPAN, False),
        ([(b"b3", TRACE + b"-" + SPAN + b"-d")], TRACE, SPAN, True),
        ([(b"b3", TRACE + b"-" + SPAN + b"-1-" + b"1" * 16)], TRACE, SPAN, True),
        ([(b"b3", b"a3ce929d0e0e4736-" + SPAN)], b"0" * 16 + b"a3ce929d0e0e4736", SPAN, None),
        ([(b"x-b3-traceid", TRACE), (b"x-b3-spanid", SPAN), (b"x-b3-sampled", b"1")],
         TRACE, SPAN, True),
        ([(b"x-b3-traceid", TRACE), (b"x-b3-spanid", SPAN), (b"x-b3-sampled", b"0")],
         TRACE, SPAN, False),
        ([(b"x-b3-traceid", TRACE), (b"x-b3-spanid", SPAN), (b"x-b3-flags", b"1"),
          (b"x-b3-sampled", b"0")], TRACE, SPAN, True),
        ([(b"x-b3-traceid", TRACE.upper()), (b"x-b3-spanid", SPAN)], TRACE, SPAN, None),
    ],
)  # fmt: skip
def test_b3_single_and_multi(
    fields: list[tuple[bytes, bytes]], trace: bytes, parent: bytes, sampled: bool | None
) -> None:
    for ratio in (0.0, 1.0):
        span = Propagation(ratio, "single").start(b"", fields)
        assert (span.trace_id, span.parent_id) == (trace, parent)
        assert span.sampled == (sampled if sampled is not None else ratio == 1.0)


@pytest.mark.parametrize(
    "fields",
    [[(b"b3", b"nothex-" + SPAN)], [(b"b3", TRACE + b"-short")], [(b"b3", b"0" * 32 + b"-" + SPAN)],
     [(b"b3", TRACE + b"-" + SPAN + b"-x")], [(b"b3", TRACE + b"-" + SPAN + b"-1-2-3")],
     [(b"x-b3-traceid", TRACE)], [(b"x-b3-spanid", SPAN)],
     [(b"x-b3-traceid", TRACE), (b"x-b3-spanid", b"0" * 16)]],
)  # fmt: skip
def test_broken_b3_starts_a_new_trace(fields: list[tuple[bytes, bytes]]) -> None:
    span = Propagation(1.0, "multi").start(b"", fields)
    assert span.trace_id != TRACE
    assert span.parent_id == b""


def test_a_lone_b3_decision_starts_a_trace_with_it() -> None:
    assert not Propagation(1.0, "single").start(b"", [(b"b3", b"0")]).sampled
    assert Propagation(0.0, "single").start(b"", [(b"b3", b"1")]).sampled


def test_headers_written_in_each_form() -> None:
    span = Propagation(1.0).start(b"00-" + TRACE + b"-" + SPAN + b"-01", None)
    me = span.span_id
    assert Propagation(1.0).headers(span) == [(b"traceparent", b"00-" + TRACE + b"-" + me + b"-01")]
    assert Propagation(1.0, "single").headers(span)[1] == (b"b3", TRACE + b"-" + me + b"-1")
    assert Propagation(1.0, "multi").headers(span)[1:] == [
        (b"x-b3-traceid", TRACE), (b"x-b3-spanid", me), (b"x-b3-sampled", b"1")]  # fmt: skip


def test_incoming_reads_a_header_list_as_it_came() -> None:
    headers = [(b"Host", b"x"), (b"X-B3-TraceId", TRACE), (b"X-B3-SpanId", SPAN)]
    span = Propagation(1.0, "multi").incoming(headers)
    assert (span.trace_id, span.parent_id) == (TRACE, SPAN)
    # B3 is not read when it is off
    assert Propagation(1.0).incoming(headers).trace_id != TRACE
