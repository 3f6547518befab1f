"""Tailing one input's files: discovery, reading, rotation, truncation.

Every ``scan_interval``, and at once when inotify reports a change in one of
the input's directories, the input's globs are expanded and each file checked.
A file is tracked by device and inode while it is open (its fingerprint
identifies it across restarts, see ``identity``). When its path points to
another file (rename rotation) or to none (deletion), the old file is read to
its end for ``rotate_wait`` more, then closed; the new file at the path is read
from its start. A file that shrinks below what was read was truncated
(copytruncate): it is read again from offset 0 under a new identity.

Reading is a chunk per file per pass (fairness: a busy file does not starve the
others), and stops while the record log is full, memory and disk (the inputs pause; the
lines wait in the files).
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pillion.config.logs import LogInputConfig
from pillion.logs.buffer import RECORD_OVERHEAD, Record, RecordLog
from pillion.logs.filters import compile_filters
from pillion.logs.framing import PRESETS, Framed, Framer
from pillion.logs.identity import FINGERPRINT_BYTES, FileKey, fingerprint
from pillion.logs.lines import LineSplitter
from pillion.logs.metrics import InputMetrics
from pillion.logs.parsers import Parser, make_parser, parse_time, runtime_time
from pillion.watch import DirectoryWatch, WatchUnavailable, directories_of

__all__ = ["RotatedFile", "Tailer"]

log = logging.getLogger("pillion.logs")

CHUNK = 64 * 1024  # bytes read from one file per pass


@dataclass
class _Tracked:
    path: str
    fd: int
    device: int
    inode: int
    key: FileKey | None = None
    splitter: LineSplitter | None = None
    framer: Framer | None = None
    rotated_at: float | None = None  # when its path stopped naming it


@dataclass(frozen=True)
class RotatedFile:
    """A file renamed away from an input's paths and still followed (``rotate_wait``),
    handed on a reload to the input's successor, which reads it on from its checkpoint."""

    path: str  # where it was
    fd: int  # its own descriptor (a duplicate)
    device: int
    inode: int


