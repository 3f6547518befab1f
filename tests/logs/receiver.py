"""A log receiver for the fault tests: the ``http`` output's JSON lines, counted by
message (gzip or not), on a real socket; it answers 503 (retry) until told to accept."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from types import TracebackType

from tests.helpers import serve_http

__all__ = ["Receiver"]


class Receiver:
    def __init__(self, *, accepting: bool, host: str = "127.0.0.1") -> None:
        self.accepting = accepting
        self.host = host
        self.refused = 0  # batches answered 503
        self._ids: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._serving = contextlib.ExitStack()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/push"

    def ids(self) -> Counter[str]:
        """How many times each message arrived."""
        with self._lock:
            return Counter(self._ids)

    def __enter__(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with outer._lock:
                    if not outer.accepting:
                        outer.refused += 1
                        self.send_response(503)
                    else:
                        for line in body.splitlines():
                            outer._ids[json.loads(line)["message"]] += 1
                        self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = self._serving.enter_context(serve_http(Handler, host=self.host))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._serving.close()
