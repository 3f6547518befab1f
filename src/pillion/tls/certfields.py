"""The few fields of an X.509 certificate Pillion reads, from its DER, without I/O:
when it expires, its DNS and URI subject alternative names, its subject's common
name.

A small DER walker instead of ``cryptography`` (about 9 MiB once imported): a
sidecar terminating TLS needs these fields for SNI, expiry metrics and peer
identities, and nothing else of a certificate. Whether a certificate is valid,
signed or trusted is OpenSSL's business (``load_cert_chain``, the handshake);
this reads what OpenSSL accepted. Anything malformed, truncated or beyond what
RFC 5280 allows in these fields raises ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from typing import NamedTuple

__all__ = ["CertificateFields", "pem_certificates", "read_certificate"]

_PEM = re.compile(
    rb"-----BEGIN (?:X509 )?CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END (?:X509 )?CERTIFICATE-----"
)
_SEQUENCE, _SET, _OID, _OCTETS, _BOOLEAN = 0x30, 0x31, 0x06, 0x04, 0x01
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_VERSION, _EXTENSIONS = 0xA0, 0xA3  # [0] and [3], explicit
_DNS_NAME, _URI = 0x82, 0x86  # GeneralName [2] and [6], IA5String
_COMMON_NAME = b"\x55\x04\x03"  # 2.5.4.3
_SUBJECT_ALT_NAME = b"\x55\x1d\x11"  # 2.5.29.17
_TEXT = {  # directory string types, as cryptography decodes them
    0x0C: "utf-8",  # UTF8String
    0x13: "latin-1",  # PrintableString
    0x14: "latin-1",  # T61String
    0x16: "latin-1",  # IA5String
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}


class CertificateFields(NamedTuple):
    not_after: datetime.datetime  # UTC
    dns_names: tuple[str, ...]
    uris: tuple[str, ...]
    common_name: str | None


class _Element(NamedTuple):
    tag: int
    start: int  # of the content
    end: int


def _element(data: bytes, at: int, limit: int) -> _Element:
    """The element whose header starts at ``at``, which must end by ``limit``."""
    if at + 2 > limit:
        raise ValueError("truncated DER")
    tag, length = data[at], data[at + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("a multi-byte DER tag")  # none in the fields read here
    at += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or at + count > limit:
            raise ValueError("a DER length that is indefinite, too long or truncated")
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + length > limit:
        raise ValueError("truncated DER")
    return _Element(tag, at, at + length)


def _children(data: bytes, parent: _Element) -> list[_Element]:
    found = []
    at = parent.start
    while at < parent.end:
        child = _element(data, at, parent.end)
        found.append(child)
        at = child.end
    return found


def _expect(element: _Element, tag: int, what: str) -> _Element:
    if element.tag != tag:
        raise ValueError(f"{what}: DER tag {element.tag:#04x}, expected {tag:#04x}")
    return element


def _time(data: bytes, element: _Element) -> datetime.datetime:
    """UTCTime (two-digit year: 50-99 are 19xx) or GeneralizedTime, in UTC ("Z")."""
    text = data[element.start : element.end]
    if not (text.endswith(b"Z") and text[:-1].isdigit()):
        raise ValueError("a validity time that is not UTCTime or GeneralizedTime in UTC")
    if element.tag == _UTC_TIME and len(text) == 13:
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000
        rest = text[2:]
    elif element.tag == _GENERALIZED_TIME and len(text) == 15:
        year = int(text[:4])
        rest = text[4:]
    else:
        raise ValueError("a validity time that is not UTCTime or GeneralizedTime in UTC")
    return datetime.datetime(
        year,
        int(rest[0:2]),
        int(rest[2:4]),
        int(rest[4:6]),
        int(rest[6:8]),
        int(rest[8:10]),
        tzinfo=datetime.UTC,
    )


def _common_name(data: bytes, subject: _Element) -> str | None:
    for relative in _children(data, subject):
        for attribute in _children(data, _expect(relative, _SET, "subject")):
            parts = _children(data, _expect(attribute, _SEQUENCE, "subject attribute"))
            if len(parts) != 2:
                raise ValueError("a subject attribute that is not a type and a value")
            oid, value = parts
            if data[_expect(oid, _OID, "attribute type").start : oid.end] == _COMMON_NAME:
                encoding = _TEXT.get(value.tag)
                if encoding is None:
                    raise ValueError(f"a common name of DER tag {value.tag:#04x}")
                return data[value.start : value.end].decode(encoding)
    return None


def _alt_names(data: bytes, extensions: _Element) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, URIs) of the subjectAltName extension, if there is one."""
    dns: list[str] = []
    uris: list[str] = []
    (wrapped,) = _children(data, extensions)  # [3] EXPLICIT: one SEQUENCE OF Extension
    for extension in _children(data, _expect(wrapped, _SEQUENCE, "extensions")):
        parts = _children(data, _expect(extension, _SEQUENCE, "extension"))
        if len(parts) == 3 and parts[1].tag == _BOOLEAN:
            parts = [parts[0], parts[2]]
        if len(parts) != 2:
            raise ValueError("an extension that is not an id, a criticality and a value")
        oid, value = parts
        if data[_expect(oid, _OID, "extension id").start : oid.end] != _SUBJECT_ALT_NAME:
            continue
        octets = _expect(value, _OCTETS, "extension value")
        names = _expect(_element(data, octets.start, octets.end), _SEQUENCE, "alt names")
        if names.end != octets.end:
            raise ValueError("bytes after the subject alternative names")
        for name in _children(data, names):
            if name.tag == _DNS_NAME:
                dns.append(data[name.start : name.end].decode("latin-1"))
            elif name.tag == _URI:
                uris.append(data[name.start : name.end].decode("latin-1"))
    return tuple(dns), tuple(uris)


def read_certificate(der: bytes) -> CertificateFields:
    """The fields of one DER certificate; ``ValueError`` if it is not one."""
    try:
        certificate = _expect(_element(der, 0, len(der)), _SEQUENCE, "certificate")
        if certificate.end != len(der):
            raise ValueError("bytes after the certificate")
        parts = _children(der, certificate)
        if len(parts) != 3:
            raise ValueError("a certificate that is not a body, an algorithm and a signature")
        fields = _children(der, _expect(parts[0], _SEQUENCE, "certificate body"))
        if fields and fields[0].tag == _VERSION:
            fields = fields[1:]
        # serial, signature algorithm, issuer, validity, subject, public key, then options
        if len(fields) < 6:
            raise ValueError("a certificate body with fields missing")
        validity = _children(der, _expect(fields[3], _SEQUENCE, "validity"))
        if len(validity) != 2:
            raise ValueError("a validity that is not two times")
        not_after = _time(der, validity[1])
        common_name = _common_name(der, _expect(fields[4], _SEQUENCE, "subject"))
        dns: tuple[str, ...] = ()
        uris: tuple[str, ...] = ()
        for optional in fields[6:]:
            if optional.tag == _EXTENSIONS:
                dns, uris = _alt_names(der, optional)
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a certificate: {exc}") from None
    return CertificateFields(not_after, dns, uris, common_name)


def pem_certificates(pem: bytes) -> list[bytes]:
    """The DER of each ``CERTIFICATE`` block of a PEM file, in order."""
    found = []
    for body in _PEM.findall(pem):
        try:
            found.append(base64.b64decode(b"".join(body.split()), validate=True))
        except binascii.Error:
            raise ValueError("a CERTIFICATE block that is not base64") from None
    return found
