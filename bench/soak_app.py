"""The soak's upstream app, and ``AppProcess``, how the soak runs it: as its own
process, so that it can be killed (SIGKILL) and started again on the same ports:

    python bench/soak_app.py HTTP_PORT TCP_PORT

On 127.0.0.1:HTTP_PORT it answers every GET with 200 and the body ``app <target>\\n``
(keep-alive unless asked to close), and a WebSocket upgrade with 101, then echoes
every text frame until the client's close frame, which it answers. On
127.0.0.1:TCP_PORT it echoes every byte until the client half-closes. It prints
``ready`` once both listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from soak_wire import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    WireError,
    parse_request_head,
    read_ws_frame,
    ws_accept,
    ws_frame,
)

HOST = "127.0.0.1"


def http_answer(target: str, *, close: bool) -> bytes:
    body = f"app {target}\n".encode()
    connection = "close" if close else "keep-alive"
    return (
        f"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n"
        f"connection: {connection}\r\n\r\n"
    ).encode() + body


def upgrade_answer(key: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {ws_accept(key)}\r\n\r\n"
    ).encode()


async def echo_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        opcode, payload = await read_ws_frame(reader)
        if opcode == OP_CLOSE:
            writer.write(ws_frame(OP_CLOSE, payload[:2], masked=False))
            await writer.drain()
            return
        reply = OP_PONG if opcode == OP_PING else opcode
        writer.write(ws_frame(reply, payload, masked=False))
        await writer.drain()


async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Requests in order on one connection, until it closes or asks to."""
    while True:
        try:
            method, target, headers = parse_request_head(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        if headers.get("upgrade", "").lower() == "websocket":
            writer.write(upgrade_answer(headers.get("sec-websocket-key", "")))
            await writer.drain()
            await echo_websocket(reader, writer)
            return
        close = method != "GET" or "close" in headers.get("connection", "").lower()
        writer.write(http_answer(target, close=close))
        await writer.drain()
        if close:
            return


async def serve_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def closing(serve: Handler) -> Handler:
    """``serve`` that always closes its connection, and quietly when the peer goes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, WireError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return handler


async def main(http_port: int, tcp_port: int) -> None:
    http = await asyncio.start_server(closing(serve_http), HOST, http_port, reuse_address=True)
    tcp = await asyncio.start_server(closing(serve_tcp), HOST, tcp_port, reuse_address=True)
    print("ready", flush=True)
    async with http, tcp:
        await asyncio.gather(http.serve_forever(), tcp.serve_forever())


# --- how the soak runs it ------------------------------------------------------------


class AppError(Exception):
    """The app did not start."""


class AppProcess:
    """The upstream app process, which the soak kills and starts again."""

    def __init__(self, http_port: int, tcp_port: int, log: Path) -> None:
        self.http_port, self.tcp_port, self.log = http_port, tcp_port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, str(self.http_port), str(self.tcp_port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_up(self, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AppError(f"the app exited with {self.proc.returncode}")
            with contextlib.suppress(OSError):
                for port in (self.http_port, self.tcp_port):
                    _, writer = await asyncio.open_connection(HOST, port)
                    writer.close()
                return
            await asyncio.sleep(0.05)
        raise AppError(f"the app is not listening after {within:.0f}s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
