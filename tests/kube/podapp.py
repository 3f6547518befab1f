"""The app of the test pods: standard library only, run by the system's python3.

serve PORT [--require FILE]... [--access-log FILE]
                                an HTTP server; exits 3 at start if a required file
                                is missing or unreadable; with --access-log, one
                                line per request ("GET /path") appended to FILE.
                                Like most apps, it stops at once on SIGTERM
                                (nothing of its own drains in-flight requests).
                                Paths:             /        a greeting
                                                   /file?path=P  the content of P
                                                   /call?url=U   fetches U, says what came
                                                   /h2call?url=U  the same over HTTP/2
                                                                 (curl, prior knowledge)
                                                   /tcp?host=H&port=N  sends a line over
                                                                 TCP, answers its reply
                                                   /slow?ms=N    answers after N ms
job OUT [--require FILE]... [--exit-file F]
                                copies the required files into OUT and exits 0
                                (touching F last, the classic-mode Job's signal).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _check(required: list[str]) -> dict[str, str]:
    found = {}
    for path in required:
        try:
            with open(path) as file:
                found[path] = file.read()
        except OSError as exc:
            print(json.dumps({"event": "missing", "path": path, "error": exc.strerror}), flush=True)
            sys.exit(3)
    return found


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    access_log: str | None = None

    def do_GET(self) -> None:
        if self.access_log is not None:
            with open(self.access_log, "a") as log:
                log.write(f"GET {self.path}\n")
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/":
            self._answer(200, b"hello from the app\n")
        elif url.path == "/file":
            with open(query["path"], "rb") as file:
                self._answer(200, file.read())
        elif url.path == "/call":
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(query["url"], timeout=5) as response:
                    body = response.read()
                    self._answer(200, f"{response.status} ".encode() + body)
            except OSError as exc:
                self._answer(502, f"call failed: {exc}\n".encode())
        elif url.path == "/h2call":  # HTTP/2 with prior knowledge, as a gRPC client calls
            done = subprocess.run(
                ["curl", "-s", "-m", "5", "--http2-prior-knowledge", "-w", " %{http_version}",
                 query["url"]],
                capture_output=True, check=False,
            )  # fmt: skip
            self._answer(200 if done.returncode == 0 else 502, done.stdout)
        elif url.path == "/tcp":
            with socket.create_connection((query["host"], int(query["port"])), timeout=5) as sock:
                sock.sendall(b"ping\n")
                self._answer(200, sock.recv(1024))
        elif url.path == "/slow":
            time.sleep(int(query["ms"]) / 1000)
            self._answer(200, b"slow\n")
        else:
            self._answer(404, b"not found\n")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _options(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == name]


def main(argv: list[str]) -> None:
    command, where, rest = argv[0], argv[1], argv[2:]
    found = _check(_options(rest, "--require"))
    if command == "serve":
        for path in _options(rest, "--access-log"):
            Handler.access_log = path
        server = ThreadingHTTPServer(("0.0.0.0", int(where)), Handler)
        print(json.dumps({"event": "started", "uid": os.getuid(), "files": found}), flush=True)
        server.serve_forever()
    elif command == "job":
        with open(where, "w") as out:
            out.write(json.dumps(found))
        for path in _options(rest, "--exit-file"):
            with open(path, "w"):
                pass
        print(json.dumps({"event": "done"}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
