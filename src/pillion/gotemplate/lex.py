"""The lexer of ``pillion.gotemplate``: Go's ``text/template/parse`` lexer,
state for state. Whitespace trimming (``{{-``, ``-}}``), comments, line counting and
its errors are Go's; a lexical error is the last token, reported when the parser
reaches it, as Go does.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "KEYWORDS",
    "GoTemplateError",
    "TemplateSyntax",
    "Token",
    "escape_value",
    "go_quote",
    "lex",
    "parse_float",
    "parse_int",
    "quote_rune",
    "unicode_name",
    "unquote",
]

_SPACE = " \t\r\n"


class GoTemplateError(Exception):
    """The one exception tree of this package: the message names the line and the
    cause, never a value."""


class TemplateSyntax(GoTemplateError):
    """A template that does not parse, or uses something outside the supported
    subset; ``line`` is where, ``construct`` (when there is one) names what."""

    def __init__(self, line: int, reason: str, construct: str | None = None) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason
        self.construct = construct


# ---------------------------------------------------------------- tokens

TEXT, LEFT, RIGHT, SPACE, FIELD, IDENT, VAR, DOT = (
    "text",
    "{{",
    "}}",
    "space",
    "field",
    "identifier",
    "variable",
    ".",
)
STRING, RAW, NUMBER, CHARCONST, COMPLEX, BOOL, NIL = (
    "string",
    "raw string",
    "number",
    "character constant",
    "complex",
    "bool",
    "nil",
)
ASSIGN, DECLARE, PIPE, LPAREN, RPAREN, CHAR, EOF, ERROR = (
    "=",
    ":=",
    "|",
    "(",
    ")",
    "char",
    "EOF",
    "error",
)
KEYWORDS = frozenset(
    ("block", "break", "continue", "define", "else", "end", "if", "range", "template", "with")
)


@dataclasses.dataclass(slots=True)
class Token:
    typ: str
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == EOF:
            return "EOF"
        if self.typ == ERROR:
            return self.val
        if self.typ in KEYWORDS:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def go_quote(text: str, ascii_only: bool = False) -> str:
    """Go's ``strconv.Quote`` (``QuoteToASCII`` with ``ascii_only``)."""
    out = ['"']
    for ch in text:
        out.append(_quote_char(ch, '"', ascii_only))
    out.append('"')
    return "".join(out)


def quote_rune(ch: str, ascii_only: bool = False) -> str:
    """Go's ``strconv.QuoteRune``."""
    return "'" + _quote_char(ch, "'", ascii_only) + "'"


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES["\v"] = "\\v"


def _quote_char(ch: str, quote: str, ascii_only: bool) -> str:
    if ch == quote or ch == "\\":
        return "\\" + ch
    code = ord(ch)
    if ascii_only:
        if code < 0x80 and ch.isprintable():
            return ch
    elif ch.isprintable():
        return ch
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return "\\ufffd"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def unicode_name(ch: str) -> str:
    """Go's ``%#U``: ``U+002D '-'``."""
    code = ord(ch)
    if ch.isprintable():
        return f"U+{code:04X} '{ch}'"
    return f"U+{code:04X}"


def _alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdecimal()


