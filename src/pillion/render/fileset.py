"""A section's templates rendered together, for secrets and config alike: compile
them, render them all from the sources' values, write the files that changed,
count each result, and tell the app's targets about files that changed (never
on a template's first render: the app has not started on them yet).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from pillion.config.secrets import SecretTemplateConfig, TemplateConfig, VaultRequest
from pillion.render.errors import RenderError
from pillion.render.files import write_atomically

if TYPE_CHECKING:
    from pillion.render.gotemplates import GoRenderer
    from pillion.render.templates import Renderer

__all__ = ["RenderedFiles"]


class RenderedFiles:
    def __init__(
        self,
        templates: list[TemplateConfig],
        variable: str,
        notify: Callable[[str], object],
        renders: Counter,
        log: logging.Logger,
        last_render: Gauge | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``notify(target)`` tells an ``app.notify`` target; ``renders`` is labelled
        (template, result: changed, unchanged or error); ``last_render`` (template)
        gets the time of each successful render; ``environ`` is what a ``syntax: go``
        template's ``env`` reads."""
        self.templates = templates
        self.variable = variable
        self.notify = notify
        self.renders = renders
        self.last_render = last_render
        self.log = log
        self.environ = environ if environ is not None else {}
        self.renderers: list[Renderer | GoRenderer] = []
        self.rendered: set[str] = set()  # templates rendered at least once
        self.contents: dict[str, bytes] = {}  # by template, what was last rendered
        # by template, why its file could not be written (its previous one is kept)
        self.unwritten: dict[str, str] = {}
        # told, after a render, the templates rendered for the first time or changed
        self.listeners: list[Callable[[set[str]], None]] = []
        self._started = asyncio.Event()

    @property
    def started(self) -> bool:
        return len(self.rendered) == len(self.templates)

    async def wait_started(self) -> None:
        if not self.started:
            await self._started.wait()

    def compile(self) -> None:
        """``RenderError`` for a template that does not compile or cannot be read."""
        from pillion.render.gotemplates import GoRenderer
        from pillion.render.templates import Renderer  # Jinja2: loaded only when used

        renderers: list[Renderer | GoRenderer] = []
        for template in self.templates:
            text = None
            if template.template_file is not None:
                try:
                    text = Path(template.template_file).read_text()
                except OSError as exc:
                    raise RenderError(
                        f"template {template.name}: cannot read {template.template_file}: "
                        f"{exc.strerror}"
                    ) from None
            if isinstance(template, SecretTemplateConfig) and template.syntax == "go":
                renderers.append(GoRenderer(template, text, self.environ))
            else:
                renderers.append(Renderer(template, text, self.variable))
        self.renderers = renderers

    def vault_requests(self) -> list[VaultRequest]:
        """What the compiled ``syntax: go`` templates read from Vault, each once."""
        from pillion.render.gotemplates import GoRenderer

        found: dict[str, VaultRequest] = {}
        for renderer in self.renderers:
            if isinstance(renderer, GoRenderer):
                found.update((request.name, request) for request in renderer.requests)
        return list(found.values())

    def render_all_or_nothing(self, values: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
        """Every template's content, or ``RenderError`` for the first that fails."""
        contents = {}
        for renderer in self.renderers:
            try:
                contents[renderer.config.name] = renderer.render(values)
            except RenderError:
                self.count(renderer.config.name, "error")
                raise
        return contents

    def render_all(self, values: Mapping[str, Mapping[str, Any]]) -> None:
        """Render and write each template; one that fails keeps its previous file."""
        targets: set[str] = set()
        written: set[str] = set()
        for renderer in self.renderers:
            template = renderer.config
            try:
                content = renderer.render(values)
                changed = self.write(template, content)
            except (RenderError, OSError) as exc:
                self.count(template.name, "error")
                if isinstance(exc, OSError):
                    self.unwritten[template.name] = str(exc)
                self.log.error("render failed; the previous file is kept",
                               extra={"template": template.name, "error": str(exc)})  # fmt: skip
                continue
            if self.unwritten.pop(template.name, None) is not None:
                self.log.info("written again", extra={"template": template.name})
            self.contents[template.name] = content
            first = template.name not in self.rendered
            self.rendered.add(template.name)
            if changed or first:
                written.add(template.name)
            if changed and not first:
                targets.update(template.notify)
        for target in sorted(targets):
            self.notify(target)
        if self.started:
            self._started.set()
        if written:
            for listener in self.listeners:
                listener(written)

    def write(self, template: TemplateConfig, content: bytes) -> bool:
        """Write the file if its content changed; ``OSError`` naming the destination."""
        try:
            if isinstance(template, SecretTemplateConfig) and template.create_directories:
                Path(template.destination).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            changed = write_atomically(template.destination, content, template.mode,
                                       template.owner, template.group)  # fmt: skip
        except OSError as exc:
            raise OSError(f"cannot write {template.destination}: {exc.strerror or exc}") from None
        self.count(template.name, "changed" if changed else "unchanged")
        if self.last_render is not None:
            self.last_render.labels(template.name).set(time.time())
        if changed:
            self.log.info("rendered", extra={"template": template.name,
                                             "destination": template.destination})  # fmt: skip
        return changed

    def count(self, template: str, result: str) -> None:
        self.renders.labels(template, result).inc()
