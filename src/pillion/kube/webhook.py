"""``pillion webhook``: the mutating admission webhook, over HTTPS.

``POST /inject`` answers AdmissionReview v1 (see ``admission``), and ``POST
/inject/tag/<tag>`` the same for the pods a revision tag sends here; ``GET
/healthz`` answers 200 while serving; ``GET /metrics`` has
``pillion_injections_total{result,reason,revision,version}`` (so "why wasn't my
pod injected", and "who injected which version", have an answer) and the review
durations. The serving certificate and key are read again when their
files change (cert-manager or a Secret update), without a restart: new
handshakes get the new certificate, and a broken pair keeps the old one.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from typing import Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from pillion.config.types import ListenAddress
from pillion.kube.admission import MAX_REVIEW_BYTES, review
from pillion.kube.inject import InjectSettings
from pillion.telemetry import Metrics
from pillion.tls.contexts import CertificateFiles, ServerTls, TlsLoadError

__all__ = ["WebhookServer", "run_webhook"]

log = logging.getLogger("pillion.webhook")

RELOAD_INTERVAL = 1.0  # seconds between checks of the certificate files


class WebhookFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.injections = Counter(
            "pillion_injections",
            "Pod admission reviews, by result (injected, skipped, refused: a malformed "
            "review), reason, the injector's revision and the sidecar version injected "
            "(empty when none was).",
            ["result", "reason", "revision", "version"],
            registry=registry,
        )
        self.duration = Histogram(
            "pillion_webhook_review_duration_seconds",
            "Time to answer one AdmissionReview.",
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        )
        self.reloads = Counter(
            "pillion_webhook_certificate_reloads",
            "Serving certificate reloads, by result.",
            ["result"],
            registry=registry,
        )


class WebhookServer:
    def __init__(
        self,
        settings: InjectSettings,
        cert: str,
        key: str,
        listen: ListenAddress,
        policy: Literal["allow", "deny"] = "allow",
    ) -> None:
        self.settings = settings
        self.listen = listen
        self.policy = policy
        self.metrics = Metrics()
        self.families = self.metrics.family("webhook", WebhookFamilies)
        self.tls = ServerTls([CertificateFiles(cert, key)], client_certificate="optional")
        self._runner: web.AppRunner | None = None
        self._watcher: asyncio.Task[None] | None = None

    def _front_context(self) -> ssl.SSLContext:
        """The context the server listens with: each handshake is handed the current
        certificates' context, so a reload needs no new listener."""
        front = self.tls.context
        tls = self.tls

        def current(sslobj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
            if sslobj.context is not tls.context:
                sslobj.context = tls.context

        front.sni_callback = current
        return front

    async def start(self) -> None:
        self.tls.load()  # TlsLoadError: the caller says why and exits
        app = web.Application(client_max_size=MAX_REVIEW_BYTES + 1)
        app.router.add_post("/inject", self._inject)
        app.router.add_post("/inject/tag/{tag:[a-z0-9][a-z0-9-]{0,29}}", self._inject)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.listen.host, self.listen.port,
                           ssl_context=self._front_context())  # fmt: skip
        await site.start()
        self._watcher = asyncio.create_task(self._watch_certificates())
        log.info("webhook serving", extra={"listen": str(self.listen)})

    async def _inject(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = b" " * (MAX_REVIEW_BYTES + 1)
        tag = request.match_info.get("tag")
        reviewed = review(body, self.settings, self.policy, tag)
        self.families.injections.labels(
            reviewed.result, reviewed.reason, self.settings.revision, reviewed.version
        ).inc()
        self.families.duration.observe(time.perf_counter() - started)
        if reviewed.result == "refused":
            log.warning("malformed admission review", extra={"reason": reviewed.reason})
        return web.json_response(reviewed.answer)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.exposition(request.headers.get("Accept"))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def _watch_certificates(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            if not self.tls.changed():
                continue
            try:
                self.tls.load()
            except TlsLoadError as exc:
                self.families.reloads.labels("error").inc()
                self.tls.mark_seen()
                log.error("certificate reload failed; the previous one keeps serving",
                          extra={"error": str(exc)})  # fmt: skip
                continue
            self.families.reloads.labels("ok").inc()
            log.info("certificate reloaded")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self._runner is not None:
            await self._runner.cleanup()


async def _serve(server: WebhookServer) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
    except (TlsLoadError, OSError) as exc:
        log.error("webhook cannot start", extra={"error": str(exc)})
        return 1
    await stop.wait()
    await server.close()
    return 0


def run_webhook(server: WebhookServer) -> int:
    import uvloop

    result: int = uvloop.run(_serve(server))
    return result
