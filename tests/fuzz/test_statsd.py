"""The StatsD target under Hypothesis: mutated packets through its check, and
well-formed lines built from their fields, which must give exactly that sample."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.targets import load, statsd
from pillion.exporters.statsd_parse import RawSample, sample_value, split_packet
from tests.fuzz.strategies import FUZZ, mutated

names = st.from_regex(r"[a-z][a-z0-9_.]{0,15}", fullmatch=True)
tag_parts = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
tags = st.lists(st.tuples(tag_parts, tag_parts), max_size=3).map(
    lambda pairs: "#" + ",".join(f"{k}:{v}" for k, v in pairs) if pairs else ""
)
numbers = st.floats(-1e9, 1e9, allow_nan=False)
rates = st.sampled_from([1.0, 0.5, 0.25, 0.1, 0.001])


@settings(FUZZ, max_examples=150)
@given(mutated(load("statsd")))
def test_mutated_packets(data: bytes) -> None:
    statsd.check(data)


@FUZZ
@given(names, numbers, st.sampled_from(["c", "g", "ms", "h", "d"]), rates, tags, st.booleans())
def test_a_well_formed_line_gives_its_sample(
    name: str, number: float, kind: str, rate: float, tag_text: str, explicit_rate: bool
) -> None:
    number = abs(number) if kind == "c" else number
    line = f"{name}:{number!r}|{kind}"
    if rate != 1.0 or explicit_rate:
        line += f"|@{rate!r}"
    if tag_text:
        line += f"|{tag_text}"
    samples: list[RawSample] = []
    drops: Counter[str] = Counter()
    split_packet(line, samples, drops)
    assert samples == [(name, repr(number), kind, rate, tag_text)]
    assert not drops
    value = sample_value(repr(number), kind, rate)
    expected = {"c": number / rate, "ms": number / 1000.0}.get(kind, number)
    assert value is not None
    assert math.isclose(value, expected)


@FUZZ
@given(names, st.text(alphabet="abcdefghij0123456789-_", min_size=1, max_size=10))
def test_a_set_member_is_its_text(name: str, member: str) -> None:
    samples: list[RawSample] = []
    split_packet(f"{name}:{member}|s", samples, Counter())
    assert samples == [(name, member, "s", 1.0, "")]
