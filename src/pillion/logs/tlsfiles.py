"""TLS settings of an output, as a client context (see ``pillion.tls``)."""

from __future__ import annotations

from pillion.config.logs import LogOutputConfig
from pillion.tls import ClientTls, TlsLoadError

__all__ = ["client_tls", "load_tls"]


def client_tls(config: LogOutputConfig) -> ClientTls | None:
    return ClientTls.of(config.tls) if config.tls is not None else None


def load_tls(tls: ClientTls) -> None:
    """Load the files; an unusable one stops the start (``OSError``, as other sinks)."""
    try:
        tls.load()
    except TlsLoadError as exc:
        raise OSError(str(exc)) from None
