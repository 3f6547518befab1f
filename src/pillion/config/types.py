"""What the config sections share: the ``Section`` base of every model, and value
types (listen addresses, ports, regexes, secrets).

``Secret`` is the rule that secrets never leak: it wraps the value so that
``repr``, ``str``, ``model_dump`` and JSON all show ``***``; only code that uses
the secret calls ``get_secret_value()``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
    WithJsonSchema,
)

from pillion.config.redaction import REDACTED, redact_headers, redact_url, revealed

__all__ = [
    "REDACTED",
    "HeaderMap",
    "HttpUrl",
    "Listen",
    "ListenAddress",
    "Port",
    "Regex",
    "Secret",
    "Section",
    "compile_regex",
    "is_loopback",
]


class Section(BaseModel):
    """Base of every section and sub-section: unknown keys are errors (a typo is
    refused, never silently ignored), values are immutable (a loaded config is
    shared by the components and compared on reload)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    def is_default(self, key: str) -> bool:
        """Whether ``key`` holds its default (given or not): a config dumped and read
        again names every key, so "given" alone says nothing about intent."""
        return bool(
            getattr(self, key)
            == type(self).model_fields[key].get_default(call_default_factory=True)
        )


class ListenAddress(NamedTuple):
    """A TCP address to bind: ``host:port``, ``[v6]:port``, or ``:port`` for every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, value: object) -> ListenAddress:
        if isinstance(value, ListenAddress):
            return value
        if not isinstance(value, str):
            raise ValueError("expected 'host:port', e.g. '127.0.0.1:15000'")
        text = value.strip()
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(
                f"invalid address {value!r}: expected 'host:port', e.g. '0.0.0.0:15020'"
            )
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} in {value!r} is out of range (0-65535)")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"invalid IPv6 address in {value!r}") from None
        elif ":" in host:
            raise ValueError(
                f"invalid address {value!r}: write IPv6 hosts in brackets, '[::1]:15000'"
            )
        return cls(host or "0.0.0.0", port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs; any other name counts as remote."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_listen(value: Any) -> ListenAddress:
    return ListenAddress.parse(value)


Listen = Annotated[
    ListenAddress,
    BeforeValidator(_parse_listen),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "host-port", "examples": ["127.0.0.1:15000", "0.0.0.0:15020"]}
    ),
]
"""A listen address: ``host:port`` in YAML, a ``ListenAddress`` in code."""


def compile_regex(value: str) -> re.Pattern[str]:
    """``value`` compiled, or a ``ValueError`` saying that it is an invalid regex and why."""
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None


# Onigmo's (Ruby's, Fluent Bit's) and PCRE's spellings of a named group and of a
# reference to one, which Python writes (?P<name>...) and (?P=name). Neither is valid
# Python syntax as it is, so reading them the Python way changes no valid regex.
_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<(?=[A-Za-z_])")
_NAMED_REFERENCE = re.compile(r"\\k<([A-Za-z_]\w*)>")


def python_regex(value: str) -> str:
    """``value`` with Onigmo's named groups ``(?<name>...)`` and references
    ``\\k<name>`` in Python's spelling, so a Fluent Bit parser's regex works as
    copied."""
    return _NAMED_REFERENCE.sub(r"(?P=\1)", _NAMED_GROUP.sub("(?P<", value))


def _compiles(value: str) -> str:
    translated = python_regex(value)
    compile_regex(translated)
    return translated


Regex = Annotated[str, AfterValidator(_compiles)]
"""A regular expression in Python's ``re`` syntax (Onigmo's and PCRE's ``(?<name>...)``
named groups are read as Python's ``(?P<name>...)``), compiled when the config loads:
a bad one is refused as ``invalid regex`` at its own field's path. In code it is the
Python text; whoever uses it compiles it."""

Port = Annotated[int, Field(ge=1, le=65535)]
"""A TCP port an existing server listens on (1-65535)."""


def _show_secret(value: SecretStr, info: SerializationInfo) -> str:
    return value.get_secret_value() if revealed(info.context) else REDACTED


def _show_url(value: str, info: SerializationInfo) -> str:
    return value if revealed(info.context) else redact_url(value)


def _show_headers(value: dict[str, str], info: SerializationInfo) -> dict[str, str]:
    return value if revealed(info.context) else redact_headers(value)


Secret = Annotated[
    SecretStr,
    PlainSerializer(_show_secret, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "writeOnly": True}),
]
"""A secret string: shown as ``***`` everywhere; ``.get_secret_value()`` to use it."""


HttpUrl = Annotated[
    str,
    Field(pattern=r"^https?://"),
    PlainSerializer(_show_url, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https?://"}),
]
"""An ``http://`` or ``https://`` URL; shown with its password and credential-like
query values as ``***`` (``redact_url``), used whole by the code."""

HeaderMap = Annotated[
    dict[str, str],
    PlainSerializer(_show_headers, return_type=dict[str, str], when_used="always"),
]
"""Header fields by name; the values of credential-like names (``Authorization``,
``X-Api-Key``, ...) are shown as ``***``."""
