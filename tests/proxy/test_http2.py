"""HTTP/2 clients in front of an HTTP/1.1 app: prior knowledge on the HTTP/1.1
port, every stream its own request through the gate, and each bad input of RFC
9113 and of the HTTP/2 attacks (rapid reset, CONTINUATION and PING floods,
HPACK bombs) answered as a stream or connection error, never reaching the app.

Real clients (curl, h2load) for what users run; ``RawH2`` for what they
should not send."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hyperframe.frame import SettingsFrame, WindowUpdateFrame

from tests.helpers import free_port, running_pillion, wait_until
from tests.proxy.conftest import ProxyPod
from tests.proxy.h2raw import RawH2
from tests.proxy.h2upstream import H2App, h2_app
from tests.proxy.harness import ScriptedUpstream, scripted_upstream

PROTOCOL_ERROR = 0x1
NO_ERROR = 0x0
ENHANCE_YOUR_CALM = 0xB


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, check=False
    )


def test_curl_with_prior_knowledge_reaches_the_app(pod: ProxyPod, app: ScriptedUpstream) -> None:
    done = _curl(
        "--http2-prior-knowledge",
        "-H",
        "x-forwarded-for: 10.9.9.9",
        "-w",
        "\\n%{http_version} %{response_code}",
        f"http://127.0.0.1:{pod.port}/h2/path?q=1",
    )
    body, _, status = done.stdout.rpartition("\n")
    assert status == "2 200", done.stderr
    echoed = json.loads(body)
    assert echoed["target"] == "/h2/path?q=1"
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert headers["host"] == f"127.0.0.1:{pod.port}"  # from :authority
    assert headers["x-forwarded-for"] == "10.9.9.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert "x-request-id" in headers
    assert "traceparent" in headers
    assert not any(name.startswith(":") for name in headers)
    record = pod.wait_record(lambda r: r["path"] == "/h2/path?q=1")
    assert record["protocol"] == "HTTP/2"
    assert record["code"] == 200


def test_a_body_of_unknown_length_goes_chunked_to_an_http1_app(
    pod: ProxyPod, app: ScriptedUpstream
) -> None:
    client = RawH2(pod.port)
    client.request(1, "/upload", method="POST", body=b"x" * 300_000)  # no content-length
    stream = client.response(1)
    assert stream.status == 200
    echoed = json.loads(bytes(stream.body))
    assert echoed["body_length"] == 300_000
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert headers["transfer-encoding"] == "chunked"
    client.close()


def test_many_streams_on_one_connection(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = RawH2(pod.port)
    ids = list(range(1, 40, 2))
    for stream_id in ids:
        client.request(stream_id, f"/many/{stream_id}")
    client.read_until(lambda: all(client.stream(i).over for i in ids))
    for stream_id in ids:
        stream = client.stream(stream_id)
        assert stream.status == 200
        assert json.loads(bytes(stream.body))["target"] == f"/many/{stream_id}"
    client.close()


def test_h2load_runs_clean(pod: ProxyPod, app: ScriptedUpstream) -> None:
    done = subprocess.run(
        ["h2load", "-n", "400", "-c", "4", "-m", "10", f"http://127.0.0.1:{pod.port}/load"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "400 succeeded, 0 failed, 0 errored" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ([(b"X-Upper", b"1")], "uppercase name"),
        ([(b"connection", b"keep-alive")], "connection-specific field"),
        ([(b"transfer-encoding", b"chunked")], "connection-specific field"),
        ([(b"te", b"gzip")], "te other than trailers"),
        ([(b"x-bad", b"a\r\nb")], "CR LF in a value"),
        ([(b":path", b"/twice")], "a repeated pseudo-header"),
        ([(b":protocol", b"websocket")], "an unknown pseudo-header"),
    ],
)
def test_malformed_requests_reset_only_their_stream(
    pod: ProxyPod, app: ScriptedUpstream, extra: list[tuple[bytes, bytes]], reason: str
) -> None:
    client = RawH2(pod.port)
    client.request(1, "/malformed", extra=extra)
    client.request(3, "/fine")
    client.read_until(lambda: client.stream(1).over and client.stream(3).over)
    assert client.stream(1).reset == PROTOCOL_ERROR, reason
    assert client.stream(3).status == 200
    assert client.goaway is None
    assert [r.target for r in app.requests] == [b"/fine"]
    client.close()


def test_missing_or_misplaced_pseudo_headers_are_stream_errors(
    pod: ProxyPod, app: ScriptedUpstream
) -> None:
    client = RawH2(pod.port)
    client.headers(1, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t")])
    client.headers(
        3,
        [(b":method", b"GET"), (b"x-a", b"1"), (b":path", b"/"), (b":scheme", b"http")],
    )
    client.request(5, "/after")
    client.read_until(lambda: all(client.stream(i).over for i in (1, 3, 5)))
    assert client.stream(1).reset == PROTOCOL_ERROR
    assert client.stream(3).reset == PROTOCOL_ERROR
    assert client.stream(5).status == 200
    assert [r.target for r in app.requests] == [b"/after"]
    client.close()


def test_a_body_longer_than_its_content_length_is_a_stream_error(
    pod: ProxyPod, app: ScriptedUpstream
) -> None:
    client = RawH2(pod.port)
    client.request(1, "/long", method="POST", extra=[(b"content-length", b"5")], body=b"0123456789")
    client.request(3, "/next")
    client.read_until(lambda: client.stream(1).over and client.stream(3).over)
    assert client.stream(1).reset == PROTOCOL_ERROR
    assert client.stream(3).status == 200
    assert client.goaway is None
    client.close()


def test_oversized_headers_get_431_on_their_stream(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = RawH2(pod.port)  # the listener allows 8 KiB of headers
    client.request(1, "/big", extra=[(b"x-big", b"v" * 10_000)])
    client.request(3, "/small")
    client.read_until(lambda: client.stream(1).over and client.stream(3).over)
    assert client.stream(1).status == 431
    assert client.stream(3).status == 200
    assert [r.target for r in app.requests] == [b"/small"]
    client.close()


def test_an_hpack_bomb_ends_the_connection(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = RawH2(pod.port)
    # one big field in the dynamic table, then referenced over and over: a few bytes
    # on the wire that would decode to far more than the header limit
    client.request(1, "/seed", extra=[(b"x-bomb", b"b" * 4000)])
    assert client.response(1).status == 200
    client.request(3, "/bomb", extra=[(b"x-bomb", b"b" * 4000)] * 200)
    client.wait_closed()
    assert client.goaway is not None
    assert client.stream(3).status is None
    assert [r.target for r in app.requests] == [b"/seed"]


def test_a_continuation_flood_ends_the_connection(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = RawH2(pod.port)
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t"), (b":path", b"/")]
    client.headers(1, fields, end_headers=False)  # HEADERS without END_HEADERS...
    for _ in range(500):  # ... then CONTINUATION frames that never end the block
        try:
            client.continuation(1, b"\x00\x01a\x01b" * 50)
        except OSError:
            break
    client.wait_closed()
    assert client.goaway is not None
    assert client.goaway.error_code != NO_ERROR
    assert app.requests == []


def test_rapid_reset_gets_enhance_your_calm(pod: ProxyPod, app: ScriptedUpstream) -> None:
    app.behaviour = "slow"  # a response takes long enough to be cancelled first
    client = RawH2(pod.port)
    stream_id = 1
    for _ in range(400):
        try:
            client.request(stream_id, "/reset")
            client.reset(stream_id)
        except OSError:
            break
        stream_id += 2
    client.wait_closed()
    assert client.goaway is not None
    assert client.goaway.error_code == ENHANCE_YOUR_CALM


def test_a_ping_flood_gets_enhance_your_calm(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = RawH2(pod.port)
    for _ in range(3000):
        try:
            client.ping()
        except OSError:
            break
    client.wait_closed()
    assert client.goaway is not None
    assert client.goaway.error_code == ENHANCE_YOUR_CALM


def test_a_settings_flood_gets_enhance_your_calm(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = RawH2(pod.port)
    for _ in range(500):
        try:
            client.send(SettingsFrame(0, settings={0x3: 100}))
        except OSError:
            break
    client.wait_closed()
    assert client.goaway is not None
    assert client.goaway.error_code == ENHANCE_YOUR_CALM


@dataclass
class Quick:
    port: int  # HTTP/2 only, idle timeout 1s
    h1only: int  # HTTP/1.1 only
    app: ScriptedUpstream


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quick]:
    """A listener with a short idle timeout (for stalls) and HTTP/1.1 turned off,
    and one with HTTP/2 turned off."""
    port, h1only = free_port(), free_port()
    body = f"""
