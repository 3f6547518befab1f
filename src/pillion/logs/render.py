"""What outputs share: the ``Sink`` interface and JSON-lines rendering (``jsonlines``)."""

from __future__ import annotations

import os

from pillion.logs.buffer import Record
from pillion.logs.jsonlines import json_lines

__all__ = ["Sink", "json_lines", "write_all"]


class Sink:
    """Where an output writes; ``send`` returns once the batch is handed over
    (``OSError``: not, retry it).

    ``prepare``: a hint, the batch likely sent next, given while the one before it
    is sent; a sink that encodes a batch (HTTP: JSON and gzip) may start on it.
    ``encodes_ahead`` says whether the sink wants the hint."""

    encodes_ahead = False

    def prepare(self, batch: list[Record]) -> None:
        pass

    async def open(self) -> None:
        """Open what is needed; ``OSError`` stops the start."""

    async def send(self, batch: list[Record]) -> None:
        raise NotImplementedError

    async def sync(self) -> None:
        """Force what was sent to disk (``fsync: interval``); ``OSError`` if it failed."""

    async def close(self) -> None:
        pass


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