class Tailer:
    def __init__(
        self,
        config: LogInputConfig,
        *,
        records: RecordLog,
        checkpoints: dict[FileKey, int],
        metrics: InputMetrics,
        space: asyncio.Event,
        first_start: bool,
        extra: dict[str, Any] | None = None,
        wake: Callable[[], None] = lambda: None,
        tap: Callable[[bytes, dict[str, Any] | None], None] | None = None,
        adopted: Sequence[RotatedFile] = (),
    ) -> None:
        self.config = config
        self.records = records
        self.checkpoints = checkpoints
        self.metrics = metrics
        self.space = space
        self.first_scan = first_start
        self.files: dict[tuple[int, int], _Tracked] = {}
        self.released: list[FileKey] = []  # files done with, until all is delivered
        self.forgotten: list[FileKey] = []  # delivered: their checkpoint rows can go
        self.stopping = False
        self.wake = wake  # tells the outputs there are new records
        parser = config.parser
        self._parse: Parser | None = make_parser(parser.type, parser.pattern) if parser else None
        self.static: dict[str, Any] | None = {**config.fields, **(extra or {})} or None
        self._filters = compile_filters(config.filters)
        self._tap = tap  # metrics from the records (exporters.from_logs)
        self.changed = asyncio.Event()  # set by inotify: something moved in a directory
        self._watch: DirectoryWatch | None = None
        if adopted:  # from the tailer this one replaces: another rotate_wait each
            now = asyncio.get_running_loop().time()
            for rotated in adopted:
                ident = (rotated.device, rotated.inode)
                self.files[ident] = _Tracked(
                    rotated.path, rotated.fd, rotated.device, rotated.inode, rotated_at=now
                )

    def hand_over(self) -> list[RotatedFile]:
        """The rotated files still followed, each on a duplicate descriptor: for the
        tailer that replaces this one on a reload (this one closes its own)."""
        return [
            RotatedFile(t.path, os.dup(t.fd), t.device, t.inode)
            for t in self.files.values()
            if t.rotated_at is not None
        ]

    # -- discovery --

    def _paths(self) -> list[str]:
        found: dict[str, None] = {}
        for pattern in self.config.paths:
            for path in sorted(glob.glob(pattern, recursive=True)):
                if not any(fnmatch.fnmatch(path, ex) for ex in self.config.exclude):
                    found[path] = None
        return list(found)

    def _start_watching(self) -> None:
        if not self.config.inotify:
            self.metrics.polling.set(1)
            return
        watch = DirectoryWatch(self.changed.set)
        try:
            watch.open(asyncio.get_running_loop())
        except WatchUnavailable as exc:
            self._polling(str(exc))
            watch.close()
            return
        self._watch = watch

    def _polling(self, reason: str) -> None:
        log.warning("inotify unavailable; the input polls every scan_interval",
                    extra={"input": self.config.name, "error": reason})  # fmt: skip
        self.metrics.polling.set(1)

    def _watch_directories(self) -> None:
        if self._watch is None:
            return
        try:
            self._watch.watch(directories_of(self.config.paths))
        except WatchUnavailable as exc:
            self._polling(str(exc))
            self._watch.close()
            self._watch = None

    def scan(self, now: float) -> None:
        self._watch_directories()
        seen: set[tuple[int, int]] = set()
        for path in self._paths():
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not os.path.isfile(path):
                continue
            ident = (st.st_dev, st.st_ino)
            seen.add(ident)
            tracked = self.files.get(ident)
            if tracked is not None:
                if tracked.rotated_at is not None or tracked.path != path:
                    tracked.path, tracked.rotated_at = path, None  # moved into a watched name
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                log.warning("cannot open log file", extra={"path": path, "error": exc.strerror})
                continue
            self.files[ident] = _Tracked(path, fd, st.st_dev, st.st_ino)
        for ident, tracked in list(self.files.items()):
            if ident not in seen and tracked.rotated_at is None:
                tracked.rotated_at = now
                self.metrics.rotated.inc()
                log.info("log file rotated", extra={"input": self.config.name,
                                                    "path": tracked.path})  # fmt: skip

    # -- reading --

    def _begin(self, tracked: _Tracked, size: int) -> bool:
        """Give the file its identity and start offset, once its first line is there."""
        head = os.pread(tracked.fd, FINGERPRINT_BYTES, 0)
        mark = fingerprint(head)
        if mark is None:
            return False
        key = (tracked.device, tracked.inode, mark)
        delivered = self.checkpoints.pop(key, None)
        if delivered is not None:
            start = delivered if delivered <= size else 0  # truncated while we were away
        elif self.first_scan and self.config.read_from == "tail" and tracked.rotated_at is None:
            start = size
        else:
            start = 0
        tracked.key = key
        tracked.splitter = LineSplitter(self.config.max_line_size, start)
        tracked.framer = self._framer()
        self.records.track(key, tracked.path, start)
        return True

    def _framer(self) -> Framer | None:
        config = self.config
        multiline = config.multiline
        if config.format == "plain" and multiline is None:
            return None
        start = None
        rules: list[tuple[str, str, str]] = []
        if multiline is not None and multiline.rules:
            rules = [(r.state, r.regex, r.next_state) for r in multiline.rules]
        elif multiline is not None:
            start = multiline.start or PRESETS[multiline.preset or ""]
        return Framer(
            cri=config.format == "cri",
            docker=config.format == "docker",
            start=start,
            rules=rules,
            flush_timeout=multiline.flush_timeout if multiline else 1.0,
            max_size=config.max_line_size,
        )

    def flush_quiet(self, now: float) -> None:
        """Send multiline records that saw no new line for their flush timeout."""
        for tracked in self.files.values():
            if tracked.framer is not None and tracked.key is not None:
                self._emit_framed(tracked, tracked.framer.flush(now))

    def read_pass(self) -> bool:
        """Read one chunk from each file with new data; True if any has more."""
        more = False
        for tracked in list(self.files.values()):
            if self.records.full:
                self.metrics.paused.set(1)
                return False
            try:
                size = os.fstat(tracked.fd).st_size
            except OSError:
                continue
            if tracked.key is None and not self._begin(tracked, size):
                continue
            splitter = tracked.splitter
            assert splitter is not None
            assert tracked.key is not None
            if size < splitter.offset:  # copytruncate: the file starts over
                log.info("log file truncated", extra={"input": self.config.name,
                                                      "path": tracked.path})  # fmt: skip
                self.metrics.rotated.inc()
                self.released.append(tracked.key)
                tracked.key, tracked.splitter, tracked.framer = None, None, None
                more = True
                continue
            if size == splitter.offset:
                continue
            data = os.pread(tracked.fd, CHUNK, splitter.offset)
            if not data:
                continue
            if tracked.framer is None:
                lines, ends = splitter.split(data)
                taken = self._fitting(lines)
                if taken < len(lines):  # the log is full: the rest is read again later
                    splitter.reset(ends[taken - 1])
                    del lines[taken:], ends[taken:]
                self._emit(tracked, lines, ends)
            else:
                framed = tracked.framer.feed(splitter.feed(data), time.monotonic())
                self._emit_framed(tracked, framed)
            if splitter.truncated:
                self.metrics.truncated.inc(splitter.truncated)
                splitter.truncated = 0
            more = more or splitter.offset < size
        self.metrics.paused.set(0)
        return more

    def _fitting(self, lines: list[bytes]) -> int:
        """How many of ``lines`` fit in the record log (all but what would overflow
        it; at least one, so a file always makes progress)."""
        room = self.records.room
        if room >= CHUNK + len(lines) * RECORD_OVERHEAD:  # the usual case: all fit
            return len(lines)
        for index, line in enumerate(lines):
            room -= len(line) + RECORD_OVERHEAD
            if room < 0:
                return max(index, 1)
        return len(lines)

    def _emit(self, tracked: _Tracked, lines: list[bytes], ends: list[int]) -> None:
        if not lines:
            return
        if self._parse is not None or self._filters is not None or self._tap is not None:
            framed = [Framed(line, end) for line, end in zip(lines, ends, strict=True)]
            self._emit_framed(tracked, framed)
            return
        # Nothing to do to a line but make it a record (the usual case): no
        # intermediate object per line, and the loop runs compiled.
        assert tracked.key is not None
        self.records.add_lines(
            tracked.key,
            lines,
            ends,
            at=time.time(),
            input=self.config.name,
            path=tracked.path,
            fields=self.static,
        )
        self.metrics.records.inc(len(lines))
        self.metrics.bytes.inc(sum(map(len, lines)) + len(lines))

    def _emit_framed(self, tracked: _Tracked, framed: list[Framed]) -> None:
        if not framed:
            return
        key = tracked.key
        assert key is not None
        now = time.time()
        path, name, append = tracked.path, self.config.name, self.records.append
        parse, static, filters, tap = self._parse, self.static, self._filters, self._tap
        size = 0
        dropped: dict[str, int] | None = None
        for record in framed:
            message, fields = record.message, static
            # a record's time: the app's own (a parser's time_field), else the
            # runtime's (a CRI line's timestamp), else when it was read
            at = now if record.time is None else runtime_time(record.time) or now
            size += len(message) + 1
            if parse is not None:
                fields, at = self._fields(message, at)
            if filters is not None:
                kept = filters(message, fields)
                if isinstance(kept, str):  # the reason it is dropped
                    dropped = dropped or {}
                    dropped[kept] = dropped.get(kept, 0) + 1
                    continue
                message, fields = kept
            if tap is not None:
                tap(message, fields)
            append(Record(message, at, name, path, key, record.end,
                          record.stream, record.time, fields))  # fmt: skip
        self.metrics.records.inc(len(framed))
        self.metrics.bytes.inc(size)
        if dropped:
            for reason, count in dropped.items():
                self.metrics.dropped(reason).inc(count)

    def _fields(self, message: bytes, at: float) -> tuple[dict[str, Any] | None, float]:
        """The message's fields, and its time: the parser's ``time_field`` when there
        is one, else ``at``."""
        assert self._parse is not None
        parsed = self._parse(message)
        if parsed is None:
            self.metrics.parse_errors.inc()
            return self.static, at
        parser = self.config.parser
        if parser is not None and parser.time_field is not None:
            stamp = parse_time(parsed.get(parser.time_field), parser.time_format)
            if stamp is None:
                self.metrics.parse_errors.inc()
            else:
                at = stamp
        if self.static:
            parsed = {**self.static, **parsed}
        return parsed, at

    def release_rotated(self, now: float) -> None:
        """Close rotated files read to their end after ``rotate_wait``; their
        checkpoint rows go once everything of them is delivered."""
        for ident, tracked in list(self.files.items()):
            if tracked.rotated_at is None or now - tracked.rotated_at < self.config.rotate_wait:
                continue
            splitter = tracked.splitter
            try:
                size = os.fstat(tracked.fd).st_size
            except OSError:
                size = 0
            if (splitter.offset if splitter is not None else 0) < size:
                continue  # still lines to read (or not begun: paused, or no first line)
            if tracked.framer is not None and tracked.key is not None:
                self._emit_framed(tracked, tracked.framer.flush(now, everything=True))
            os.close(tracked.fd)
            del self.files[ident]
            if tracked.key is not None:
                self.released.append(tracked.key)
        waiting = []
        for key in self.released:
            if self.records.settled(key):
                self.records.forget(key)
                self.forgotten.append(key)
            else:
                waiting.append(key)
        self.released = waiting

    def stop(self) -> None:
        """End ``run`` after the pass in progress, without waiting out ``scan_interval``."""
        self.stopping = True
        self.changed.set()
        self.space.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._start_watching()
        while not self.stopping:
            self.changed.clear()  # what changes from here on wakes the next pass
            self.scan(loop.time())
            self.first_scan = False
            before = self.records.next_seq
            while self.read_pass() and not self.stopping:  # not polling: each pass read
                self.wake()
                await asyncio.sleep(0)  # data; let the outputs run between passes
            self.flush_quiet(time.monotonic())
            if self.records.next_seq != before:
                self.wake()
            self.release_rotated(loop.time())
            if self.records.full:
                self.space.clear()
                try:
                    async with asyncio.timeout(self.config.scan_interval):
                        await self.space.wait()
                except TimeoutError:
                    pass
                continue
            try:  # until the next scan, or sooner if inotify saw a change
                async with asyncio.timeout(self.config.scan_interval):
                    await self.changed.wait()
            except TimeoutError:
                pass

    def lag(self) -> dict[str, int]:
        """Bytes of each open file not yet delivered everywhere, by path."""
        lag: dict[str, int] = {}
        for tracked in self.files.values():
            if tracked.key is None:
                continue
            progress = self.records.files.get(tracked.key)
            try:
                size = os.fstat(tracked.fd).st_size
            except OSError:
                continue
            delivered = progress.delivered if progress is not None else 0
            lag[tracked.path] = lag.get(tracked.path, 0) + max(0, size - delivered)
        return lag

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        for tracked in self.files.values():
            os.close(tracked.fd)
        self.files.clear()
