"""The OIDC login end to end, against a real OpenID Connect provider:
oidc-provider-mock (authlib's server, maintained, on PyPI), run as its own process
on a free loopback port. A scripted browser follows the redirects and fills the
provider's login form; it keeps cookies per host as a browser does.

The provider is a good test double for the protocol (discovery, JWKS, PKCE, nonce,
one-time codes, refresh tokens, RP-initiated logout) but its ID tokens are always
well-formed; tokens with a wrong ``aud``/``iss``/``nonce`` or ``alg: none`` are
checked against ``OidcProvider.verify`` directly, in ``test_oidc_tokens``.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from selenium.webdriver.common.by import By

from pillion.proxy.oidcsession import Sealer, split
from pillion.tls.devca import issue, new_ca
from tests import browser
from tests.helpers import PillionProcess, free_port, http, metric_value, running_pillion, wait_until
from tests.proxy.harness import ScriptedUpstream, scripted_upstream

CLIENT_SECRET = "client-s3cret-never-logged"
NEW_KEY = b"n" * 16 + b"new-cookie-secret-0123456789"
OLD_KEY = b"o" * 16 + b"old-cookie-secret-0123456789"
RETIRED_KEY = b"r" * 16 + b"retired-cookie-secret-012345"
USERS = [
    {"sub": "alice", "email": "alice@shop.test", "email_verified": True,
     "groups": ["staff"], "preferred_username": "alice"},
    {"sub": "mallory", "email": "mallory@evil.test", "email_verified": True},
    {"sub": "bob", "email": "bob@shop.test", "email_verified": False},
    {"sub": "audrey", "email": "audrey@elsewhere.test", "groups": ["auditors"]},
]  # fmt: skip


class Provider:
    """oidc-provider-mock as its own process; ``stop`` and ``start`` again on the
    same port (a provider outage)."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        users = [arg for user in USERS for arg in ("--user-claims", json.dumps(user))]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "oidc_provider_mock", "--port", str(self.port),
                 "--require-nonce", *users],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._answers, timeout=30)

    def _answers(self) -> bool:
        try:
            return http("GET", f"{self.issuer}/.well-known/openid-configuration")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class Browser:
    """Follows redirects by hand and keeps each host's cookies (ports ignored, as
    browsers do; Max-Age=0 deletes)."""

    cookies: dict[str, dict[str, str]] = field(default_factory=dict)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def send(self, method: str, url: str, **options: object) -> httpx.Response:
        host = urlsplit(url).hostname or ""
        jar = self.cookies.setdefault(host, {})
        headers = {"accept": "text/html", **dict(options.pop("headers", {}) or {})}  # type: ignore[call-overload]
        if jar:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        response = self.client.request(method, url, headers=headers, **options)  # type: ignore[arg-type]
        for line in response.headers.get_list("set-cookie"):
            pair, *attributes = [part.strip() for part in line.split(";")]
            name, _, value = pair.partition("=")
            if "Max-Age=0" in attributes:
                jar.pop(name, None)
            else:
                jar[name] = value
        return response

    def login(self, url: str, user: str = "alice") -> httpx.Response:
        """From ``url`` through the provider's form as ``user``; the response of
        Pillion's callback."""
        to_provider = self.send("GET", url)
        assert to_provider.status_code == 302, to_provider.text
        return self.log_in_at(to_provider.headers["location"], user)

    def log_in_at(self, authorize: str, user: str) -> httpx.Response:
        form = self.send("GET", authorize)
        assert form.status_code == 200, form.text
        back = self.send("POST", authorize, data={"sub": user})
        assert back.status_code == 302, back.text
        return self.send("GET", back.headers["location"])


