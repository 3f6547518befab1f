"""``pillion.yaml`` text (``pillion.config.loader.parse_config``): YAML in, a
validated config or a ``ConfigError`` out.

Property: nothing but ``ConfigError`` escapes; its issues each name a field path
and, where given, a line of the text; a value read from the environment never
shows in its message; an accepted config survives what the proxy's worker
processes do to it (dumped as JSON, validated again: the same config).
"""

from __future__ import annotations

import json

from fuzz.target import Target
from pillion.config.errors import ConfigError
from pillion.config.loader import parse_config
from pillion.config.models import PillionConfig
from pillion.config.redaction import REVEAL

__all__ = ["ENVIRON", "TARGET", "check"]

FROM_ENVIRONMENT = "s3cr3t-from-env"
ENVIRON = {"APP_PORT": "8080", "EMPTY": "", "TOKEN": FROM_ENVIRONMENT, "HOST": "127.0.0.1"}


def check(data: bytes) -> None:
    try:
        text = data.decode("utf-8")  # load_config reads the file as UTF-8 (else a ConfigError)
    except UnicodeDecodeError:
        return
    try:
        config = parse_config(text, "fuzz.yaml", ENVIRON)
    except ConfigError as exc:
        _refused(text, exc)
        return
    dumped = config.model_dump(mode="json", context=REVEAL)  # as a worker gets it
    again = PillionConfig.model_validate(json.loads(json.dumps(dumped)))
    assert again.model_dump(mode="json", context=REVEAL) == dumped, "changed through JSON"
    json.dumps(config.model_dump(mode="json"))  # as GET /config shows it


def _refused(text: str, error: ConfigError) -> None:
    assert error.issues, "a ConfigError without an issue"
    lines = len(text.splitlines()) + 2  # YAML counts Unicode line breaks too
    for issue in error.issues:
        assert issue.path, issue
        assert issue.message, issue
        assert issue.line is None or 1 <= issue.line <= lines, issue
    if FROM_ENVIRONMENT not in text:
        assert FROM_ENVIRONMENT not in str(error), (
            "a value from the environment in an error message"
        )


TARGET = Target(
    name="config",
    summary="pillion.yaml text into a validated config (pillion.config.loader)",
    check=check,
    tokens=(
        b"\n",
        b"\n  ",
        b": ",
        b"- ",
        b"{",
        b"}",
        b"[",
        b"]",
        b"&a ",
        b"*a",
        b"<<: ",
        b"!!int ",
        b"!!timestamp ",
        b"!!binary ",
        b"!!python/name:os.system",
        b"${TOKEN}",
        b"${NOPE}",
        b"${EMPTY:-x}",
        b"$${",
        b"~",
        b"null",
        b"1e400",
        b".nan",
        b"0x1f",
        b"0o17",
        b"2001-12-14t21:59:43.10+25:00",
        b"250ms",
        b"64MiB",
        b"app:\n",
        b"proxy:\n",
        b"logs:\n",
        b"exporters:\n",
        b"secrets:\n",
        b"\t",
        b"\x00",
        b"\xef\xbb\xbf",
    ),
    max_len=8192,
)
