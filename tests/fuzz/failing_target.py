"""A target that fails on any input holding a NUL: the runner's own tests make
``make fuzz`` find it, save its reproducer and report it."""

from __future__ import annotations

from fuzz.target import Target


def check(data: bytes) -> None:
    assert b"\x00" not in data, "a NUL got through"


TARGET = Target(
    name="failing", summary="fails on a NUL", check=check, tokens=(b"\x00",), max_len=64
)
