"""The demo application: what a team's service looks like before Pillion.

An HTTP service on localhost that writes JSON log lines to a file, reads a
config file and a secret file (as rendered by a sidecar), and exposes a JSON
stats endpoint. It never prints or logs the secret's value.
``/call`` calls a second service (``/work`` of another instance, started with
``--name backend --fail-every N``) through Pillion's outbound listener, as a
service calls its dependencies.
Run: ``python -m pillion.demo.app --port 8080 --workdir DIR [--outbound URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["build_app", "main"]


class DemoApp:
    def __init__(
        self,
        workdir: Path,
        name: str = "app",
        outbound: str = "",
        fail_every: int = 0,
        statsd: tuple[str, int] | None = None,
    ) -> None:
        self.name = name
        self.statsd = statsd  # where it sends a StatsD counter and timer per request
        self._statsd_socket: socket.socket | None = None
        self.outbound = outbound
        self.fail_every = fail_every
        self.work_done = 0
        self.log_file = workdir / "logs" / "app.log"
        self.config_file = workdir / "config" / "app.json"
        self.secret_file = workdir / "secrets" / "api-key"
        self.started = time.time()
        self.requests = 0
        self.errors = 0
        self.reloads = 0  # POST /-/reload: its files changed (Pillion tells it)

    def log(self, **fields: object) -> None:
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields})
        with self.log_file.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    @web.middleware
    async def count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        began = time.perf_counter()
        self.requests += 1
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if response.status >= 500:
            self.errors += 1
        self.send_statsd(request.path, response.status, time.perf_counter() - began)
        self.log(
            level="info",
            msg="request",
            method=request.method,
            path=request.path,
            status=response.status,
            duration_ms=round((time.perf_counter() - began) * 1000, 3),
        )
        if isinstance(response, web.HTTPException):
            raise response
        return response

    def send_statsd(self, path: str, status: int, seconds: float) -> None:
        """What an app instrumented with a StatsD client sends: fire and forget."""
        if self.statsd is None:
            return
        if self._statsd_socket is None:
            self._statsd_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        lines = (
            f"demo.http.requests:1|c|#path:{path},status:{status}\n"
            f"demo.http.duration:{seconds * 1000:.3f}|ms|#path:{path}"
        )
        with contextlib.suppress(OSError):
            self._statsd_socket.sendto(lines.encode(), self.statsd)

    async def index(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "hello": "from the demo app",
                "config": self._config(),
                "secret": self._secret_fingerprint(),
                "reloads": self.reloads,
                "headers": {k: v for k, v in request.headers.items() if k.lower().startswith("x-")},
            }
        )

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "up",
                "uptime_seconds": round(time.time() - self.started, 3),
                "requests": self.requests,
                "errors": self.errors,
                "queue": {"depth": 0, "workers": 4},
            }
        )

    async def work(self, request: web.Request) -> web.Response:
        """The backend's endpoint; with ``--fail-every N`` every N-th call is a 503."""
        self.work_done += 1
        if self.fail_every and self.work_done % self.fail_every == 0:
            return web.json_response({"error": "try again", "by": self.name}, status=503)
        return web.json_response({"worked": True, "by": self.name, "call": self.work_done})

    async def call(self, request: web.Request) -> web.Response:
        """Call the backend through Pillion's outbound listener (Host names the cluster),
        in the same trace."""
        if not self.outbound:
            return web.json_response({"error": "no --outbound given"}, status=500)
        headers = {"Host": "backend"}
        # the trace goes on (an app with its own spans would send its span's id here)
        if "traceparent" in request.headers:
            headers["traceparent"] = request.headers["traceparent"]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.outbound}/work", headers=headers) as answer,
        ):
            return web.json_response(
                {"backend_status": answer.status, "backend": await answer.json()},
                status=200 if answer.status == 200 else 502,
            )

    async def reload(self, request: web.Request) -> web.Response:
        """Told that its config or secret files changed: it reads them again."""
        self.reloads += 1
        self.log(level="info", msg="reloaded", config=self._config(), reloads=self.reloads)
        return web.json_response({"reloaded": True, "reloads": self.reloads})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    def _config(self) -> object:
        try:
            return json.loads(self.config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return {"error": f"cannot read {self.config_file.name}: {type(exc).__name__}"}

    def _secret_fingerprint(self) -> dict[str, object]:
        try:
            value = self.secret_file.read_bytes()
        except OSError:
            return {"present": False}
        return {"present": True, "sha256_prefix": hashlib.sha256(value).hexdigest()[:12]}


def build_app(
    workdir: Path,
    name: str = "app",
    outbound: str = "",
    fail_every: int = 0,
    statsd: tuple[str, int] | None = None,
) -> web.Application:
    demo = DemoApp(workdir, name, outbound, fail_every, statsd)
    for folder in ("logs", "config", "secrets"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    app = web.Application(middlewares=[demo.count])
    app.router.add_get("/", demo.index)
    app.router.add_get("/stats", demo.stats)
    app.router.add_get("/healthz", demo.healthz)
    app.router.add_get("/work", demo.work)
    app.router.add_get("/call", demo.call)
    app.router.add_post("/-/reload", demo.reload)
    return app


async def _serve(
    port: int,
    workdir: Path,
    name: str,
    outbound: str,
    fail_every: int,
    statsd: tuple[str, int] | None,
) -> None:
    app = build_app(workdir, name, outbound, fail_every, statsd)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"demo {name} listening on 127.0.0.1:{port} (pid {os.getpid()})", flush=True)
    await stop.wait()
    for signum in (signal.SIGTERM, signal.SIGINT):  # stopping already: ignore repeats
        loop.remove_signal_handler(signum)
        signal.signal(signum, signal.SIG_IGN)
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="Pillion's demo app")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--name", default="app", help="Its name in answers.")
    parser.add_argument("--outbound", default="", help="Pillion's outbound listener URL.")
    parser.add_argument(
        "--fail-every", type=int, default=0, help="Every N-th /work call answers 503."
    )
    parser.add_argument(
        "--statsd-port", type=int, default=0, help="Send StatsD to 127.0.0.1:PORT (0: none)."
    )
    args = parser.parse_args()
    statsd = ("127.0.0.1", args.statsd_port) if args.statsd_port else None
    asyncio.run(_serve(args.port, args.workdir, args.name, args.outbound, args.fail_every, statsd))


if __name__ == "__main__":
    main()
