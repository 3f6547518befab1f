"""Records as JSON lines, the body of the file, stdout, HTTP and Elasticsearch
outputs. No I/O.

One object per record: ``time`` (ISO 8601, UTC, milliseconds; the runtime's own
for a CRI record), ``input``, ``file``, ``message``, ``stream`` when there is
one, after the record's fields (its own keys win). A record without fields, the
usual case, is written from pieces: the part before its message is the same
for every record read together, so it is rendered once, and per record only
its message is encoded. The bytes are the ones ``orjson.dumps`` gives the whole
object (a test holds them to it).
"""

from __future__ import annotations

import datetime

import orjson

from pillion.logs.buffer import Record

__all__ = ["iso", "json_lines"]


def json_lines(batch: list[Record]) -> bytes:
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    pieces: list[bytes] = []
    stamp_of, stamp = -1.0, ""  # records read together share their time: format it once
    head_of: tuple[str, str, str] = ("", "", "")
    head = b""  # {"time":..,"input":..,"file":..,"message":
    for record in batch:
        if record.time != stamp_of:
            stamp_of, stamp = record.time, iso(record.time)
        when = record.source_time or stamp
        if record.fields:
            document: dict[str, object] = {
                "time": when,
                "input": record.input,
                "file": record.path,
                "message": record.message.decode("utf-8", "replace"),
            }
            if record.stream is not None:
                document["stream"] = record.stream
            document = {**record.fields, **document}  # the record's own keys win
            pieces.append(dumps(document, option=newline))
            continue
        if not head or head_of != (when, record.input, record.path):
            head_of = (when, record.input, record.path)
            head = dumps({"time": when, "input": record.input, "file": record.path})[:-1]
            head += b',"message":'
        pieces.append(head)
        pieces.append(dumps(record.message.decode("utf-8", "replace")))
        if record.stream is None:
            pieces.append(b"}\n")
        else:
            pieces.append(b',"stream":' + dumps(record.stream) + b"}\n")
    return b"".join(pieces)


def iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
