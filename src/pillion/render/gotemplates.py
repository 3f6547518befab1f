"""Rendering a ``syntax: go`` template (Vault Agent's language) from the answers to
its Vault requests. No I/O: the caller fetches each of ``requests`` and passes the
answers by their names.

The template reads only what it was given: ``secret`` and ``pkiCert`` get the
answer fetched for their (path, parameters), ``env`` the mapping given (Pillion's
environment, as Vault Agent's templates see the agent's). Errors name the
template and line, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pillion.config.secrets import SecretTemplateConfig, VaultRequest, go_template_requests
from pillion.gotemplate import GoTemplateError, parse
from pillion.render.errors import RenderError

__all__ = ["GoRenderer"]


class GoRenderer:
    """One ``syntax: go`` template, parsed and checked once."""

    def __init__(
        self, config: SecretTemplateConfig, text: str | None, environ: Mapping[str, str]
    ) -> None:
        """``text`` is the template (read by the caller from ``template_file``)."""
        self.config = config
        self.environ = environ
        source = config.template if config.template is not None else text
        assert source is not None, "a template's text is needed"
        try:
            self.requests = go_template_requests(config.name, source)
        except ValueError as exc:
            raise RenderError(str(exc)) from None
        self._template = parse(source)

    def render(self, values: Mapping[str, Mapping[str, Any]]) -> bytes:
        """``values``: by request name, Vault's answer to it."""
        name = self.config.name

        def answer(path: str, params: Mapping[str, str]) -> Mapping[str, Any]:
            request = VaultRequest(path, tuple(params.items()))
            found = values.get(request.name)
            if found is None:  # every literal call is fetched before a render
                raise RenderError(f"template {name}: {request.name} has not been read")
            return found

        try:
            return self._template.render_bytes(
                answer, self.environ, error_on_missing_key=self.config.error_on_missing_key
            )
        except GoTemplateError as exc:
            raise RenderError(f"template {name}: {exc}") from None