def lex(text: str) -> list[Token]:
    """The tokens of ``text``; a lexical error is an ``ERROR`` token, the last one."""
    tokens: list[Token] = []
    n = len(text)
    pos = 0
    line = 1

    def at_right_delim(p: int) -> tuple[bool, bool]:
        if p + 1 < n and text[p] in _SPACE and text[p + 1] == "-" and text.startswith("}}", p + 2):
            return True, True
        return text.startswith("}}", p), False

    def at_terminator(p: int) -> bool:
        if p >= n:
            return True
        ch = text[p]
        return ch in _SPACE or ch in ".,|:)(" or text.startswith("}}", p)

    def scan_number(p: int) -> tuple[int, bool]:
        if p < n and text[p] in "+-":
            p += 1
        digits = "0123456789_"
        if p < n and text[p] == "0":
            p += 1
            if p < n and text[p] in "xX":
                p, digits = p + 1, "0123456789abcdefABCDEF_"
            elif p < n and text[p] in "oO":
                p, digits = p + 1, "01234567_"
            elif p < n and text[p] in "bB":
                p, digits = p + 1, "01_"
        while p < n and text[p] in digits:
            p += 1
        if p < n and text[p] == ".":
            p += 1
            while p < n and text[p] in digits:
                p += 1
        if len(digits) == 11 and p < n and text[p] in "eE":
            p += 1
            if p < n and text[p] in "+-":
                p += 1
            while p < n and text[p] in "0123456789_":
                p += 1
        if len(digits) == 23 and p < n and text[p] in "pP":
            p += 1
            if p < n and text[p] in "+-":
                p += 1
            while p < n and text[p] in "0123456789_":
                p += 1
        if p < n and text[p] == "i":
            p += 1
        if p < n and _alnum(text[p]):
            return p + 1, False
        return p, True

    def error(message: str, at_line: int) -> list[Token]:
        tokens.append(Token(ERROR, message, at_line))
        return tokens

    while True:
        # text, up to the next action
        x = text.find("{{", pos)
        if x < 0:
            if pos < n:
                tokens.append(Token(TEXT, text[pos:], line))
                line += text.count("\n", pos)
            tokens.append(Token(EOF, "", line))
            return tokens
        trim = text[x + 2 : x + 3] == "-" and x + 3 < n and text[x + 3] in _SPACE
        end = len(text[pos:x].rstrip(_SPACE)) + pos if trim else x
        if end > pos:
            tokens.append(Token(TEXT, text[pos:end], line))
        line += text.count("\n", pos, x)
        pos = x + 2
        after = pos + (2 if trim else 0)
        if text.startswith("/*", after):
            start_line = line
            close = text.find("*/", after + 2)
            if close < 0:
                return error("unclosed comment", start_line)
            p = close + 2
            delim, trim_right = at_right_delim(p)
            if not delim:
                return error("comment ends before closing delimiter", start_line)
            p += 4 if trim_right else 2
            if trim_right:
                p = n - len(text[p:].lstrip(_SPACE))
            line += text.count("\n", pos, p)
            pos = p
            continue
        tokens.append(Token(LEFT, "{{", line))
        pos = after
        paren = 0
        while True:  # inside the action
            delim, trim_right = at_right_delim(pos)
            if delim:
                if paren:
                    return error("unclosed left paren", line)
                if trim_right:
                    pos += 2
                tokens.append(Token(RIGHT, "}}", line))
                pos += 2
                if trim_right:
                    p = n - len(text[pos:].lstrip(_SPACE))
                    line += text.count("\n", pos, p)
                    pos = p
                break
            if pos >= n:
                return error("unclosed action", line)
            start = pos
            ch = text[pos]
            pos += 1
            typ = ""
            if ch in _SPACE:
                while pos < n and text[pos] in _SPACE:
                    pos += 1
                if text.startswith("-}}", pos):
                    pos -= 1  # the space before a trim marker belongs to the delimiter
                    if pos == start:
                        continue
                typ = SPACE
            elif ch == "=":
                typ = ASSIGN
            elif ch == ":":
                if pos >= n or text[pos] != "=":
                    return error("expected :=", line)
                pos += 1
                typ = DECLARE
            elif ch == "|":
                typ = PIPE
            elif ch in "\"'":
                while True:
                    c = text[pos] if pos < n else ""
                    pos += 1
                    if c == "\\":
                        c = text[pos] if pos < n else ""
                        pos += 1
                        if c not in ("", "\n"):
                            continue
                    if c in ("", "\n"):
                        what = "quoted string" if ch == '"' else "character constant"
                        return error(f"unterminated {what}", line)
                    if c == ch:
                        break
                typ = STRING if ch == '"' else CHARCONST
            elif ch == "`":
                close = text.find("`", pos)
                if close < 0:
                    return error("unterminated raw quoted string", line)
                pos = close + 1
                typ = RAW
            elif ch == "$" or (ch == "." and not (pos < n and "0" <= text[pos] <= "9")):
                if at_terminator(pos):
                    typ = VAR if ch == "$" else DOT
                else:
                    while pos < n and _alnum(text[pos]):
                        pos += 1
                    if not at_terminator(pos):
                        return error(f"bad character {unicode_name(text[pos])}", line)
                    typ = VAR if ch == "$" else FIELD
            elif ch in "+-." or "0" <= ch <= "9":
                pos, ok = scan_number(start)
                if ok and pos < n and text[pos] in "+-":
                    pos, ok = scan_number(pos)
                    ok = ok and text[pos - 1] == "i"
                    typ = COMPLEX
                if not ok:
                    return error(f"bad number syntax: {go_quote(text[start:pos])}", line)
                typ = typ or NUMBER
            elif _alnum(ch):
                while pos < n and _alnum(text[pos]):
                    pos += 1
                if not at_terminator(pos):
                    return error(f"bad character {unicode_name(text[pos])}", line)
                word = text[start:pos]
                if word in KEYWORDS:
                    typ = word
                elif word in ("true", "false"):
                    typ = BOOL
                elif word == "nil":
                    typ = NIL
                else:
                    typ = IDENT
            elif ch == "(":
                paren += 1
                typ = LPAREN
            elif ch == ")":
                paren -= 1
                if paren < 0:
                    return error("unexpected right paren", line)
                typ = RPAREN
            elif ord(ch) < 0x80 and ch.isprintable():
                typ = CHAR
            else:
                return error(f"unrecognized character in action: {unicode_name(ch)}", line)
            tokens.append(Token(typ, text[start:pos], line))
            line += text.count("\n", start, pos)


