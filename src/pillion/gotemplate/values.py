"""Values as a Go template sees them, for ``pillion.gotemplate``.

The model: ``str`` (Go ``string``), :class:`JsonNumber` (``json.Number``: a number
in Vault's JSON, kept as its text, as Vault's Go client decodes it), ``int``,
``float`` (``float64``), ``bool``, ``dict`` (``map[string]interface {}``), ``list``
(``[]interface {}``; :class:`StrList` is ``[]string``), ``None`` (a nil
``interface {}``: a JSON null, or a missing map key), :data:`MISSING` (Go's invalid
value: "<no value>"), :class:`GoStruct` (consul-template's ``Secret`` and
``PemEncoded``) and :class:`GoNil` (a nil pointer to one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "MISSING",
    "FetchFailed",
    "FuncError",
    "GoNil",
    "GoStruct",
    "JsonNumber",
    "StrList",
    "ValueTooDeep",
    "go_type",
    "is_true",
    "sorted_keys",
    "to_go",
]

# How deep data may nest (Vault's JSON, parseJSON's result) before it is refused.
MAX_DATA_DEPTH = 100


class _Missing:
    """Go's invalid ``reflect.Value``: what ``$`` and ``.`` are at the top (the data
    is nil), and what a nil interface becomes once a pipeline returns it."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class JsonNumber(str):
    """A number from Vault's JSON: Go's ``json.Number``, a string type."""

    __slots__ = ()


class StrList(list[str]):
    """A Go ``[]string`` (``split``'s result, a secret's ``Warnings``)."""

    __slots__ = ()


class GoStruct:
    """A Go struct, or a pointer to one: its fields in declaration order, and the
    methods (without arguments) a template may call as fields."""

    __slots__ = ("fields", "methods", "pointer", "type_name")

    def __init__(
        self,
        type_name: str,
        fields: dict[str, Any],
        *,
        pointer: bool,
        methods: dict[str, Any] | None = None,
    ) -> None:
        self.type_name = type_name
        self.fields = fields
        self.pointer = pointer
        self.methods = methods or {}


class GoNil:
    """A nil pointer to a struct (a secret's ``Auth`` when it has none)."""

    __slots__ = ("fields", "type_name")

    def __init__(self, type_name: str, fields: tuple[str, ...]) -> None:
        self.type_name = type_name
        self.fields = fields


class ValueTooDeep(ValueError):
    pass


class FuncError(Exception):
    """A function refused its arguments (``error calling NAME: ...``); the message
    never holds a value."""


class FetchFailed(Exception):
    """What the fetcher raised, carried out of the evaluator to be raised as it is."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def go_type(value: Any) -> str:
    """The value's Go type, as ``%T`` and Go's errors write it."""
    if value is None:
        return "interface {}"
    if value is MISSING:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, JsonNumber):
        return "json.Number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, StrList):
        return "[]string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, GoStruct):
        return ("*" if value.pointer else "") + value.type_name
    if isinstance(value, GoNil):
        return "*" + value.type_name
    return type(value).__name__


def is_true(value: Any) -> bool:
    """Go's truth of ``if``, ``with``, ``and``, ``or``, ``not``: false for the zero
    of the type (``""``, 0, false, nil, an empty map or list)."""
    if value is None or value is MISSING or isinstance(value, GoNil):
        return False
    if isinstance(value, GoStruct):
        return True
    if isinstance(value, bool | int | float):
        return bool(value)
    return len(value) > 0


def sorted_keys(mapping: Mapping[str, Any]) -> list[str]:
    """Go's order of map keys (``fmt``, ``range``): by bytes, which for UTF-8 is the
    order of code points."""
    return sorted(mapping)


def to_go(value: Any, depth: int = 0) -> Any:
    """JSON-decoded data (from the fetcher) in the model: numbers become
    :class:`JsonNumber`, as Vault's client decodes them."""
    if depth > MAX_DATA_DEPTH:
        raise ValueTooDeep(f"data nested more than {MAX_DATA_DEPTH} levels deep")
    if value is None or isinstance(value, bool | JsonNumber):
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return JsonNumber(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a number that is not finite")
        return JsonNumber(repr(value))
    if isinstance(value, Decimal):
        return JsonNumber(str(value))
    if isinstance(value, Mapping):
        return {str(k): to_go(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_go(v, depth + 1) for v in value]
    raise ValueError(f"a value of type {type(value).__name__}")
