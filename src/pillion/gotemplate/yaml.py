"""``toYAML`` of ``pillion.gotemplate``: what ``gopkg.in/yaml.v2`` (the
library consul-template uses) writes for the values of ``gotemplate_values``:
block style, its quoting rules (a string that would read back as another type is
double-quoted, a multi-line one is a literal block), its 80-column folding and
its order of keys."""

from __future__ import annotations

import functools
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
)

__all__ = ["to_yaml"]


_YAML_WIDTH = 80
_BOOL_NULL = frozenset(
    """y Y yes Yes YES true True TRUE on On ON n N no No NO false False FALSE off Off OFF
    ~ null Null NULL .nan .NaN .NAN .inf .Inf .INF +.inf +.Inf +.INF -.inf -.Inf -.INF
    <<""".split()  # noqa: SIM905
)
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?\Z")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:[Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?\Z"
)
_BREAKS = "\r\n\x85\u2028\u2029"


def _go_int(text: str) -> bool:
    """Whether ``strconv.ParseInt(text, 0, 64)`` or ``ParseUint`` accepts it."""
    sign, body = (text[0], text[1:]) if text[:1] in "+-" and text else ("", text)
    if not body or "_" in body:
        return False
    if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
        body = "0o" + body[1:]
    try:
        value = int(sign + body, 0)
    except ValueError:
        return False
    return -(2**63) <= value < 2**64


def _resolves_to_string(text: str) -> bool:
    """yaml.v2's ``resolve``: whether ``text`` unquoted reads back as a string."""
    if text == "" or text in _BOOL_NULL:
        return False
    hint = text[0]
    if hint == ".":
        return not re.fullmatch(r"\.[0-9]+([eE][-+]?[0-9]+)?", text)
    if hint in "+-0123456789":
        if _TIMESTAMP.match(text):
            return False
        plain = text.replace("_", "")
        if _go_int(plain) or _YAML_FLOAT.match(plain):
            return False
    return True


