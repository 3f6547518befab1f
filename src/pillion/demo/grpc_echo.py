"""The demo's gRPC service: an echo server and its client helpers, on grpcio.

It is the gRPC application the demo tour calls through Pillion, and the gRPC peer that the
tests and ``bench/h2_bench.py`` put behind the proxy. Service ``pillion.demo.Echo`` has one
method of each of gRPC's four call kinds, so every kind of HTTP/2 stream a proxy must carry
(one message each way, many down, many up, both at once) can be exercised:

* ``Unary``: the request back. ``b"status:N"`` fails the call with gRPC code ``N``
  (message ``asked for``, ``x-served-by`` in its trailers-only response), to see errors
  pass through; metadata ``x-echo-delay: SECONDS`` waits that
  long first, to see deadlines pass through. Its initial metadata carries
  ``x-served-by: NAME`` (which of several servers answered) and its trailers
  ``x-echo-trailer: yes`` (trailers survive the hop) and, when the call has a
  deadline, ``x-echo-deadline: SECONDS`` left (deadlines survive the hop).
* ``ServerStream``: ``b"N:SIZE"`` gives N messages of SIZE bytes.
* ``ClientStream``: the total length of the messages received, in ASCII decimal.
* ``BidiStream``: each message back as soon as it arrives.

Messages are raw bytes (no protobuf, no generated code): what goes over the wire is exactly
the request, so a test can say what it expects byte for byte.

Run: ``python -m pillion.demo.grpc_echo serve --port 50051 [--name NAME]`` and
``python -m pillion.demo.grpc_echo call --target 127.0.0.1:50051 [--message TEXT]``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from types import FrameType
from typing import Any

import grpc

__all__ = [
    "BIDI_STREAM",
    "CLIENT_STREAM",
    "SERVER_STREAM",
    "SERVICE",
    "UNARY",
    "EchoServer",
    "bidi",
    "channel",
    "client_stream",
    "main",
    "serve",
    "server_stream",
    "unary",
]

SERVICE = "pillion.demo.Echo"
UNARY = f"/{SERVICE}/Unary"
SERVER_STREAM = f"/{SERVICE}/ServerStream"
CLIENT_STREAM = f"/{SERVICE}/ClientStream"
BIDI_STREAM = f"/{SERVICE}/BidiStream"

DELAY_KEY = "x-echo-delay"
SERVED_BY_KEY = "x-served-by"
TRAILER = ("x-echo-trailer", "yes")
DEADLINE_KEY = "x-echo-deadline"  # trailer: seconds the call had left (when it had a deadline)
STATUS_PREFIX = b"status:"
ABORT_MESSAGE = "asked for"

Metadata = Sequence[tuple[str, str]]
"""Metadata to send: (key, value) pairs, keys in lower case."""

_CODES: dict[int, Any] = {code.value[0]: code for code in grpc.StatusCode}


class _Echo:
    """The four methods. Handlers run on the server's thread pool, one call per thread."""

    def __init__(self, name: str) -> None:
        self.name = name

    def unary(self, request: bytes, context: Any) -> bytes:
        delay = _delay(context)
        if delay > 0:
            # Wakes early when the call ends (deadline, cancel): the thread is not held.
            ended = threading.Event()
            context.add_callback(ended.set)
            ended.wait(delay)
            if not context.is_active():
                return b""
        if request.startswith(STATUS_PREFIX):
            # before any initial metadata: a trailers-only response, as gRPC servers
            # fail calls (and as a proxy's retry on gRPC codes sees them)
            context.set_trailing_metadata(((SERVED_BY_KEY, self.name),))
            _abort_as_asked(request[len(STATUS_PREFIX) :], context)
        context.send_initial_metadata(((SERVED_BY_KEY, self.name),))
        remaining = context.time_remaining()  # None, or about 2**63, without a deadline
        has_deadline = remaining is not None and remaining < 10**9
        deadline = ((DEADLINE_KEY, f"{remaining:.3f}"),) if has_deadline else ()
        context.set_trailing_metadata((TRAILER, *deadline))
        return request

    def server_stream(self, request: bytes, context: Any) -> Iterator[bytes]:
        count, _, size = request.partition(b":")
        if not (count.isdigit() and size.isdigit()):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected b'COUNT:SIZE'")
        for index in range(int(count)):
            # A letter per message, so a reader sees order and boundaries.
            yield bytes([ord("a") + index % 26]) * int(size)

    def client_stream(self, requests: Iterator[bytes], context: Any) -> bytes:
        return str(sum(len(message) for message in requests)).encode()

    def bidi_stream(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        yield from requests

    def handler(self) -> Any:
        """The generic handler for ``SERVICE``; ``None`` serializers pass bytes through."""
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
                "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
                "BidiStream": grpc.stream_stream_rpc_method_handler(self.bidi_stream),
            },
        )


