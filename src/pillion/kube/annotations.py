"""The ``pillion.dev/*`` pod annotations (and vault-k8s's), parsed into one value. No I/O.

Every malformed value raises ``InvalidAnnotation`` naming the annotation, so the
injector can skip the pod with a reason instead of injecting something broken.
vault-k8s annotations (``vault.hashicorp.com/...``) are read too, so a pod written
for the Vault Agent injector gets the same secrets from Pillion; a ``pillion.dev``
annotation wins where both say the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from pillion.kube.iptables import parse_cidrs, parse_ports

T = TypeVar("T")

__all__ = [
    "PREFIX",
    "VAULT_PREFIX",
    "InvalidAnnotation",
    "PodAnnotations",
    "SecretAnnotation",
    "parse_annotations",
    "parse_bool",
    "parse_inject",
]

PREFIX = "pillion.dev/"
VAULT_PREFIX = "vault.hashicorp.com/"

Capture = Literal["none", "inbound", "all"]
LogLevel = Literal["debug", "info", "warning", "error"]

# A Kubernetes resource quantity (apimachinery's resource.Quantity), without a sign.
_QUANTITY = re.compile(r"^(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
# A secret's name becomes a file under /secrets and a source name in pillion.yaml.
_SECRET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# An RFC 1123 subdomain: what a ConfigMap name must be.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class InvalidAnnotation(ValueError):
    """A pod annotation Pillion reads has a value it cannot use."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class SecretAnnotation:
    """One secret: rendered from ``path`` to ``/secrets/<name>``."""

    name: str
    path: str
    template: str | None = None


@dataclass(frozen=True)
class PodAnnotations:
    """What a pod's annotations ask of Pillion; ``None`` means "not said"."""

    inject: bool | None = None
    config_map: str | None = None
    app_port: int | None = None
    secrets: tuple[SecretAnnotation, ...] = ()
    vault_role: str | None = None
    vault_address: str | None = None
    logs: str | None = None
    capture: Capture = "none"
    native_sidecar: bool | None = None
    cpu_request: str | None = None
    memory_request: str | None = None
    cpu_limit: str | None = None
    memory_limit: str | None = None
    log_level: LogLevel | None = None
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()
    exclude_outbound_cidrs: tuple[str, ...] = ()


def parse_bool(key: str, value: str) -> bool:
    """``"true"`` or ``"false"`` (any case), else ``InvalidAnnotation``."""
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise InvalidAnnotation(key, f'expected "true" or "false", not {value!r}')


def parse_inject(annotations: Mapping[str, str]) -> bool | None:
    """``pillion.dev/inject``, else vault-k8s's ``agent-inject``; ``None`` when neither."""
    for key in (PREFIX + "inject", VAULT_PREFIX + "agent-inject"):
        if key in annotations:
            return parse_bool(key, annotations[key])
    return None


def _port(key: str, value: str) -> int:
    if not value.strip().isdigit() or not 1 <= int(value) <= 65535:
        raise InvalidAnnotation(key, f"expected a port number 1-65535, not {value!r}")
    return int(value)


def _quantity(annotations: Mapping[str, str], name: str) -> str | None:
    key = PREFIX + name
    value = annotations.get(key)
    if value is not None and not _QUANTITY.match(value):
        raise InvalidAnnotation(
            key, f"expected a Kubernetes quantity like 100m or 64Mi, not {value!r}"
        )
    return value