@dataclass
class Site:
    pillion: PillionProcess
    base: str
    app: ScriptedUpstream
    provider: Provider
    directory: Path
    eager: str

    def seen(self) -> dict[str, str]:
        """The headers the app received with the last request."""
        return {n.decode().lower(): v.decode() for n, v in self.app.requests[-1].headers}

    def metric(self, series: str) -> float:
        return metric_value(http("GET", f"{self.pillion.status_url}/metrics")[2], series) or 0.0


def _config(port: int, issuer: str, directory: Path, eager_port: int | None = None) -> str:
    (directory / "client-secret").write_text(CLIENT_SECRET + "\n")
    (directory / "cookie-new").write_bytes(NEW_KEY)
    (directory / "cookie-old").write_bytes(OLD_KEY)
    return f"""
proxy:
  inbound:
    - name: web
      listen: 127.0.0.1:{port}
      oidc:
        issuer: {issuer}
        client_id: shop
        client_secret_file: {directory / "client-secret"}
        allowed_email_domains: [shop.test]
        allowed_groups: [auditors]
        allowed_redirect_hosts: [docs.shop.test]
        cookie: {{secret_files: [{directory / "cookie-new"}, {directory / "cookie-old"}]}}
      routes:
        - {{match: {{prefix: /public/}}, auth: none}}
        - {{match: {{prefix: /}}}}
""" + (
        f"""
    - name: eager  # refreshes at every request: its tokens last 1h, it refreshes 2h before
      listen: 127.0.0.1:{eager_port}
      oidc:
        issuer: {issuer}
        client_id: shop
        client_secret_file: {directory / "client-secret"}
        allowed_email_domains: ["*"]
        pass_access_token: true
        refresh_before: 2h
        cookie: {{name: eager, secret_files: [{directory / "cookie-new"}]}}
"""
        if eager_port is not None
        else ""
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("oidc")
    provider = Provider(free_port(), directory / "provider.log")
    provider.start()
    port, eager = free_port(), free_port()
    config = _config(port, provider.issuer, directory, eager)
    try:
        with scripted_upstream() as app, running_pillion(directory, config, app.port) as pillion:
            yield Site(pillion, f"http://127.0.0.1:{port}", app, provider, directory,
                       f"http://127.0.0.1:{eager}")  # fmt: skip
    finally:
        provider.stop()


def test_a_browser_logs_in_and_the_app_gets_the_user(site: Site) -> None:
    browser = Browser()
    to_provider = browser.send("GET", f"{site.base}/orders?page=2")
    assert to_provider.status_code == 302
    authorize = urlsplit(to_provider.headers["location"])
    assert f"{authorize.scheme}://{authorize.netloc}" == site.provider.issuer
    query = parse_qs(authorize.query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == ["shop"]
    assert query["redirect_uri"] == [f"{site.base}/oauth2/callback"]
    assert set(query["scope"][0].split()) == {"openid", "email", "profile"}
    assert query["nonce"][0]
    assert query["state"][0]
    login_cookie = to_provider.headers["set-cookie"]
    assert "HttpOnly" in login_cookie
    assert "SameSite=Lax" in login_cookie
    assert "Secure" not in login_cookie  # plain HTTP here

    back = browser.log_in_at(to_provider.headers["location"], "alice")
    assert back.status_code == 302, site.pillion.output()[-3000:]
    assert back.headers["location"] == "/orders?page=2"
    jar = browser.cookies["127.0.0.1"]
    assert "_pillion_oidc" in jar
    assert not any("_login_" in name for name in jar)

    forged = {"x-forwarded-user": "root", "x-forwarded-groups": "admin"}
    page = browser.send("GET", f"{site.base}/orders?page=2", headers=forged)
    assert page.status_code == 200
    seen = site.seen()
    assert seen["x-forwarded-user"] == "alice"  # the session's, not the client's copies
    assert seen["x-forwarded-email"] == "alice@shop.test"
    assert seen["x-forwarded-groups"] == "staff"
    assert seen["x-forwarded-preferred-username"] == "alice"
    assert "x-forwarded-access-token" not in seen
    assert site.metric('pillion_oidc_logins_total{listener="web",result="ok"}') >= 1

    def logged(path: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in site.pillion.output().splitlines()
                 if line.startswith('{"time"') and '"listener":"web"' in line]  # fmt: skip
        return [line for line in lines if line.get("path") == path]

    wait_until(lambda: len(logged("/orders?page=2")) >= 2)
    assert [line["user"] for line in logged("/orders?page=2")] == [None, "alice"]

    # the same session over HTTP/2 (prior knowledge, as curl sends it)
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies["127.0.0.1"].items())
    done = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null",
         "-w", "%{http_code} %{http_version}", "-H", f"cookie: {cookie}", f"{site.base}/over-h2"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.stdout == "200 2"
    assert site.seen()["x-forwarded-user"] == "alice"

    # nginx auth_request style, and the user as JSON
    auth = browser.send("GET", f"{site.base}/oauth2/auth")
    assert auth.status_code == 202
    assert auth.headers["x-auth-request-email"] == "alice@shop.test"
    info = browser.send("GET", f"{site.base}/oauth2/userinfo").json()
    assert info == {"user": "alice", "email": "alice@shop.test", "groups": "staff",
                    "preferred-username": "alice"}  # fmt: skip
    assert Browser().send("GET", f"{site.base}/oauth2/auth").status_code == 401

    # sign-out: the cookie cleared, then the provider's end-session endpoint
    out = browser.send("GET", f"{site.base}/oauth2/sign_out?rd=/bye")
    assert out.status_code == 302
    ending = urlsplit(out.headers["location"])
    assert ending.path == "/oauth2/end_session"
    ending_query = parse_qs(ending.query)
    assert ending_query["post_logout_redirect_uri"] == [f"{site.base}/bye"]
    assert ending_query["id_token_hint"][0].count(".") == 2
    assert "_pillion_oidc" not in browser.cookies["127.0.0.1"]
    assert browser.send("GET", f"{site.base}/orders").status_code == 302  # protected again


def test_api_calls_get_401_never_a_redirect(site: Site) -> None:
    anonymous = Browser()
    for method, headers in [
        ("GET", {"accept": "application/json"}),
        ("GET", {"x-requested-with": "XMLHttpRequest"}),
        ("GET", {"sec-fetch-mode": "cors"}),
        ("POST", {}),
    ]:
        response = anonymous.send(method, f"{site.base}/api/orders", headers=headers)
        assert response.status_code == 401, (method, headers)
        assert response.headers["www-authenticate"] == 'Bearer realm="pillion"'
    before = len(site.app.requests)
    public = anonymous.send("GET", f"{site.base}/public/logo", headers={"x-forwarded-user": "root"})
    assert public.status_code == 200
    assert len(site.app.requests) == before + 1
    assert "x-forwarded-user" not in site.seen()  # stripped even where no login is needed


def test_who_gets_in(site: Site) -> None:
    # by group, though the domain is not allowed
    assert Browser().login(f"{site.base}/", "audrey").status_code == 302
    for user in ("mallory", "bob"):  # a domain not allowed; an unverified email
        browser = Browser()
        refused = browser.login(f"{site.base}/", user)
        assert refused.status_code == 403, user
        assert "Access denied" in refused.text
        assert "Sign out" in refused.text
        assert "_pillion_oidc" not in browser.cookies["127.0.0.1"]  # no session, no loop
    assert site.metric('pillion_oidc_logins_total{listener="web",result="not_allowed"}') >= 2


def test_a_forged_missing_or_replayed_state_or_code_gets_no_session(site: Site) -> None:
    browser = Browser()
    to_provider = browser.send("GET", f"{site.base}/")
    authorize = to_provider.headers["location"]
    browser.send("GET", authorize)
    back = browser.send("POST", authorize, data={"sub": "alice"})
    callback = back.headers["location"]
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    base = f"{site.base}{parts.path}"
    forged = f"{base}?{urlencode({'code': query['code'][0], 'state': 'forged'})}"
    missing = f"{base}?{urlencode({'code': query['code'][0]})}"
    for url in (forged, missing):
        refused = browser.send("GET", url)
        assert refused.status_code == 403
        assert "Login failed" in refused.text
        assert "_pillion_oidc" not in browser.cookies["127.0.0.1"]
    # the real callback, from another browser (no login cookie: a stolen URL)
    assert Browser().send("GET", callback).status_code == 403
    # the real one works once ...
    login_cookies = dict(browser.cookies["127.0.0.1"])
    assert browser.send("GET", callback).status_code == 302
    # ... and replayed with its login cookie, the provider refuses the used code
    replay = Browser(cookies={"127.0.0.1": login_cookies}).send("GET", callback)
    assert replay.status_code == 403
    assert site.metric('pillion_oidc_logins_total{listener="web",result="forged_state"}') >= 3
    assert site.metric('pillion_oidc_logins_total{listener="web",result="token_refused"}') >= 1


def _session(key: bytes, **changes: object) -> str:
    now = time.time()
    session = {"u": "alice", "e": "alice@shop.test", "g": [], "n": None, "t": now + 3600,
               "x": now + 3600, "r": None, "i": None, **changes}  # fmt: skip
    (_, value), *more = split("_pillion_oidc", Sealer([key]).seal("session", session))
    assert not more
    return value


@pytest.mark.parametrize(
    "cookie",
    ["tampered", "truncated", "expired", "retired key", "a login cookie", "garbage"],
)
def test_a_cookie_that_is_not_a_valid_session_is_no_session(site: Site, cookie: str) -> None:
    valid = _session(NEW_KEY)
    value = {
        "tampered": valid[:-6] + ("A" if valid[-6] != "A" else "B") + valid[-5:],
        "truncated": valid[: len(valid) // 2],
        "expired": _session(NEW_KEY, x=time.time() - 1),
        "retired key": _session(RETIRED_KEY),
        "a login cookie": "v1.1." + Sealer([NEW_KEY]).seal("login", {"u": "alice"}),
        "garbage": "v1.1.%%%",
    }[cookie]
    browser = Browser(cookies={"127.0.0.1": {"_pillion_oidc": value}})
    assert browser.send("GET", f"{site.base}/x").status_code == 302
    assert (
        browser.send("GET", f"{site.base}/x", headers={"accept": "application/json"}).status_code
        == 401
    )


def test_a_session_sealed_with_the_previous_key_still_works(site: Site) -> None:
    browser = Browser(cookies={"127.0.0.1": {"_pillion_oidc": _session(OLD_KEY)}})
    assert browser.send("GET", f"{site.base}/x").status_code == 200
    assert site.seen()["x-forwarded-user"] == "alice"


@pytest.mark.parametrize(
    "rd",
    ["https://evil.test/", "//evil.test/", "/\\evil.test/", "https:evil.test",
     "%2F%2Fevil.test", "/%0d%0aSet-Cookie:x=y", "javascript:alert(1)",
     "https://alice@evil.test/", "https://docs.shop.test.evil.test/"],
)  # fmt: skip
def test_no_open_redirect_after_login(site: Site, rd: str) -> None:
    browser = Browser()
    back = browser.login(f"{site.base}/oauth2/start?{urlencode({'rd': rd})}")
    assert back.status_code == 302
    location = back.headers["location"]
    assert location in ("/", rd), location
    assert "evil" not in location
    if rd.startswith("/%0d"):
        assert location == rd  # a path on this host, as sent: still encoded, harmless


def test_allowed_return_urls_are_kept(site: Site) -> None:
    for rd in ("/reports?q=1", "https://docs.shop.test/guide", f"{site.base}/here"):
        back = Browser().login(f"{site.base}/oauth2/start?{urlencode({'rd': rd})}")
        assert back.headers["location"] == rd


def test_no_secret_in_the_log(site: Site) -> None:
    Browser().login(f"{site.base}/")
    log = site.pillion.output()
    for secret in (CLIENT_SECRET, NEW_KEY.decode(), OLD_KEY.decode()):
        assert secret not in log


def test_a_provider_down_at_start_fails_logins_clearly_until_it_is_back(tmp_path: Path) -> None:
    provider = Provider(free_port(), tmp_path / "provider.log")
    port = free_port()
    with (
        scripted_upstream() as app,
        running_pillion(tmp_path, _config(port, provider.issuer, tmp_path), app.port) as pillion,
    ):
        base = f"http://127.0.0.1:{port}"
        down = Browser().send("GET", f"{base}/")
        assert down.status_code == 503
        assert "Login unavailable" in down.text
        assert down.headers["retry-after"] == "5"
        try:
            provider.start()
            wait_until(lambda: Browser().send("GET", f"{base}/").status_code == 302, timeout=30)
            assert Browser().login(f"{base}/").status_code == 302
        finally:
            provider.stop()
        assert CLIENT_SECRET not in pillion.output()


def test_a_session_about_to_expire_is_refreshed_and_the_new_cookie_rides_on_the_response(
    site: Site,
) -> None:
    browser = Browser()
    assert browser.login(f"{site.eager}/").status_code == 302
    first = browser.cookies["127.0.0.1"]["eager"]
    response = browser.send("GET", f"{site.eager}/a")
    assert response.status_code == 200  # the app's answer ...
    assert site.seen()["x-forwarded-user"] == "alice"
    token = site.seen()["x-forwarded-access-token"]  # asked for with pass_access_token
    assert len(token) >= 16
    # the current one: the provider revokes the old tokens when it refreshes
    assert http("GET", f"{site.provider.issuer}/userinfo",
                headers={"authorization": f"Bearer {token}"})[0] == 200  # fmt: skip
    renewed = browser.cookies["127.0.0.1"]["eager"]
    assert renewed != first  # ... with the refreshed session's cookie
    assert any(line.startswith("eager=") for line in response.headers.get_list("set-cookie"))
    assert browser.send("GET", f"{site.eager}/b").status_code == 200
    assert site.metric('pillion_oidc_session_refreshes_total{listener="eager",result="ok"}') >= 2
    # the provider no longer honours the refresh token: the session ends
    http("POST", f"{site.provider.issuer}/users/alice/revoke-tokens")
    assert browser.send("GET", f"{site.eager}/c").status_code == 302
    refused = 'pillion_oidc_session_refreshes_total{listener="eager",result="token_refused"}'
    assert site.metric(refused) >= 1


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Selenium through Debian's driver."""
    with browser.chromium() as driver:
        yield driver


def test_a_real_browser_logs_in_is_seen_by_the_app_and_signs_out(site: Site, chromium: Any) -> None:
    def at(prefix: str) -> Callable[[], bool]:
        return lambda: str(chromium.current_url).startswith(prefix)

    chromium.get(f"{site.base}/orders?page=2")
    wait_until(at(f"{site.provider.issuer}/oauth2/authorize"))  # sent to the provider
    login = chromium.find_element(By.NAME, "sub")
    login.send_keys("alice")
    login.submit()
    wait_until(at(f"{site.base}/orders?page=2"))  # back where it started, logged in
    assert site.seen()["x-forwarded-user"] == "alice"
    assert site.seen()["x-forwarded-email"] == "alice@shop.test"
    cookie = chromium.get_cookie("_pillion_oidc")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    chromium.get(f"{site.base}/orders?page=3")  # the session carries on
    assert site.seen()["x-forwarded-user"] == "alice"

    chromium.get(f"{site.base}/oauth2/sign_out?rd=/orders")
    wait_until(at(f"{site.provider.issuer}/oauth2/end_session"))  # RP-initiated logout
    assert chromium.get_cookie("_pillion_oidc") is None
    chromium.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    # back at the app after the provider ended its session: protected again, so on
    # to the provider's login
    wait_until(at(f"{site.provider.issuer}/oauth2/authorize"))
    before = len(site.app.requests)
    chromium.get(f"{site.base}/orders")
    wait_until(at(f"{site.provider.issuer}/oauth2/authorize"))
    assert len(site.app.requests) == before  # the app saw nothing without a login


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        (None, "cannot read {path}: No such file or directory"),
        (
            b"too-short-a-secret",
            "oidc.cookie.secret_files: a cookie secret needs at least 32 bytes",
        ),
    ],
    ids=["missing", "short"],
)
def test_a_cookie_secret_it_cannot_use_stops_the_start_with_one_clear_line(
    tmp_path: Path, secret: bytes | None, says: str
) -> None:
    path = tmp_path / "cookie-secret"
    if secret is not None:
        path.write_bytes(secret)
    config = f"""
proxy:
  inbound:
    - name: web
      listen: 127.0.0.1:{free_port()}
      oidc:
        issuer: http://127.0.0.1:9
        client_id: shop
        allowed_email_domains: ["*"]
        cookie: {{secret_files: [{path}]}}
"""
    with running_pillion(tmp_path, config, ready=False) as pillion:
        assert pillion.wait_exit() == 1  # a runtime failure, not a config error
        output = pillion.output()
    assert f"listener 'web': {says.format(path=path)}" in output
    assert "Traceback" not in output
    if secret is not None:
        assert secret.decode() not in output


