"""The functions a ``pillion.gotemplate`` template may call: Go's builtins
(``text/template``'s ``funcs.go``) and the consul-template ones Vault Agent
templates use, with consul-template's semantics. Pure: ``secret`` and ``pkiCert``
ask the caller's fetcher, ``env`` reads the caller's mapping.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pillion.gotemplate.fmt import go_sprint, go_sprintf, go_sprintln
from pillion.gotemplate.json import EncodeError, to_json
from pillion.gotemplate.values import (
    MAX_DATA_DEPTH,
    MISSING,
    FetchFailed,
    FuncError,
    GoNil,
    StrList,
    ValueTooDeep,
    go_type,
    is_true,
)
from pillion.gotemplate.vault import pki_value, secret_request, secret_value
from pillion.gotemplate.yaml import to_yaml

__all__ = [
    "ANY",
    "FUNCTIONS",
    "INT",
    "KNOWN_UNSUPPORTED",
    "STR",
    "STRS",
    "VALUE",
    "Context",
    "Fetcher",
    "Func",
    "go_bytes",
]

# The Go types of parameters, as Go's errors name them.
STR, INT, ANY, STRS, VALUE = "string", "int", "interface {}", "[]string", "reflect.Value"


class Fetcher(Protocol):
    """Reads (``params`` empty) or writes (``params`` given, e.g. a PKI issue) a
    Vault path; returns Vault's JSON response (``{"data": ..., "lease_duration":
    ..., ...}``). What it raises goes through ``render`` unchanged.

    As Vault Agent does, it should read a KV v2 secret written by its API path
    (``secret/data/app``) or by its plain one (``secret/app``), and take a
    ``?version=N`` in the path."""

    def __call__(self, path: str, params: Mapping[str, str], /) -> Mapping[str, Any]: ...


@dataclasses.dataclass(slots=True)
class Context:
    """What a render gives the functions."""

    fetch: Fetcher
    env: Mapping[str, str]
    max_output: int
    cache: dict[tuple[str, tuple[tuple[str, str], ...]], Mapping[str, Any]] = dataclasses.field(
        default_factory=dict
    )

    def get(self, path: str, params: dict[str, str]) -> Mapping[str, Any]:
        key = (path, tuple(sorted(params.items())))
        if key not in self.cache:
            try:
                response = self.fetch(path, params)
            except Exception as exc:
                raise FetchFailed(exc) from exc
            if not isinstance(response, Mapping):
                raise FuncError(f"the fetcher gave no Vault response for {path}")
            self.cache[key] = response
        return self.cache[key]

    def bound(self, size: int) -> None:
        if size > self.max_output:
            raise FuncError(f"the result would be longer than {self.max_output} bytes")


@dataclasses.dataclass(frozen=True, slots=True)
class Func:
    params: tuple[str, ...]
    variadic: str | None
    impl: Callable[..., Any]
    context: bool = False  # impl takes the Context first


def go_bytes(text: str) -> bytes:
    """A Go string's bytes (bytes that are not UTF-8 are kept as surrogate escapes)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _go_string(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# ---------------------------------------------------------------- Go's builtins


def _indirect(value: Any) -> Any:
    return MISSING if value is None else value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "invalid"


def _eq(arg1: Any, *args: Any) -> bool:
    a = _indirect(arg1)
    if not args:
        raise FuncError("missing argument for comparison")
    k1 = _kind(a)
    for arg in args:
        b = _indirect(arg)
        k2 = _kind(b)
        if k1 != k2:
            if a is not MISSING and b is not MISSING:
                raise FuncError("incompatible types for comparison")
            truth = False
        elif k1 != "invalid":
            truth = str(a) == str(b) if k1 == "string" else a == b
        elif a is MISSING or b is MISSING:
            truth = a is MISSING and b is MISSING
        elif isinstance(a, dict | list) or isinstance(b, dict | list):
            raise FuncError(f"non-comparable types {go_type(a)}, {go_type(b)}")
        else:
            truth = a is b or (isinstance(a, GoNil) and isinstance(b, GoNil))
        if truth:
            return True
    return False


def _lt(arg1: Any, arg2: Any) -> bool:
    a, b = _indirect(arg1), _indirect(arg2)
    k1, k2 = _kind(a), _kind(b)
    if k1 == "invalid" or k2 == "invalid":
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError("incompatible types for comparison")
    if k1 == "bool":
        raise FuncError("invalid type for comparison")
    return bool(str(a) < str(b)) if k1 == "string" else bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq(a, b)


def _len(item: Any) -> int:
    item = _indirect(item)
    if item is MISSING or isinstance(item, GoNil):
        raise FuncError("len of nil pointer")
    if isinstance(item, str):
        return len(go_bytes(item))
    if isinstance(item, dict | list):
        return len(item)
    raise FuncError(f"len of type {go_type(item).lstrip('*')}")


