"""Defects the fuzz targets found in modules this harness does not fix, each
pinned by an expected failure in ``tests/fuzz/test_known_defects.py``.

A check that meets one of these tolerates it (and tallies it in ``seen``, which
``make fuzz`` prints) instead of failing, so that a known defect does not stop
a fuzzing run from finding the next one. When a defect is fixed, its pinned
test starts passing, fails as an unexpected pass, and its entry goes.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["KNOWN", "seen", "tolerate"]

KNOWN: dict[str, str] = {
    "asterisk-target-with-more": (
        "pillion.http.request: a request target that starts with '*' but is more than "
        "'*' ('OPTIONS *abc HTTP/1.1', which RFC 9112 section 3.2.4 does not allow) is "
        "accepted as it is and forwarded"
    ),
    "response-status-framing": (
        "pillion.http.response: a status below 200 is taken as a response without a "
        "body (body 'none'; 104-199 as an interim response), while llhttp reads a body "
        "for 000-099 (by its headers, else until the connection closes) and for 104-199 "
        "(when Content-Length or chunked announces one): the body bytes arrive after a "
        "head that announced none"
    ),
    "response-te-suffix-chunked": (
        "pillion.http.response: Transfer-Encoding is taken as chunked when its value "
        "ends with 'chunked' ('xchunked', 'gzip;chunked', 'gzip\\tchunked'), while "
        "llhttp reads such a body until the connection closes"
    ),
    "request-upgrade-body-escapes": (
        "pillion.http.request: an upgrade request with a body on a connection that "
        "closes after it (HTTP/1.0, or 'Connection: upgrade, close') makes feed() raise "
        "httptools' HttpParserError ('Data after `Connection: close`', from the "
        "framing-only head fed to llhttp) instead of a RequestError"
    ),
    "trailers-merged-into-head": (
        "pillion.http.request / response: the fields of a chunked body's trailer "
        "section are appended to the head's headers list after the head was "
        "delivered (RFC 9110 section 6.5.1: trailers must not be merged into the header section)"
    ),
    "chunk-size-negative-hang": (
        "pillion.http.chunked: ChunkedFraming.scan reads a chunk size with int(text, 16) "
        "before llhttp has checked it, so '-5' is a size of -5: its position then moves "
        "backwards and RequestParser.feed never returns (a chunked request with a chunk "
        "line '-5' followed by a few more bytes in the same read hangs the event loop)"
    ),
    "openmetrics-negative-sum": (
        "pillion.exporters.statsd_exposition: a negative timer or histogram value "
        "(`t:-1|ms`) makes a negative _sum, which OpenMetrics forbids for histograms and "
        "summaries (their sum is a counter); prometheus_client's OpenMetrics parser "
        "refuses the page"
    ),
    "yaml-constructor-error-escapes": (
        "pillion.config.loader: PyYAML's constructor raises ValueError, KeyError, "
        "IndexError or AttributeError for some malformed scalars (an integer of more than "
        "4300 digits, a timestamp with month 13 or offset +25:00, '!!int 0x', '!!int \"\"', "
        "'!!float x', '!!bool x', '!!timestamp x'), which escapes parse_config instead of "
        "a ConfigError"
    ),
    "yaml-recursive-alias": (
        "pillion.config.loader: a recursive alias ('a: &x [*x]') makes parse_config "
        "raise RecursionError instead of a ConfigError"
    ),
}

seen: Counter[str] = Counter()


def tolerate(name: str) -> None:
    """A check met the known defect ``name``: count it, and go on."""
    if name not in KNOWN:
        raise KeyError(f"not a known defect: {name}")
    seen[name] += 1
