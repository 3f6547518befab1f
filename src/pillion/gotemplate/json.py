"""``toJSON`` and ``toJSONPretty`` of ``pillion.gotemplate``: the bytes Go's
``encoding/json`` writes for the values of ``gotemplate_values``: map keys sorted,
``<``, ``>``, ``&`` escaped (unless unescaped), U+2028 and U+2029 escaped, a
:class:`JsonNumber` written as it is, ``MarshalIndent``'s two-space layout."""

from __future__ import annotations

import math
import re
from typing import Any

from pillion.gotemplate.fmt import format_float
from pillion.gotemplate.values import (
    MAX_DATA_DEPTH,
    MISSING,
    GoNil,
    GoStruct,
    JsonNumber,
    ValueTooDeep,
    sorted_keys,
)

__all__ = ["EncodeError", "to_json"]


class EncodeError(ValueError):
    pass


_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_ESCAPES.update({"\b": "\\b", "\f": "\\f", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def _json_string(text: str, escape_html: bool) -> str:
    out = ['"']
    for ch in text:
        if ch in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[ch])
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        elif escape_html and ch in _HTML_ESCAPES:
            out.append(_HTML_ESCAPES[ch])
        elif "\ud800" <= ch <= "\udfff":
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_float(value: float) -> str:
    if not math.isfinite(value):
        raise EncodeError(f"json: unsupported value: {format_float(value, 'g', -1)}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = format_float(value, "e", -1)
        return re.sub(r"e-0(\d)\Z", r"e-\1", text)
    return format_float(value, "f", -1)


def _json_items(value: Any) -> list[tuple[str, Any]] | list[Any] | None:
    """A map's or struct's (key, value) pairs, a list's items, or None for a scalar."""
    if isinstance(value, dict):
        return [(k, value[k]) for k in sorted_keys(value)]
    if isinstance(value, GoStruct):
        return list(value.fields.items())
    if isinstance(value, list):
        return list(value)
    return None


def _json_scalar(value: Any, escape_html: bool) -> str:
    if value is None or value is MISSING or isinstance(value, GoNil):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, JsonNumber):
        text = str.__str__(value) or "0"
        if not _JSON_NUMBER.match(text):
            raise EncodeError(f"json: invalid number literal {_json_string(text, False)}")
        return text
    if isinstance(value, str):
        return _json_string(value, escape_html)
    raise EncodeError(f"json: unsupported type: {type(value).__name__}")


def to_json(value: Any, *, indent: bool = False, escape_html: bool = True) -> str:
    """``json.Marshal`` (``json.MarshalIndent(value, "", "  ")`` with ``indent``)."""
    out: list[str] = []

    def encode(item: Any, depth: int) -> None:
        if depth > MAX_DATA_DEPTH:
            raise ValueTooDeep(f"data nested more than {MAX_DATA_DEPTH} levels deep")
        members = _json_items(item)
        if members is None:
            out.append(_json_scalar(item, escape_html))
            return
        is_object = not isinstance(item, list)
        out.append("{" if is_object else "[")
        newline = "\n" + "  " * (depth + 1) if indent else ""
        for i, member in enumerate(members):
            if i:
                out.append(",")
            out.append(newline)
            if is_object:
                key, member = member
                out.append(_json_string(key, escape_html) + (": " if indent else ":"))
            encode(member, depth + 1)
        if members and indent:
            out.append("\n" + "  " * depth)
        out.append("}" if is_object else "]")

    encode(value, 0)
    return "".join(out)
