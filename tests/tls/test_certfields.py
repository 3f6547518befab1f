"""The certificate fields Pillion reads without ``cryptography`` agree with what
``cryptography`` reads, on certificates of every shape the fields can take, and
anything that is not a certificate is a ``ValueError``, never another error."""

from __future__ import annotations

import base64
import contextlib
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.tls.certfields import pem_certificates, read_certificate
from pillion.tls.contexts import CertificateFiles, ServerTls, TlsLoadError
from pillion.tls.identity import peer_identity

_EC = ec.generate_private_key(ec.SECP256R1())
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PKCS8 = (
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
_REFUSED = "DER|certificate|validity|subject|attribute|extension|alt names|time"
_START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)

labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
dns_names = st.builds(lambda parts: ".".join(parts), st.lists(labels, min_size=1, max_size=4))
uris = st.one_of(
    st.builds(lambda ns, sa: f"spiffe://cluster.local/ns/{ns}/sa/{sa}", labels, labels),
    st.builds(lambda host: f"https://{host}/x", dns_names),
)
common_names = st.one_of(
    st.none(), st.text(min_size=1, max_size=30).filter(lambda t: "\x00" not in t)
)
expiries = st.datetimes(
    min_value=datetime.datetime(2025, 1, 1), max_value=datetime.datetime(2200, 1, 1)
).map(lambda moment: moment.replace(microsecond=0, tzinfo=datetime.UTC))


def certificate(
    dns: list[str],
    uri: list[str],
    common_name: str | None,
    expiry: datetime.datetime,
    *,
    critical: bool = False,
    rsa_key: bool = False,
    extra: tuple[x509.GeneralName, ...] = (),
) -> x509.Certificate:
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pillion tests")]
    if common_name is not None:
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    key = _RSA if rsa_key else _EC
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_START)
        .not_valid_after(expiry)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    names: list[x509.GeneralName] = [*extra]
    names += [x509.DNSName(name) for name in dns]
    names += [x509.UniformResourceIdentifier(name) for name in uri]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=critical)
    return builder.sign(key, hashes.SHA256())


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(dns_names, max_size=3),
    st.lists(uris, max_size=2),
    common_names,
    expiries,
    st.booleans(),
)
def test_the_fields_are_those_cryptography_reads(
    dns: list[str], uri: list[str], common_name: str | None, expiry: datetime.datetime,
    critical: bool,
) -> None:  # fmt: skip
    cert = certificate(dns, uri, common_name, expiry, critical=critical)
    fields = read_certificate(der(cert))
    assert fields.not_after == cert.not_valid_after_utc
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        expected_dns = san.get_values_for_type(x509.DNSName)
        expected_uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        expected_dns, expected_uris = [], []
    assert list(fields.dns_names) == expected_dns
    assert list(fields.uris) == expected_uris
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert fields.common_name == (names[0].value if names else None)


def test_rsa_other_alt_name_kinds_and_dates_either_side_of_2050() -> None:
    extra = (
        x509.IPAddress(__import__("ipaddress").ip_address("10.0.0.1")),
        x509.RFC822Name("ops@example.com"),
    )
    for expiry in (
        datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.UTC),  # UTCTime
        datetime.datetime(2050, 1, 1, tzinfo=datetime.UTC),  # GeneralizedTime
    ):
        cert = certificate(["a.example"], [], "Zürich", expiry, rsa_key=True, extra=extra)
        fields = read_certificate(der(cert))
        assert fields == (expiry, ("a.example",), (), "Zürich")


def test_the_identity_prefers_spiffe_then_dns_then_the_common_name() -> None:
    later = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    spiffe = "spiffe://cluster.local/ns/shop/sa/web"
    assert (
        peer_identity(der(certificate(["w.example"], ["https://x/", spiffe], "cn", later)))
        == spiffe
    )
    assert (
        peer_identity(der(certificate(["w.example"], ["https://x/"], "cn", later))) == "w.example"
    )
    assert peer_identity(der(certificate([], [], "just a name", later))) == "just a name"
    assert peer_identity(der(certificate([], [], None, later))) is None


def test_a_pem_bundle_gives_each_certificate_in_order() -> None:
    later = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    first, second = certificate(["one"], [], None, later), certificate(["two"], [], None, later)
    pem = (
        b"a comment before\n"
        + first.public_bytes(serialization.Encoding.PEM)
        + b"\n-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
        + second.public_bytes(serialization.Encoding.PEM).replace(
            b"CERTIFICATE", b"X509 CERTIFICATE"
        )
    )
    assert [read_certificate(d).dns_names for d in pem_certificates(pem)] == [("one",), ("two",)]
    assert pem_certificates(b"no certificate here") == []
    with pytest.raises(ValueError, match="not base64"):
        pem_certificates(b"-----BEGIN CERTIFICATE-----\nAB=C\n-----END CERTIFICATE-----\n")


_SAMPLE = der(
    certificate(
        ["a.example"], ["spiffe://x/y"], "cn", datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    )
)


def test_every_truncation_and_trailing_byte_is_refused() -> None:
    whole = _SAMPLE
    for cut in range(len(whole)):
        with pytest.raises(ValueError, match=_REFUSED):
            read_certificate(whole[:cut])
    with pytest.raises(ValueError, match="bytes after the certificate"):
        read_certificate(whole + b"\x00")


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300),
    st.integers(min_value=0, max_value=10_000),
    st.binary(min_size=1, max_size=4),
)
def test_damaged_or_random_bytes_are_a_value_error_or_fields(
    noise: bytes, at: int, patch: bytes
) -> None:
    whole = _SAMPLE
    at %= len(whole)
    for data in (noise, whole[:at] + patch + whole[at + len(patch) :]):
        with contextlib.suppress(ValueError):
            read_certificate(data)


def test_a_certificate_file_of_other_der_is_refused_naming_the_file(tmp_path: Path) -> None:
    # base64 that decodes, but to something else than a certificate: the load names the
    # file and what is wrong, and nothing is built
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    body = base64.encodebytes(b"\x30\x03\x02\x01\x01")
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n")
    key.write_bytes(_EC.private_bytes(*_PKCS8))
    with pytest.raises(TlsLoadError, match=r"certificate .*tls\.crt: a certificate that is not"):
        ServerTls([CertificateFiles(str(cert), str(key))]).load()