def test_over_tls_the_cookies_are_secure_and_the_callback_is_https(
    site: Site, tmp_path: Path
) -> None:
    ca = new_ca()
    served = issue(ca, ip_addresses=("127.0.0.1",))
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "tls.crt").write_bytes(served.cert_pem)
    (tmp_path / "tls.key").write_bytes(served.key_pem)
    (tmp_path / "cookie").write_bytes(NEW_KEY)
    (tmp_path / "client-secret").write_text(CLIENT_SECRET)
    port = free_port()
    config = f"""
proxy:
  inbound:
    - name: secure
      listen: 127.0.0.1:{port}
      tls: {{certificates: [{{cert: {tmp_path / "tls.crt"}, key: {tmp_path / "tls.key"}}}]}}
      oidc:
        issuer: {site.provider.issuer}
        client_id: shop
        client_secret_file: {tmp_path / "client-secret"}
        allowed_email_domains: [shop.test]
        cookie: {{secret_files: [{tmp_path / "cookie"}]}}
"""
    with scripted_upstream() as app, running_pillion(tmp_path, config, app.port):
        trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        # over HTTP/2 (ALPN), as browsers speak to a TLS site: the callback waits for
        # the code's redeem on its stream
        browser = Browser(client=httpx.Client(timeout=10, verify=trusted, http2=True))
        base = f"https://127.0.0.1:{port}"
        to_provider = browser.send("GET", f"{base}/")
        assert "; Secure" in to_provider.headers["set-cookie"]
        query = parse_qs(urlsplit(to_provider.headers["location"]).query)
        assert query["redirect_uri"] == [f"{base}/oauth2/callback"]
        back = browser.log_in_at(to_provider.headers["location"], "alice")
        assert back.status_code == 302
        assert (to_provider.http_version, back.http_version) == ("HTTP/2", "HTTP/2")
        session = [c for c in back.headers.get_list("set-cookie") if c.startswith("_pillion_oidc=")]
        assert len(session) == 1
        assert "; Secure" in session[0]
        assert browser.send("GET", f"{base}/page").status_code == 200
        seen = {n.decode().lower(): v.decode() for n, v in app.requests[-1].headers}
        assert seen["x-forwarded-user"] == "alice"
        browser.client.close()  # no idle connection for the stop to wait out
