"""The TCP framing of the StatsD server, fed whole, one byte at a time and with
trailing data, without sockets (the protocol object only moves bytes)."""

from __future__ import annotations

import asyncio

import pytest

from pillion.exporters.statsd_server import StatsdTcpProtocol, StatsdUdpProtocol
from tests.exporters.test_statsd_store import Harness

LINES = b"a:1|c\nb:2|g|#k:v\nc:250|ms\n"


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def connect(pod: Harness) -> tuple[StatsdTcpProtocol, set[StatsdTcpProtocol]]:
    connections: set[StatsdTcpProtocol] = set()
    protocol = StatsdTcpProtocol(pod.ingest, connections, clock=pod.clock)
    protocol.connection_made(FakeTransport())
    return protocol, connections


def recorded(pod: Harness) -> tuple[float | None, float | None, float | None]:
    return pod.value("a_total"), pod.value('b{k="v"}'), pod.value("c_count")


@pytest.mark.parametrize("chunk", [len(LINES), 1, 2, 7])
def test_lines_fed_in_any_chunks_give_the_same(chunk: int) -> None:
    pod = Harness()
    protocol, connections = connect(pod)
    assert connections == {protocol}
    for start in range(0, len(LINES), chunk):
        protocol.data_received(LINES[start : start + chunk])
    assert recorded(pod) == (1.0, 2.0, 1.0)
    protocol.connection_lost(None)
    assert connections == set()
    assert pod.dropped("truncated") == 0


def test_a_line_is_only_read_once_its_newline_arrives() -> None:
    pod = Harness()
    protocol, _ = connect(pod)
    protocol.data_received(b"a:1|c\nb:2")
    assert pod.value("a_total") == 1.0
    assert pod.value("b") is None  # `b:2` could still become `b:25|g`
    protocol.data_received(b"5|g\n")
    assert pod.value("b") == 25.0


def test_a_connection_cut_mid_line_loses_only_that_line() -> None:
    pod = Harness()
    protocol, _ = connect(pod)
    protocol.data_received(LINES + b"d:12")
    protocol.connection_lost(ConnectionResetError())
    assert recorded(pod) == (1.0, 2.0, 1.0)
    assert pod.value("d_total") is None
    assert pod.dropped("truncated") == 1


@pytest.mark.parametrize("chunk", [100_000, 1000, 1])
def test_a_line_longer_than_max_packet_size_is_skipped(chunk: int) -> None:
    pod = Harness(max_packet_size=512)
    protocol, _ = connect(pod)
    data = b"a:1|c\n" + b"x" * 2000 + b":1|c\n" + b"c:250|ms\n" + b"y" * 600
    for start in range(0, len(data), chunk):
        protocol.data_received(data[start : start + chunk])
    protocol.data_received(b"\nb:2|g|#k:v\n")
    assert recorded(pod) == (1.0, 2.0, 1.0)
    assert pod.value("x_total") is None
    assert pod.dropped("too_large") == 2
    protocol.connection_lost(None)
    assert pod.dropped("truncated") == 0


def test_empty_lines_and_crlf() -> None:
    pod = Harness()
    protocol, _ = connect(pod)
    protocol.data_received(b"\n\r\na:1|c\r\n\n")
    assert pod.value("a_total") == 1.0
    assert pod.dropped("malformed") == 0


def test_abort_closes_the_transport() -> None:
    pod = Harness()
    protocol, _ = connect(pod)
    protocol.abort()
    assert isinstance(protocol.transport, FakeTransport)
    assert protocol.transport.aborted


def test_udp_datagrams_are_packets() -> None:
    pod = Harness()
    protocol = StatsdUdpProtocol(pod.ingest, clock=pod.clock)
    protocol.datagram_received(LINES, ("127.0.0.1", 5000))
    protocol.datagram_received(b"a:1|c", ("127.0.0.1", 5000))
    protocol.error_received(ConnectionRefusedError())
    assert pod.value("a_total") == 2.0
    assert pod.registry.get_sample_value("pillion_statsd_packets_total", {"transport": "udp"}) == 2
