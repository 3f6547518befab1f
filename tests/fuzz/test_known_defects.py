"""What fuzzing found, each pinned by the behaviour it should have.

The defects still tolerated (``fuzz.known``) are strictly expected to fail here,
so that the day one is fixed its test passes, fails the run as an unexpected
pass, and its entry goes. The others were fixed and stay as regression tests."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from fuzz import known
from fuzz.httpparse import Outcome, Recorder
from fuzz.run import ROOT
from fuzz.targets.config import ENVIRON
from fuzz.targets.statsd import OPENMETRICS, Pod
from pillion.config.errors import ConfigError
from pillion.config.loader import parse_config
from pillion.exporters.statsd_store import SUMMARY
from pillion.http.errors import RequestError, ResponseError
from pillion.http.request import ParserLimits, RequestParser
from pillion.http.response import ResponseParser

PINNED = {"openmetrics-negative-sum"}


HANG_AFTER = 5  # seconds: a parser that answers takes milliseconds, a hung one forever


def known_defect(name: str, raises: type[BaseException] | None = None) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=known.KNOWN[name], raises=raises)


def requests(data: bytes) -> Outcome:
    recorder = Recorder()
    RequestParser(recorder, ParserLimits()).feed(data)
    return recorder.outcome


def response(data: bytes) -> Outcome:
    """What the parser delivered, up to its ``ResponseError`` if any."""
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expecting = True
    try:
        parser.feed(data)
        parser.feed_eof()
    except ResponseError as exc:
        recorder.outcome.error = exc
    return recorder.outcome


def test_every_known_defect_is_pinned_here() -> None:
    assert set(known.KNOWN) == PINNED


def test_an_asterisk_target_is_only_an_asterisk() -> None:
    with pytest.raises(RequestError):
        requests(b"OPTIONS *abc HTTP/1.1\r\nHost: a\r\n\r\n")


@pytest.mark.parametrize(
    "connection", [b"HTTP/1.0\r\nConnection: upgrade", b"HTTP/1.1\r\nConnection: upgrade, close"]
)
def test_an_upgrade_with_a_body_on_a_closing_connection(connection: bytes) -> None:
    data = (
        b"POST /ws %s\r\nHost: a\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nhi" % connection
    )
    try:
        outcome = requests(data)
    except RequestError:
        return  # refused: fixed too
    assert outcome.bodies() == [b"hi"]  # served as plain HTTP/1.1, body and all


def test_a_negative_chunk_size_is_refused() -> None:
    # in a process of its own: were it to come back, feed() would never return
    code = (
        "from pillion.http.errors import RequestError\n"
        "from pillion.http.request import ParserLimits, RequestParser\n"
        "from fuzz.httpparse import Recorder\n"
        "parser = RequestParser(Recorder(), ParserLimits())\n"
        "try:\n"
        "    parser.feed(b'POST / HTTP/1.1\\r\\nHost: a\\r\\nTransfer-Encoding: chunked"
        "\\r\\n\\r\\n-5\\r\\nabcdefgh\\r\\n')\n"
        "except RequestError:\n"
        "    pass\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=HANG_AFTER)


def test_trailer_fields_stay_out_of_the_head() -> None:
    outcome = requests(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n"
        b"Authorization: Bearer t\r\n\r\n"
    )
    assert outcome.heads[0].headers == [(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")]


@pytest.mark.parametrize("status", [b"000", b"099", b"150", b"199"])
def test_no_body_arrives_after_a_head_that_announced_none(status: bytes) -> None:
    outcome = response(b"HTTP/1.1 %s Odd\r\nContent-Length: 5\r\n\r\nhello" % status)
    assert not (outcome.heads and outcome.heads[0].body == "none" and outcome.bodies())


@pytest.mark.parametrize("coding", [b"xchunked", b"gzip;chunked", b"gzip\tchunked"])
def test_only_a_final_chunked_coding_is_chunked(coding: bytes) -> None:
    outcome = response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n0\r\n\r\n" % coding)
    assert not outcome.heads or outcome.heads[0].body == "close"  # read until close, or refused


@known_defect("openmetrics-negative-sum")
def test_a_negative_observation_keeps_openmetrics_valid() -> None:
    pod = Pod()
    pod.ingest.packet(b"app.web.time:-5|ms", 1000.0)
    assert any(m.kind == SUMMARY for m in pod.store.metrics.values())
    list(text_string_to_metric_families(pod.page(OPENMETRICS)))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "9" * 5000,
        "a: 2001-12-14t21:59:43.10+25:00",
        "a: !!int 0x",
        "a: !!bool x",
        "a: !!timestamp x",
        "proxy: !!int ''",
    ],
)
def test_a_malformed_scalar_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(text, "t.yaml", ENVIRON)


def test_a_recursive_alias_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_config("app: &x [*x]\n", "t.yaml", ENVIRON)
