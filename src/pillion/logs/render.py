"""What outputs share: the ``Sink`` interface and JSON-lines rendering."""

from __future__ import annotations

import datetime
import os

import orjson

from pillion.logs.buffer import Record

__all__ = ["Sink", "json_lines", "write_all"]


class Sink:
    """Where an output writes; ``send`` returns once the batch is handed over
    (``OSError``: not, retry it)."""

    async def open(self) -> None:
        """Open what is needed; ``OSError`` stops the start."""

    async def send(self, batch: list[Record]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


def json_lines(batch: list[Record]) -> bytes:
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    lines = []
    stamp_of, stamp = -1.0, ""  # records read together share their time: format it once
    for record in batch:
        if record.time != stamp_of:
            stamp_of, stamp = record.time, iso(record.time)
        document: dict[str, object] = {
            "time": record.source_time or stamp,
            "input": record.input,
            "file": record.path,
            "message": record.message.decode("utf-8", "replace"),
        }
        if record.stream is not None:
            document["stream"] = record.stream
        if record.fields:
            document = {**record.fields, **document}  # the record's own keys win
        lines.append(dumps(document, option=newline))
    return b"".join(lines)


def iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
