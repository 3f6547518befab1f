from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pillion.telemetry import configure_logging, current_level, set_level


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("info", out)
    yield out
    configure_logging("info")


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_fields(stream: io.StringIO) -> None:
    logging.getLogger("pillion.proxy").info(
        "listening\nsecond line", extra={"address": "0.0.0.0:1", "n": 3}
    )
    [record] = lines(stream)
    assert record["level"] == "info"
    assert record["component"] == "proxy"
    assert record["message"] == "listening\nsecond line"
    assert record["address"] == "0.0.0.0:1"
    assert record["n"] == 3
    assert str(record["time"]).endswith("Z")


def test_level_filters_and_changes_at_run_time(stream: io.StringIO) -> None:
    log = logging.getLogger("pillion.x")
    log.debug("hidden")
    set_level("debug")
    assert current_level() == "debug"
    log.debug("shown")
    set_level("error")
    log.warning("hidden too")
    assert [r["message"] for r in lines(stream)] == ["shown"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        set_level("loud")


def test_exceptions_are_one_line_too(stream: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("pillion.y").exception("failed")
    [record] = lines(stream)
    assert record["error"] == "RuntimeError: boom"
    assert "Traceback" in str(record["traceback"])


def test_extra_fields_cannot_forge_the_base_fields(stream: io.StringIO) -> None:
    logging.getLogger("pillion.z").info("m", extra={"component": "other", "level_x": 1})
    [record] = lines(stream)
    assert record["component"] == "z"


def test_values_that_are_not_json_are_strings(stream: io.StringIO) -> None:
    logging.getLogger("pillion.z").info("m", extra={"thing": object()})
    assert str(lines(stream)[0]["thing"]).startswith("<object object")
