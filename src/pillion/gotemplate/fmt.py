"""Go's ``fmt`` for ``pillion.gotemplate``: how ``{{ value }}``, ``print``,
``println`` and ``printf`` write the values of ``gotemplate_values``, Go's verbs,
flags, widths and precisions, and its in-band errors (``%!d(string=x)``)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pillion.gotemplate.lex import go_quote, quote_rune
from pillion.gotemplate.values import MISSING, GoNil, GoStruct, go_type, sorted_keys

__all__ = ["format_float", "go_sprint", "go_sprintf", "go_sprintln", "print_value"]


class _Flags:
    __slots__ = ("minus", "plus", "plus_v", "prec", "sharp", "sharp_v", "space", "wid", "zero")

    def __init__(self) -> None:
        self.wid: int | None = None
        self.prec: int | None = None
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False


_FAKE_ADDRESS = "0xc000010000"


class _Printer:
    """Go's ``fmt.pp`` for the value model."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.f = _Flags()

    # padding
    def pad(self, text: str, zero_ok: bool = False) -> None:
        f = self.f
        if not f.wid:
            self.buf.append(text)
            return
        fill = "0" if f.zero and zero_ok else " "
        padding = fill * max(0, f.wid - len(text))
        self.buf.append(text + padding.replace("0", " ") if f.minus else padding + text)

    # top level
    def print_arg(self, arg: Any, verb: str) -> None:
        if arg is None or arg is MISSING:
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(verb, None)
            return
        if verb == "T":
            self.fmt_s(go_type(arg))
            return
        if verb == "p":
            if isinstance(arg, GoStruct | GoNil) and (isinstance(arg, GoNil) or arg.pointer):
                self.pad("0x0" if isinstance(arg, GoNil) else _FAKE_ADDRESS)
            else:
                self.bad_verb(verb, arg)
            return
        self.print_value(arg, verb, 0)

    def bad_verb(self, verb: str, arg: Any) -> None:
        self.buf.append("%!" + verb + "(")
        if arg is None or arg is MISSING:
            self.buf.append("<nil>")
        else:
            self.buf.append(go_type(arg) + "=")
            saved, self.f = self.f, _Flags()
            self.print_arg(arg, "v")
            self.f = saved
        self.buf.append(")")

    def print_value(self, value: Any, verb: str, depth: int) -> None:
        f = self.f
        if value is None or value is MISSING:
            # a nil interface inside a map or slice
            self.buf.append("interface {}(nil)" if f.sharp_v else "<nil>")
        elif isinstance(value, bool):
            if verb in "tv":
                self.pad("true" if value else "false")
            else:
                self.bad_verb(verb, value)
        elif isinstance(value, int):
            self.fmt_integer(value, verb)
        elif isinstance(value, float):
            self.fmt_float(value, verb)
        elif isinstance(value, str):
            self.fmt_string(value, verb)
        elif isinstance(value, dict):
            keys = sorted_keys(value)
            self.buf.append(go_type(value) + "{" if f.sharp_v else "map[")
            for i, key in enumerate(keys):
                if i:
                    self.buf.append(", " if f.sharp_v else " ")
                self.print_value(key, verb, depth + 1)
                self.buf.append(":")
                self.print_value(value[key], verb, depth + 1)
            self.buf.append("}" if f.sharp_v else "]")
        elif isinstance(value, list):
            self.buf.append(go_type(value) + "{" if f.sharp_v else "[")
            for i, item in enumerate(value):
                if i:
                    self.buf.append(", " if f.sharp_v else " ")
                self.print_value(item, verb, depth + 1)
            self.buf.append("}" if f.sharp_v else "]")
        elif isinstance(value, GoStruct):
            if value.pointer and depth > 0:
                self.fmt_pointer(value, verb)
                return
            if value.pointer:
                self.buf.append("&")
            if f.sharp_v:
                self.buf.append(value.type_name)
            self.buf.append("{")
            for i, (name, item) in enumerate(value.fields.items()):
                if i:
                    self.buf.append(", " if f.sharp_v else " ")
                if f.plus_v or f.sharp_v:
                    self.buf.append(name + ":")
                self.print_value(item, verb, depth + 1)
            self.buf.append("}")
        elif isinstance(value, GoNil):
            self.fmt_pointer(value, verb)
        else:
            self.buf.append(f"?{type(value).__name__}?")

    def fmt_pointer(self, value: GoStruct | GoNil, verb: str) -> None:
        nil = isinstance(value, GoNil)
        if verb == "v":
            if self.f.sharp_v:
                self.buf.append(f"({go_type(value)})({'nil' if nil else _FAKE_ADDRESS})")
            else:
                self.pad("<nil>" if nil else _FAKE_ADDRESS)
        elif verb == "p":
            self.pad("0x0" if nil else _FAKE_ADDRESS)
        else:
            self.bad_verb(verb, value)

    # strings
    def fmt_string(self, value: str, verb: str) -> None:
        if verb == "v":
            if self.f.sharp_v:
                self.fmt_q(value)
            else:
                self.fmt_s(value)
        elif verb == "s":
            self.fmt_s(value)
        elif verb in "xX":
            self.fmt_sx(value.encode("utf-8", "replace"), verb)
        elif verb == "q":
            self.fmt_q(value)
        else:
            self.bad_verb(verb, value)

    def truncate(self, value: str) -> str:
        prec = self.f.prec
        return value[:prec] if prec is not None else value

    def fmt_s(self, value: str) -> None:
        self.pad(self.truncate(value))

    def fmt_q(self, value: str) -> None:
        value = self.truncate(value)
        f = self.f
        if f.sharp and _can_backquote(value):
            self.pad("`" + value + "`")
        else:
            self.pad(go_quote(value, ascii_only=f.plus))

    def fmt_sx(self, data: bytes, verb: str) -> None:
        f = self.f
        digits = "0123456789abcdefx" if verb == "x" else "0123456789ABCDEFX"
        length = len(data) if f.prec is None else min(len(data), f.prec)
        if length <= 0:
            if f.wid:
                self.buf.append(" " * f.wid)
            return
        parts = []
        for i in range(length):
            if f.space and i > 0:
                parts.append(" ")
            if f.sharp and (f.space or i == 0):
                parts.append("0" + digits[16])
            byte = data[i]
            parts.append(digits[byte >> 4] + digits[byte & 0xF])
        text = "".join(parts)
        wid = f.wid or 0
        if wid > len(text):
            text = text + " " * (wid - len(text)) if f.minus else " " * (wid - len(text)) + text
        self.buf.append(text)

    # numbers
    def fmt_integer(self, value: int, verb: str) -> None:
        if verb in "vd":
            self.integer(value, 10, verb, "0123456789abcdefx")
        elif verb == "b":
            self.integer(value, 2, verb, "0123456789abcdefx")
        elif verb in "oO":
            self.integer(value, 8, verb, "0123456789abcdefx")
        elif verb == "x":
            self.integer(value, 16, verb, "0123456789abcdefx")
        elif verb == "X":
            self.integer(value, 16, verb, "0123456789ABCDEFX")
        elif verb == "c":
            self.pad(_rune(value))
        elif verb == "q":
            self.pad(quote_rune(_rune(value), ascii_only=self.f.plus))
        elif verb == "U":
            text = f"U+{value:04X}" if value >= 0 else f"U+{value & (2**64 - 1):04X}"
            if self.f.sharp and 0 <= value <= 0x10FFFF and _rune(value).isprintable():
                text += " '" + _rune(value) + "'"
            self.pad(text)
        else:
            self.bad_verb(verb, value)

    def integer(self, value: int, base: int, verb: str, digits: str) -> None:
        f = self.f
        negative = value < 0
        u = -value if negative else value
        prec = 0
        if f.prec is not None:
            prec = f.prec
            if prec == 0 and u == 0:
                self.buf.append(" " * (f.wid or 0))
                return
        elif f.zero and not f.minus and f.wid:
            prec = f.wid
            if negative or f.plus or f.space:
                prec -= 1
        text = ""
        while True:
            text = digits[u % base] + text
            u //= base
            if not u:
                break
        text = "0" * max(0, prec - len(text)) + text
        if f.sharp:
            if base == 2:
                text = "0b" + text
            elif base == 8 and text[0] != "0":
                text = "0" + text
            elif base == 16:
                text = "0" + digits[16] + text
        if verb == "O":
            text = "0o" + text
        if negative:
            text = "-" + text
        elif f.plus:
            text = "+" + text
        elif f.space:
            text = " " + text
        self.pad(text)

    def fmt_float(self, value: float, verb: str) -> None:
        if verb == "v":
            self.float(value, "g", -1)
        elif verb in "gG":
            self.float(value, verb, -1)
        elif verb in "eEfF":
            self.float(value, verb, 6)
        else:
            self.bad_verb(verb, value)

    def float(self, value: float, verb: str, prec: int) -> None:
        f = self.f
        if f.prec is not None:
            prec = f.prec
        num = format_float(value, verb, prec)
        if num[0] not in "+-":
            num = "+" + num
        if f.space and num[0] == "+" and not f.plus:
            num = " " + num[1:]
        if num[1] in "IN":
            if num[1] == "N" and not f.space and not f.plus:
                num = num[1:]
            self.pad(num)
            return
        if f.plus or num[0] != "+":
            if f.zero and not f.minus and f.wid and f.wid > len(num):
                self.buf.append(num[0] + "0" * (f.wid - len(num)) + num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:], zero_ok=True)


