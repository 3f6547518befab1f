"""The admin server over real loopback sockets, in a real ``pillion run``."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, http, raw_request, running_pillion, status_line

TOKEN = "adm1n-t0ken-never-logged"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PillionProcess]:
    with running_pillion(
        tmp_path_factory.mktemp("admin"),
        "lifecycle:\n  drain_timeout: 10s\n",
        admin="  auth_token: ${ADMIN_TOKEN}\n",
        env={"ADMIN_TOKEN": TOKEN},
    ) as process:
        yield process


def test_index_lists_the_endpoints(admin: PillionProcess) -> None:
    status, headers, body = http("GET", f"{admin.admin_url}/", headers=AUTH)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    for path in ("/config", "/drain", "/quitquitquit", "/logging", "/stats"):
        assert f'href="{path}' in body.decode()


@pytest.mark.parametrize("path", ["/", "/stats", "/static/dashboard.js", "/static/uPlot.min.css"])
def test_the_dashboard_needs_the_token_too(admin: PillionProcess, path: str) -> None:
    status, headers, _ = http("GET", f"{admin.admin_url}{path}")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert http("GET", f"{admin.admin_url}{path}", headers=AUTH)[0] == 200


def test_stats_keeps_to_loopback_host_names(admin: PillionProcess) -> None:
    headers = {**AUTH, "Host": "evil.example"}
    assert http("GET", f"{admin.admin_url}/stats", headers=headers)[0] == 403
    assert http("GET", f"{admin.admin_url}/", headers=headers)[0] == 403


def test_stats_never_shows_the_token(admin: PillionProcess) -> None:
    status, _, body = http("GET", f"{admin.admin_url}/stats", headers=AUTH)
    assert status == 200
    stats = json.loads(body)
    assert stats["health"]["components"]["admin"]["state"] == "running"
    assert TOKEN.encode() not in body


def test_config_is_the_effective_config_with_secrets_redacted(admin: PillionProcess) -> None:
    status, headers, body = http("GET", f"{admin.admin_url}/config", headers=AUTH)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    config = json.loads(body)
    assert config["admin"]["auth_token"] == "***"
    assert config["admin"]["listen"] == f"127.0.0.1:{admin.admin_port}"
    assert config["lifecycle"]["drain_timeout"] == "10s"
    assert config["proxy"] is None
    assert TOKEN.encode() not in body


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
)
def test_token_is_required(admin: PillionProcess, headers: dict[str, str]) -> None:
    status, response_headers, body = http("GET", f"{admin.admin_url}/config", headers=headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN.encode() not in body


def test_unknown_path_is_404(admin: PillionProcess) -> None:
    assert http("GET", f"{admin.admin_url}/nope", headers=AUTH)[0] == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/drain"), ("GET", "/quitquitquit"), ("POST", "/config"), ("DELETE", "/logging")],
)
def test_wrong_method_is_405(admin: PillionProcess, method: str, path: str) -> None:
    status, headers, _ = http(method, f"{admin.admin_url}{path}", headers=AUTH)
    assert status == 405
    assert "Allow" in headers


def test_oversized_body_is_413_and_never_handled(admin: PillionProcess) -> None:
    big = json.dumps({"level": "debug", "pad": "x" * 70_000}).encode()
    status, _, _ = http(
        "POST", f"{admin.admin_url}/logging", body=big,
        headers={**AUTH, "Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 413
    assert json.loads(http("GET", f"{admin.admin_url}/logging", headers=AUTH)[2])["level"] == "info"


def test_oversized_chunked_body_is_rejected(admin: PillionProcess) -> None:
    chunk = b"x" * 40_000
    payload = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    response = raw_request(
        admin.admin_port,
        b"POST /logging HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + payload,
    )
    assert status_line(response) == "HTTP/1.1 413 Request Entity Too Large"


def test_a_refused_body_still_being_sent_is_read_and_dropped_until_the_client_is_done(
    admin: PillionProcess,
) -> None:
    # 8 MiB announced and sent after a head refused at once (413): more than any socket
    # buffer holds, so a server that closed with the body unread would reset the
    # connection under the sender (EPIPE or ECONNRESET) and the 413 could be lost.
    # Lingering, it reads and drops the body: the send completes and the 413 arrives.
    size = 8 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", admin.admin_port), timeout=30) as sock:
        sock.sendall(
            b"POST /logging HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size
        )
        sock.sendall(b"x" * size)
        sock.shutdown(socket.SHUT_WR)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert status_line(response) == "HTTP/1.1 413 Request Entity Too Large"


def test_oversized_header_is_rejected(admin: PillionProcess) -> None:
    response = raw_request(
        admin.admin_port,
        b"GET /config HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    )
    assert status_line(response).split()[1] in {"400", "431"}


def test_malformed_request_line_is_refused(admin: PillionProcess) -> None:
    # the proxy's parser: 501 for a method it does not know, 400 for the rest
    response = raw_request(admin.admin_port, b"NOT HTTP\r\n\r\n")
    assert status_line(response).split()[1] == "501"
    response = raw_request(admin.admin_port, b"GET /config HTTP/1.1 x\r\n\r\n")
    assert status_line(response).split()[1] == "400"


def test_logging_get_and_set(admin: PillionProcess) -> None:
    url = f"{admin.admin_url}/logging"
    status, _, body = http("GET", url, headers=AUTH)
    assert status == 200
    assert json.loads(body)["levels"] == ["debug", "info", "warning", "error"]
    status, _, body = http("POST", f"{url}?level=warning", headers=AUTH)
    assert (status, json.loads(body)) == (200, {"level": "warning"})
    status, _, body = http(
        "POST", url, body=b'{"level": "info"}',
        headers={**AUTH, "Content-Type": "application/json"},
    )  # fmt: skip
    assert (status, json.loads(body)) == (200, {"level": "info"})


@pytest.mark.parametrize(
    ("query", "body"),
    [("?level=loud", None), ("", b"not json"), ("", b'["debug"]'), ("", None)],
)
def test_logging_bad_input_is_400(admin: PillionProcess, query: str, body: bytes | None) -> None:
    status, _, _ = http("POST", f"{admin.admin_url}/logging{query}", body=body, headers=AUTH)
    assert status == 400
    assert json.loads(http("GET", f"{admin.admin_url}/logging", headers=AUTH)[2])["level"] == "info"


def test_non_loopback_host_header_is_refused(admin: PillionProcess) -> None:
    """A browser page on evil.example resolving to 127.0.0.1 (DNS rebinding) gets nothing."""
    status, _, _ = http(
        "GET", f"{admin.admin_url}/config", headers={**AUTH, "Host": "evil.example"}
    )
    assert status == 403
    status, _, _ = http("GET", f"{admin.admin_url}/config", headers={**AUTH, "Host": "localhost:1"})
    assert status == 200


def test_cross_origin_post_is_refused(admin: PillionProcess) -> None:
    headers = {**AUTH, "Origin": "https://evil.example"}
    assert http("POST", f"{admin.admin_url}/drain", headers=headers)[0] == 403
    assert http("GET", f"{admin.status_url}/healthz/ready")[0] == 200  # did not drain


def test_the_token_never_reaches_the_logs(admin: PillionProcess) -> None:
    admin.signal(signal.SIGHUP)
    admin.wait_for_log("config reloaded")
    assert TOKEN not in admin.output()
    assert any(r["message"] == "log level changed" for r in admin.records())


def test_admin_without_token_on_loopback_needs_no_auth(tmp_path: Path) -> None:
    with running_pillion(tmp_path, "lifecycle:\n  drain_timeout: 10s\n") as process:
        assert http("GET", f"{process.admin_url}/config")[0] == 200