proxy:
  inbound:
    - name: quick
      listen: 127.0.0.1:{port}
      protocols: [http2]
      timeouts: {{idle: 1s}}
    - name: h1only
      listen: 127.0.0.1:{h1only}
      protocols: [http1]
"""
    with (
        scripted_upstream() as upstream,
        running_pillion(tmp_path_factory.mktemp("h2quick"), body, upstream.port),
    ):
        yield Quick(port, h1only, upstream)


def test_a_client_that_never_opens_its_window_is_timed_out(quick: Quick) -> None:
    quick.app.behaviour = "big"
    client = RawH2(quick.port, settings={0x4: 0}, window=False)  # a stream window of 0
    client.request(1, "/big")
    client.read_until(lambda: client.stream(1).status is not None)
    client.wait_closed(timeout=15)
    assert client.goaway is not None
    assert len(client.stream(1).body) == 0  # nothing could be sent, nothing was


def test_protocols_turn_either_version_off(quick: Quick) -> None:
    quick.app.behaviour = "echo"
    assert _curl("--http1.1", f"http://127.0.0.1:{quick.port}/").returncode != 0
    h2 = _curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
               f"http://127.0.0.1:{quick.port}/")  # fmt: skip
    assert h2.stdout == "200"
    assert _curl("--http2-prior-knowledge", f"http://127.0.0.1:{quick.h1only}/").returncode != 0
    h1 = _curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{quick.h1only}/")
    assert h1.stdout == "200"


@contextlib.contextmanager
def _in_front_of(app: H2App, directory: Path) -> Iterator[int]:
    port = free_port()
    body = f"""
