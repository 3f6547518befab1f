from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pillion.config.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("100us", 1e-4),
        (".5s", 0.5),
        ("0", 0.0),
        (0, 0.0),
        (" 10s ", 10.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("5", "invalid duration"),
        (5, "needs a unit"),
        (1.5, "needs a unit"),
        ("5x", "invalid duration"),
        ("-5s", "invalid duration"),
        ("s", "invalid duration"),
        ("", "invalid duration"),
        ("5 s", "invalid duration"),
        (True, "not a boolean"),
        (None, "expected a duration"),
        ([], "expected a duration"),
    ],
)
def test_bad_durations_say_how_to_write_one(value: object, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512KiB", 512 * 1024),
        ("64MiB", 64 * 1024**2),
        ("1GiB", 1024**3),
        ("1GB", 10**9),
        ("10KB", 10_000),
        ("100B", 100),
        ("1.5KiB", 1536),
        ("4096", 4096),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "value", ["64mb", "MiB", "1.3B", "-1", -1, "12 parsecs", True, None, 1.5, "0x10"]
)
def test_bad_sizes(value: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


@given(st.integers(min_value=0, max_value=2**50))
def test_size_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size


@given(st.integers(min_value=0, max_value=10**9).map(lambda ms: ms / 1000))
def test_duration_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-9)


def test_formats_are_what_people_write() -> None:
    assert format_duration(0.25) == "250ms"
    assert format_duration(300) == "5m"
    assert format_duration(20) == "20s"
    assert format_size(64 * 1024**2) == "64MiB"
    assert format_size(1000) == "1000B"
