"""The ring of recent warnings and errors: bounded, and only known-safe fields."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pillion.telemetry.recent import MAX_FIELD_LENGTH, RecentRecords


@pytest.fixture
def recent() -> Iterator[RecentRecords]:
    ring = RecentRecords(size=3)
    ring.attach()
    try:
        yield ring
    finally:
        ring.detach()


def test_keeps_the_last_warnings_and_errors_only(recent: RecentRecords) -> None:
    log = logging.getLogger("pillion.proxy")
    log.info("not kept")
    for n in range(5):
        log.warning("upstream slow %d", n)
    log.error("gone")
    records = recent.records()
    assert [r["message"] for r in records] == ["upstream slow 3", "upstream slow 4", "gone"]
    assert [r["level"] for r in records] == ["warning", "warning", "error"]
    assert records[0]["component"] == "proxy"
    assert records[0]["time"].endswith("Z")
    assert recent.seen == 6


def test_only_named_fields_are_copied(recent: RecentRecords) -> None:
    logging.getLogger("pillion.logs").warning(
        "log output failed; retrying",
        extra={
            "output": "loki",
            "error": "x" * 1000,
            "records": ["a line of the app's log"],  # data: never copied
            "body": "a response body",  # not named as safe: never copied
            "errors": ["first", "second"],
        },
    )
    fields = recent.records()[0]["fields"]
    assert set(fields) == {"output", "error", "errors"}
    assert len(fields["error"]) == MAX_FIELD_LENGTH
    assert fields["errors"] == "first; second"


def test_an_exception_is_summed_up(recent: RecentRecords) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("pillion.admin").exception("handler failed")
    assert recent.records()[0]["fields"] == {"error": "RuntimeError: boom"}


def test_other_loggers_are_not_seen(recent: RecentRecords) -> None:
    logging.getLogger("aiohttp.client").error("not ours")
    assert recent.records() == []


def test_adopt_keeps_the_previous_records(recent: RecentRecords) -> None:
    logging.getLogger("pillion.proxy").warning("before the reload")
    successor = RecentRecords(size=3)
    successor.adopt(recent)
    assert [r["message"] for r in successor.records()] == ["before the reload"]
    assert successor.seen == 1
