"""RFC 5424 syslog messages with RFC 6587 octet-counting framing. No I/O.

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG``, framed
as ``MSG-LEN SP SYSLOG-MSG``, so a message may hold any byte, newlines included.
"""

from __future__ import annotations

import datetime
import re

from pillion.logs.buffer import Record

__all__ = ["FACILITIES", "frame", "frame_batch", "frame_with", "header", "header_field"]

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip
_INFO = 6
_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")


def header_field(value: str, limit: int) -> bytes:
    """A header field: printable US-ASCII without spaces, at most ``limit`` long,
    ``-`` when empty (RFC 5424 §6.2)."""
    cleaned = _PRINTUSASCII.sub("_", value)[:limit]
    return cleaned.encode("ascii") if cleaned else b"-"


def timestamp(epoch: float) -> bytes:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()


def frame(
    message: bytes, epoch: float, *, facility: int, hostname: bytes, app_name: bytes
) -> bytes:
    """One framed message at severity informational."""
    return frame_with(header(epoch, facility=facility, hostname=hostname, app_name=app_name),
                      message)  # fmt: skip


def header(epoch: float, *, facility: int, hostname: bytes, app_name: bytes) -> bytes:
    """Everything before the message: the same for every record read together."""
    pri = facility * 8 + _INFO
    return b"<%d>1 %s %s %s - - - " % (pri, timestamp(epoch), hostname, app_name)


def frame_with(head: bytes, message: bytes) -> bytes:
    return b"%d %s%s" % (len(head) + len(message), head, message)


def frame_batch(
    batch: list[Record], *, facility: int, hostname: bytes, app_name: bytes | None
) -> bytes:
    """The batch's records framed, back to back. ``app_name`` None: each record's
    input's name.

    The header is built once per (time, input), as the records of one read share
    their time, and ``MSG-LEN SP HEADER`` once per message length under it: per
    record there is a dict lookup and two list items, no formatting."""
    pieces: list[bytes] = []
    prefixes: dict[int, bytes] = {}  # message length -> MSG-LEN SP HEADER
    at, name, head = 0.0, "", b""
    for record in batch:
        if not prefixes or record.time != at or record.input != name:
            at, name = record.time, record.input
            app = app_name or header_field(name, 48)
            head = header(at, facility=facility, hostname=hostname, app_name=app)
            prefixes = {}
        message = record.message
        prefix = prefixes.get(len(message))
        if prefix is None:
            prefix = b"%d %s" % (len(head) + len(message), head)
            prefixes[len(message)] = prefix
        pieces.append(prefix)
        pieces.append(message)
    return b"".join(pieces)
