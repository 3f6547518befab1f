"""TLS on a listener: the handshake of each connection, its peer's identity, the
certificates' reload, and their metrics.

A TLS listener accepts plain TCP and runs the handshake itself
(``loop.start_tls``), so that a failed handshake is seen, and counted by reason
(``pillion_tls_handshake_errors_total``), instead of vanishing inside the
event loop. Once done, the connection is handed to an ``Http2Connection`` when
ALPN chose ``h2``, else to an ``Http1Connection``
with the identity from the client certificate (parsed once per distinct
certificate). Each handshake takes ``tls.context`` as it is then, so a reload
is one assignment: new handshakes get the new certificate, open connections
keep theirs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import typing
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from pillion.proxy.connection import Http1Connection
from pillion.proxy.exchange import ConnectionHost
from pillion.proxy.http2 import Http2Connection
from pillion.telemetry import Metrics
from pillion.tls import ServerTls, TlsLoadError, peer_identity

__all__ = ["TlsHandshake", "TlsHost", "TlsMetrics", "watch_certificates"]

log = logging.getLogger("pillion.proxy")

_IDENTITY_CACHE = 10_000  # distinct client certificates remembered
_REASON = re.compile(r"^[a-z0-9_]{1,48}$")


class TlsFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.expiry = Gauge(
            "pillion_certificate_expiry_timestamp_seconds",
            "When a listener's certificate expires (Unix time): kind server is its "
            "soonest-expiring serving certificate, kind client_ca its client CA bundle's.",
            ["listener", "kind"],
            registry=registry,
            multiprocess_mode="min",
        )
        self.handshake_errors = Counter(
            "pillion_tls_handshake_errors",
            "TLS handshakes that failed, by reason (OpenSSL's, lower case: e.g. "
            "unsupported_protocol, peer_did_not_return_a_certificate, "
            "certificate_verify_failed, http_request; or timeout, reset).",
            ["listener", "reason"],
            registry=registry,
        )
        self.handshakes = Counter(
            "pillion_tls_handshakes",
            "TLS handshakes completed, by protocol version.",
            ["listener", "version"],
            registry=registry,
        )
        self.reloads = Counter(
            "pillion_certificate_reloads",
            "Certificate reloads after the files changed, by result (ok, error: the old "
            "certificates keep serving).",
            ["listener", "result"],
            registry=registry,
        )


class TlsMetrics:
    def __init__(self, metrics: Metrics, listener: str) -> None:
        self.families = metrics.family("tls", TlsFamilies)
        self.listener = listener
        self.reload_ok = self.families.reloads.labels(listener, "ok")
        self.reload_error = self.families.reloads.labels(listener, "error")
        self._errors: dict[str, Counter] = {}
        self._versions: dict[str, Counter] = {}

    def expiry(self, tls: ServerTls) -> None:
        self.families.expiry.labels(self.listener, "server").set(tls.server_expiry.timestamp())
        if tls.ca_expiry is not None:
            self.families.expiry.labels(self.listener, "client_ca").set(tls.ca_expiry.timestamp())

    def failed(self, reason: str) -> None:
        child = self._errors.get(reason)
        if child is None:
            child = self._errors[reason] = self.families.handshake_errors.labels(
                self.listener, reason
            )
        child.inc()

    def completed(self, version: str) -> None:
        child = self._versions.get(version)
        if child is None:
            child = self._versions[version] = self.families.handshakes.labels(
                self.listener, version
            )
        child.inc()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionAbortedError) and "taking longer" in str(exc):
        return "timeout"  # the event loop's ssl_handshake_timeout
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").lower()
        return reason if _REASON.match(reason) else "other"
    if isinstance(exc, ConnectionError):
        return "reset"
    return "other"


class Identities:
    """Client certificate (DER) → identity, parsed once per certificate."""

    def __init__(self) -> None:
        self._known: dict[bytes, bytes | None] = {}

    def of(self, der: bytes | None) -> bytes | None:
        if not der:
            return None
        known = self._known
        if der in known:
            return known[der]
        if len(known) >= _IDENTITY_CACHE:
            known.clear()
        try:
            identity = peer_identity(der)
        except ValueError:
            identity = None
        value = identity.encode("utf-8", "replace") if identity else None
        if value is not None and (b"\r" in value or b"\n" in value):
            value = None  # never a header injection, whatever a CA signed
        known[der] = value
        return value


class TlsHost(ConnectionHost, Protocol):
    """What a handshake needs of its listener, beyond what its connection needs."""

    name: str
    tls: ServerTls | None
    tls_metrics: TlsMetrics
    identities: Identities
    handshake_timeout: float


class TlsHandshake(asyncio.Protocol):
    """A TLS listener's connection until its handshake is done.

    uvloop may deliver the ClientHello to this protocol before ``start_tls`` has
    put its TLS protocol in place (reading starts with the connection). Those
    bytes are kept and fed to the TLS protocol once it has started, ahead of
    anything read after.
    """

    def __init__(self, listener: TlsHost) -> None:
        self.listener = listener
        self.raw: asyncio.Transport | None = None
        self.handshaking = False
        self.raw_early: list[bytes] = []  # TLS bytes read before start_tls took over
        self.early: list[bytes] = []  # decrypted bytes before the hand-over
        self.eof = False
        self.lost = False
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = typing.cast(asyncio.Transport, transport)
        if not self.listener.connection_opened(self):
            self.raw.abort()  # over max_connections
            return
        self.task = self.listener.loop.create_task(self._handshake())

    async def _handshake(self) -> None:
        listener = self.listener
        tls = listener.tls
        assert tls is not None
        assert self.raw is not None
        self.handshaking = True
        if self.raw_early:
            # after start_tls's own first callbacks (its protocol's connection_made)
            listener.loop.call_soon(listener.loop.call_soon, self._feed_raw_early)
        try:
            transport = await listener.loop.start_tls(
                self.raw,
                self,
                tls.context,
                server_side=True,
                ssl_handshake_timeout=listener.handshake_timeout,
            )
        except (OSError, TimeoutError, asyncio.CancelledError) as exc:
            if not isinstance(exc, asyncio.CancelledError):
                reason = _reason(exc)
                listener.tls_metrics.failed(reason)
                log.debug(
                    "tls handshake failed",
                    extra={"listener": listener.name, "reason": reason, "error": repr(exc)},
                )
            self.raw.abort()
            listener.connection_closed(self)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        listener.connection_closed(self)
        if transport is None or self.lost:
            return
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            listener.tls_metrics.completed(sslobj.version() or "unknown")
        identity = listener.identities.of(
            sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        )
        down: Http1Connection | Http2Connection
        http2 = listener.http2
        if http2 is not None and (
            http2.only or (sslobj is not None and sslobj.selected_alpn_protocol() == "h2")
        ):
            down = Http2Connection(listener, http2, identity=identity)
        else:
            down = Http1Connection(listener)
            down.identity = identity
        transport.set_protocol(down)
        down.connection_made(transport)
        for data in self.early:
            down.data_received(data)
        self.early = []
        if self.eof and down.eof_received() is not True:
            transport.close()

    def _feed_raw_early(self) -> None:
        raw, self.raw_early = self.raw_early, []
        if self.raw is None or self.raw.is_closing():
            return
        protocol = self.raw.get_protocol()
        data = b"".join(raw)
        if hasattr(protocol, "get_buffer"):  # uvloop's and asyncio's TLS protocols
            buffered = typing.cast(asyncio.BufferedProtocol, protocol)
            view = memoryview(buffered.get_buffer(len(data)))
            size = min(len(view), len(data))
            view[:size] = data[:size]
            buffered.buffer_updated(size)
        else:
            typing.cast(asyncio.Protocol, protocol).data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.handshaking:
            self.early.append(data)  # decrypted, from the TLS protocol
        else:
            self.raw_early.append(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        return True  # decided at the hand-over

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    # -- as a listener's connection while handshaking --

    def begin_drain(self) -> None:
        pass  # a handshake in progress finishes; its one request gets Connection: close

    def abort(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.raw is not None:
            self.raw.abort()


async def watch_certificates(
    tls: ServerTls, metrics: TlsMetrics, listener: str, interval: float
) -> None:
    """Reload a listener's certificates whenever their files change."""
    while True:
        await asyncio.sleep(interval)
        if not tls.changed():
            continue
        try:
            tls.load()
        except TlsLoadError as exc:
            metrics.reload_error.inc()
            log.error(
                "certificate reload failed; the previous certificates keep serving",
                extra={"listener": listener, "error": str(exc)},
            )
            tls.mark_seen()  # tried again when the files change again
            continue
        metrics.reload_ok.inc()
        metrics.expiry(tls)
        log.info(
            "certificates reloaded",
            extra={"listener": listener, "expires": tls.server_expiry.isoformat()},
        )
