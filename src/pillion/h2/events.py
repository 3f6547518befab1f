"""What an HTTP/2 connection (``pillion.h2.connection``) reports, and the protocol's numbers
(RFC 9113 §7 error codes, §6.5.2 settings). No I/O.

``receive_data`` returns these events in the order the frames came. A stream's
end is its own event, ``StreamEnded``, after the event of the frame that
carried END_STREAM (whose ``stream_ended`` is then true too).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CANCEL",
    "COMPRESSION_ERROR",
    "ENHANCE_YOUR_CALM",
    "FLOW_CONTROL_ERROR",
    "FRAME_SIZE_ERROR",
    "INTERNAL_ERROR",
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "REFUSED_STREAM",
    "STREAM_CLOSED",
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "HeadReceived",
    "InformationalResponseReceived",
    "PingReceived",
    "RemoteSettingsChanged",
    "RequestReceived",
    "ResponseReceived",
    "SettingsAcknowledged",
    "StreamEnded",
    "StreamReset",
    "TrailersReceived",
    "WindowUpdated",
    "error_name",
]

NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
SETTINGS_TIMEOUT: Final = 0x4
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
CONNECT_ERROR: Final = 0xA
ENHANCE_YOUR_CALM: Final = 0xB
INADEQUATE_SECURITY: Final = 0xC
HTTP_1_1_REQUIRED: Final = 0xD

_NAMES: Final = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)

HEADER_TABLE_SIZE: Final = 0x1
ENABLE_PUSH: Final = 0x2
MAX_CONCURRENT_STREAMS: Final = 0x3
INITIAL_WINDOW_SIZE: Final = 0x4
MAX_FRAME_SIZE: Final = 0x5
MAX_HEADER_LIST_SIZE: Final = 0x6
ENABLE_CONNECT_PROTOCOL: Final = 0x8


def error_name(code: int) -> str:
    """``PROTOCOL_ERROR`` for 1, and so on; unknown codes as hex."""
    return _NAMES[code] if 0 <= code < len(_NAMES) else f"0x{code:x}"


class Event:
    """Something the peer did."""

    __slots__ = ()


class HeadReceived(Event):
    """A message's head: its HEADERS (``stream_ended``: with END_STREAM)."""

    __slots__ = ("headers", "stream_ended", "stream_id")

    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.stream_ended = ended


class RequestReceived(HeadReceived):
    """A request's HEADERS (server side)."""

    __slots__ = ()


class ResponseReceived(HeadReceived):
    """A final response's HEADERS (client side)."""

    __slots__ = ()


class InformationalResponseReceived(Event):
    """A 1xx response's HEADERS (client side)."""

    __slots__ = ("headers", "stream_id")

    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.stream_id = stream_id
        self.headers = headers


class TrailersReceived(Event):
    """HEADERS after the message's body: its trailers (END_STREAM follows)."""

    __slots__ = ("headers", "stream_id")

    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.stream_id = stream_id
        self.headers = headers


class DataReceived(Event):
    """A DATA frame's payload; ``flow_controlled_length`` counts its padding too:
    what to acknowledge once the data is consumed."""

    __slots__ = ("data", "flow_controlled_length", "stream_ended", "stream_id")

    def __init__(self, stream_id: int, data: bytes, flow_length: int, ended: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_length
        self.stream_ended = ended


class StreamEnded(Event):
    """The peer sent END_STREAM: nothing more comes on this stream."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamReset(Event):
    """The stream is over: the peer reset it (``remote``), or it broke a rule of
    the protocol and this side reset it."""

    __slots__ = ("error_code", "remote", "stream_id")

    def __init__(self, stream_id: int, error_code: int, remote: bool) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote


class WindowUpdated(Event):
    """The peer reopened a window (``stream_id`` 0: the connection's)."""

    __slots__ = ("delta", "stream_id")

    def __init__(self, stream_id: int, delta: int) -> None:
        self.stream_id = stream_id
        self.delta = delta


class RemoteSettingsChanged(Event):
    """The peer's SETTINGS (acknowledged already); ``changed_settings`` holds the
    values it named."""

    __slots__ = ("changed_settings",)

    def __init__(self, changed: dict[int, int]) -> None:
        self.changed_settings = changed


class SettingsAcknowledged(Event):
    """The peer applied this side's SETTINGS."""

    __slots__ = ()


class PingReceived(Event):
    """A PING (answered already)."""

    __slots__ = ()


class ConnectionTerminated(Event):
    """The peer's GOAWAY: streams above ``last_stream_id`` were not processed."""

    __slots__ = ("error_code", "last_stream_id")

    def __init__(self, error_code: int, last_stream_id: int) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