app: {{port: {app.port}, protocol: http2}}
proxy:
  inbound: [{{name: main, listen: "127.0.0.1:{port}"}}]
"""
    with running_pillion(directory, body):
        yield port


def test_streams_to_an_http2_app_respect_its_concurrency_limit(tmp_path: Path) -> None:
    with h2_app(behaviour="hold", max_streams=2) as app, _in_front_of(app, tmp_path) as port:
        client = RawH2(port)
        ids = list(range(1, 13, 2))
        for stream_id in ids:
            client.request(stream_id, f"/held/{stream_id}")
        wait_until(lambda: len(app.paths) == len(ids))  # all six at the app at once
        assert app.most_open <= 2  # never more than it allows on one connection
        assert app.connections >= 3  # another connection when one was full
        app.release.set()
        client.read_until(lambda: all(client.stream(i).over for i in ids))
        assert [client.stream(i).status for i in ids] == [200] * len(ids)


def test_a_goaway_from_the_app_sends_the_unprocessed_streams_again(tmp_path: Path) -> None:
    with (
        h2_app(behaviour="goaway-after-two") as app,
        _in_front_of(app, tmp_path) as port,
    ):
        client = RawH2(port)
        client.request(1, "/first")
        client.request(3, "/second", method="POST", body=b"kept to be sent again")
        client.read_until(lambda: client.stream(1).over and client.stream(3).over)
        assert bytes(client.stream(1).body) == b"connection 1 /first"
        assert bytes(client.stream(3).body) == b"connection 2 /second"  # a new connection
        assert app.paths == ["/first", "/second", "/second"]


def test_streams_share_the_connection_window_fairly(quick: Quick) -> None:
    quick.app.behaviour = "big"  # 8 MiB each
    # stream windows wide open, the connection's left at its initial 64 KiB: it is
    # what the streams share, and this client reopens it a little at a time
    client = RawH2(quick.port, settings={0x4: 1 << 30}, window=False)
    client.request(1, "/one")
    client.request(3, "/two")
    client.read_until(lambda: client.stream(1).status == 200 and client.stream(3).status == 200)
    for _ in range(64):
        got = len(client.stream(1).body) + len(client.stream(3).body)
        client.send(WindowUpdateFrame(0, window_increment=65536))
        client.read_until(
            lambda got=got: len(client.stream(1).body) + len(client.stream(3).body) > got
        )
    granted = 65535 + 64 * 65536  # the initial window and every update: all sent in the end
    client.read_until(lambda: len(client.stream(1).body) + len(client.stream(3).body) >= granted)
    one, two = len(client.stream(1).body), len(client.stream(3).body)
    assert one + two == granted
    assert min(one, two) > (one + two) / 3, (one, two)  # neither starved
    client.close()