def _rune(value: int) -> str:
    return chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd"


def _can_backquote(value: str) -> bool:
    return all(ch == "\t" or (ch >= " " and ch not in "`\x7f\ufeff") for ch in value)


def _shortest(value: float) -> tuple[str, int]:
    """The shortest decimal digits that read back as ``value`` (> 0), and the
    position of the decimal point (Go's ``decimal`` digits and ``dp``)."""
    _sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    assert isinstance(exponent, int)
    dp = len(digit_tuple) + exponent
    lead = len(digits) - len(digits.lstrip("0"))
    return digits[lead:] or "0", dp - lead


def format_float(value: float, verb: str, prec: int) -> str:
    """Go's ``strconv.FormatFloat(value, verb, prec, 64)`` for verbs e E f F g G."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    lower = verb.lower()
    if prec >= 0:
        if lower == "g" and prec == 0:
            prec = 1
        text = format(value, f".{prec}{'f' if lower == 'f' else lower}")
        return text.upper() if verb in "EG" else text
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    value = abs(value)
    if value == 0:
        digits, dp = "0", 1
    else:
        digits, dp = _shortest(value)
    nd = len(digits)
    if lower == "g":
        exp = dp - 1
        lower = "e" if exp < -4 or exp >= 6 else "f"
        if lower == "e" and verb == "G":
            verb = "E"
    if lower == "e":
        text = digits[0] + ("." + digits[1:] if nd > 1 else "")
        exp = dp - 1 if digits != "0" else 0
        text += ("E" if verb in "EG" else "e") + ("-" if exp < 0 else "+") + f"{abs(exp):02d}"
        return sign + text
    decimals = max(nd - dp, 0)
    whole = (digits[:dp] + "0" * (dp - nd)) if dp > 0 else "0"
    frac = ("0" * max(0, -dp) + digits[max(dp, 0) :])[:decimals]
    return sign + whole + ("." + frac if decimals else "")


def print_value(value: Any) -> str:
    """What ``{{ value }}`` writes: text/template's ``printValue``."""
    if value is MISSING or value is None:
        return "<no value>"
    if isinstance(value, GoNil):
        return "<nil>"
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, GoStruct) and value.pointer:  # printed as the struct it points to
        value = GoStruct(value.type_name, value.fields, pointer=False)
    p = _Printer()
    p.print_arg(value, "v")
    return "".join(p.buf)