def _delay(context: Any) -> float:
    """Seconds asked for with ``x-echo-delay`` (0 when absent or not a number)."""
    for key, value in context.invocation_metadata():
        if key == DELAY_KEY:
            try:
                return max(0.0, float(value))
            except ValueError:
                return 0.0
    return 0.0


def _abort_as_asked(code_text: bytes, context: Any) -> None:
    """Fail the call with the code in ``b"status:N"``; OK and unknown codes are refused
    (gRPC cannot abort with OK) as INVALID_ARGUMENT, so the call still fails visibly."""
    code = _CODES.get(int(code_text)) if code_text.isdigit() else None
    if code is None or code is grpc.StatusCode.OK:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no error code {code_text!r}")
    context.abort(code, ABORT_MESSAGE)


# --- server ----------------------------------------------------------------------------


@dataclass
class EchoServer:
    """A started echo server: where it listens, and how to stop it."""

    server: Any  # grpc.Server
    host: str
    port: int
    name: str

    @property
    def target(self) -> str:
        """``host:port``, as a client's ``channel`` takes it."""
        return f"{self.host}:{self.port}"

    def stop(self, grace: float | None = None) -> None:
        """Stop listening; calls in flight get ``grace`` seconds (None: cancelled now)."""
        self.server.stop(grace).wait()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve(
    port: int,
    *,
    host: str = "127.0.0.1",
    name: str = "echo",
    tls: tuple[bytes, bytes] | None = None,
    client_ca: bytes | None = None,
    workers: int = 8,
) -> EchoServer:
    """Start an echo server on ``host:port`` (0: a free port, see ``.port``), in threads of
    this process; it runs until ``stop()``.

    ``tls`` is ``(cert_pem, key_pem)``; with ``client_ca`` as well, clients must present a
    certificate signed by it. ``workers`` threads serve calls, one call each: a call that
    waits (``x-echo-delay``, an open stream) holds one.
    """
    if client_ca is not None and tls is None:
        raise ValueError("client_ca needs tls: client certificates are checked in TLS")
    # SO_REUSEPORT (grpcio's default on Linux) would let two servers share a port
    # silently; a port in use must fail here instead.
    options = [("grpc.so_reuseport", 0)]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"echo-{name}"),
        handlers=[_Echo(name).handler()],
        options=options,
    )
    address = f"{host}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            cert_pem, key_pem = tls
            credentials = grpc.ssl_server_credentials(
                [(key_pem, cert_pem)],
                root_certificates=client_ca,
                require_client_auth=client_ca is not None,
            )
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as error:  # grpcio raises on a failed bind (older ones returned 0)
        raise OSError(f"cannot listen on {address}: {error}") from error
    if not bound:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return EchoServer(server, host, int(bound), name)


# --- client ----------------------------------------------------------------------------


def channel(
    target: str,
    *,
    root_ca: bytes | None = None,
    cert: bytes | None = None,
    key: bytes | None = None,
    authority: str | None = None,
) -> Any:
    """A ``grpc.Channel`` to ``target`` (``host:port``); close it (or use ``with``).

    TLS when ``root_ca`` (the CA to verify the server with) or a client ``cert`` and
    ``key`` are given, else cleartext HTTP/2 (prior knowledge, as gRPC always does).
    ``authority`` is the ``:authority`` sent instead of ``target``: with TLS, also the
    name the server's certificate must match.
    """
    options: list[tuple[str, str]] = []
    if authority is not None:
        options.append(("grpc.default_authority", authority))
    if root_ca is None and cert is None and key is None:
        return grpc.insecure_channel(target, options=options)
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root_ca, private_key=key, certificate_chain=cert
    )
    if authority is not None:
        options.append(("grpc.ssl_target_name_override", authority))
    return grpc.secure_channel(target, credentials, options=options)