# ---------------------------------------------------------------- literals


def unquote(token: Token) -> str:
    """Go's ``strconv.Unquote`` of a string token."""
    text = token.val
    if token.typ == RAW:
        return text[1:-1].replace("\r", "")
    out = bytearray()
    body = text[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        value, i, raw = escape_value(body, i + 1, '"', token.line)
        out += bytes([value]) if raw else chr(value).encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "replace")


def escape_value(body: str, i: int, quote: str, line: int) -> tuple[int, int, bool]:
    """One escape after a backslash at ``body[i]``: (value, next index, value is a byte)."""
    simple = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}
    ch = body[i] if i < len(body) else ""
    if ch in simple:
        return simple[ch], i + 1, False
    if ch == quote:
        return ord(quote), i + 1, False
    size = {"x": 2, "u": 4, "U": 8}.get(ch)
    if size is not None:
        digits = body[i + 1 : i + 1 + size]
        if len(digits) != size or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise TemplateSyntax(line, "invalid syntax in a quoted string")
        value = int(digits, 16)
        if ch != "x" and (value > 0x10FFFF or 0xD800 <= value <= 0xDFFF):
            raise TemplateSyntax(line, "invalid syntax in a quoted string")
        return value, i + 1 + size, ch == "x"
    if ch in "01234567" and ch:
        digits = body[i : i + 3]
        if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
            raise TemplateSyntax(line, "invalid syntax in a quoted string")
        return int(digits, 8), i + 3, True
    raise TemplateSyntax(line, "invalid syntax in a quoted string")


def parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 0, 64)`` (and ParseUint), unbounded."""
    sign, body = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
        body = "0o" + body[1:]
    try:
        value = int(sign + body, 0)
    except ValueError:
        return None
    if value >= 2**64 or value < -(2**63):
        return None
    return value


def parse_float(text: str) -> float | None:
    body = text.lstrip("+-")
    try:
        value = float.fromhex(text.replace("_", "")) if body[:2] in ("0x", "0X") else float(text)
    except (ValueError, OverflowError):
        return None
    if "_" in text and ("__" in text or text.endswith("_")):
        return None
    return value
