"""A scripted HTTP/2 app (cleartext, prior knowledge) for the tests: ``h2`` in an
event loop of its own thread, answering as ``behaviour`` says and recording what
it saw (connections, and the streams open at once on each)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings


@dataclass
class H2App:
    behaviour: str = "ok"  # ok | goaway-after-two | hold
    max_streams: int = 100
    connections: int = 0
    paths: list[str] = field(default_factory=list)
    most_open: int = 0  # the most streams one connection had open at once
    release: threading.Event = field(default_factory=threading.Event)  # for "hold"
    port: int = 0


class _Connection(asyncio.Protocol):
    def __init__(self, app: H2App, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        app.connections += 1
        self.number = app.connections
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.open: dict[int, bytes] = {}
        self.goaway_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.app.max_streams},
        )
        self.conn.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                path = dict(event.headers or ())[b":path"]
                self.open[event.stream_id] = path
                self.app.paths.append(path.decode())
                self.app.most_open = max(self.app.most_open, len(self.open))
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._on_request(event.stream_id)
        self._flush()

    def _on_request(self, stream_id: int) -> None:
        behaviour = self.app.behaviour
        if behaviour == "goaway-after-two" and self.number == 1:
            if len(self.open) < 2:
                return  # answered once the second arrives
            # the first stream is processed, the others are not: GOAWAY says so
            first = min(self.open)
            self._answer(first)
            self.conn.close_connection(last_stream_id=first)
            self.transport.write(self.conn.data_to_send())
            self.transport.close()
            return
        if behaviour == "hold":
            self.loop.run_in_executor(None, self._answer_later, stream_id)
            return
        self._answer(stream_id)

    def _answer_later(self, stream_id: int) -> None:
        self.app.release.wait(timeout=30)
        self.loop.call_soon_threadsafe(self._answer, stream_id)

    def _answer(self, stream_id: int) -> None:
        path = self.open.pop(stream_id, b"?")
        body = b"connection %d %s" % (self.number, path)
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.conn.send_headers(
                stream_id, [(b":status", b"200"), (b"content-length", b"%d" % len(body))]
            )
            self.conn.send_data(stream_id, body, end_stream=True)
        self._flush()

    def _flush(self) -> None:
        self.transport.write(self.conn.data_to_send())


@contextlib.contextmanager
def h2_app(**settings: object) -> Iterator[H2App]:
    app = H2App(**settings)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: list[asyncio.Server] = []

    async def serve() -> None:
        made = await loop.create_server(lambda: _Connection(app, loop), "127.0.0.1", 0)
        server.append(made)
        app.port = made.sockets[0].getsockname()[1]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop)
    started.wait(timeout=10)
    try:
        yield app
    finally:
        app.release.set()
        loop.call_soon_threadsafe(server[0].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def main(argv: list[str]) -> None:
    """``python -m tests.proxy.h2upstream PORT``: the ``ok`` app on 0.0.0.0, forever
    (a remote HTTP/2 service for the pod tests)."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        app = H2App()
        server = await loop.create_server(lambda: _Connection(app, loop), "0.0.0.0", int(argv[0]))
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