def unary(
    channel: Any, data: bytes, metadata: Metadata = (), timeout: float | None = None
) -> tuple[bytes, dict[str, str | bytes], dict[str, str | bytes]]:
    """Call ``Unary``: the reply, the initial metadata and the trailing metadata.
    A failed call raises ``grpc.RpcError`` (``.code()``, ``.details()``)."""
    call = channel.unary_unary(UNARY)
    reply, outcome = call.with_call(data, metadata=metadata, timeout=timeout)
    return (
        bytes(reply),
        _as_dict(outcome.initial_metadata()),
        _as_dict(outcome.trailing_metadata()),
    )


def server_stream(
    channel: Any, data: bytes, metadata: Metadata = (), timeout: float | None = None
) -> list[bytes]:
    """Call ``ServerStream`` with ``b"N:SIZE"``: the N messages received."""
    call = channel.unary_stream(SERVER_STREAM)
    return [bytes(message) for message in call(data, metadata=metadata, timeout=timeout)]


def client_stream(
    channel: Any, chunks: Iterable[bytes], metadata: Metadata = (), timeout: float | None = None
) -> bytes:
    """Call ``ClientStream`` with these messages: the total length, ASCII decimal."""
    call = channel.stream_unary(CLIENT_STREAM)
    return bytes(call(iter(chunks), metadata=metadata, timeout=timeout))


def bidi(
    channel: Any, chunks: Iterable[bytes], metadata: Metadata = (), timeout: float | None = None
) -> list[bytes]:
    """Call ``BidiStream`` with these messages (sent as the iterable yields them): the
    messages received back. To send each only after the previous came back, pass a
    generator that waits for that."""
    call = channel.stream_stream(BIDI_STREAM)
    return [bytes(message) for message in call(iter(chunks), metadata=metadata, timeout=timeout)]


def _as_dict(metadata: Any) -> dict[str, str | bytes]:
    """gRPC metadata as a dict (``-bin`` keys have bytes values; a repeated key keeps its
    last value)."""
    return {str(key): value for key, value in metadata or ()}


# --- command line ----------------------------------------------------------------------


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _serve_main(args: argparse.Namespace) -> int:
    try:
        server = serve(args.port, host=args.host, name=args.name, workers=args.workers)
    except OSError as error:
        print(f"grpc_echo: {error}", file=sys.stderr)
        return 1
    print(f"grpc_echo {server.name} listening on {server.target}", flush=True)
    # Both, explicitly: a process started in the background may inherit SIGINT ignored.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupt)
    try:
        server.server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=1.0)
    return 0


def _call_main(args: argparse.Namespace) -> int:
    with channel(args.target, authority=args.authority) as chan:
        try:
            reply, initial, _ = unary(chan, args.message.encode(), timeout=args.timeout)
        except grpc.RpcError as error:
            print(f"grpc_echo: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    served_by = initial.get(SERVED_BY_KEY, "-")
    if isinstance(served_by, bytes):
        served_by = served_by.decode(errors="replace")
    print(f"reply={reply.decode(errors='replace')!r} {SERVED_BY_KEY}={served_by}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pillion.demo.grpc_echo", description="The demo's gRPC echo service."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run an echo server until Ctrl-C")
    serve_cmd.add_argument("--port", type=int, required=True, help="0 picks a free port")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--name", default="echo", help="sent as x-served-by")
    serve_cmd.add_argument("--workers", type=int, default=8, help="threads serving calls")
    call_cmd = commands.add_parser("call", help="one Unary call; prints the reply")
    call_cmd.add_argument("--target", required=True, help="HOST:PORT")
    call_cmd.add_argument("--message", default="hello")
    call_cmd.add_argument("--authority", default=None, help=":authority to send")
    call_cmd.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve_main(args)
    return _call_main(args)


if __name__ == "__main__":
    sys.exit(main())
