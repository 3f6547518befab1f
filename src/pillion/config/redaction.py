"""What a config value may show of itself: credentials in URLs and headers hidden.

A URL can carry a password (``https://user:pass@host``) or a token in its query
(``?access_token=...``); a header set by a route can carry ``Authorization``.
The config keeps the real value for the code that uses it; ``/config``, error
messages and logs show ``redact_url`` / ``redact_headers`` of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "REDACTED",
    "REVEAL",
    "redact_headers",
    "redact_in",
    "redact_url",
    "revealed",
    "sensitive_name",
]

REDACTED = "***"

REVEAL = {"reveal": True}
"""``model_dump(context=REVEAL)``: the real values, for a config handed to a worker
process of Pillion's own (never for anything shown)."""


def revealed(context: object) -> bool:
    return isinstance(context, dict) and context.get("reveal") is True


# Names of query parameters and headers that carry credentials: any name with one
# of these words in it (``access_token``, ``X-Api-Key``, ``X-Amz-Signature``, ...).
_SENSITIVE = re.compile(
    r"auth|token|secret|passw|pwd|key|sig|credential|session|cookie|code|ticket|jwt|bearer",
    re.IGNORECASE,
)
_QUERY_PAIR = re.compile(r"([^&;=]*)(=?)([^&;]*)")


def sensitive_name(name: str) -> bool:
    """Whether a query parameter or header of this name may carry a credential."""
    return _SENSITIVE.search(name) is not None


def redact_url(url: str) -> str:
    """``url`` with its password and credential-like query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port raises here
    except ValueError:
        return REDACTED  # not a URL that can be shown in part
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
    query = _QUERY_PAIR.sub(_redact_pair, parts.query) if parts.query else ""
    fragment = REDACTED if parts.fragment and "=" in parts.fragment else parts.fragment
    return SplitResult(parts.scheme, netloc, parts.path, query, fragment).geturl()


def _redact_pair(match: re.Match[str]) -> str:
    name, equals, value = match.groups()
    if equals and value and sensitive_name(name):
        return f"{name}={REDACTED}"
    return match.group(0)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the values of credential-like names replaced by ``***``."""
    return {name: REDACTED if sensitive_name(name) else value for name, value in headers.items()}


def redact_in(text: str, url: str) -> str:
    """``text`` (an error message, say) with ``url`` and its credentials in it redacted."""
    text = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    for credential in (parts.password, parts.username if parts.password is None else None):
        if credential:
            text = text.replace(credential, REDACTED)
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if value and sensitive_name(name):
            text = text.replace(value, REDACTED)
    return text


def credentials_twice(url: str, headers: Mapping[str, object]) -> str | None:
    """Why ``url`` and ``headers`` cannot go together: both carry an ``Authorization``
    (the URL's user info becomes Basic auth), or None when they can."""
    if "@" in urlsplit(url).netloc and any(n.lower() == "authorization" for n in headers):
        return (
            "the url carries credentials (user@ or user:password@) and `headers` has "
            "Authorization: keep one of the two"
        )
    return None