def _index(item: Any, *indexes: Any) -> Any:
    item = _indirect(item)
    if item is MISSING:
        raise FuncError("index of untyped nil")
    for index in indexes:
        index = _indirect(index)
        if item is None or isinstance(item, GoNil):
            raise FuncError("index of nil pointer")
        if isinstance(item, str | list):
            if not isinstance(index, int) or isinstance(index, bool):
                what = "string" if isinstance(item, str) else "slice"
                raise FuncError(f"cannot index {what} with type {go_type(index)}")
            sequence = go_bytes(item) if isinstance(item, str) else item
            if not 0 <= index < len(sequence):
                raise FuncError(f"index out of range: {index}")
            item = sequence[index]
        elif isinstance(item, dict):
            if index is MISSING:
                raise FuncError("value is nil; should be of type string")
            if type(index) is not str:
                raise FuncError(f"value has type {go_type(index)}; should be string")
            item = item.get(index)
        else:
            raise FuncError(f"can't index item of type {go_type(item).lstrip('*')}")
    return item


# ---------------------------------------------------------------- consul-template's


def _secret(ctx: Context, *args: str) -> Any:
    if not args:
        return None
    path, params = secret_request(args)
    return secret_value(ctx.get(path, params))


def _pki_cert(ctx: Context, *args: str) -> Any:
    if not args:
        return None
    path, params = secret_request(args)
    if not params:
        raise FuncError("pkiCert needs the certificate's parameters, e.g. common_name=...")
    return pki_value(ctx.get(path, params))


def _env(ctx: Context, name: str) -> str:
    value = ctx.env.get(name, "")
    return value if isinstance(value, str) else ""


def _base64_decode(text: str, alphabet: bytes | None = None) -> str:
    data = go_bytes(text).replace(b"\r", b"").replace(b"\n", b"")
    try:
        return _go_string(base64.b64decode(data, altchars=alphabet, validate=True))
    except (binascii.Error, ValueError):
        raise FuncError("illegal base64 data") from None


def _base64_encode(text: str, alphabet: bytes | None = None) -> str:
    return base64.b64encode(go_bytes(text), altchars=alphabet).decode()


def _json(ctx: Context, value: Any, *, indent: bool = False, escape_html: bool = True) -> str:
    try:
        text = to_json(value, indent=indent, escape_html=escape_html)
    except (EncodeError, ValueTooDeep) as exc:
        raise FuncError(str(exc)) from None
    ctx.bound(len(text))
    return text


def _yaml(ctx: Context, value: Any) -> str:
    try:
        text = to_yaml(value)
    except ValueTooDeep as exc:
        raise FuncError(str(exc)) from None
    ctx.bound(len(text))
    return text


def _parse_json(ctx: Context, text: str) -> Any:
    if text == "":
        return {}

    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        value = json.loads(text, parse_int=float, parse_constant=refuse)
        return _check_depth(value, 0)
    except (ValueError, RecursionError):
        raise FuncError("the text is not valid JSON") from None


def _check_depth(value: Any, depth: int) -> Any:
    if depth > MAX_DATA_DEPTH:
        raise ValueError("too deep")
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, depth + 1)
    return value


# strings.TrimSpace's white space (unicode.IsSpace)
_GO_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)


def _upper(text: str) -> str:
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in text)


def _lower(text: str) -> str:
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _split(sep: str, text: str) -> StrList:
    text = text.strip(_GO_SPACE)
    if not text:
        return StrList()
    return StrList(list(text) if sep == "" else text.split(sep))


def _join(ctx: Context, sep: str, items: list[str]) -> str:
    ctx.bound(sum(len(i) for i in items) + len(sep) * max(0, len(items) - 1))
    return sep.join(items)


def _replace_all(ctx: Context, old: str, new: str, text: str) -> str:
    count = text.count(old) if old else len(text) + 1
    ctx.bound(len(text) + count * (len(new) - len(old)))
    return text.replace(old, new)


def _in(haystack: Any, needle: Any) -> bool:
    """consul-template's ``in``: an element of a list, or a substring of a string,
    of the same type."""
    if isinstance(haystack, list):
        for item in haystack:
            if isinstance(item, bool) or isinstance(needle, bool):
                continue
            if (isinstance(item, int) and isinstance(needle, int)) or (
                isinstance(item, float) and isinstance(needle, float)
            ):
                if item == needle:
                    return True
            elif (
                isinstance(item, str)
                and isinstance(needle, str)
                and type(item) is type(needle)
                and item == needle
            ):
                return True
        return False
    if isinstance(haystack, str) and isinstance(needle, str) and type(haystack) is type(needle):
        return needle in haystack
    return False


def _indent(ctx: Context, spaces: int, text: str) -> str:
    if spaces < 0:
        raise FuncError("indent value must be a positive integer")
    ctx.bound(len(text) + spaces * (text.count("\n") + 1))
    prefix = " " * spaces
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


