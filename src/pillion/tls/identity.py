"""Who a peer is, from its certificate: the SPIFFE ID (a ``spiffe://`` URI SAN),
else the first DNS SAN, else the subject's common name. No I/O."""

from __future__ import annotations

from pillion.tls.certfields import read_certificate

__all__ = ["peer_identity"]


def peer_identity(der: bytes) -> str | None:
    """The identity in a DER certificate, or None when it names nobody; ``ValueError``
    if it is not a certificate."""
    fields = read_certificate(der)
    for uri in fields.uris:
        if uri.startswith("spiffe://"):
            return uri
    if fields.dns_names:
        return fields.dns_names[0]
    return fields.common_name
