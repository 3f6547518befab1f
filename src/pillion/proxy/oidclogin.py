"""The OIDC login at a listener's door: what the gate asks about each request.

Requests under ``path_prefix`` (default ``/oauth2``) are Pillion's own:

- ``start?rd=URL``: a login, whatever the session;
- ``callback``: the provider's answer. Its ``state`` must be the one in the login's
  cookie (sealed, ten minutes, one per login so tabs do not collide); the code is
  redeemed with the login's PKCE verifier and the ID token's nonce must be the
  login's. The login cookie is then cleared, so a replayed callback finds none;
- ``sign_out?rd=URL``: the session's cookies cleared, then the provider's
  ``end_session_endpoint`` (RP-initiated logout) where it has one;
- ``auth``: 202 with ``X-Auth-Request-*`` for a valid session, else 401 (nginx
  ``auth_request``); ``userinfo``: the session's user as JSON.

Any other request brings its session cookie or not. A valid one gives the app
``X-Forwarded-User``, ``-Email``, ``-Groups``, ``-Preferred-Username`` (and
``-Access-Token`` if asked); one whose tokens are about to expire is refreshed
first (one refresh per session, shared by its concurrent requests) and the new
cookie rides on the response. A refresh the provider refuses (a revoked token, a
disabled user) ends the session; a provider that cannot be reached leaves it as
it is until its tokens expire. Without one, where a login is required, a browser
navigation is sent to the provider and anything else (an API call, a fetch, a
non-GET) gets 401, never a redirect.

Waiting (a discovery, a code to redeem, a refresh) is a ``Pending`` for the gate:
the request is decided again when it is done, and finds the result by its state
or its cookie.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from prometheus_client import CollectorRegistry, Counter

from pillion.config.proxy import OidcConfig
from pillion.http.request import RequestHead
from pillion.proxy import flags
from pillion.proxy.gate import Pending, Refused
from pillion.proxy.oidcprovider import OidcProvider, ProviderError
from pillion.proxy.oidcsession import (
    Sealer,
    chunk_names,
    clear_cookie,
    joined,
    parse_cookies,
    safe_return,
    set_cookie,
    split,
)
from pillion.telemetry import Metrics

__all__ = ["FORWARDED", "OidcLogin", "OidcOutcome", "OidcSetupError"]

log = logging.getLogger("pillion.proxy")

FORWARDED = frozenset(
    {
        b"x-forwarded-user",
        b"x-forwarded-email",
        b"x-forwarded-groups",
        b"x-forwarded-preferred-username",
        b"x-forwarded-access-token",
    }
)
"""What the app gets from the login: a client's own copies are always removed."""

_LOGIN_SECONDS = 600  # a login must come back within this
_RESULT_SECONDS = 30.0  # a finished redeem or refresh waits this long for its request
_SESSION = "session"
_LOGIN = "login"
_NO_STORE = (b"cache-control", b"no-store")
_HTML = (b"content-type", b"text/html; charset=utf-8")

AuthHeaders = tuple[tuple[bytes, bytes], ...]


class OidcFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.logins = Counter(
            "pillion_oidc_logins",
            "Logins that came back from the provider, by listener and result (ok, or why "
            "not: not_allowed, forged_state, login_expired, token_refused, "
            "invalid_id_token, provider_unavailable, provider_error, provider_denied).",
            ["listener", "result"],
            registry=registry,
        )
        self.refreshes = Counter(
            "pillion_oidc_session_refreshes",
            "Sessions refreshed with their refresh token, by listener and result.",
            ["listener", "result"],
            registry=registry,
        )
        self.refusals = Counter(
            "pillion_oidc_refusals",
            "Requests without a usable session where one is needed, by listener and "
            "reason (no_session, invalid_cookie, expired, not_allowed), and what they got "
            "(redirect or 401).",
            ["listener", "reason", "answer"],
            registry=registry,
        )


