"""Secrets as a component: log in, fetch every source, render every template,
keep them fresh, tell the app.

Sidecar mode (``start``): a task per source fetches it (retrying with backoff
while the server is down: the last good values and files stay), renews its
lease at 2/3 of its duration or fetches it again before it ends, and marks the
files for rendering when its values change. ``started`` turns true once every
template has rendered once, which holds a native sidecar's app until its files
exist. The token is renewed at 2/3 of its TTL; when renewal fails, or a request
is refused with 403, Pillion logs in again.

Init mode (``render_once``): everything is fetched and rendered in memory,
then written; any failure writes nothing and names the template or source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pillion.components import Component, ComponentStartError, cancel_and_wait
from pillion.config.secrets import (
    NotifyTargetConfig,
    SecretsConfig,
    SecretSourceConfig,
    VaultRequest,
)
from pillion.notify import Notifier
from pillion.render.errors import RenderError
from pillion.render.fileset import RenderedFiles
from pillion.secrets.errors import SecretsError
from pillion.secrets.metrics import SecretFamilies
from pillion.secrets.sources import Fetched, SourceError, fetch
from pillion.secrets.vault import Login, VaultClient, VaultError, VaultRefused
from pillion.telemetry import Metrics

__all__ = ["SecretsComponent", "SecretsError"]

log = logging.getLogger("pillion.secrets")

# login and fetch retries: 1s doubling up to vault.max_backoff (local sources: 5m)
BACKOFF_FIRST, LOCAL_BACKOFF_MAX = 1.0, 300.0
RENDER_RETRY_MAX = 30.0  # a file that could not be written: tried again, 1s doubling to 30s
RENEW_AT = 2 / 3  # of a token's TTL or a lease's duration


def _backoff(delay: float, most: float) -> tuple[float, float]:
    """(how long to wait now, the next delay, at most ``most``): full jitter above
    half the delay."""
    return random.uniform(delay / 2, delay), min(delay * 2, most)  # noqa: S311


class SecretsComponent(Component):
    kind = "traffic"
    hold_until_started = True  # the proxy may serve the certificates rendered here

    def __init__(
        self,
        config: SecretsConfig,
        metrics: Metrics,
        *,
        notify: Sequence[NotifyTargetConfig],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``notify``: the ``app.notify`` targets the templates name."""
        self.name = "secrets"
        self.config = config
        self.environ = dict(os.environ if environ is None else environ)
        self.notifier = Notifier(list(notify), metrics)
        self.families = metrics.family("secrets", SecretFamilies)
        self.vault = VaultClient(self.config.vault) if self.config.vault is not None else None
        self.values: dict[str, dict[str, Any]] = {}  # by source, the last good values
        self.files = RenderedFiles(
            list(self.config.templates),
            variable="secrets",
            notify=self.notifier.notify,
            renders=self.families.renders,
            log=log,
            last_render=self.families.last_render,
            environ=self.environ,
        )
        # the sources, and the Vault requests of `syntax: go` templates (once compiled)
        self.sources: list[SecretSourceConfig | VaultRequest] = list(self.config.sources)
        self.expires: dict[str, float] = {}  # by source: when its values stop working
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._relogin: asyncio.Task[Login] | None = None
        self._last_problem = ""  # for init mode's message when it gives up
        vault = self.config.vault
        self._max_backoff = vault.max_backoff if vault is not None else LOCAL_BACKOFF_MAX

    # -- the component --

    @property
    def started(self) -> bool:
        return self.files.started

    async def wait_started(self) -> None:
        await self.files.wait_started()

    @property
    def problems(self) -> list[str]:
        """Files that could not be written: the app reads the previous ones."""
        return [
            f"template {name}: {error}; the previous file is kept, written again once it can be"
            for name, error in sorted(self.files.unwritten.items())
        ]

    @property
    def ready(self) -> bool:
        """Started, and no source's values are past their end (an expired lease or
        certificate): stale but still valid values keep the pod ready."""
        now = time.time()
        return self.started and all(end > now for end in self.expires.values())

    def _compile(self) -> None:
        self.files.compile()
        self.sources = [*self.config.sources, *self.files.vault_requests()]

    async def start(self) -> None:
        try:
            self._compile()
        except (RenderError, OSError) as exc:
            raise ComponentStartError("secrets", str(exc)) from exc
        if self.vault is not None:
            await self.vault.open()
        self._tasks.append(asyncio.create_task(self._keep_all()))
        self._tasks.append(asyncio.create_task(self._render_loop()))

    async def drain(self, deadline: float) -> None:
        _ = deadline  # nothing in flight worth waiting for: files are written whole

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.notifier.close()
        if self.vault is not None:
            await self.vault.close()

    # -- init mode --

    async def render_once(self) -> dict[str, bytes]:
        """Fetch every source and render every template once, within ``init_timeout``;
        each template's content (nothing is written: see ``write_once``)."""
        self._compile()
        try:
            async with asyncio.timeout(self.config.init_timeout):
                if self.vault is not None:
                    await self.vault.open()
                    await self._login(until_ok=True, init=True)
                for source in self.sources:
                    fetched = await self._fetch(source, init=True)
                    self.values[source.name] = fetched.values
        except TimeoutError:
            raise SecretsError(
                f"gave up after init_timeout ({self.config.init_timeout:g}s): "
                f"{self._last_problem or 'no answer'}"
            ) from None
        finally:
            if self.vault is not None:
                await self.vault.close()
        try:
            return self.files.render_all_or_nothing(self.values)
        except RenderError as exc:
            raise SecretsError(str(exc)) from None

    # -- sidecar mode --

    async def _keep_all(self) -> None:
        if self.vault is not None:
            login = await self._login(until_ok=True)
            self._tasks.append(asyncio.create_task(self._keep_token(login)))
        for source in self.sources:
            self._tasks.append(asyncio.create_task(self._keep_source(source)))

    async def _login(self, until_ok: bool, init: bool = False) -> Login:
        assert self.vault is not None
        delay = BACKOFF_FIRST
        while True:
            try:
                login = await self.vault.login()
            except VaultError as exc:
                self.families.auth.labels("failed").inc()
                self._last_problem = f"login: {exc}"
                log.error("vault login failed", extra={"error": str(exc)})
                if init and isinstance(exc, VaultRefused) and exc.status in (400, 403):
                    raise SecretsError(f"vault login refused: {exc}") from None
                if not until_ok:
                    raise
                wait, delay = _backoff(delay, self._max_backoff)
                await asyncio.sleep(wait)
                continue
            self.families.auth.labels("ok").inc()
            log.info("logged in to vault", extra={"ttl": login.ttl, "renewable": login.renewable})
            return login

    async def _keep_token(self, login: Login) -> None:
        """Renew at 2/3 of the TTL; once renewal no longer gives the full TTL (the
        token's max TTL is near), or fails, log in again before it ends."""
        assert self.vault is not None
        full = login.ttl
        while login.ttl > 0:
            await asyncio.sleep(login.ttl * RENEW_AT)
            if login.renewable:
                try:
                    renewed = await self.vault.renew_token()
                except VaultError as exc:
                    self.families.auth.labels("renew_failed").inc()
                    log.warning("token renewal failed; logging in again",
                                extra={"error": str(exc)})  # fmt: skip
                else:
                    self.families.auth.labels("renewed").inc()
                    login = renewed if renewed.ttl >= full else Login(renewed.ttl, False)
                    continue
            login = await self._login_again()
            full = login.ttl

    async def _login_again(self) -> Login:
        """One login shared by every task that finds the token bad."""
        if self._relogin is None or self._relogin.done():
            self._relogin = asyncio.create_task(self._login(until_ok=True))
        return await asyncio.shield(self._relogin)

    async def _fetch(
        self, source: SecretSourceConfig | VaultRequest, init: bool = False
    ) -> Fetched:
        """Fetch until it works (backoff 1s to 5m); in init mode a refusal (403, 404)
        fails at once. A 403 first makes Pillion log in again (a revoked token)."""
        delay = BACKOFF_FIRST
        relogged = False
        while True:
            try:
                fetched = await fetch(source, self.vault, self.environ)
            except (VaultError, SourceError) as exc:
                if isinstance(exc, VaultRefused) and exc.status == 403 and not relogged:
                    relogged = True
                    if init:
                        await self._login(until_ok=True, init=True)
                    else:
                        await self._login_again()
                    continue
                self._last_problem = f"source {source.name}: {exc}"
                self.families.fetches.labels(source.name, "failed").inc()
                if source.name in self.values:
                    self.families.stale.labels(source.name).set(1)
                log.error("secret source failed",
                          extra={"source": source.name, "error": str(exc)})  # fmt: skip
                if init and isinstance(exc, VaultRefused | SourceError):
                    raise SecretsError(f"source {source.name}: {exc}") from None
                wait, delay = _backoff(delay, self._max_backoff)
                await asyncio.sleep(wait)
                continue
            self.families.fetches.labels(source.name, "ok").inc()
            self.families.stale.labels(source.name).set(0)
            if fetched.expires_at is not None:
                self.expires[source.name] = fetched.expires_at
                self.families.lease_expiry.labels(source.name).set(fetched.expires_at)
            return fetched

    async def _keep_source(self, source: SecretSourceConfig | VaultRequest) -> None:
        fetched = await self._fetch(source)
        self._set(source.name, fetched.values)
        while True:
            if fetched.lease_id is not None and fetched.lease_duration > 0:
                fetched = await self._keep_lease(source, fetched)
            elif fetched.refresh_in is not None:
                await asyncio.sleep(fetched.refresh_in)
                fetched = await self._fetch(source)
            else:
                return  # read once (environment variables)
            self._set(source.name, fetched.values)

    async def _keep_lease(
        self, source: SecretSourceConfig | VaultRequest, fetched: Fetched
    ) -> Fetched:
        """Renew the lease at 2/3 of its duration while it can be renewed to its full
        duration; then (or when renewal fails: revoked) fetch a new secret."""
        assert self.vault is not None
        assert fetched.lease_id is not None
        increment = fetched.lease_duration
        duration, renewable = fetched.lease_duration, fetched.renewable
        while True:
            await asyncio.sleep(duration * RENEW_AT)
            if not renewable:
                break
            try:
                duration, renewable = await self.vault.renew_lease(fetched.lease_id, increment)
            except VaultError as exc:
                log.warning("lease renewal failed; fetching a new secret",
                            extra={"source": source.name, "error": str(exc)})  # fmt: skip
                self.families.lease_renewals.labels(source.name, "failed").inc()
                break
            self.families.lease_renewals.labels(source.name, "ok").inc()
            end = time.time() + duration
            self.expires[source.name] = end
            self.families.lease_expiry.labels(source.name).set(end)
            if duration < increment:  # capped by the max TTL: fetch anew before it ends
                renewable = False
        return await self._fetch(source)

    def _set(self, name: str, values: dict[str, Any]) -> None:
        if self.values.get(name) != values:
            self.values[name] = values
            self._dirty.set()

    async def _render_loop(self) -> None:
        """Render when values change, and again (with backoff) while a file could not
        be written (its directory read-only or full): no new value may come to
        trigger it, a renewed lease changes nothing."""
        delay = BACKOFF_FIRST
        while True:
            if self.files.unwritten:
                wait, delay = _backoff(delay, RENDER_RETRY_MAX)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._dirty.wait()
            else:
                delay = BACKOFF_FIRST
                await self._dirty.wait()
            self._dirty.clear()
            if len(self.values) < len(self.sources):
                continue  # not every source has values yet
            self.files.render_all(self.values)
