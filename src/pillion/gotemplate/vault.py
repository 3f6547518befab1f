"""What ``secret`` and ``pkiCert`` give a ``pillion.gotemplate`` template:
consul-template's ``*dependency.Secret`` and ``PemEncoded`` made from Vault's JSON
response, and how a call's arguments name the request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pillion.gotemplate.values import (
    FuncError,
    GoNil,
    GoStruct,
    StrList,
    ValueTooDeep,
    to_go,
)

__all__ = ["PKI_FIELDS", "SECRET_FIELDS", "pki_value", "secret_request", "secret_value"]


def secret_request(args: tuple[str, ...] | list[str]) -> tuple[str, dict[str, str]]:
    """A ``secret``/``pkiCert`` call's path and parameters, as consul-template reads
    them: the path without surrounding spaces and slashes, ``key=value`` pairs."""
    path = args[0].strip().strip("/")
    if not path:
        raise FuncError("the path is empty")
    params: dict[str, str] = {}
    for number, pair in enumerate(args[1:], start=2):
        if not pair:
            continue
        if "=" not in pair:
            raise FuncError(f"argument {number} is not a key=value pair")
        key, value = pair.split("=", 1)
        params[key.strip()] = value.strip()
    return path, params


SECRET_FIELDS = (
    "RequestID",
    "LeaseID",
    "LeaseDuration",
    "Renewable",
    "Data",
    "Warnings",
    "Auth",
    "WrapInfo",
)
_AUTH_FIELDS = ("ClientToken", "Accessor", "Policies", "Metadata", "LeaseDuration", "Renewable")
_WRAP_FIELDS = ("Token", "TTL", "CreationTime", "WrappedAccessor")
PKI_FIELDS = ("Cert", "Key", "CA", "CAChain", "Data")


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _data(response: Mapping[str, Any], key: str) -> Any:
    try:
        return to_go(response.get(key))
    except ValueTooDeep as exc:
        raise FuncError(str(exc)) from None
    except ValueError as exc:
        raise FuncError(f"the Vault response holds {exc}") from None


def secret_value(response: Mapping[str, Any]) -> GoStruct:
    """consul-template's ``*dependency.Secret`` of a Vault response."""
    data = _data(response, "data")
    auth = response.get("auth")
    wrap = response.get("wrap_info")
    fields = {
        "RequestID": str(response.get("request_id") or ""),
        "LeaseID": str(response.get("lease_id") or ""),
        "LeaseDuration": _int(response.get("lease_duration")),
        "Renewable": bool(response.get("renewable")),
        "Data": data if isinstance(data, dict) else {},
        "Warnings": StrList(str(w) for w in response.get("warnings") or () if w is not None),
        "Auth": GoNil("dependency.SecretAuth", _AUTH_FIELDS),
        "WrapInfo": GoNil("dependency.SecretWrapInfo", _WRAP_FIELDS),
    }
    if isinstance(auth, Mapping):
        metadata = auth.get("metadata")
        fields["Auth"] = GoStruct(
            "dependency.SecretAuth",
            {
                "ClientToken": str(auth.get("client_token") or ""),
                "Accessor": str(auth.get("accessor") or ""),
                "Policies": StrList(str(p) for p in auth.get("policies") or ()),
                "Metadata": {str(k): str(v) for k, v in metadata.items()}
                if isinstance(metadata, Mapping)
                else {},
                "LeaseDuration": _int(auth.get("lease_duration")),
                "Renewable": bool(auth.get("renewable")),
            },
            pointer=True,
        )
    if isinstance(wrap, Mapping):
        fields["WrapInfo"] = GoStruct(
            "dependency.SecretWrapInfo",
            {
                "Token": str(wrap.get("token") or ""),
                "TTL": _int(wrap.get("ttl")),
                "CreationTime": str(wrap.get("creation_time") or ""),
                "WrappedAccessor": str(wrap.get("wrapped_accessor") or ""),
            },
            pointer=True,
        )
    return GoStruct("dependency.Secret", fields, pointer=True)


def _pem(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return text if not text or text.endswith("\n") else text + "\n"


def pki_value(response: Mapping[str, Any]) -> GoStruct:
    """consul-template's ``PemEncoded``: ``Cert``, ``Key``, ``CA`` (PEM, each ending
    with a newline), ``CAChain``; ``.Data`` has them too, and the response's data
    (``certificate``, ``private_key``, ``issuing_ca``, ...) as Vault wrote it."""
    data = _data(response, "data")
    data = data if isinstance(data, dict) else {}
    chain = [_pem(c) for c in data.get("ca_chain") or () if isinstance(c, str) and c]
    if not chain and data.get("issuing_ca"):
        chain = [_pem(data["issuing_ca"])]
    fields = {
        "Cert": _pem(data.get("certificate")),
        "Key": _pem(data.get("private_key")),
        "CA": _pem(data.get("issuing_ca")),
        "CAChain": StrList(dict.fromkeys(chain)),
    }
    view = {**data, **fields}
    return GoStruct("dependency.PemEncoded", fields, pointer=False, methods={"Data": view})
