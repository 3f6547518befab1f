"""A development certificate authority: a CA, and workload certificates it signs.

For demos and tests, and for teams without a mesh CA yet. Keys are ECDSA P-256
(fast handshakes, what SPIFFE/SPIRE and Istio issue); workload certificates
carry a SPIFFE ID as a URI SAN and DNS names, and are valid for client and
server authentication. Lifetimes: a CA one year, a workload certificate 30 days
(short enough to exercise rotation, long enough for a dev setup).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pillion.tls.lifetimes import CA_DAYS, WORKLOAD_DAYS

__all__ = ["CA_DAYS", "WORKLOAD_DAYS", "Issued", "issue", "new_ca"]

_BACKDATE = datetime.timedelta(minutes=5)  # tolerate clocks slightly behind


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _window(days: float, not_before: datetime.datetime | None) -> tuple[datetime.datetime, ...]:
    start = not_before or datetime.datetime.now(datetime.UTC) - _BACKDATE
    return start, start + datetime.timedelta(days=days)


def new_ca(
    common_name: str = "Pillion dev CA",
    *,
    days: float = CA_DAYS,
    not_before: datetime.datetime | None = None,
) -> Issued:
    """A self-signed CA that may sign workload certificates (not other CAs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start, end = _window(days, not_before)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    ca: Issued,
    *,
    spiffe_id: str | None = None,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    common_name: str | None = None,
    days: float = WORKLOAD_DAYS,
    not_before: datetime.datetime | None = None,
) -> Issued:
    """A workload certificate signed by ``ca``, for TLS clients and servers."""
    if not (spiffe_id or dns_names or ip_addresses or common_name):
        raise ValueError("a certificate needs a SPIFFE ID, a DNS name, an IP or a common name")
    if spiffe_id is not None and not spiffe_id.startswith("spiffe://"):
        raise ValueError(f"{spiffe_id!r} is not a SPIFFE ID (spiffe://trust-domain/path)")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key made by `pillion certs init`")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    )
    names: list[x509.GeneralName] = []
    if spiffe_id:
        names.append(x509.UniformResourceIdentifier(spiffe_id))
    names += [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    start, end = _window(days, not_before)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if names:
        # critical when the subject is empty (RFC 5280 §4.2.1.6)
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=not common_name
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))
