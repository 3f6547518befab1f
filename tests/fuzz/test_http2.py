"""The HTTP/2 target under Hypothesis: mutated seeds through its check, and
sequences of frames built from their fields (any type, flags and stream, small
payloads), which the connection must read or refuse with a GOAWAY."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.targets import http2, load
from tests.fuzz.strategies import FUZZ, mutated

frames = st.builds(
    lambda kind, flags, stream_id, payload: (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    ),
    st.integers(0, 10),
    st.sampled_from([0, 0x1, 0x4, 0x5, 0x8, 0x20, 0x25, 0xFF]),
    st.sampled_from([0, 1, 2, 3, 5, 7, 0x7FFFFFFF]),
    st.binary(max_size=24) | st.sampled_from([b"\x82\x86\x84\x41\x01a", b"\x00\x00\x00\x01"]),
)


@settings(FUZZ, max_examples=200)
@given(mutated(load("http2")))
def test_mutated_frames(data: bytes) -> None:
    http2.check(data)


@settings(FUZZ, max_examples=200)
@given(st.lists(frames, max_size=12).map(b"".join))
def test_any_frames(data: bytes) -> None:
    http2.check(data)
