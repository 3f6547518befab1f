"""Outputs: each reads the record log from its own cursor, in batches, and
acknowledges a batch only once it is written; a failure is retried (jittered
exponential backoff, no limit), so a record is never skipped."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable

from pillion.config.logs import LogOutputConfig
from pillion.logs.buffer import Record, RecordLog
from pillion.logs.metrics import OutputMetrics

__all__ = ["OutputWorker", "Sink", "sink_for"]

log = logging.getLogger("pillion.logs")

_BACKOFF_BASE, _BACKOFF_CAP = 0.1, 30.0


class Sink:
    """Where an output writes; ``write`` returns once the batch is safe there."""

    def open(self) -> None:
        """Open what is needed; ``OSError`` stops the start."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class StdoutSink(Sink):
    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]


class FileSink(Sink):
    """JSON lines appended to a file, fsynced before the batch is acknowledged."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def sink_for(config: LogOutputConfig) -> Sink:
    if config.type == "file":
        assert config.path is not None
        return FileSink(config.path)
    return StdoutSink()


class OutputWorker:
    def __init__(
        self,
        config: LogOutputConfig,
        records: RecordLog,
        sink: Sink,
        metrics: OutputMetrics,
        on_ack: Callable[[], None],
    ) -> None:
        self.config = config
        self.records = records
        self.sink = sink
        self.metrics = metrics
        self.on_ack = on_ack
        self.wakeup = asyncio.Event()
        self.flushing = False  # draining: send what there is without waiting to fill

    @property
    def caught_up(self) -> bool:
        return self.records.acked[self.config.name] >= self.records.next_seq - 1

    async def run(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        while True:
            batch = self.records.batch(config.name, config.batch_max_records,
                                       config.batch_max_bytes)  # fmt: skip
            if not batch:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            if len(batch) < config.batch_max_records and not self.flushing:
                deadline = loop.time() + config.batch_timeout
                while len(batch) < config.batch_max_records and loop.time() < deadline:
                    self.wakeup.clear()
                    try:
                        async with asyncio.timeout(max(0.0, deadline - loop.time())):
                            await self.wakeup.wait()
                    except TimeoutError:
                        break
                    batch = self.records.batch(config.name, config.batch_max_records,
                                               config.batch_max_bytes)  # fmt: skip
            await self._deliver(batch)
            self.records.ack(config.name, batch[-1].seq)
            self.metrics.records.inc(len(batch))
            self.on_ack()

    async def _deliver(self, batch: list[Record]) -> None:
        data = b"".join(record.data for record in batch)
        attempt = 0
        while True:
            try:
                await asyncio.to_thread(self.sink.write, data)
                return
            except OSError as exc:
                self.metrics.errors.inc()
                attempt += 1
                delay = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))  # noqa: S311
                log.warning(
                    "log output failed; retrying",
                    extra={"output": self.config.name, "error": str(exc), "retry_in": delay},
                )
                self.metrics.retries.inc()
                await asyncio.sleep(delay)
