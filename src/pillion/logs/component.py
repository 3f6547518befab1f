"""Log shipping as a component: the inputs, the record log, the outputs, and
the checkpoints that advance only as far as every output has acknowledged.

Drain: the inputs stop reading, the outputs send what is buffered (without
waiting for batches to fill) until they have it all or the deadline passes,
and the checkpoints are saved. Whatever was not delivered is read again at the
next start: duplicates at worst, never a loss.

Faults of its own files are worked around and shown (``problems``, metrics,
one log line when they start and one when they end), never fatal: a disk buffer
that cannot be written pauses the inputs until a retry works (the lines wait in
their files); checkpoints that cannot be saved are retried at each save, with
every offset not saved yet kept for it, while delivery goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from pillion.components import Component, ComponentStartError
from pillion.config import PillionConfig
from pillion.config.exporters import FromLogsConfig
from pillion.config.logs import LogsConfig
from pillion.logs.buffer import RecordLog
from pillion.logs.checkpoints import Checkpoints, CheckpointSaveFailed
from pillion.logs.identity import FileKey
from pillion.logs.logmetrics import tap_for
from pillion.logs.metrics import InputMetrics, LogFamilies, OutputMetrics
from pillion.logs.outputs import OutputWorker, sink_for
from pillion.logs.podinfo import pod_fields
from pillion.logs.spill import SqliteSpill
from pillion.logs.tailer import RotatedFile, Tailer
from pillion.telemetry import Metrics

__all__ = ["LogsComponent"]

log = logging.getLogger("pillion.logs")

_CHECKPOINT_INTERVAL = 1.0  # seconds between checkpoint writes (fsync: batch or never)


class LogsComponent(Component):
    kind = "traffic"

    def __init__(
        self, config: LogsConfig, metrics: Metrics, *, from_logs: Sequence[FromLogsConfig]
    ) -> None:
        """``from_logs``: the ``exporters.from_logs`` rules, which observe the records."""
        self.name = "logs"
        self.config = config
        self._from_logs = list(from_logs)
        self._metrics = metrics
        disk = self.config.disk_buffer
        self.spill: SqliteSpill | None = None
        if disk is not None:
            self.spill = SqliteSpill(
                disk.path or str(Path(self.config.checkpoints).with_name("buffer.db"))
            )
        self.records = RecordLog(
            outputs=[o.name for o in self.config.outputs],
            limit_bytes=self.config.memory_buffer,
            spill=self.spill,
            spill_limit_bytes=disk.max_size if disk else 0,
        )
        self.checkpoints = Checkpoints(
            self.config.checkpoints, synchronous="OFF" if config.fsync == "never" else "FULL"
        )
        self._unsaved: dict[FileKey, tuple[str, int]] = {}  # offsets not saved yet
        self._unforgotten: list[FileKey] = []  # released files whose rows are not dropped yet
        self._saving = asyncio.Lock()
        self._save_failure: str | None = None  # why the last checkpoint save failed
        self._spill_failure: str | None = None  # the disk buffer's failure, as last shown
        self._spill_errors: dict[str, int] = {}  # as last counted
        self.space = asyncio.Event()
        self.tailers: list[Tailer] = []
        self.outputs: list[OutputWorker] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._input_tasks: list[asyncio.Task[None]] = []
        families = metrics.family("logs", LogFamilies)
        self._buffer = families.buffer_bytes.labels("memory")
        self._disk = families.buffer_bytes.labels("disk")
        self._lag = families.lag_bytes
        self._families = families
        self._lagging: set[tuple[str, str]] = set()  # the lag children exported
        self._started = False
        self._adopted: dict[str, list[RotatedFile]] = {}  # see take_over

    @property
    def started(self) -> bool:
        return self._started

    @property
    def problems(self) -> list[str]:
        found = []
        if self.records.spill_failure is not None:
            found.append(f"{self.records.spill_failure}; the inputs pause until it can be written")
        if self._save_failure is not None:
            found.append(
                f"{self._save_failure}; retried at each save, delivery goes on (a restart "
                "now would send again what was delivered since the last save)"
            )
        return found

    def can_reconfigure(self, config: PillionConfig) -> bool:
        """A reload that leaves the log pipeline as it is leaves it running: replaced,
        it would send again what was delivered since the last checkpoint save, and
        stop reading a rotated file it still follows."""
        from_logs = config.exporters.from_logs if config.exporters is not None else []
        return config.logs == self.config and list(from_logs) == self._from_logs

    def reconfigure(self, config: PillionConfig) -> None:
        """Nothing to do: only called when the pipeline's settings are unchanged."""

    def take_over(self, previous: Component) -> None:
        """Replacing the pipeline on a reload: its inputs' renamed files, still being
        read for their late lines, go on being read here (by input name)."""
        if isinstance(previous, LogsComponent):
            for tailer in previous.tailers:
                self._adopted[tailer.config.name] = tailer.hand_over()

    def _close_adopted(self) -> None:
        for files in self._adopted.values():
            for rotated in files:
                os.close(rotated.fd)
        self._adopted.clear()

    async def start(self) -> None:
        try:
            self.checkpoints.open()
            saved = self.checkpoints.load()
        except (OSError, sqlite3.Error) as exc:
            raise ComponentStartError(
                "logs", f"cannot open checkpoints {self.config.checkpoints}: {exc}"
            ) from exc
        if self.spill is not None:
            try:
                self.spill.open()
            except (OSError, sqlite3.Error) as exc:
                raise ComponentStartError(
                    "logs", f"cannot open the disk buffer {self.spill.path}: {exc}"
                ) from exc
        first_start = not saved
        extra: dict[str, object] | None = None
        metadata = self.config.kubernetes
        if metadata is not None:
            try:
                pod = pod_fields(
                    labels_file=metadata.labels_file,
                    annotations_file=metadata.annotations_file,
                    environ=dict(os.environ),
                )
            except OSError as exc:
                raise ComponentStartError("logs", f"cannot read pod metadata: {exc}") from exc
            extra = {"kubernetes": pod}
        for output in self.config.outputs:
            dead_letter = output.dead_letter or str(
                Path(self.config.checkpoints).parent / f"dead-letter-{output.name}.jsonl"
            )
            sink = sink_for(output, dead_letter, fsync_each=self.config.fsync == "batch")
            try:
                await sink.open()
            except OSError as exc:
                raise ComponentStartError(
                    "logs",
                    f"output {output.name!r}: {exc.strerror or exc}"
                    + (f" ({output.path})" if output.path else ""),
                ) from exc
            worker = OutputWorker(
                output,
                records=self.records,
                sink=sink,
                metrics=OutputMetrics(self._metrics, output.name),
                on_ack=self._acked,
            )
            self.outputs.append(worker)
        for config in self.config.inputs:
            tailer = Tailer(
                config,
                records=self.records,
                checkpoints=saved,
                metrics=InputMetrics(self._metrics, config.name),
                space=self.space,
                first_start=first_start,
                extra=extra,
                wake=self._wake_outputs,
                tap=tap_for(self._from_logs, config.name, self._metrics),
                adopted=self._adopted.pop(config.name, ()),
            )
            self.tailers.append(tailer)
        self._close_adopted()  # of inputs the new config has no more
        self._tasks = [asyncio.create_task(worker.run()) for worker in self.outputs]
        self._tasks.append(asyncio.create_task(self._checkpoint_loop()))
        self._input_tasks = [asyncio.create_task(self._read(t)) for t in self.tailers]
        self._started = True

    async def _read(self, tailer: Tailer) -> None:
        try:
            await tailer.run()
        except Exception:
            log.exception("log input failed", extra={"input": tailer.config.name})
            raise

    def _acked(self) -> None:
        self.space.set()
        self._export_buffer()

    def _export_buffer(self) -> None:
        self._buffer.set(self.records.bytes)
        self._disk.set(self.records.spill_bytes)

    def _wake_outputs(self) -> None:
        for worker in self.outputs:
            worker.wakeup.set()

    async def _checkpoint_loop(self) -> None:
        interval = _CHECKPOINT_INTERVAL
        if self.config.fsync == "interval":
            interval = self.config.fsync_interval
        tick = min(interval, _CHECKPOINT_INTERVAL)
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(tick / 4)
            self._wake_outputs()  # records appended since: batches start filling
            self._retry_spill()
            self._export_buffer()
            self._export_lag()
            if loop.time() >= due - tick / 2:
                due = loop.time() + interval
                await self._save()
            await asyncio.sleep(tick * 3 / 4)

    def _retry_spill(self) -> None:
        """Try the disk buffer again if it failed; count and tell what changed."""
        records = self.records
        if records.spill_failure is not None and records.retry_spill():
            self.space.set()  # the inputs may read again
        errors = self._families.buffer_errors
        for reason, count in records.spill_errors.items():
            seen = self._spill_errors.get(reason, 0)
            if count > seen:
                errors.labels(reason).inc(count - seen)
                self._spill_errors[reason] = count
        failure = records.spill_failure
        if failure is not None and self._spill_failure is None:
            log.error("disk buffer cannot be written; the inputs pause until it can",
                      extra={"error": failure})  # fmt: skip
        elif failure is None and self._spill_failure is not None:
            log.info("disk buffer written again; the inputs resume")
        self._spill_failure = failure
        self._families.buffer_full.set(1 if records.full else 0)

    def _export_lag(self) -> None:
        current: set[tuple[str, str]] = set()
        for tailer in self.tailers:
            for path, lag in tailer.lag().items():
                labels = (tailer.config.name, path)
                self._lag.labels(*labels).set(lag)
                current.add(labels)
        for gone in self._lagging - current:  # released files leave the exposition
            self._lag.remove(*gone)
        self._lagging = current

    async def _save(self) -> None:
        """Save the offsets delivered since the last save (and those a failed save
        left); with ``fsync: interval``, after the file outputs are synced: the
        offsets are taken first, so the sync covers every line they count."""
        async with self._saving:
            for tailer in self.tailers:
                self._unforgotten += tailer.forgotten
                tailer.forgotten = []
            self._unsaved.update(self.records.delivered_changes())
            if not self._unsaved and not self._unforgotten:
                return
            offsets, forget = dict(self._unsaved), list(self._unforgotten)
            if self.config.fsync == "interval" and not await self._sync_outputs():
                return
            try:
                await asyncio.to_thread(self.checkpoints.save, offsets, forget)
            except CheckpointSaveFailed as failed:
                self._families.checkpoint_errors.labels(failed.reason).inc()
                self._families.checkpoint_failing.set(1)
                if self._save_failure is None:
                    log.error("checkpoints cannot be saved; retrying at each save",
                              extra={"error": str(failed), "reason": failed.reason})  # fmt: skip
                self._save_failure = str(failed)
                return
            for key in offsets:
                if key in self._unsaved and self._unsaved[key] == offsets[key]:
                    del self._unsaved[key]  # (one that moved on during the save stays)
            del self._unforgotten[: len(forget)]
            if self._save_failure is not None:
                log.info("checkpoints saved again")
                self._save_failure = None
                self._families.checkpoint_failing.set(0)

    async def _sync_outputs(self) -> bool:
        for worker in self.outputs:
            try:
                await worker.sink.sync()
            except OSError as exc:
                log.error("log output not synced; the checkpoints wait for it",
                          extra={"output": worker.config.name, "error": str(exc)})  # fmt: skip
                return False
        return True

    async def drain(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        for tailer in self.tailers:
            tailer.stop()
        for task in self._input_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for worker in self.outputs:
            worker.flushing = True
            worker.wakeup.set()
        while not all(w.caught_up for w in self.outputs):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self.space.clear()  # set by every acknowledgement
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self.space.wait()
        if not all(w.caught_up for w in self.outputs):
            log.warning(
                "drain deadline passed with records undelivered; they are read again at "
                "the next start",
                extra={"records": len(self.records.records) + self.records.spilled},
            )
        await self._save()

    async def close(self) -> None:
        for task in [*self._input_tasks, *self._tasks]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks, self._input_tasks = [], []
        with contextlib.suppress(Exception):
            await self._save()
        for tailer in self.tailers:
            tailer.close()
        self._close_adopted()  # if start failed before handing them on
        for worker in self.outputs:
            await worker.sink.close()
        self.checkpoints.close()
        if self.spill is not None:
            self.spill.close()
        self._started = False
