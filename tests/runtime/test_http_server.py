"""The control ports' server in-process: a request trickled in byte by byte cannot hold
a connection past the request timeout, and an idle keep-alive connection is closed."""

from __future__ import annotations

import asyncio

import pytest

from pillion.config.types import ListenAddress
from pillion.runtime import http_server
from pillion.runtime.http_server import HttpServerComponent, Request, Response


class Echo(HttpServerComponent):
    def add_routes(self) -> None:
        self.route("GET", "/", self._root)

    async def _root(self, request: Request) -> Response:
        return Response(b"ok")


async def served(monkeypatch: pytest.MonkeyPatch) -> tuple[Echo, int]:
    monkeypatch.setattr(http_server, "_REQUEST_TIMEOUT", 0.5)
    monkeypatch.setattr(http_server, "_IDLE_TIMEOUT", 0.5)
    server = Echo("test", ListenAddress("127.0.0.1", 0), 1024)
    await server.start()
    assert server.bound is not None
    return server, server.bound.port


def test_a_trickled_request_is_cut_at_the_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> tuple[bytes, int]:
        server, port = await served(monkeypatch)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
        sent = 0
        for byte in request:  # one byte every 20 ms: far longer than the timeout in all
            if reader.at_eof():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            sent += 1
            await asyncio.sleep(0.02)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await server.close()
        return answer, sent

    answer, sent = asyncio.run(scenario())
    assert answer == b""  # closed, never answered
    assert sent < 1000  # cut before the trickle could finish


def test_an_idle_keep_alive_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> bytes:
        server, port = await served(monkeypatch)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)  # until the server closes
        writer.close()
        await server.close()
        return answer

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nok")
