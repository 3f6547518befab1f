"""Server-side SSL contexts built from certificate files, and rebuilt when the
files change.

TLS 1.2 and 1.3 only (1.3 only if asked), forward-secret AEAD ciphers for 1.2
(Mozilla's "intermediate" list), ALPN as the listener or cluster speaks
(``h2`` and ``http/1.1`` by default on a listener), no compression, no
renegotiation. Several certificates are chosen by SNI (their ``server_names``,
else the DNS names in the certificate; ``*.example.com`` matches one label),
the first being the default. With a client CA the peer's certificate is
required (or optional) and verified.

Certificates' names and expiry are read by ``certfields``, not ``cryptography``
(about 9 MiB once imported).

A reload builds complete new contexts first and swaps them in only when every
file loaded: a half-written or garbage file leaves the old ones serving. Files
are compared by ``stat`` (inode, size, mtime) following symlinks, which catches
both an atomic rename and Kubernetes' ``..data`` symlink swap.
"""

from __future__ import annotations

import datetime
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pillion.tls.certfields import CertificateFields, pem_certificates, read_certificate

if TYPE_CHECKING:
    from pillion.config.proxy import UpstreamTlsConfig

__all__ = ["CertificateFiles", "ClientTls", "ServerTls", "TlsLoadError"]

_TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


class TlsLoadError(Exception):
    """A certificate, key or CA file could not be used; says which and why."""


@dataclass(frozen=True)
class CertificateFiles:
    cert: str
    key: str
    server_names: tuple[str, ...] = ()


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise TlsLoadError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _certificates(pem: bytes, path: str, what: str) -> list[CertificateFields]:
    try:
        found = [read_certificate(der) for der in pem_certificates(pem)]
    except ValueError as exc:
        raise TlsLoadError(f"{what} {path}: {exc}") from None
    if not found:
        raise TlsLoadError(f"{what} {path} holds no PEM certificate")
    return found


