"""The soak's clients: HTTP/1.1 keep-alive and ``Connection: close`` requests,
WebSocket echoes and TCP echoes, each at a steady rate through one listener, each
outcome tallied with its time so failures can be set against the upstream's down
windows.

Every operation has a deadline (``op_timeout``) and every loop ends at ``until``;
only 127.0.0.1 is ever connected to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from soak_wire import (
    OP_CLOSE,
    OP_TEXT,
    WireError,
    read_response,
    read_ws_frame,
    request_head,
    ws_accept,
    ws_frame,
    ws_key,
    ws_upgrade_head,
)

HOST = "127.0.0.1"
ECHOES = 3  # messages per WebSocket or TCP connection

# What a connection that the peer closed or reset raises while we read or write.
GONE = (asyncio.IncompleteReadError, ConnectionError)


@dataclass(frozen=True)
class Failure:
    kind: str
    started: float  # time.monotonic()
    ended: float
    reason: str


@dataclass
class Tally:
    """The outcomes of one kind of traffic."""

    kind: str
    requests: int = 0
    failures: list[Failure] = field(default_factory=list)
    retried: int = 0  # keep-alive requests sent again: the reused connection had closed

    def record(self, started: float, reason: str | None) -> None:
        self.requests += 1
        if reason is not None:
            self.failures.append(Failure(self.kind, started, time.monotonic(), reason))


@dataclass(frozen=True)
class Target:
    """A listener to send one kind of traffic through."""

    kind: str  # e.g. "inbound http keep-alive"
    port: int
    host: str  # the Host header


def expected_body(path: str) -> bytes:
    return f"app {path}\n".encode()


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:160] if text else type(exc).__name__


def response_problem(status: int, body: bytes, path: str) -> str | None:
    if status != 200:
        return f"status {status}: {body[:80]!r}"
    if body != expected_body(path):
        return f"unexpected body {body[:80]!r}"
    return None


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(*GONE, OSError):
        await writer.wait_closed()


# --- one operation each --------------------------------------------------------------


class KeepAliveClient:
    """One persistent connection, requests one at a time. A request on a reused
    connection that the server had closed (the connection ends before any byte of
    the response) is sent once more on a new one, as RFC 9112 section 9.3.1 allows
    for GET; that is counted as ``retried``, not as a failure."""

    def __init__(self, target: Target, tally: Tally) -> None:
        self.target, self.tally = target, tally
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, path: str) -> str | None:
        for _attempt in range(2):
            reused = self.writer is not None
            try:
                return await self._exchange(path)
            except GONE as exc:
                await self.drop()
                nothing = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
                if reused and nothing:
                    self.tally.retried += 1
                    continue
                return describe(exc)
            except (OSError, WireError, TimeoutError, ValueError) as exc:
                await self.drop()
                return describe(exc)
        return "reused connection closed twice"

    async def _exchange(self, path: str) -> str | None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.target.port)
        assert self.reader is not None
        self.writer.write(request_head(path, self.target.host, close=False))
        response = await read_response(self.reader)
        if "close" in response.headers.get("connection", "").lower():
            await self.drop()
        return response_problem(response.status, response.body, path)

    async def drop(self) -> None:
        if self.writer is not None:
            writer, self.writer, self.reader = self.writer, None, None
            await _close(writer)


async def close_request(target: Target, path: str) -> str | None:
    """One request with ``Connection: close`` on a connection of its own."""
    reader, writer = await asyncio.open_connection(HOST, target.port)
    try:
        writer.write(request_head(path, target.host, close=True))
        response = await read_response(reader)
        return response_problem(response.status, response.body, path)
    finally:
        await _close(writer)


async def websocket_echo(target: Target, path: str) -> str | None:
    """Upgrade, echo ``ECHOES`` text messages, close with a close handshake."""
    reader, writer = await asyncio.open_connection(HOST, target.port)
    try:
        key = ws_key()
        writer.write(ws_upgrade_head(path, target.host, key))
        response = await read_response(reader, head_only=True)
        if response.status != 101:
            rest = await reader.read(80)
            return f"status {response.status} to the upgrade: {rest!r}"
        if response.headers.get("sec-websocket-accept") != ws_accept(key):
            return "wrong Sec-WebSocket-Accept"
        for index in range(ECHOES):
            message = f"{path} #{index}".encode()
            writer.write(ws_frame(OP_TEXT, message, masked=True))
            opcode, payload = await read_ws_frame(reader)
            if (opcode, payload) != (OP_TEXT, message):
                return f"echo {index}: opcode {opcode}, {payload[:60]!r}"
        writer.write(ws_frame(OP_CLOSE, b"\x03\xe8", masked=True))  # 1000: normal closure
        opcode, _ = await read_ws_frame(reader)
        return None if opcode == OP_CLOSE else f"opcode {opcode} instead of close"
    finally:
        await _close(writer)


async def tcp_echo(target: Target, path: str) -> str | None:
    """Echo ``ECHOES`` lines, half-close, and expect the end of the stream back."""
    reader, writer = await asyncio.open_connection(HOST, target.port)
    try:
        for index in range(ECHOES):
            line = f"{path} #{index}\n".encode()
            writer.write(line)
            got = await reader.readexactly(len(line))
            if got != line:
                return f"echo {index}: {got[:60]!r}"
        writer.write_eof()
        rest = await reader.read(100)
        return None if rest == b"" else f"bytes after the echoes: {rest[:60]!r}"
    finally:
        await _close(writer)


# --- steady rates --------------------------------------------------------------------


def ticks(rate: float, until: float) -> Callable[[], Awaitable[bool]]:
    """A pacer: each call waits for the next tick of ``rate`` per second and says
    whether it is still before ``until``. A late caller does not get a burst."""
    period = 1.0 / rate
    next_at = time.monotonic()

    async def tick() -> bool:
        nonlocal next_at
        now = time.monotonic()
        next_at = max(next_at + period, now)
        if next_at >= until:
            return False
        await asyncio.sleep(next_at - now)
        return True

    return tick


async def timed(op: Awaitable[str | None], limit: float) -> str | None:
    try:
        async with asyncio.timeout(limit):
            return await op
    except TimeoutError:
        return f"no answer within {limit:g}s"
    except (*GONE, OSError, WireError, ValueError) as exc:
        return describe(exc)


async def run_keepalive(
    target: Target, tally: Tally, rate: float, until: float, limit: float
) -> None:
    """One persistent connection at ``rate`` requests per second."""
    client = KeepAliveClient(target, tally)
    tick = ticks(rate, until)
    number = 0
    try:
        while await tick():
            started = time.monotonic()
            path = f"/soak/keepalive/{target.port}/{number}"
            try:
                async with asyncio.timeout(limit):
                    reason = await client.request(path)
            except TimeoutError:
                await client.drop()  # a request is still out on it: unusable
                reason = f"no answer within {limit:g}s"
            tally.record(started, reason)
            number += 1
    finally:
        await client.drop()


Operation = Callable[[Target, str], Awaitable[str | None]]


async def run_open_loop(
    target: Target, tally: Tally, op: Operation, rate: float, until: float, limit: float
) -> None:
    """``op`` started at ``rate`` per second, each on its own connection, whether or
    not the ones before have finished (an open loop: a slow proxy gets no respite)."""
    tick = ticks(rate, until)
    running: set[asyncio.Task[None]] = set()

    async def one(number: int) -> None:
        started = time.monotonic()
        path = f"/soak/{target.kind.replace(' ', '-')}/{number}"
        tally.record(started, await timed(op(target, path), limit))

    number = 0
    try:
        while await tick():
            task = asyncio.create_task(one(number))
            running.add(task)
            task.add_done_callback(running.discard)
            number += 1
        if running:
            await asyncio.wait(running, timeout=limit + 1)
    finally:
        for task in running:
            task.cancel()