def _choice(annotations: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    key = PREFIX + name
    value = annotations.get(key)
    if value is not None and value not in choices:
        raise InvalidAnnotation(key, f"expected one of {', '.join(choices)}, not {value!r}")
    return value


def _secrets(annotations: Mapping[str, str]) -> tuple[SecretAnnotation, ...]:
    """``pillion.dev/secret-<name>`` and vault-k8s's ``agent-inject-secret-<name>``; each
    with its optional ``...template-<name>``. The pillion.dev spelling wins."""
    spellings = (
        (VAULT_PREFIX + "agent-inject-secret-", VAULT_PREFIX + "agent-inject-template-"),
        (PREFIX + "secret-", PREFIX + "secret-template-"),
    )
    found: dict[str, SecretAnnotation] = {}
    for secret_prefix, template_prefix in spellings:
        for key, path in annotations.items():
            if not key.startswith(secret_prefix) or key.startswith(template_prefix):
                continue
            name = key.removeprefix(secret_prefix)
            if not _SECRET_NAME.match(name):
                raise InvalidAnnotation(key, "the secret's name must match [a-z0-9][a-z0-9_-]*")
            if not path.strip():
                raise InvalidAnnotation(key, "expected a Vault path, found nothing")
            template = annotations.get(template_prefix + name)
            found[name] = SecretAnnotation(name, path.strip(), template)
        for key in annotations:
            if key.startswith(template_prefix):
                name = key.removeprefix(template_prefix)
                if secret_prefix + name not in annotations:
                    raise InvalidAnnotation(key, f"no {secret_prefix}{name} for this template")
    return tuple(found[name] for name in sorted(found))


def _logs(annotations: Mapping[str, str]) -> str | None:
    key = PREFIX + "logs"
    value = annotations.get(key)
    if value is not None and not value.startswith("/"):
        raise InvalidAnnotation(
            key, f"expected an absolute glob like /var/log/app/*.log, not {value!r}"
        )
    if value is not None and log_directory(value) == "/":
        raise InvalidAnnotation(key, "the glob needs a directory to share, not /")
    return value


def log_directory(glob: str) -> str:
    """The directory shared for a log glob: its path up to the first wildcard part."""
    parts: list[str] = []
    for part in glob.split("/")[:-1]:
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return "/".join(parts) or "/"


def _config_map(annotations: Mapping[str, str]) -> str | None:
    key = PREFIX + "config"
    value = annotations.get(key)
    if value is not None and (len(value) > 253 or not _DNS_SUBDOMAIN.match(value)):
        raise InvalidAnnotation(key, f"expected a ConfigMap name, not {value!r}")
    return value


def _first(annotations: Mapping[str, str], *keys: str) -> str | None:
    return next((annotations[key] for key in keys if key in annotations), None)


def parse_annotations(annotations: Mapping[str, str]) -> PodAnnotations:
    """Every annotation Pillion reads; raises ``InvalidAnnotation`` on the first bad one."""
    port = annotations.get(PREFIX + "app-port")
    native = annotations.get(PREFIX + "native-sidecar")
    vault_address = _first(annotations, PREFIX + "vault-address", VAULT_PREFIX + "service")
    if vault_address is not None and not vault_address.startswith(("http://", "https://")):
        raise InvalidAnnotation(PREFIX + "vault-address", f"expected a URL, not {vault_address!r}")
    capture = _choice(annotations, "capture", ("none", "inbound", "all")) or "none"
    log_level = _choice(annotations, "log-level", ("debug", "info", "warning", "error"))
    return PodAnnotations(
        inject=parse_inject(annotations),
        config_map=_config_map(annotations),
        app_port=None if port is None else _port(PREFIX + "app-port", port),
        secrets=_secrets(annotations),
        vault_role=_first(annotations, PREFIX + "vault-role", VAULT_PREFIX + "role"),
        vault_address=vault_address,
        logs=_logs(annotations),
        capture=capture,  # type: ignore[arg-type]  # checked by _choice
        native_sidecar=None if native is None else parse_bool(PREFIX + "native-sidecar", native),
        cpu_request=_quantity(annotations, "cpu-request"),
        memory_request=_quantity(annotations, "memory-request"),
        cpu_limit=_quantity(annotations, "cpu-limit"),
        memory_limit=_quantity(annotations, "memory-limit"),
        log_level=log_level,  # type: ignore[arg-type]  # checked by _choice
        exclude_inbound_ports=_list(annotations, "exclude-inbound-ports", parse_ports),
        exclude_outbound_ports=_list(annotations, "exclude-outbound-ports", parse_ports),
        exclude_outbound_cidrs=_list(annotations, "exclude-outbound-cidrs", parse_cidrs),
    )


def _list(
    annotations: Mapping[str, str], name: str, parse: Callable[[str], tuple[T, ...]]
) -> tuple[T, ...]:
    """A comma-separated capture exclusion, checked as ``pillion iptables`` will."""
    key = PREFIX + name
    value = annotations.get(key)
    if value is None:
        return ()
    try:
        return parse(value)
    except ValueError as exc:
        raise InvalidAnnotation(key, str(exc)) from None
