"""Rendering a template's file content from the sources' values. No I/O.

Templates run in Jinja2's ``SandboxedEnvironment`` with ``StrictUndefined``: a
template cannot reach Python internals, and a name or key that does not exist
is an error (naming the template and line), never an empty string. The
sources are ``secrets.<name>.<key>`` (``config.<name>.<key>`` for the config
section's templates); filters ``json``, ``yaml``, ``dotenv``,
``b64encode`` and ``b64decode`` format values.

Without a template, ``format`` renders one source's keys as dotenv, JSON or
YAML, or one key's value as it is (``raw``). A value is always written as
itself, never as Python's ``repr`` of a dict.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from pillion.config.secrets import TemplateConfig
from pillion.render.errors import RenderError

__all__ = ["RenderError", "Renderer", "dotenv"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _yaml(value: Any) -> str:
    return str(yaml.safe_dump(value, sort_keys=True, allow_unicode=True, default_flow_style=False))


def _quote(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = ""
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    return '"' + escaped.replace("\n", "\\n") + '"'


def dotenv(values: Mapping[str, Any]) -> str:
    """``KEY="value"`` lines (double-quoted, escaped, so a shell or a dotenv
    library reads the exact value back). Keys must be variable names."""
    lines = []
    for key in sorted(values):
        if not _ENV_NAME.match(key):
            raise ValueError(f"key {key!r} is not a valid environment variable name")
        lines.append(f"{key}={_quote(values[key])}\n")
    return "".join(lines)


def _b64encode(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return base64.b64encode(data).decode()


def _b64decode(value: str) -> str:
    return base64.b64decode(value).decode()


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    env.filters.update(
        json=_json, yaml=_yaml, dotenv=dotenv, b64encode=_b64encode, b64decode=_b64decode
    )
    return env


class Renderer:
    """One template, compiled once."""

    def __init__(
        self, config: TemplateConfig, text: str | None = None, variable: str = "secrets"
    ) -> None:
        """``text`` is the template (read by the caller from ``template_file``);
        templates see the sources as ``<variable>.<source>.<key>``."""
        self.config = config
        self.variable = variable
        self._template: jinja2.Template | None = None
        source = config.template if config.template is not None else text
        if config.format is None:
            assert source is not None, "a template's text is needed"
            try:
                self._template = _environment().from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(
                    f"template {config.name}: syntax error at line {exc.lineno}: {exc.message}"
                ) from None

    def render(self, sources: Mapping[str, Mapping[str, Any]]) -> bytes:
        config = self.config
        try:
            if self._template is not None:
                return self._template.render({self.variable: sources}).encode()
            assert config.source is not None
            values = sources[config.source]
            if config.format == "dotenv":
                return dotenv(values).encode()
            if config.format == "json":
                return (_json(dict(values)) + "\n").encode()
            if config.format == "yaml":
                return _yaml(dict(values)).encode()
            assert config.key is not None
            if config.key not in values:
                raise RenderError(
                    f"template {config.name}: source {config.source} has no key {config.key!r}"
                )
            value = values[config.key]
            return value.encode() if isinstance(value, str) else _json(value).encode()
        except RenderError:
            raise
        except jinja2.UndefinedError as exc:
            raise RenderError(f"template {config.name}{_line(exc)}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise RenderError(
                f"template {config.name}{_line(exc)}: {type(exc).__name__}: {exc.message}"
            ) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise RenderError(f"template {config.name}{_line(exc)}: {exc}") from None


def _line(exc: BaseException) -> str:
    """`` line N`` of the template where ``exc`` was raised, when known."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" line {line}" if line is not None else ""
