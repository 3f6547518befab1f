"""TLS termination on inbound listeners: certificates, client CAs, versions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pillion.config.types import Section
from pillion.config.units import Duration

__all__ = ["CertificateConfig", "TlsConfig"]


class CertificateConfig(Section):
    """A certificate chain and its key, as PEM files."""

    cert: str = Field(description="PEM file: the certificate, then any intermediates.")
    key: str = Field(description="PEM file: the private key (unencrypted).")
    server_names: list[str] = Field(
        default_factory=list,
        description="SNI names this certificate answers (`*.example.com` for one label). "
        "Default: the DNS names in the certificate.",
    )


class TlsConfig(Section):
    """TLS termination: TLS 1.2 and 1.3, modern ciphers, ALPN http/1.1; files are
    watched and reloaded without a restart."""

    certificates: list[CertificateConfig] = Field(
        min_length=1,
        description="Certificates; chosen by SNI, the first is the default.",
    )
    client_ca: str | None = Field(
        None,
        description="PEM bundle of the CAs client certificates must chain to (mTLS). "
        "The caller's identity (SPIFFE ID, else DNS name, else common name) is passed "
        "to the app in `identity_header`. Default: no client certificates.",
    )
    client_certificate: Literal["required", "optional"] = Field(
        "required",
        description="With `client_ca`: whether a client without a certificate is refused "
        "at the handshake (required) or let in without an identity (optional).",
    )
    min_version: Literal["1.2", "1.3"] = Field(
        "1.2", description="Oldest TLS version accepted. Default 1.2 (1.0 and 1.1 never)."
    )
    handshake_timeout: Duration = Field(
        10.0, description="Longest time for a client to complete the handshake. Default 10s."
    )
    reload_interval: Duration = Field(
        1.0,
        description="How often the files are checked for changes (a new certificate "
        "serves new handshakes; open connections are untouched). Default 1s.",
    )