def go_sprint(args: list[Any]) -> str:
    """``fmt.Sprint``: a space between two operands when neither is a string."""
    p = _Printer()
    previous_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i > 0 and not is_string and not previous_string:
            p.buf.append(" ")
        p.f = _Flags()
        p.print_arg(arg, "v")
        previous_string = is_string
    return "".join(p.buf)


def go_sprintln(args: list[Any]) -> str:
    """``fmt.Sprintln``: spaces between operands, a newline at the end."""
    p = _Printer()
    for i, arg in enumerate(args):
        if i:
            p.buf.append(" ")
        p.f = _Flags()
        p.print_arg(arg, "v")
    p.buf.append("\n")
    return "".join(p.buf)


_MAX_NUM = 1_000_000


def _parsenum(fmt: str, i: int) -> tuple[int | None, int]:
    num, start = 0, i
    while i < len(fmt) and "0" <= fmt[i] <= "9":
        if num > _MAX_NUM:
            return None, len(fmt)
        num = num * 10 + ord(fmt[i]) - 48
        i += 1
    return (num if i > start else None), i


def go_sprintf(fmt: str, args: list[Any]) -> str:
    """``fmt.Sprintf``, including its in-band errors (``%!d(string=x)``,
    ``%!s(MISSING)``, ``%!(EXTRA ...)``)."""
    p = _Printer()
    buf = p.buf
    end = len(fmt)
    arg_num = 0
    reordered = False
    i = 0
    while i < end:
        good_arg_num = True
        start = i
        while i < end and fmt[i] != "%":
            i += 1
        if i > start:
            buf.append(fmt[start:i])
        if i >= end:
            break
        i += 1
        p.f = f = _Flags()
        while i < end and fmt[i] in "#0+- ":
            c = fmt[i]
            if c == "#":
                f.sharp = True
            elif c == "0":
                f.zero = not f.minus
            elif c == "+":
                f.plus = True
            elif c == "-":
                f.minus, f.zero = True, False
            else:
                f.space = True
            i += 1

        def arg_number(n: int, i: int) -> tuple[int, int, bool]:
            nonlocal reordered, good_arg_num
            if i >= end or fmt[i] != "[":
                return n, i, False
            reordered = True
            close = fmt.find("]", i + 1)
            if close < 0:
                good_arg_num = False
                return n, i + 1, False
            index, after = _parsenum(fmt, i + 1)
            if index is None or after != close:
                good_arg_num = False
                return n, close + 1, False
            if 1 <= index <= len(args):
                return index - 1, close + 1, True
            good_arg_num = False
            return n, close + 1, True

        def int_from_arg(n: int) -> tuple[int | None, int]:
            if n >= len(args):
                return None, n
            value = args[n]
            ok = isinstance(value, int) and not isinstance(value, bool)
            if not ok or abs(value) > _MAX_NUM:
                return None, n + 1
            return value, n + 1

        arg_num, i, after_index = arg_number(arg_num, i)
        if i < end and fmt[i] == "*":
            i += 1
            f.wid, arg_num = int_from_arg(arg_num)
            if f.wid is None:
                buf.append("%!(BADWIDTH)")
            elif f.wid < 0:
                f.wid, f.minus, f.zero = -f.wid, True, False
            after_index = False
        else:
            f.wid, i = _parsenum(fmt, i)
            if after_index and f.wid is not None:
                good_arg_num = False
        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:
                good_arg_num = False
            arg_num, i, after_index = arg_number(arg_num, i)
            if i < end and fmt[i] == "*":
                i += 1
                f.prec, arg_num = int_from_arg(arg_num)
                if f.prec is not None and f.prec < 0:
                    f.prec = None
                if f.prec is None:
                    buf.append("%!(BADPREC)")
                after_index = False
            else:
                f.prec, i = _parsenum(fmt, i)
                if f.prec is None:
                    f.prec = 0
        if not after_index:
            arg_num, i, after_index = arg_number(arg_num, i)
        if i >= end:
            buf.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            buf.append("%")
        elif not good_arg_num:
            buf.append(f"%!{verb}(BADINDEX)")
        elif arg_num >= len(args):
            buf.append(f"%!{verb}(MISSING)")
        else:
            if verb == "v":
                f.sharp_v, f.sharp = f.sharp, False
                f.plus_v, f.plus = f.plus, False
            p.print_arg(args[arg_num], verb)
            arg_num += 1
    if not reordered and arg_num < len(args):
        p.f = _Flags()
        buf.append("%!(EXTRA ")
        for k, arg in enumerate(args[arg_num:]):
            if k:
                buf.append(", ")
            if arg is None or arg is MISSING:
                buf.append("<nil>")
            else:
                buf.append(go_type(arg) + "=")
                p.print_arg(arg, "v")
        buf.append(")")
    return "".join(buf)
