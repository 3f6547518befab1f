"""Who a peer is, from its certificate: the SPIFFE ID (a ``spiffe://`` URI SAN),
else the first DNS SAN, else the subject's common name. No I/O."""

from __future__ import annotations

import datetime

__all__ = ["not_after", "peer_identity"]


def peer_identity(der: bytes) -> str | None:
    """The identity in a DER certificate, or None when it names nobody."""
    from cryptography import x509  # lazy: only where TLS is used
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
            if uri.startswith("spiffe://"):
                return uri
        dns = san.get_values_for_type(x509.DNSName)
        if dns:
            return dns[0]
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value if isinstance(value, str) else value.decode("latin-1")
    return None


def not_after(pem: bytes) -> datetime.datetime:
    """When the first certificate of a PEM bundle expires (UTC)."""
    from cryptography import x509  # lazy: only where TLS is used

    return x509.load_pem_x509_certificate(pem).not_valid_after_utc
