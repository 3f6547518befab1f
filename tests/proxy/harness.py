"""A scripted upstream (a real TCP server in a thread) and a raw-socket HTTP client."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httptools

from pillion.http.request import ParserLimits, RequestHead, RequestParser


def find_header(headers: list[tuple[bytes, bytes]], lower_name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == lower_name:
            return value
    return None


@dataclass
class Recorded:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return find_header(self.headers, name)


class _RequestReader:
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[Recorded] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = b""
        self._url = b""

    def on_message_begin(self) -> None:
        self._headers, self._body, self._url = [], b"", b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        self.done.append(Recorded(method, self._url, self._headers, self._body))


@contextlib.contextmanager
def scripted_upstream() -> Iterator[ScriptedUpstream]:
    upstream = ScriptedUpstream().start()
    try:
        yield upstream
    finally:
        upstream.stop()


@dataclass
class ScriptedUpstream:
    """Answers each request as ``behaviour`` says; records what it received."""

    behaviour: str = "echo"
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # for "held"
    connections: int = 0
    port: int = 0
    tunnelled: bytearray = field(default_factory=bytearray)  # bytes read after its 101s

    def start(self, host: str = "127.0.0.1", port: int = 0) -> ScriptedUpstream:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(512)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = _RequestReader()
        answered = 0
        with conn:
            while True:
                if self.behaviour == "slow-reader":
                    time.sleep(0.01)  # about 6 MiB/s: much slower than the client sends
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                leftover = None
                try:
                    reader.parser.feed_data(data)
                except httptools.HttpParserUpgrade as upgrade:
                    leftover = data[upgrade.args[0] :]
                except httptools.HttpParserError:
                    return
                if leftover is not None and self.behaviour.startswith(("websocket", "upgrade-")):
                    self.requests.extend(reader.done)
                    self._tunnel(conn, leftover)
                    return
                if self.behaviour == "101-always" and reader.done:
                    # a careless app: it switches protocols for any request at all
                    self.requests.extend(reader.done)
                    self._tunnel(conn, b"")
                    return
                while reader.done:
                    request = reader.done.pop(0)
                    self.requests.append(request)
                    if self.behaviour == "one-per-connection" and answered:
                        return  # closes a kept-alive connection instead of answering
                    answered += 1
                    try:
                        if not self._answer(conn, request):
                            return
                    except OSError:
                        return  # the proxy went away mid-answer

    def _tunnel(self, conn: socket.socket, early: bytes) -> None:
        """Answer 101, then echo raw bytes (or reset, for ``websocket-abrupt``).
        ``upgrade-any`` and ``101-always`` switch to whatever the request asked
        for (``foo`` when it asked for nothing) and record what they read."""
        protocol = b"websocket"
        if not self.behaviour.startswith("websocket"):
            protocol = self.requests[-1].header(b"upgrade") or b"foo"
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n" % protocol
        )
        if self.behaviour == "websocket-abrupt":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        try:
            if early:
                self.tunnelled += early
                conn.sendall(early)
            while data := conn.recv(65536):
                self.tunnelled += data
                conn.sendall(data)
        except OSError:
            return

    def _answer(self, conn: socket.socket, request: Recorded) -> bool:
        behaviour = self.behaviour
        if behaviour in ("echo", "slow-reader", "one-per-connection", "upgrade-any"):
            body = json.dumps(
                {
                    "method": request.method.decode(),
                    "target": request.target.decode(),
                    "headers": [[k.decode(), v.decode("latin-1")] for k, v in request.headers],
                    "body_length": len(request.body),
                    "body_sha256": hashlib.sha256(request.body).hexdigest(),
                }
            ).encode()
            if request.method == b"HEAD":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            else:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            return True
        if behaviour == "fail":
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nfail")
            return True
        if behaviour == "chunked":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            return True
        if behaviour == "close-delimited":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
            return False
        if behaviour.startswith("status:"):
            status = int(behaviour.split(":")[1])
            conn.sendall(b'HTTP/1.1 %d X\r\nETag: "v1"\r\n\r\n' % status)
            return True
        if behaviour in ("big", "huge"):
            size = (64 if behaviour == "huge" else 8) * 1024 * 1024
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            block = b"b" * 65536
            for _ in range(size // len(block)):
                conn.sendall(block)
            return True
        if behaviour == "reset-mid-response":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b")
            time.sleep(0.1)  # the start of the answer goes out before the reset
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if behaviour == "reset-before-response":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if behaviour == "malformed":
            conn.sendall(b"HTTP/1.1 OK\r\n\r\n")
            return False
        if behaviour == "extra-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA-BYTES")
            return True
        if behaviour == "hang":
            time.sleep(10)  # longer than any upstream timeout the tests set
            return False
        if behaviour == "held":  # answers once the test sets ``release``
            self.release.wait(timeout=30)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld")
            return True
        if behaviour == "slow":
            time.sleep(0.5)  # an app that takes its time
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
            return True
        raise AssertionError(behaviour)


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return find_header(self.headers, name)

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


class _ResponseReader:
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[Response] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = b""

    def on_message_begin(self) -> None:
        self._headers, self._body = [], b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append(Response(self.parser.get_status_code(), self._headers, self._body))


class Client:
    """A keep-alive client on one raw connection."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = _ResponseReader()
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, count: int = 1) -> list[Response]:
        while len(self.reader.done) < count:
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                break
            self.reader.parser.feed_data(data)
        done, self.reader.done = self.reader.done[:count], self.reader.done[count:]
        return done

    def request(self, data: bytes) -> Response:
        self.send(data)
        [response] = self.read(1)
        return response

    def read_raw_until_close(self) -> bytes:
        chunks = []
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def get(path: str = "/", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode()


class _OneHead:
    head: RequestHead

    def on_request(self, head: RequestHead) -> None:
        self.head = head

    def on_request_body(self, data: bytes) -> None:
        pass

    def on_request_end(self) -> None:
        pass


def parse_head(raw: bytes) -> RequestHead:
    """The head of the first request in ``raw``, as Pillion's parser makes it."""
    one = _OneHead()
    RequestParser(one, ParserLimits()).feed(raw)
    return one.head
