"""The HTTP/2 connection state Pillion uses: ``h2``'s sans-IO ``H2Connection``,
configured for a proxy, with one rule moved from the connection to the stream.

``h2`` frames, decodes HPACK, keeps stream states and flow-control windows.
Two of its defaults do not fit a proxy and are changed here:

- Field validation is off (``validate_inbound_headers=False``): ``h2fields``
  checks requests itself, so that a malformed one resets its stream only.
- A body longer or shorter than its ``content-length`` is, for ``h2``, the end
  of the connection. RFC 9113 §8.1.1 makes it a stream error, and a proxy must
  not let one client's bad stream cancel the others on the connection; so the
  count is left to the caller (``Http2Stream`` and the upstream stream), who
  resets just that stream. Streams are made by ``h2`` itself, so its
  length-tracking hook is replaced on the streams of this connection class only.

And HPACK is encoded without Huffman coding (``_Encoder``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes, Settings
from h2.stream import H2Stream
from hpack import Encoder

__all__ = ["SettingCodes", "Settings", "new_connection", "take"]


class _Stream(H2Stream):
    """A stream whose body length is counted by its owner, not by ``h2``."""

    def _track_content_length(self, length: int, end_stream: bool) -> None:
        return None


_CHANGING = frozenset({b"x-request-id", b"traceparent", b"content-length", b"date"})


class _Encoder(Encoder):
    """HPACK as a proxy should use it: no Huffman coding (it costs more CPU than
    the bytes it saves on a pod's network; netty turned it off for the same
    reason), and the fields whose value changes on every message never enter the
    dynamic table, where they would only evict the ones that repeat."""

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return super().encode(
            [
                (name, value, True) if name in _CHANGING else (name, value)
                for name, value in headers
            ],
            huffman=False,
        )


class _Connection(H2Connection):
    def _begin_new_stream(self, stream_id: int, allowed_ids: object) -> H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)  # type: ignore[arg-type]
        stream.__class__ = _Stream
        return stream


def new_connection(*, client_side: bool) -> H2Connection:
    """A fresh connection state (nothing sent yet: call ``initiate_connection``)."""
    config = H2Configuration(
        client_side=client_side,
        header_encoding=None,  # fields stay bytes end to end
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
        validate_outbound_headers=False,  # what is sent was built by ``h2fields``
        normalize_outbound_headers=False,
    )
    connection = _Connection(config=config)
    connection.encoder = _Encoder()
    return connection


def take(out: deque[bytes], size: int) -> bytes:
    """At most ``size`` bytes from the front of ``out`` (a body waiting for a
    window), taken off it: the next DATA frame's payload."""
    data = out[0]
    if len(data) <= size:
        out.popleft()
        return data
    out[0] = data[size:]
    return data[:size]