class OidcOutcome:
    """A request's session: ``present`` with ``headers`` for the app and ``cookies``
    (``Set-Cookie`` fields) for the response; or ``decision``, the gate's answer."""

    __slots__ = ("cookies", "decision", "headers", "present", "reason", "user")

    def __init__(
        self,
        present: bool = False,
        headers: AuthHeaders = (),
        cookies: AuthHeaders = (),
        decision: Refused | Pending | None = None,
        reason: str = "no_session",
        user: bytes | None = None,
    ) -> None:
        self.user = user
        self.present = present
        self.headers = headers
        self.cookies = cookies
        self.decision = decision
        self.reason = reason


NO_SESSION = OidcOutcome()


def _page(status: int, title: str, text: str, headers: AuthHeaders = ()) -> Refused:
    body = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{text}</p>"
    )
    return Refused(status, flags.UAEX, body, (_HTML, _NO_STORE, *headers))


def _redirect(location: str, headers: AuthHeaders = ()) -> Refused:
    return Refused(302, flags.NONE, "", ((b"location", location.encode()), _NO_STORE, *headers))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class OidcLogin:
    """A listener's login: its provider, its cookies, its pending work."""

    def __init__(
        self,
        config: OidcConfig,
        listener: str,
        metrics: Metrics,
        *,
        tls: bool,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.required = config.required
        self.provider = OidcProvider(config, None)
        self.sealer: Sealer | None = None  # once ``load`` has read the secrets
        self.prefix = config.path_prefix.encode()
        self.scheme = "https" if tls else "http"
        cookie = config.cookie
        self.secure = (
            cookie.secure
            if cookie.secure is not None
            else tls or (config.redirect_url or "").startswith("https://")
        )
        self.scopes = " ".join(dict.fromkeys(["openid", *config.scopes]))
        self._wall = wall
        self._families = metrics.family("oidc", OidcFamilies)
        self._listener = listener
        # work in progress and its results, found again by the request's state or cookie
        self._redeeming: dict[str, asyncio.Task[None]] = {}
        self._redeemed: dict[str, tuple[float, Refused]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        # a refreshed session, or why not: "refused" (revoked: the session ends) or
        # "unavailable" (the provider is down: the session lasts until its tokens expire)
        self._refreshed: dict[str, tuple[float, dict[str, Any] | str]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- lifetime --

    def load(self) -> None:
        """Read the cookie secrets and the client secret; ``OidcSetupError`` says
        which file is wrong (never what it holds)."""
        secrets_read = [_read(path).strip() for path in self.config.cookie.secret_files]
        try:
            self.sealer = Sealer(secrets_read)
        except ValueError as exc:
            raise OidcSetupError(f"oidc.cookie.secret_files: {exc}") from None
        if self.config.client_secret_file is not None:
            secret = _read(self.config.client_secret_file).strip()
            if not secret:
                raise OidcSetupError(
                    f"{self.config.client_secret_file}: the client secret is empty"
                )
            self.provider.client_secret = secret.decode("utf-8", "replace")

    async def start(self) -> None:
        """Discover the provider (a failure is logged; logins wait for it) and keep
        its document and keys fresh."""
        self.load()
        await self.provider.discover()
        self._task = asyncio.create_task(self._rediscover())

    async def _rediscover(self) -> None:
        while True:
            retry = self.provider.metadata is None
            await asyncio.sleep(min(30.0, self.config.discovery_refresh) if retry else
                                self.config.discovery_refresh)  # fmt: skip
            await self.provider.discover()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for task in [*self._redeeming.values(), *self._refreshing.values()]:
            task.cancel()
        await self.provider.close()

    def _count_login(self, result: str) -> None:
        self._families.logins.labels(self._listener, result).inc()

    def _count_refresh(self, result: str) -> None:
        self._families.refreshes.labels(self._listener, result).inc()

    def _count_refusal(self, reason: str, answer: str) -> None:
        self._families.refusals.labels(self._listener, reason, answer).inc()

    @property
    def _sealer(self) -> Sealer:
        sealer = self.sealer
        assert sealer is not None, "load() first"
        return sealer

    def requires(self, route_says: bool | None) -> bool:
        return self.required if route_says is None else route_says

    # -- each request --

    def check(self, head: RequestHead) -> OidcOutcome:
        path, _, query = head.target.partition(b"?")
        if path.startswith(self.prefix) and path[len(self.prefix) : len(self.prefix) + 1] in (
            b"/",
            b"",
        ):
            return OidcOutcome(decision=self._own(head, path[len(self.prefix) :], query))
        return self._session(head)

    def _session(self, head: RequestHead) -> OidcOutcome:
        cookies = parse_cookies(head.headers)
        name = self.config.cookie.name
        sealed = joined(cookies, name)
        if sealed is None:
            return OidcOutcome(reason="invalid_cookie" if name in cookies else "no_session")
        session = self._sealer.open(_SESSION, sealed)
        now = self._wall()
        if session is None:
            return OidcOutcome(reason="invalid_cookie")
        if now >= float(session.get("x", 0)):
            return OidcOutcome(reason="expired")
        cookies_out: AuthHeaders = ()
        if now >= float(session.get("t", 0)) - self.config.refresh_before:
            if not session.get("r"):
                if now >= float(session.get("t", 0)):
                    return OidcOutcome(reason="expired")
            else:
                refreshed = self._refreshed_session(sealed, session)
                if isinstance(refreshed, Pending):
                    return OidcOutcome(decision=refreshed)
                if isinstance(refreshed, dict):
                    session = refreshed
                    cookies_out = self._session_cookies(session, cookies)
                elif refreshed == "refused" or now >= float(session.get("t", 0)):
                    return OidcOutcome(reason="expired")
        if not self._allowed(session.get("e"), session.get("g"))[0]:
            return OidcOutcome(reason="not_allowed")
        headers = self._forwarded(session)
        return OidcOutcome(present=True, headers=headers, cookies=cookies_out, user=headers[0][1])

    def refused(self, head: RequestHead, reason: str) -> Refused | Pending:
        """No usable session where a login is needed: the provider for a browser
        navigation, 401 for anything else."""
        if reason == "not_allowed":
            self._count_refusal(reason, "403")
            return self._not_allowed()
        if not _is_navigation(head):
            self._count_refusal(reason, "401")
            return Refused(
                401,
                flags.UAEX,
                "login required",
                ((b"www-authenticate", b'Bearer realm="pillion"'), _NO_STORE),
            )
        self._count_refusal(reason, "redirect")
        target = head.target.decode("latin-1")
        return self._login(head, safe_return(target, self._host(head), ()) or "/")

    # -- the login's own paths --

    def _own(self, head: RequestHead, path: bytes, query: bytes) -> Refused | Pending:
        params = dict(parse_qsl(query.decode("latin-1")))
        if path == b"/start":
            return self._login(head, self._return_to(head, params.get("rd", "")))
        if path == b"/callback":
            return self._callback(head, params)
        if path == b"/sign_out":
            return self._sign_out(head, params.get("rd", ""))
        if path in (b"/auth", b"/userinfo"):
            outcome = self._session(head)
            if isinstance(outcome.decision, Pending):
                return outcome.decision
            if not outcome.present:
                return Refused(401, flags.UAEX, "login required", (_NO_STORE,))
            if path == b"/userinfo":
                user = {name.decode()[12:]: value.decode() for name, value in outcome.headers
                        if name != b"x-forwarded-access-token"}  # fmt: skip
                body = json.dumps(user, separators=(",", ":"))
                return Refused(200, flags.NONE, body, ((b"content-type", b"application/json"),
                                               _NO_STORE, *outcome.cookies))  # fmt: skip
            answer = tuple(
                (b"x-auth-request-" + name[12:], value)
                for name, value in outcome.headers
                if name != b"x-forwarded-access-token"
            )
            return Refused(202, flags.NONE, "authenticated", (*answer, *outcome.cookies, _NO_STORE))
        return Refused(404, flags.NR, "not found")

    def _host(self, head: RequestHead) -> str:
        return head.host.decode("latin-1") or "localhost"

    def _return_to(self, head: RequestHead, wanted: str) -> str:
        return safe_return(wanted, self._host(head), self.config.allowed_redirect_hosts) or "/"

    def _redirect_uri(self, head: RequestHead) -> str:
        if self.config.redirect_url is not None:
            return self.config.redirect_url
        return f"{self.scheme}://{self._host(head)}{self.config.path_prefix}/callback"

    def _login(self, head: RequestHead, return_to: str) -> Refused | Pending:
        metadata = self.provider.metadata
        if metadata is None:
            discovering = self.provider.discover_soon()
            if discovering is not None:
                return Pending(discovering)
            return _page(
                503,
                "Login unavailable",
                "The login provider cannot be reached. Try again in a moment.",
                ((b"retry-after", b"5"),),
            )
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        login = {"s": state, "n": nonce, "v": verifier, "r": return_to,
                 "x": self._wall() + _LOGIN_SECONDS}  # fmt: skip
        sealed = self._sealer.seal(_LOGIN, login)
        cookie = set_cookie(self._login_cookie(state), sealed, max_age=_LOGIN_SECONDS,
                            secure=self.secure, domain=self.config.cookie.domain)  # fmt: skip
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self._redirect_uri(head),
                "scope": self.scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = metadata.authorization_endpoint
        return _redirect(f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", (cookie,))

    def _login_cookie(self, state: str) -> str:
        return f"{self.config.cookie.name}_login_{hashlib.sha256(state.encode()).hexdigest()[:12]}"

    def _callback(self, head: RequestHead, params: dict[str, str]) -> Refused | Pending:
        state = params.get("state", "")
        cookies = parse_cookies(head.headers)
        login_cookie = self._login_cookie(state) if state else ""
        sealed = cookies.get(login_cookie) if state else None
        if not sealed:
            return self._forged()
        # The redeem in flight, or its result, is found by the state *and* the login
        # cookie: one who learnt the state (it is in URLs) cannot collect the session.
        key = state + ":" + hashlib.sha256(sealed.encode()).hexdigest()
        done = self._redeemed.pop(key, None)
        if done is not None:
            return done[1]
        running = self._redeeming.get(key)
        if running is not None:
            return Pending(running)
        login = self._sealer.open(_LOGIN, sealed)
        if login is None or not hmac.compare_digest(str(login.get("s", "")), state):
            return self._forged()
        if self._wall() >= float(login.get("x", 0)):
            return self._login_failed("login_expired", "This login took too long. Start again.")
        clear = clear_cookie(login_cookie, secure=self.secure, domain=self.config.cookie.domain)
        if "error" in params:
            self._count_login("provider_denied")
            return _page(403, "Login refused", "The login provider refused the login.", (clear,))
        code = params.get("code", "")
        if not code:
            return self._login_failed("forged_state", "The provider sent no code.")
        task = asyncio.get_running_loop().create_task(
            self._redeem(key, code, login, self._redirect_uri(head), cookies, clear)
        )
        self._redeeming[key] = task
        return Pending(task)

    def _forged(self) -> Refused:
        return self._login_failed(
            "forged_state", "This login was not started here, or it was already used. Start again."
        )

    def _login_failed(self, reason: str, text: str, headers: AuthHeaders = ()) -> Refused:
        self._count_login(reason)
        link = f'<a href="{html.escape(self.config.path_prefix)}/start">Log in</a>'
        return _page(403, "Login failed", f"{html.escape(text)} {link}", headers)

    async def _redeem(
        self,
        key: str,
        code: str,
        login: dict[str, object],
        redirect_uri: str,
        cookies: dict[str, str],
        clear: tuple[bytes, bytes],
    ) -> None:
        try:
            tokens = await self.provider.redeem(code, str(login["v"]), redirect_uri)
            id_token = tokens.get("id_token")
            if not isinstance(id_token, str):
                raise ProviderError("invalid_id_token", "the provider sent no ID token")
            claims = await self.provider.verify(id_token, str(login["n"]))
            answer = self._logged_in(claims, tokens, str(login["r"]), cookies, clear)
        except ProviderError as exc:
            log.warning("login failed", extra={"reason": exc.reason, "error": str(exc)})
            answer = self._login_failed(exc.reason, "The login could not be completed.", (clear,))
        except (ValueError, TypeError, KeyError) as exc:  # a token response of odd shape
            log.warning("login failed", extra={"error": type(exc).__name__})
            answer = self._login_failed(
                "provider_error", "The login could not be completed.", (clear,)
            )
        finally:
            self._redeeming.pop(key, None)
        self._keep(self._redeemed, key, answer)

    def _keep(self, results: dict[str, Any], key: str, value: object) -> None:
        now = time.monotonic()
        for old in [k for k, (at, _) in results.items() if now - at > _RESULT_SECONDS]:
            del results[old]
        results[key] = (now, value)

    def _logged_in(
        self,
        claims: dict[str, Any],
        tokens: dict[str, Any],
        return_to: str,
        cookies: dict[str, str],
        clear: tuple[bytes, bytes],
    ) -> Refused:
        session = self._new_session(claims, tokens, self._wall() + self.config.cookie.expire)
        allowed, why = self._allowed(session.get("e"), session.get("g"))
        if not allowed:
            self._count_login("not_allowed")
            log.info("login refused", extra={"reason": why})
            return self._not_allowed((clear,))
        self._count_login("ok")
        return _redirect(return_to, (clear, *self._session_cookies(session, cookies)))

    def _new_session(
        self, claims: dict[str, Any], tokens: dict[str, Any], ends: float
    ) -> dict[str, Any]:
        config = self.config
        groups = claims.get(config.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        email = claims.get(config.email_claim)
        if claims.get("email_verified") is False and not config.allow_unverified_email:
            email = None
        expires = float(claims.get("exp", 0))
        if isinstance(tokens.get("expires_in"), int | float):
            expires = min(expires, self._wall() + float(tokens["expires_in"]))
        session: dict[str, Any] = {
            "u": str(claims.get(config.user_claim, claims.get("sub", ""))),
            "e": email if isinstance(email, str) else None,
            "g": [str(g) for g in groups if isinstance(g, str | int)],
            "n": claims.get("preferred_username"),
            "t": expires,
            "x": ends,
            "r": tokens.get("refresh_token"),
            "i": tokens.get("id_token"),
        }
        if config.pass_access_token:
            session["a"] = tokens.get("access_token")
        return session

    def _session_cookies(self, session: dict[str, Any], cookies: dict[str, str]) -> AuthHeaders:
        name = self.config.cookie.name
        domain = self.config.cookie.domain
        max_age = max(0, int(float(session["x"]) - self._wall()))
        pairs = split(name, self._sealer.seal(_SESSION, session))
        kept = {chunk for chunk, _ in pairs}
        out = [set_cookie(n, v, max_age=max_age, secure=self.secure, domain=domain)
               for n, v in pairs]  # fmt: skip
        out += [clear_cookie(stale, secure=self.secure, domain=domain)
                for stale in chunk_names(cookies, name) if stale not in kept]  # fmt: skip
        return tuple(out)

    def _allowed(self, email: object, groups: object) -> tuple[bool, str]:
        config = self.config
        if isinstance(email, str) and email:
            address = email.lower()
            domain = address.rpartition("@")[2]
            domains = {d.lower().lstrip("@") for d in config.allowed_email_domains}
            if "*" in domains or domain in domains:
                return True, ""
            if address in {e.lower() for e in config.allowed_emails}:
                return True, ""
        elif "*" in config.allowed_email_domains:
            return True, ""
        if isinstance(groups, list) and set(map(str, groups)) & set(config.allowed_groups):
            return True, ""
        return False, "neither the email nor the groups are allowed"

    def _not_allowed(self, headers: AuthHeaders = ()) -> Refused:
        out = f'<a href="{html.escape(self.config.path_prefix)}/sign_out">Sign out</a>'
        return _page(403, "Access denied", f"This account may not use this site. {out}", headers)

    def _forwarded(self, session: dict[str, Any]) -> AuthHeaders:
        found: list[tuple[bytes, bytes]] = [(b"x-forwarded-user", _value(session.get("u")))]
        if session.get("e"):
            found.append((b"x-forwarded-email", _value(session["e"])))
        if session.get("g"):
            found.append((b"x-forwarded-groups", _value(",".join(session["g"]))))
        if session.get("n"):
            found.append((b"x-forwarded-preferred-username", _value(session["n"])))
        if session.get("a"):
            found.append((b"x-forwarded-access-token", _value(session["a"])))
        return tuple(found)

    # -- refresh --

    def _refreshed_session(
        self, sealed: str, session: dict[str, Any]
    ) -> dict[str, Any] | Pending | str:
        key = hashlib.sha256(sealed.encode()).hexdigest()
        done = self._refreshed.get(key)
        if done is not None:
            return done[1]
        running = self._refreshing.get(key)
        if running is None:
            running = asyncio.get_running_loop().create_task(self._refresh(key, session))
            self._refreshing[key] = running
        return Pending(running)

    async def _refresh(self, key: str, session: dict[str, Any]) -> None:
        refreshed: dict[str, Any] | str = "unavailable"
        try:
            tokens = await self.provider.refresh(str(session["r"]))
            claims: dict[str, Any] | None = None
            id_token = tokens.get("id_token")
            if isinstance(id_token, str):
                claims = await self.provider.verify(id_token, None)
            if claims is None:  # no new ID token: the old identity, a new expiry
                claims = {"sub": session["u"], "exp": self._wall() + float(
                    tokens.get("expires_in", 300))}  # fmt: skip
                refreshed = {**session, "t": claims["exp"]}
                if tokens.get("refresh_token"):
                    refreshed["r"] = tokens["refresh_token"]
                if self.config.pass_access_token:  # the old one may be revoked now
                    refreshed["a"] = tokens.get("access_token")
            else:
                if "refresh_token" not in tokens:
                    tokens = {**tokens, "refresh_token": session["r"]}
                refreshed = self._new_session(claims, tokens, float(session["x"]))
            self._count_refresh("ok")
        except ProviderError as exc:
            log.info("session refresh failed", extra={"reason": exc.reason, "error": str(exc)})
            self._count_refresh(exc.reason)
            if exc.reason in ("token_refused", "invalid_id_token"):
                refreshed = "refused"
        except (ValueError, TypeError, KeyError) as exc:  # a token response of odd shape
            log.info("session refresh failed", extra={"error": type(exc).__name__})
            self._count_refresh("provider_error")
        finally:
            self._refreshing.pop(key, None)
        self._keep(self._refreshed, key, refreshed)

    # -- sign-out --

    def _sign_out(self, head: RequestHead, wanted: str) -> Refused:
        cookies = parse_cookies(head.headers)
        name = self.config.cookie.name
        domain = self.config.cookie.domain
        sealed = joined(cookies, name)
        session = self._sealer.open(_SESSION, sealed) if sealed else None
        clear = tuple(clear_cookie(found, secure=self.secure, domain=domain)
                      for found in chunk_names(cookies, name))  # fmt: skip
        return_to = self._return_to(head, wanted)
        metadata = self.provider.metadata
        if metadata is None or metadata.end_session_endpoint is None or session is None:
            return _redirect(return_to, clear)
        after = self.config.post_logout_redirect_url or (
            return_to if return_to.startswith("http") else
            f"{self.scheme}://{self._host(head)}{return_to}"
        )  # fmt: skip
        query = {"client_id": self.config.client_id, "post_logout_redirect_uri": after}
        if session.get("i"):
            query["id_token_hint"] = str(session["i"])
        endpoint = metadata.end_session_endpoint
        return _redirect(f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}", clear)


class OidcSetupError(Exception):
    """A secret file of the login cannot be used."""


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(64 * 1024)
    except OSError as exc:
        raise OidcSetupError(f"cannot read {path}: {exc.strerror}") from None


def _value(value: object) -> bytes:
    text = str(value)
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")


def _is_navigation(head: RequestHead) -> bool:
    """Whether a browser asks for a page (a redirect to a login page helps), rather
    than a script or an API client (which needs a 401 it can act on)."""
    if head.method not in (b"GET", b"HEAD"):
        return False
    accept = b""
    for name, value in head.headers:
        lowered = name.lower()
        if lowered == b"x-requested-with":
            return False
        if lowered == b"sec-fetch-mode" and value.strip().lower() != b"navigate":
            return False
        if lowered == b"accept":
            accept += value.lower() + b","
    return not (b"application/json" in accept and b"text/html" not in accept)