def _printf(ctx: Context, fmt: str, *args: Any) -> str:
    text = go_sprintf(fmt, list(args))
    ctx.bound(len(text))
    return text


def _print(ctx: Context, *args: Any) -> str:
    text = go_sprint(list(args))
    ctx.bound(len(text))
    return text


def _println(ctx: Context, *args: Any) -> str:
    text = go_sprintln(list(args))
    ctx.bound(len(text))
    return text


def _and_or(*args: Any) -> Any:  # evaluated lazily by the evaluator
    raise AssertionError("and/or are evaluated by the evaluator")


FUNCTIONS: dict[str, Func] = {
    # text/template's builtins
    "and": Func((VALUE,), VALUE, _and_or),
    "or": Func((VALUE,), VALUE, _and_or),
    "not": Func((VALUE,), None, lambda v: not is_true(v)),
    "len": Func((VALUE,), None, _len),
    "index": Func((VALUE,), VALUE, _index),
    "print": Func((), ANY, _print, context=True),
    "printf": Func((STR,), ANY, _printf, context=True),
    "println": Func((), ANY, _println, context=True),
    "eq": Func((VALUE,), VALUE, _eq),
    "ne": Func((VALUE, VALUE), None, lambda a, b: not _eq(a, b)),
    "lt": Func((VALUE, VALUE), None, _lt),
    "le": Func((VALUE, VALUE), None, _le),
    "gt": Func((VALUE, VALUE), None, lambda a, b: not _le(a, b)),
    "ge": Func((VALUE, VALUE), None, lambda a, b: not _lt(a, b)),
    # consul-template's
    "secret": Func((), STR, _secret, context=True),
    "pkiCert": Func((), STR, _pki_cert, context=True),
    "env": Func((STR,), None, _env, context=True),
    "base64Decode": Func((STR,), None, _base64_decode),
    "base64Encode": Func((STR,), None, _base64_encode),
    "base64URLDecode": Func((STR,), None, lambda s: _base64_decode(s, b"-_")),
    "base64URLEncode": Func((STR,), None, lambda s: _base64_encode(s, b"-_")),
    "toJSON": Func((ANY,), None, _json, context=True),
    "toJSONPretty": Func((ANY,), None, lambda c, v: _json(c, v, indent=True), context=True),
    "toUnescapedJSON": Func(
        (ANY,), None, lambda c, v: _json(c, v, escape_html=False), context=True
    ),
    "toUnescapedJSONPretty": Func(
        (ANY,), None, lambda c, v: _json(c, v, indent=True, escape_html=False), context=True
    ),
    "toYAML": Func((ANY,), None, _yaml, context=True),
    "parseJSON": Func((STR,), None, _parse_json, context=True),
    "trimSpace": Func((STR,), None, lambda s: s.strip(_GO_SPACE)),
    "trim": Func((STR, STR), None, lambda cutset, s: s.strip(cutset) if cutset else s),
    "trimPrefix": Func((STR, STR), None, lambda prefix, s: s.removeprefix(prefix)),
    "trimSuffix": Func((STR, STR), None, lambda suffix, s: s.removesuffix(suffix)),
    "toLower": Func((STR,), None, _lower),
    "toUpper": Func((STR,), None, _upper),
    "split": Func((STR, STR), None, _split),
    "join": Func((STR, STRS), None, _join, context=True),
    "replaceAll": Func((STR, STR, STR), None, _replace_all, context=True),
    "indent": Func((INT, STR), None, _indent, context=True),
    "contains": Func((ANY, ANY), None, lambda needle, haystack: _in(haystack, needle)),
    "in": Func((ANY, ANY), None, _in),
    "sha256Hex": Func((STR,), None, lambda s: hashlib.sha256(go_bytes(s)).hexdigest()),
}

# Functions of Go's text/template and consul-template (and its Sprig set) that a
# template may not use here: they reach files, Consul, Nomad, processes, the clock,
# or other templates.
KNOWN_UNSUPPORTED = frozenset(
    """call html js urlquery slice datacenters exportedServices importedServices file key
    keyExists keyOrDefault key_exists key_or_default ls safeLs node nodes partitions
    peerings secrets service connect services tree safeTree caRoots caLeaf vault
    nomadServices nomadService nomadVarList nomadVarListSafe nomadVar nomadVarExists
    scratch byKey byPort byTag byMeta containsAll containsAny containsNone
    containsNotAll mustEnv envOrDefault executeTemplate explode explodeMap mergeMap
    mergeMapWithOverride loop parseBool parseFloat parseInt parseUint parseYAML plugin
    regexReplaceAll regexMatch md5sum hmacSHA256Hex timestamp toTitle toTOML splitToMap
    sockaddr writeToFile add subtract multiply divide modulo minimum maximum spew_dump
    spew_printf spew_sdump spew_sprintf""".split()  # noqa: SIM905
)