def _new_context(
    protocol: ssl._SSLMethod, min_version: str, alpn: Sequence[str] = ("http/1.1",)
) -> ssl.SSLContext:
    """A context with Pillion's protocol versions, ciphers and ALPN."""
    context = ssl.SSLContext(protocol)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.set_ciphers(_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(list(alpn))
    return context


def _load_chain(context: ssl.SSLContext, cert: str, key: str, where: str) -> None:
    """Load a certificate and its key; ``TlsLoadError`` says which files and why."""
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise TlsLoadError(f"{where}cannot load {cert} with key {key}: {reason}") from None
    except OSError as exc:
        raise TlsLoadError(f"{where}cannot read {exc.filename}: {exc.strerror or exc}") from None


class _Loaded:
    """One complete set of contexts, from one reading of the files."""

    def __init__(
        self,
        default: ssl.SSLContext,
        by_name: dict[str, ssl.SSLContext],
        server_expiry: datetime.datetime,
        ca_expiry: datetime.datetime | None,
    ) -> None:
        self.default = default
        self.by_name = by_name
        self.server_expiry = server_expiry
        self.ca_expiry = ca_expiry

    def pick(self, server_name: str) -> ssl.SSLContext | None:
        name = server_name.lower()
        context = self.by_name.get(name)
        if context is None and "." in name:
            context = self.by_name.get("*." + name.split(".", 1)[1])
        return context


class ServerTls:
    """The TLS side of one listener: ``context`` for the next handshake."""

    def __init__(
        self,
        certificates: Sequence[CertificateFiles],
        *,
        client_ca: str | None = None,
        client_certificate: str = "required",
        min_version: str = "1.2",
        alpn: Sequence[str] = ("h2", "http/1.1"),
    ) -> None:
        if not certificates:
            raise ValueError("a TLS listener needs a certificate")
        self.certificates = tuple(certificates)
        self.client_ca = client_ca
        self.client_certificate = client_certificate
        self.min_version = min_version
        self.alpn = tuple(alpn)
        self._loaded: _Loaded | None = None
        self._stamp: tuple[object, ...] = ()

    @property
    def context(self) -> ssl.SSLContext:
        assert self._loaded is not None, "load() first"
        return self._loaded.default

    @property
    def server_expiry(self) -> datetime.datetime:
        """When the soonest-expiring serving certificate expires."""
        assert self._loaded is not None
        return self._loaded.server_expiry

    @property
    def ca_expiry(self) -> datetime.datetime | None:
        """When the soonest-expiring client CA certificate expires (None: no CA)."""
        assert self._loaded is not None
        return self._loaded.ca_expiry

    def _files(self) -> list[str]:
        files = [path for c in self.certificates for path in (c.cert, c.key)]
        return [*files, self.client_ca] if self.client_ca else files

    def changed(self) -> bool:
        """Whether a file differs (by stat) from what was loaded last."""
        return tuple(_stat(path) for path in self._files()) != self._stamp

    def mark_seen(self) -> None:
        """Take the files as they are now as seen (after a failed load: not retried
        until they change again)."""
        self._stamp = tuple(_stat(path) for path in self._files())

    def load(self) -> None:
        """Read every file and build new contexts; ``TlsLoadError`` leaves the old
        ones (if any) in place."""
        stamp = tuple(_stat(path) for path in self._files())
        self._loaded = self._build()
        self._stamp = stamp

    def _build(self) -> _Loaded:
        ca_pem = _read(self.client_ca, "client CA") if self.client_ca else None
        ca_expiry = None
        if ca_pem is not None and self.client_ca is not None:
            ca_certs = _certificates(ca_pem, self.client_ca, "client CA")
            ca_expiry = min(cert.not_after for cert in ca_certs)
        contexts: list[ssl.SSLContext] = []
        by_name: dict[str, ssl.SSLContext] = {}
        expiries = []
        for index, files in enumerate(self.certificates):
            cert_pem = _read(files.cert, "certificate")
            leaf = _certificates(cert_pem, files.cert, "certificate")[0]
            expiries.append(leaf.not_after)
            context = self._context(files, ca_pem, index)
            contexts.append(context)
            for name in files.server_names or leaf.dns_names:
                by_name.setdefault(name.lower(), context)
        loaded = _Loaded(contexts[0], by_name, min(expiries), ca_expiry)
        if len(contexts) > 1 or by_name:

            def pick(sslobj: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
                if server_name:
                    chosen = loaded.pick(server_name)
                    if chosen is not None and chosen is not sslobj.context:
                        sslobj.context = chosen

            contexts[0].sni_callback = pick
        return loaded

    def _context(self, files: CertificateFiles, ca_pem: bytes | None, index: int) -> ssl.SSLContext:
        context = _new_context(ssl.PROTOCOL_TLS_SERVER, self.min_version, self.alpn)
        _load_chain(context, files.cert, files.key, f"certificates[{index}]: ")
        if ca_pem is not None:
            try:
                context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
            except ssl.SSLError as exc:
                raise TlsLoadError(f"client CA {self.client_ca}: {exc.reason or exc}") from None
            context.verify_mode = (
                ssl.CERT_OPTIONAL if self.client_certificate == "optional" else ssl.CERT_REQUIRED
            )
        return context


class ClientTls:
    """The TLS side of connections to an upstream (mTLS origination): verify the
    server against ``ca`` (by host name, or by ``identities`` when given), and
    present ``cert`` when there is one. Reloaded like ``ServerTls``."""

    def __init__(
        self,
        ca: str,
        *,
        cert: str | None = None,
        key: str | None = None,
        server_name: str | None = None,
        identities: Sequence[str] = (),
        min_version: str = "1.2",
        alpn: Sequence[str] = ("http/1.1",),
    ) -> None:
        self.ca = ca
        self.alpn = tuple(alpn)  # what the cluster's ``protocol`` offers
        self.cert = cert
        self.key = key
        self.server_name = server_name
        self.identities = frozenset(identities)
        self.min_version = min_version
        self._context: ssl.SSLContext | None = None
        self._stamp: tuple[object, ...] = ()
        self.ca_expiry: datetime.datetime | None = None
        self.cert_expiry: datetime.datetime | None = None

    @classmethod
    def of(cls, config: UpstreamTlsConfig, *, alpn: Sequence[str] = ("http/1.1",)) -> ClientTls:
        """The client side that a config's `tls:` section (a cluster's, a log
        output's, the tracing collector's) describes."""
        return cls(
            config.ca,
            cert=config.cert,
            key=config.key,
            server_name=config.server_name,
            identities=config.identities,
            min_version=config.min_version,
            alpn=alpn,
        )

    @property
    def context(self) -> ssl.SSLContext:
        assert self._context is not None, "load() first"
        return self._context

    def _files(self) -> list[str]:
        return [self.ca, *(path for path in (self.cert, self.key) if path)]

    def changed(self) -> bool:
        return tuple(_stat(path) for path in self._files()) != self._stamp

    def mark_seen(self) -> None:
        self._stamp = tuple(_stat(path) for path in self._files())

    def load(self) -> None:
        """Build a new context from the files; ``TlsLoadError`` keeps the old one."""
        stamp = tuple(_stat(path) for path in self._files())
        ca_pem = _read(self.ca, "CA")
        ca_expiry = min(c.not_after for c in _certificates(ca_pem, self.ca, "CA"))
        cert_expiry = None
        if self.cert:
            leaf = _certificates(_read(self.cert, "certificate"), self.cert, "certificate")[0]
            cert_expiry = leaf.not_after
        context = _new_context(ssl.PROTOCOL_TLS_CLIENT, self.min_version, self.alpn)
        # with an identity allow-list the peer is checked by identity, after the handshake
        context.check_hostname = not self.identities
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
        except ssl.SSLError as exc:
            raise TlsLoadError(f"CA {self.ca}: {exc.reason or exc}") from None
        if self.cert and self.key:
            _load_chain(context, self.cert, self.key, "")
        self._context = context
        self._stamp = stamp
        self.ca_expiry, self.cert_expiry = ca_expiry, cert_expiry

    def allows(self, identity: str | None) -> bool:
        """Whether a server with this certificate identity is the one expected."""
        return not self.identities or identity in self.identities
