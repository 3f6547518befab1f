"""The metrics registry's scrape hooks."""

from __future__ import annotations

import logging

import pytest

from pillion.telemetry.metrics import Metrics


async def test_a_failing_scrape_hook_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(process=False)
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("a bug in an exporter")

    async def fine() -> None:
        ran.append("fine")

    metrics.add_scrape_hook(broken)
    metrics.add_scrape_hook(fine)
    with caplog.at_level(logging.ERROR, logger="pillion.metrics"):
        await metrics.before_scrape()
    assert ran == ["fine"]
    [record] = [r for r in caplog.records if r.name == "pillion.metrics"]
    assert record.getMessage() == "scrape hook failed"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "a bug in an exporter"