def _printable(ch: str) -> bool:
    """libyaml's printable (yaml.v2 writes other characters escaped)."""
    code = ord(ch)
    return (
        code == 0x0A
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


class _Analysis:
    def __init__(self, text: str) -> None:
        if not text:
            self.block_plain = self.single = True
            self.block = False
            return
        block_ind = line_breaks = special = False
        leading_space = leading_break = trailing_space = trailing_break = False
        break_space = space_break = previous_space = previous_break = False
        if text[:3] in ("---", "..."):
            block_ind = True
        preceded_by_ws = True
        n = len(text)
        for i, ch in enumerate(text):
            followed_by_ws = i + 1 >= n or text[i + 1] in " \t" + _BREAKS
            if i == 0:
                if ch in "#,[]{}&*!|>'\"%@`":
                    block_ind = True
                elif ch in "?:":
                    block_ind = block_ind or followed_by_ws
                elif ch == "-" and followed_by_ws:
                    block_ind = True
            elif ch == ":":
                block_ind = block_ind or followed_by_ws
            elif ch == "#" and preceded_by_ws:
                block_ind = True
            if not _printable(ch):
                special = True
            if ch == " ":
                leading_space = leading_space or i == 0
                trailing_space = trailing_space or i == n - 1
                break_space = break_space or previous_break
                previous_space, previous_break = True, False
            elif ch in _BREAKS:
                line_breaks = True
                leading_break = leading_break or i == 0
                trailing_break = trailing_break or i == n - 1
                space_break = space_break or previous_space
                previous_space, previous_break = False, True
            else:
                previous_space = previous_break = False
            preceded_by_ws = ch in " \t\0" + _BREAKS
        self.block_plain = self.single = self.block = True
        if leading_space or leading_break or trailing_space or trailing_break:
            self.block_plain = False
        if trailing_space:
            self.block = False
        if break_space:
            self.block_plain = self.single = False
        if space_break or special:
            self.block_plain = self.single = self.block = False
        if line_breaks or block_ind:
            self.block_plain = False


class _YamlEmitter:
    """The part of libyaml's emitter (as yaml.v2 ports it) that block-style
    documents of maps, lists and scalars go through."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.column = 0
        self.whitespace = True
        self.indention = True
        self.indent = -1
        self.indents: list[int] = []

    def put(self, text: str) -> None:
        self.out.append(text)
        self.column += len(text)

    def put_break(self) -> None:
        self.out.append("\n")
        self.column = 0

    def write_indent(self) -> None:
        indent = max(self.indent, 0)
        if (
            not self.indention
            or self.column > indent
            or (self.column == indent and not self.whitespace)
        ):
            self.put_break()
        if self.column < indent:
            self.put(" " * (indent - self.column))
        self.whitespace = self.indention = True

    def indicator(self, text: str, need_ws: bool, is_ws: bool, is_indention: bool) -> None:
        if need_ws and not self.whitespace:
            self.put(" ")
        self.put(text)
        self.whitespace = is_ws
        self.indention = self.indention and is_indention

    def increase_indent(self, flow: bool, indentless: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = 2 if flow else 0
        elif not indentless:
            self.indent += 2

    # nodes
    def node(self, value: Any, mapping_context: bool, simple_key: bool, depth: int) -> None:
        if depth > MAX_DATA_DEPTH:
            raise ValueTooDeep(f"data nested more than {MAX_DATA_DEPTH} levels deep")
        if isinstance(value, dict | GoStruct):
            if isinstance(value, dict):
                pairs = [(k, value[k]) for k in sorted(value, key=_yaml_key_order)]
            else:
                pairs = [(k.lower(), v) for k, v in value.fields.items()]
            if not pairs:
                self.indicator("{", True, True, False)
                self.indicator("}", False, False, False)
                return
            self.increase_indent(False, False)
            for key, item in pairs:
                self.write_indent()
                self.scalar(key, _key_style(key), simple_key=True)
                self.indicator(":", False, False, False)
                self.node(item, True, False, depth + 1)
            self.indent = self.indents.pop()
        elif isinstance(value, list):
            if not value:
                self.indicator("[", True, True, False)
                self.indicator("]", False, False, False)
                return
            self.increase_indent(False, mapping_context and not self.indention)
            for item in value:
                self.write_indent()
                self.indicator("-", True, False, True)
                self.node(item, False, False, depth + 1)
            self.indent = self.indents.pop()
        else:
            text, style = _scalar_text(value)
            self.scalar(text, style, simple_key)

    def scalar(self, text: str, style: str, simple_key: bool) -> None:
        analysis = _Analysis(text)
        if style == "plain" and (not analysis.block_plain or (not text and simple_key)):
            style = "single"
        if style == "single" and not analysis.single:
            style = "double"
        if style == "literal" and (not analysis.block or simple_key):
            style = "double"
        self.increase_indent(True, False)
        allow_breaks = not simple_key
        if style == "plain":
            self.plain(text, allow_breaks)
        elif style == "single":
            self.single(text, allow_breaks)
        elif style == "double":
            self.double(text, allow_breaks)
        else:
            self.literal(text)
        self.indent = self.indents.pop()

    def plain(self, text: str, allow_breaks: bool) -> None:
        if text and not self.whitespace:
            self.put(" ")
        spaces = False
        for i, ch in enumerate(text):
            if ch == " ":
                nxt = text[i + 1] if i + 1 < len(text) else ""
                if allow_breaks and not spaces and self.column > _YAML_WIDTH and nxt != " ":
                    self.write_indent()
                else:
                    self.put(ch)
                spaces = True
            else:
                self.put(ch)
                self.indention = spaces = False
        if text:
            self.whitespace = False
        self.indention = False

    def single(self, text: str, allow_breaks: bool) -> None:
        self.indicator("'", True, False, False)
        spaces = False
        last = len(text) - 1
        for i, ch in enumerate(text):
            if ch == " ":
                nxt = text[i + 1] if i < last else ""
                if (
                    allow_breaks
                    and not spaces
                    and self.column > _YAML_WIDTH
                    and 0 < i < last
                    and nxt != " "
                ):
                    self.write_indent()
                else:
                    self.put(ch)
                spaces = True
            else:
                self.put("''" if ch == "'" else ch)
                self.indention = spaces = False
        self.indicator("'", False, False, False)
        self.whitespace = self.indention = False

    def double(self, text: str, allow_breaks: bool) -> None:
        self.indicator('"', True, False, False)
        spaces = False
        last = len(text) - 1
        for i, ch in enumerate(text):
            if not _printable(ch) or ch in '"\\' or ch in _BREAKS or ch == "\ufeff":
                self.put("\\" + _yaml_escape(ch))
                spaces = False
            elif ch == " ":
                if allow_breaks and not spaces and self.column > _YAML_WIDTH and 0 < i < last:
                    self.write_indent()
                    if text[i + 1] == " ":
                        self.put("\\")
                else:
                    self.put(ch)
                spaces = True
            else:
                self.put(ch)
                spaces = False
        self.indicator('"', False, False, False)
        self.whitespace = self.indention = False

    def literal(self, text: str) -> None:
        self.indicator("|", True, False, False)
        if text[:1] in (" ", *_BREAKS):
            self.indicator("2", False, False, False)
        if not text or text[-1] not in _BREAKS:
            self.indicator("-", False, False, False)
        elif len(text) == 1 or text[-2] in _BREAKS:
            self.indicator("+", False, False, False)
        self.put_break()
        self.indention = self.whitespace = True
        breaks = True
        for ch in text:
            if ch in _BREAKS:
                self.put_break()
                self.indention = breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put(ch)
                self.indention = breaks = False


_YAML_ESCAPES = {"\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f"}
_YAML_ESCAPES.update({"\r": "r", "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_"})
_YAML_ESCAPES.update({"\u2028": "L", "\u2029": "P"})


def _yaml_escape(ch: str) -> str:
    if ch in _YAML_ESCAPES:
        return _YAML_ESCAPES[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"x{code:02X}"
    if code <= 0xFFFF:
        return f"u{code:04X}"
    return f"U{code:08X}"


def _key_style(key: str) -> str:
    return "double" if "\n" in key else "plain" if _plain_ok(key) else "double"


def _plain_ok(text: str) -> bool:
    return _resolves_to_string(text) and not _BASE60.match(text)


def _scalar_text(value: Any) -> tuple[str, str]:
    """A scalar's text and the style yaml.v2 asks for."""
    if value is None or value is MISSING or isinstance(value, GoNil):
        return "null", "plain"
    if isinstance(value, bool):
        return ("true" if value else "false"), "plain"
    if isinstance(value, int):
        return str(value), "plain"
    if isinstance(value, float):
        return _yaml_float(value), "plain"
    if isinstance(value, JsonNumber):
        text = str.__str__(value)
        if _go_int(text) and "_" not in text and text.lstrip("+-")[:2].lower() not in ("0x",):
            return str(int(text, 10)) if text.lstrip("+-").isdigit() else text, "plain"
        try:
            return _yaml_float(float(text)), "plain"
        except ValueError:
            value = text
    text = str(value)
    if "\n" in text:
        return text, "literal"
    return text, ("plain" if _plain_ok(text) else "double")


def _yaml_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return format_float(value, "g", -1)


def _yaml_key_less(a: str, b: str) -> bool:
    """yaml.v2's ``keyList.Less`` for two string keys: letters before other
    characters, runs of digits by their numeric value."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        al, bl = a[i].isalpha(), b[i].isalpha()
        if al and bl:
            return a[i] < b[i]
        if al or bl:
            return bl
        an = bn = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and a[j].isdecimal():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdecimal():
            an = an * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdecimal():
            bn = bn * 10 + int(b[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return a[i] < b[i]
    return len(a) < len(b)


def _yaml_cmp(a: str, b: str) -> int:
    return -1 if _yaml_key_less(a, b) else (1 if _yaml_key_less(b, a) else 0)


_yaml_key_order = functools.cmp_to_key(_yaml_cmp)


def to_yaml(value: Any) -> str:
    """``yaml.Marshal`` (yaml.v2), without the trailing newline (consul-template's
    ``toYAML`` trims the result)."""
    emitter = _YamlEmitter()
    emitter.node(value, False, False, 0)
    return "".join(emitter.out).strip(" \t\r\n")
