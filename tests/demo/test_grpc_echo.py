"""The demo's gRPC echo service over real sockets, no proxy: each call kind, errors,
deadlines, TLS, and the command line. The proxy's gRPC tests rely on this peer."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from pillion.demo import grpc_echo
from pillion.demo.grpc_echo import EchoServer
from pillion.tls.devca import Issued, issue, new_ca


@pytest.fixture
def server() -> Iterator[EchoServer]:
    with grpc_echo.serve(0, name="first") as started:
        yield started


@pytest.fixture
def chan(server: EchoServer) -> Iterator[Any]:
    with grpc_echo.channel(server.target) as opened:
        yield opened


def test_unary_echoes_with_served_by_and_a_trailer(chan: Any) -> None:
    reply, initial, trailing = grpc_echo.unary(chan, b"hello", timeout=5)
    assert reply == b"hello"
    assert initial["x-served-by"] == "first"
    assert trailing["x-echo-trailer"] == "yes"


def test_unary_fails_with_the_code_asked_for_and_still_says_who_served(chan: Any) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_echo.unary(chan, b"status:14", timeout=5)
    error: Any = raised.value
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == "asked for"
    assert dict(error.trailing_metadata())["x-served-by"] == "first"  # trailers-only


@pytest.mark.parametrize("asked", [b"status:0", b"status:99", b"status:x"])
def test_unary_refuses_a_code_it_cannot_fail_with(chan: Any, asked: bytes) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_echo.unary(chan, asked, timeout=5)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_a_delay_past_the_deadline_fails_the_call_and_frees_the_thread() -> None:
    # One thread: the second call is served only if the first one's wait ended with it.
    with (
        grpc_echo.serve(0, name="single", workers=1) as single,
        grpc_echo.channel(single.target) as chan,
    ):
        with pytest.raises(grpc.RpcError) as raised:
            grpc_echo.unary(chan, b"slow", metadata=(("x-echo-delay", "60"),), timeout=0.2)
        assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert grpc_echo.unary(chan, b"next", timeout=10)[0] == b"next"


def test_a_delay_within_the_deadline_is_answered(chan: Any) -> None:
    delayed = (("x-echo-delay", "0.05"),)
    assert grpc_echo.unary(chan, b"late", metadata=delayed, timeout=10)[0] == b"late"


def test_server_stream_sends_count_messages_of_size(chan: Any) -> None:
    messages = grpc_echo.server_stream(chan, b"5:1024", timeout=5)
    assert [len(message) for message in messages] == [1024] * 5
    assert [message[:1] for message in messages] == [b"a", b"b", b"c", b"d", b"e"]


def test_server_stream_refuses_a_malformed_request(chan: Any) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_echo.server_stream(chan, b"five", timeout=5)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_client_stream_answers_the_total_length(chan: Any) -> None:
    assert grpc_echo.client_stream(chan, [b"x" * 1024] * 3, timeout=5) == b"3072"
    assert grpc_echo.client_stream(chan, [], timeout=5) == b"0"


def test_bidi_echoes_each_message_before_the_next_is_sent(chan: Any) -> None:
    # The generator waits for each echo before yielding the next message: this completes
    # only if every message is answered as it arrives, not when the stream ends.
    echoed: queue.Queue[bytes] = queue.Queue()

    def lockstep() -> Iterator[bytes]:
        for message in (b"one", b"two", b"three"):
            yield message
            assert echoed.get(timeout=10) == message

    received = []
    call = chan.stream_stream(grpc_echo.BIDI_STREAM)
    for message in call(lockstep(), timeout=10):
        received.append(message)
        echoed.put(message)
    assert received == [b"one", b"two", b"three"]


def test_bidi_helper_collects_every_echo(chan: Any) -> None:
    assert grpc_echo.bidi(chan, [b"a", b"bb", b"ccc"], timeout=5) == [b"a", b"bb", b"ccc"]


def test_a_port_in_use_is_refused(server: EchoServer) -> None:
    with pytest.raises(OSError, match="cannot listen"):
        grpc_echo.serve(server.port)


@pytest.fixture(scope="module")
def pki() -> tuple[Issued, Issued, Issued]:
    """A CA, a server certificate for localhost and 127.0.0.1, a client certificate."""
    ca = new_ca("grpc echo test CA")
    server = issue(ca, dns_names=("localhost", "echo.test"), ip_addresses=("127.0.0.1",))
    client = issue(ca, common_name="client")
    return ca, server, client


def test_tls_with_the_authority_as_the_checked_name(pki: tuple[Issued, Issued, Issued]) -> None:
    ca, cert, _ = pki
    with grpc_echo.serve(0, name="tls", tls=(cert.cert_pem, cert.key_pem)) as tls:
        with grpc_echo.channel(tls.target, root_ca=ca.cert_pem) as chan:
            assert grpc_echo.unary(chan, b"by ip", timeout=5)[0] == b"by ip"
        named = grpc_echo.channel(tls.target, root_ca=ca.cert_pem, authority="echo.test")
        with named:
            assert grpc_echo.unary(named, b"by name", timeout=5)[1]["x-served-by"] == "tls"
        wrong = grpc_echo.channel(tls.target, root_ca=ca.cert_pem, authority="other.test")
        with wrong, pytest.raises(grpc.RpcError) as raised:
            grpc_echo.unary(wrong, b"x", timeout=5)
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE


def test_client_certificates_are_required_with_client_ca(
    pki: tuple[Issued, Issued, Issued],
) -> None:
    ca, cert, client = pki
    tls = (cert.cert_pem, cert.key_pem)
    with grpc_echo.serve(0, tls=tls, client_ca=ca.cert_pem) as mtls:
        with grpc_echo.channel(
            mtls.target, root_ca=ca.cert_pem, cert=client.cert_pem, key=client.key_pem
        ) as chan:
            assert grpc_echo.unary(chan, b"mutual", timeout=5)[0] == b"mutual"
        with (
            grpc_echo.channel(mtls.target, root_ca=ca.cert_pem) as anonymous,
            pytest.raises(grpc.RpcError) as raised,
        ):
            grpc_echo.unary(anonymous, b"x", timeout=5)
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE


def test_call_command_prints_the_reply_and_who_served(
    server: EchoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert grpc_echo.main(["call", "--target", server.target, "--message", "hi"]) == 0
    assert capsys.readouterr().out == "reply='hi' x-served-by=first\n"


def test_call_command_fails_with_the_grpc_status(
    server: EchoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert grpc_echo.main(["call", "--target", server.target, "--message", "status:5"]) == 1
    assert capsys.readouterr().err == "grpc_echo: NOT_FOUND: asked for\n"
