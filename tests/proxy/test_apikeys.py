"""API keys: the key file format, and keys checked end to end."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pillion.proxy.apikeys import ApiKeysError, parse_key_file
from tests.helpers import PillionProcess, free_port, http, metric_value, running_pillion, wait_until
from tests.proxy.harness import Client, Response, ScriptedUpstream, get, scripted_upstream

BILLING_KEY = "billing-0123456789abcdef"
BATCH_KEY = "batch-job-key-fedcba9876543210"


def test_the_key_file_format() -> None:
    digest = hashlib.sha256(BILLING_KEY.encode()).hexdigest()
    keys = parse_key_file(
        f"# callers\nsha256:{digest}  billing\n{BATCH_KEY} batch  # plain, hashed on load\n\n"
        "anonymous-but-long-enough\n"
    )
    assert keys == {
        hashlib.sha256(BILLING_KEY.encode()).digest(): "billing",
        hashlib.sha256(BATCH_KEY.encode()).digest(): "batch",
        hashlib.sha256(b"anonymous-but-long-enough").digest(): "",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("short-key\n", "line 1: a key shorter than 16 characters"),
        ("# only\n\nsha256:abc\n", "line 3: sha256: needs 64 lower-case hex digits"),
        (f"{BATCH_KEY} bad<name>\n", "line 1: the name has characters"),
        ("# nothing here\n", "no keys in the file"),
    ],
)
def test_a_bad_key_file_says_which_line_never_the_key(text: str, message: str) -> None:
    with pytest.raises(ApiKeysError, match=message) as failure:
        parse_key_file(text)
    assert BATCH_KEY not in str(failure.value)
    assert "short-key" not in str(failure.value)


@dataclass
class Keyed:
    pillion: PillionProcess
    port: int
    app: ScriptedUpstream
    key_file: Path
    access_log: Path

    def call(self, path: str = "/", extra: str = "") -> Response:
        client = Client(self.port)
        try:
            return client.request(get(path, extra))
        finally:
            client.close()

    def metrics(self) -> bytes:
        return http("GET", f"{self.pillion.status_url}/metrics")[2]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    directory = tmp_path_factory.mktemp("apikeys")
    key_file = directory / "keys.txt"
    digest = hashlib.sha256(BILLING_KEY.encode()).hexdigest()
    key_file.write_text(f"sha256:{digest} billing\n{BATCH_KEY} batch\n")
    key_file.chmod(0o600)
    access_log = directory / "access.log"
    port = free_port()
    with scripted_upstream() as app:
        proxy = f"""
proxy:
  access_log: {{path: {access_log}, flush_interval: 10ms}}
  inbound:
    - name: keyed
      listen: 127.0.0.1:{port}
      api_keys: {{file: {key_file}, query_parameter: api_key}}
      routes:
        - {{match: {{prefix: /public/}}, api_key_required: false}}
        - {{match: {{prefix: /}}}}
"""
        with running_pillion(directory, proxy, app.port) as pillion:
            yield Keyed(pillion, port, app, key_file, access_log)


def test_a_valid_key_passes_and_never_reaches_the_app(keyed: Keyed) -> None:
    spoof = "X-Pillion-Api-Key-Name: admin\r\n"
    response = keyed.call("/orders", f"X-Api-Key: {BILLING_KEY}\r\n{spoof}")
    assert response.status == 200
    seen = keyed.app.requests[-1]
    assert seen.header(b"x-pillion-api-key-name") == b"billing"
    assert [k for k, _ in seen.headers if k.lower() in (b"x-api-key",)] == []
    assert [v for k, v in seen.headers if k.lower() == b"x-pillion-api-key-name"] == [b"billing"]


def test_a_key_in_the_query_is_taken_out_of_it(keyed: Keyed) -> None:
    response = keyed.call(f"/search?q=shoes&api_key={BATCH_KEY}&page=2")
    assert response.status == 200
    assert keyed.app.requests[-1].target == b"/search?q=shoes&page=2"
    wait_until(lambda: BATCH_KEY not in keyed.access_log.read_text() and any(
        json.loads(line)["path"] == "/search?q=shoes&page=2"
        for line in keyed.access_log.read_text().splitlines()
    ))  # fmt: skip


def test_a_missing_or_unknown_key_is_401(keyed: Keyed) -> None:
    before = len(keyed.app.requests)
    assert keyed.call("/orders").status == 401
    wrong = keyed.call("/orders", "X-Api-Key: not-a-key-we-know-of\r\n")
    assert (wrong.status, wrong.body) == (401, b"a valid API key is required\n")
    assert keyed.call("/public/info").status == 200  # this route needs none
    assert keyed.call("/public/info", "X-Api-Key: not-a-key-we-know-of\r\n").status == 401
    assert len(keyed.app.requests) == before + 1
    metrics = keyed.metrics()
    reasons = {
        reason: metric_value(
            metrics, f'pillion_api_key_rejected_total{{listener="keyed",reason="{reason}"}}'
        )
        for reason in ("missing", "invalid")
    }
    assert reasons == {"missing": 1.0, "invalid": 2.0}


def test_keys_are_checked_per_http2_stream(keyed: Keyed) -> None:
    from tests.proxy.h2raw import RawH2

    before = len(keyed.app.requests)
    client = RawH2(keyed.port)
    client.request(1, "/orders", extra=[(b"x-api-key", BILLING_KEY.encode())])
    client.request(3, "/orders")
    client.request(5, f"/q?api_key={BATCH_KEY}&x=1")
    client.read_until(lambda: all(client.stream(i).over for i in (1, 3, 5)))
    assert [client.stream(i).status for i in (1, 3, 5)] == [200, 401, 200]
    # Streams are concurrent: they may reach the app in either order.
    seen = {r.target: r for r in keyed.app.requests[before:]}
    assert {t: r.header(b"x-pillion-api-key-name") for t, r in seen.items()} == {
        b"/orders": b"billing",
        b"/q?x=1": b"batch",  # the key taken out of the query
    }
    assert all(r.header(b"x-api-key") is None for r in seen.values())
    client.close()


def test_the_key_file_is_reloaded_and_a_broken_one_keeps_the_keys(keyed: Keyed) -> None:
    rotated = "rotated-key-00000000000000"
    temp = keyed.key_file.with_suffix(".new")
    temp.write_text(f"{rotated} billing\n")
    temp.replace(keyed.key_file)
    wait_until(lambda: keyed.call("/", f"X-Api-Key: {rotated}\r\n").status == 200)
    assert keyed.call("/", f"X-Api-Key: {BILLING_KEY}\r\n").status == 401  # revoked
    temp.write_text("tiny1\n")
    temp.replace(keyed.key_file)
    keyed.pillion.wait_for_log("API key file unusable; the previous keys are kept")
    assert keyed.call("/", f"X-Api-Key: {rotated}\r\n").status == 200
    output = keyed.pillion.output()
    assert all(key not in output for key in (rotated, BILLING_KEY, BATCH_KEY, "tiny1"))


def test_an_unreadable_key_file_stops_the_start(tmp_path: Path) -> None:
    proxy = f"""
proxy:
  inbound:
    - listen: 127.0.0.1:{free_port()}
      api_keys: {{file: {tmp_path}/missing-keys.txt}}
"""
    with (
        pytest.raises(AssertionError, match="exited 1") as failure,
        running_pillion(tmp_path, proxy),
    ):
        pass
    assert "missing-keys.txt: No such file or directory" in str(failure.value)
