"""Outputs: each reads the record log from its own cursor, in batches, and
acknowledges a batch only once it is written; a failure is retried (jittered
exponential backoff, no limit), so a record is never skipped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Callable

from pillion.config.logs import LogOutputConfig
from pillion.logs.buffer import Record, RecordLog
from pillion.logs.http import (
    ElasticsearchSink,
    HttpSink,
    LokiSink,
    OtlpSink,
    PartlyDelivered,
    Refused,
)
from pillion.logs.metrics import OutputMetrics
from pillion.logs.render import Sink, json_lines, write_all
from pillion.logs.syslog import FACILITIES, frame_batch, header_field
from pillion.logs.tlsfiles import client_tls, load_tls
from pillion.tls import peer_identity

__all__ = ["OutputWorker", "Sink", "sink_for"]

log = logging.getLogger("pillion.logs")

_BACKOFF_BASE, _BACKOFF_CAP = 0.1, 5.0  # a sidecar: back within seconds of its receiver
_ENCODE_AHEAD = 2  # batches a sink may encode ahead of the one it sends


class StdoutSink(Sink):
    async def send(self, batch: list[Record]) -> None:
        await asyncio.to_thread(write_all, 1, json_lines(batch))


class FileSink(Sink):
    """JSON lines appended to a file; with ``fsync_each`` (``fsync: batch``) fsynced
    before the batch is acknowledged, otherwise when ``sync`` is called (or never)."""

    def __init__(self, path: str, fsync_each: bool = True) -> None:
        self.path = path
        self.fsync_each = fsync_each
        self.fd = -1

    async def open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        """A process killed inside a write can leave a last line cut short (its
        records are sent again: they were not acknowledged). End it, so that the
        next record starts a line of its own instead of completing a broken one."""
        size = os.fstat(self.fd).st_size
        if not size:
            return
        reader = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            last = os.pread(reader, 1, size - 1)
        finally:
            os.close(reader)
        if last != b"\n":
            write_all(self.fd, b"\n")

    async def send(self, batch: list[Record]) -> None:
        await asyncio.to_thread(self._write, json_lines(batch))

    def _write(self, data: bytes) -> None:
        write_all(self.fd, data)
        if self.fsync_each:
            os.fsync(self.fd)

    async def sync(self) -> None:
        if self.fd >= 0:
            await asyncio.to_thread(os.fsync, self.fd)

    async def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SyslogSink(Sink):
    """RFC 5424 over TCP with octet counting, one connection kept open; a batch
    counts as delivered once written and drained into the socket (plain syslog
    has no acknowledgement: lines in flight when the receiver crashes are lost)."""

    def __init__(self, config: LogOutputConfig) -> None:
        assert config.address is not None
        self.address = config.address
        self.facility = FACILITIES[config.facility]
        self.hostname = header_field(
            config.hostname or os.environ.get("HOSTNAME") or socket.gethostname(), 255
        )
        self.app_name = header_field(config.app_name, 48) if config.app_name else None
        self.timeout = config.timeout
        self.tls = client_tls(config)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connected(self) -> asyncio.StreamWriter:
        # A receiver that closed (a restart) sent FIN: writing there would "succeed"
        # into the void, so a connection with EOF pending is replaced first.
        if self._reader is not None and self._reader.at_eof():
            await self.close()
        if self._writer is None or self._writer.is_closing():
            host, port = self.address
            tls = self.tls
            async with asyncio.timeout(self.timeout):
                if tls is None:
                    self._reader, self._writer = await asyncio.open_connection(host, port)
                else:
                    self._reader, self._writer = await asyncio.open_connection(
                        host, port, ssl=tls.context, server_hostname=tls.server_name or host
                    )
            if tls is not None and tls.identities:
                sslobj = self._writer.get_extra_info("ssl_object")
                der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
                identity = peer_identity(der) if der else None
                if not tls.allows(identity):
                    await self.close()
                    raise OSError(f"syslog {self.address}: server identity not allowed: {identity}")
        return self._writer

    async def open(self) -> None:
        if self.tls is not None:
            load_tls(self.tls)

    async def send(self, batch: list[Record]) -> None:
        data = frame_batch(
            batch, facility=self.facility, hostname=self.hostname, app_name=self.app_name
        )
        try:
            writer = await self._connected()
            writer.write(data)
            async with asyncio.timeout(self.timeout):
                await writer.drain()
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise OSError(f"syslog {self.address}: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        self._reader = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()


def sink_for(config: LogOutputConfig, dead_letter: str, fsync_each: bool = True) -> Sink:
    """``fsync_each``: a file output fsyncs each batch (``logs.fsync: batch``)."""
    if config.type == "http":
        return HttpSink(config, dead_letter)
    if config.type == "loki":
        return LokiSink(config, dead_letter)
    if config.type == "otlp":
        return OtlpSink(config, dead_letter)
    if config.type == "elasticsearch":
        return ElasticsearchSink(config, dead_letter)
    if config.type == "file":
        assert config.path is not None
        return FileSink(config.path, fsync_each)
    if config.type == "syslog":
        return SyslogSink(config)
    return StdoutSink()


def _backoff(attempt: int) -> float:
    """Full jitter, exponential, capped."""
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))  # noqa: S311


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
            batch = self.records.batch(
                config.name, config.batch_max_records, config.batch_max_bytes
            )
            if not batch:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            # wait for the batch to fill, unless it is full, the log is (it cannot fill)
            # or a drain asks for what there is (also when it comes during the wait);
            # what comes meanwhile is added to it, not the batch taken again from its
            # start at each wakeup (records arriving a read at a time would make that
            # quadratic in the batch size)
            deadline = loop.time() + config.batch_timeout
            full = self.filled(batch)
            size = -1  # the batch's bytes, once it waits
            while not (full or self.flushing or self.records.full):
                if loop.time() >= deadline:
                    break
                self.wakeup.clear()
                try:
                    async with asyncio.timeout(deadline - loop.time()):
                        await self.wakeup.wait()
                except TimeoutError:
                    break
                if size < 0:
                    size = sum(record.size for record in batch)
                room = config.batch_max_bytes - size
                more = self.records.batch(
                    config.name, config.batch_max_records - len(batch), room, batch[-1].seq
                )
                if more and more[0].size > room:  # ``batch`` takes a first record always
                    break  # full by its bytes
                batch += more
                size += sum(record.size for record in more)
                full = self.filled(batch)
            if self.sink.encodes_ahead:
                self._prepare_next(batch[-1].seq)
            await self._deliver(batch)
            self.records.ack(config.name, batch[-1].seq)
            self.metrics.records.inc(len(batch))
            self.on_ack()

    def filled(self, batch: list[Record]) -> bool:
        """Whether ``batch``, just taken, is as large as it gets: it stopped at
        ``batch_max_records`` or ``batch_max_bytes`` with records left after it.
        (The byte limit stops a batch of long lines before the count does; waiting
        ``batch_timeout`` for records that cannot join it only slows it down.)"""
        return len(batch) >= self.config.batch_max_records or self.records.cut

    def _prepare_next(self, after: int) -> None:
        """Let the sink encode the next batches while this one is sent, those that are
        already what the next turns will take: full, or the log full (not waiting to
        fill). Two: gzip takes about as long as a send, so one would still be
        compressing when its turn comes."""
        config = self.config
        for _ in range(_ENCODE_AHEAD):
            following = self.records.batch(
                config.name, config.batch_max_records, config.batch_max_bytes, after
            )
            if not following or not (self.filled(following) or self.records.full):
                return
            self.sink.prepare(following)
            after = following[-1].seq

    async def _deliver(self, batch: list[Record]) -> None:
        attempt = 0
        while True:
            try:
                await self.sink.send(batch)
                return
            except Refused:
                self.metrics.dead_letter.inc(len(batch))
                return  # kept in the dead-letter file: the output moves on
            except PartlyDelivered as partly:
                self.metrics.dead_letter.inc(partly.refused)
                if not partly.remaining:
                    return
                batch = partly.remaining  # only the items to retry go again
                self.metrics.errors.inc()
                attempt += 1
                self.metrics.retries.inc()
                await asyncio.sleep(_backoff(attempt))
                continue
            except OSError as exc:
                self.metrics.errors.inc()
                attempt += 1
                delay = _backoff(attempt)
                log.warning(
                    "log output failed; retrying",
                    extra={"output": self.config.name, "error": str(exc), "retry_in": delay},
                )
                self.metrics.retries.inc()
                await asyncio.sleep(delay)
