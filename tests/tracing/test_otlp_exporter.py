"""The span exporter alone: every span ends counted, as exported or dropped, also
when it stops while a batch is still being tried."""

from __future__ import annotations

import asyncio

from prometheus_client import generate_latest

from pillion.telemetry import Metrics
from pillion.telemetry.otlp import ExporterSettings, OtlpExporter
from pillion.telemetry.spans import SERVER, Span
from tests.helpers import async_wait_until, free_port, metric_value


def span(n: int) -> Span:
    return Span(
        name="GET", kind=SERVER, trace_id=f"{n + 1:032x}", span_id=f"{n + 1:016x}",
        parent_id="", start_ns=1, end_ns=2, attributes=[("url.path", "/")],
    )  # fmt: skip


def dropped(metrics: Metrics, reason: str) -> float:
    page = generate_latest(metrics.registry)
    return metric_value(page, f'pillion_tracing_spans_dropped_total{{reason="{reason}"}}') or 0


async def test_stopping_mid_retry_counts_the_batch_and_the_queue() -> None:
    metrics = Metrics(process=False)
    settings = ExporterSettings(
        url=f"http://127.0.0.1:{free_port()}/v1/traces",  # refused: retried
        queue_size=10, batch_size=4, flush_interval=0.01, max_retry_time=60.0, timeout=1.0,
    )  # fmt: skip
    exporter = OtlpExporter(settings, metrics)
    exporter.start()
    for n in range(20):
        exporter.add(span(n))
    requests = 'pillion_tracing_export_requests_total{result="retry"}'
    await async_wait_until(
        lambda: (metric_value(generate_latest(metrics.registry), requests) or 0) >= 1
    )
    # a drain's flush gives up (after one request's timeout): the collector is down
    await exporter.flush(asyncio.get_running_loop().time() + 3600)
    await exporter.close()
    assert dropped(metrics, "queue_full") == 10  # 20 offered, 10 kept
    assert dropped(metrics, "shutdown") == 10  # the batch being tried and the rest queued
    assert exporter.queued == 0
