"""The ``pillion.dev/*`` pod annotations (and vault-k8s's), parsed into one value. No I/O.

Every malformed value raises ``InvalidAnnotation`` naming the annotation, so the
injector can skip the pod with a reason instead of injecting something broken.
vault-k8s annotations (``vault.hashicorp.com/...``) are read too, so a pod written
for the Vault Agent injector gets the same secrets from Pillion; a ``pillion.dev``
annotation wins where both say the same thing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from pillion.kube.iptables import parse_cidrs, parse_ports
from pillion.kube.vaultk8s import (
    InvalidVaultAnnotation,
    VaultPod,
    markdown_table,
    parse_vault_annotations,
)

T = TypeVar("T")

__all__ = [
    "ANNOTATIONS",
    "PREFIX",
    "VAULT_PREFIX",
    "AnnotationDoc",
    "InvalidAnnotation",
    "PodAnnotations",
    "SecretAnnotation",
    "VolumeMount",
    "image_version",
    "markdown_reference",
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
_SECRET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")  # vault-k8s' names are file names
# A container image reference: [registry/]name[:tag][@digest], no spaces.
_IMAGE = re.compile(
    r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
# An RFC 1123 label: what a volume's name must be.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
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
    """One ``pillion.dev/secret-<name>``: the KV secret at ``path`` rendered to
    ``/secrets/<name>``."""

    name: str
    path: str
    template: str | None = None

    def source(self) -> dict[str, str]:
        """The ``secrets.sources[]`` entry that reads it. A KV v2 API path
        (``<mount>/data/<path>``) is read as the KV secret ``<mount>/<path>``."""
        mount, _, rest = self.path.strip("/").partition("/")
        first, _, inner = rest.partition("/")
        if first == "data" and inner:
            return {"name": self.name, "type": "kv", "path": f"{mount}/{inner}"}
        return {"name": self.name, "type": "kv", "path": self.path}


@dataclass(frozen=True)
class VolumeMount:
    """One of the pod's own volumes, mounted into Pillion's container."""

    volume: str
    path: str
    read_only: bool = False


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
    volume_mounts: tuple[VolumeMount, ...] = ()
    image: str | None = None
    vault: VaultPod | None = None  # the pod's vault-k8s annotations, if any

    @property
    def vault_secrets(self) -> bool:
        return self.vault is not None and bool(self.vault.secrets)

    @property
    def any_secrets(self) -> bool:
        return bool(self.secrets) or self.vault_secrets


def image_version(image: str) -> str:
    """The version an image reference names: its tag (``…/pillion:0.2.0`` ->
    ``0.2.0``); ``unknown`` without one or with a digest only."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return tag or "unknown"


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
    """``pillion.dev/secret-<name>``, each with its optional ``secret-template-<name>``
    (vault-k8s' ``agent-inject-secret-<name>`` are ``vaultk8s``'s)."""
    spellings = ((PREFIX + "secret-", PREFIX + "secret-template-"),)
    found: dict[str, SecretAnnotation] = {}
    for secret_prefix, template_prefix in spellings:
        for key, path in annotations.items():
            if not key.startswith(secret_prefix) or key.startswith(template_prefix):
                continue
            name = key.removeprefix(secret_prefix)
            if not _SECRET_NAME.match(name):
                raise InvalidAnnotation(key, "the secret's name must match [a-z0-9][a-z0-9_.-]*")
            if not path.strip():
                raise InvalidAnnotation(key, "expected a Vault path, found nothing")
            if "/" not in path.strip().strip("/"):  # as the generated config's kv source needs
                raise InvalidAnnotation(key, "a Vault KV path is <mount>/<path>, e.g. secret/app")
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


def _volume_mounts(annotations: Mapping[str, str]) -> tuple[VolumeMount, ...]:
    """``pillion.dev/volume-mounts``: ``VOLUME:PATH[:ro]``, comma-separated. Whether
    each volume exists, and whether a path is taken, is the injector's to check."""
    key = PREFIX + "volume-mounts"
    value = annotations.get(key)
    if value is None:
        return ()
    mounts: list[VolumeMount] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        volume, _, rest = item.partition(":")
        path, _, mode = rest.partition(":")
        if not _DNS_LABEL.match(volume) or not path.startswith("/") or mode not in ("", "ro", "rw"):
            raise InvalidAnnotation(
                key, f"expected VOLUME:/path or VOLUME:/path:ro, comma-separated, not {item!r}"
            )
        if ".." in path.split("/"):
            raise InvalidAnnotation(key, f"a mount path has no '..': {path!r}")
        mounts.append(VolumeMount(volume, path.rstrip("/") or "/", mode == "ro"))
    paths = [m.path for m in mounts]
    if len(set(paths)) != len(paths):
        raise InvalidAnnotation(key, "two mounts at the same path")
    return tuple(mounts)


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
    secrets = _secrets(annotations)
    try:
        vault = parse_vault_annotations(annotations)
    except InvalidVaultAnnotation as exc:
        raise InvalidAnnotation(exc.key, exc.problem) from None
    if vault is not None:
        vault = _without_pillion_names(vault, secrets)
    return PodAnnotations(
        inject=parse_inject(annotations),
        config_map=_config_map(annotations),
        app_port=None if port is None else _port(PREFIX + "app-port", port),
        secrets=secrets,
        vault=vault,
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
        volume_mounts=_volume_mounts(annotations),
        image=_image(annotations),
    )


def _without_pillion_names(vault: VaultPod, secrets: tuple[SecretAnnotation, ...]) -> VaultPod:
    """The pillion.dev spelling wins: a vault-k8s secret of the same name is left
    out; one whose file would be a pillion.dev secret's is refused."""
    names = {s.name for s in secrets}
    kept = tuple(s for s in vault.secrets if s.name not in names)
    for secret in kept:
        if secret.volume_path == vault.volume_path and secret.file in names:
            raise InvalidAnnotation(
                f"{VAULT_PREFIX}agent-inject-file-{secret.name}",
                f"pillion.dev/secret-{secret.file} writes the same file",
            )
    return dataclasses.replace(vault, secrets=kept)


def _image(annotations: Mapping[str, str]) -> str | None:
    key = PREFIX + "image"
    value = annotations.get(key)
    if value is not None and (len(value) > 512 or not _IMAGE.match(value)):
        raise InvalidAnnotation(
            key, f"expected an image reference like ghcr.io/pillion/pillion:0.2.0, not {value!r}"
        )
    return value


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


@dataclass(frozen=True)
class AnnotationDoc:
    """One row of the annotations reference (``docs/annotations.md``)."""

    name: str  # after ``pillion.dev/``
    values: str
    default: str
    description: str
    vault: str = ""  # the vault-k8s annotation read in its place, if any


ANNOTATIONS: tuple[AnnotationDoc, ...] = (
    AnnotationDoc("inject", '`"true"`, `"false"`', "the namespace label, else off",
                  "Inject this pod or not; the pod wins over the namespace label "
                  "`pillion.dev/inject` (`enabled` or `disabled`).", "agent-inject"),
    AnnotationDoc("config", "a ConfigMap name", "none: a config generated from these "
                  "annotations", "The ConfigMap whose `pillion.yaml` Pillion runs with "
                  "(mounted at `/etc/pillion`)."),
    AnnotationDoc("volume-mounts", "`VOLUME:/path[:ro]`, comma-separated", "none",
                  "Mount some of the pod's own volumes into Pillion's container too: "
                  "the certificates, ConfigMaps and shared directories a `pillion.dev/config` "
                  "file names. Read-write unless `:ro`; an unknown volume, or a path "
                  "Pillion mounts itself, skips the pod with the reason."),
    AnnotationDoc("image", "an image reference", "the injector's own version "
                  "(`ghcr.io/pillion/pillion:<version>`)",
                  "The Pillion image this pod runs, e.g. to try a new version on one "
                  "workload; the pod's `pillion.dev/version` annotation is its tag."),
    AnnotationDoc("app-port", "1-65535", "the first app container's first TCP "
                  "`containerPort`, else the injector's (8080)",
                  "The port the app listens on: where inbound traffic goes."),
    AnnotationDoc("secret-<name>", "a KV path, e.g. `secret/db`", "none",
                  "Render this secret into `/secrets/<name>` (an in-memory volume the app "
                  "containers mount read-only) before the app starts; JSON of its keys "
                  "unless a template is given. `<name>` is a file name (dots allowed). "
                  "vault-k8s' `agent-inject-secret-<name>` is read as vault-k8s reads it: "
                  "see the vault-k8s section below."),
    AnnotationDoc("secret-template-<name>", "a template", "none",
                  "The file's text, e.g. `{{ secrets.db.password }}`."),
    AnnotationDoc("vault-address", "an `http(s)://` URL", "the injector's",
                  "The Vault / OpenBao server.", "service"),
    AnnotationDoc("vault-role", "a role name", "the pod's service account",
                  "The kubernetes auth role to log in with.", "role"),
    AnnotationDoc("logs", "an absolute glob, e.g. `/var/log/app/*.log`", "none",
                  "Ship the files the app writes there: the directory becomes a volume "
                  "shared with Pillion."),
    AnnotationDoc("capture", "`none`, `inbound`, `all`", "`none`",
                  "Redirect the pod's inbound TCP (and with `all` its outbound TCP too) "
                  "to Pillion with iptables, IPv4 and IPv6, from a `pillion-init` container."),
    AnnotationDoc("exclude-inbound-ports", "ports, comma-separated", "none (15000 and "
                  "15020 never are captured)", "Inbound ports left alone by capture."),
    AnnotationDoc("exclude-outbound-ports", "ports, comma-separated", "none",
                  "Destination ports left alone by capture."),
    AnnotationDoc("exclude-outbound-cidrs", "IPv4 or IPv6 CIDRs, comma-separated", "none",
                  "Destinations left alone by capture."),
    AnnotationDoc("native-sidecar", '`"true"`, `"false"`', "the injector's (true)",
                  "A native sidecar (an init container with `restartPolicy: Always`, "
                  "Kubernetes 1.29+), or classic mode: the first app container, holding "
                  "the app's start with a `postStart` hook; a Job's app then creates "
                  "`$PILLION_EXIT_FILE` when it is done."),
    AnnotationDoc("cpu-request", "a quantity", "`10m`", "Pillion's CPU request."),
    AnnotationDoc("memory-request", "a quantity", "`64Mi`", "Pillion's memory request."),
    AnnotationDoc("cpu-limit", "a quantity", "none (throttling a proxy adds latency)",
                  "Pillion's CPU limit."),
    AnnotationDoc("memory-limit", "a quantity", "`256Mi`", "Pillion's memory limit."),
    AnnotationDoc("log-level", "`debug`, `info`, `warning`, `error`", "`info`",
                  "Pillion's own log level."),
)  # fmt: skip


def markdown_reference() -> str:
    """``docs/annotations.md``: every annotation Pillion reads, and what it writes."""
    lines = [
        "# Pod annotations",
        "",
        "Generated from `pillion/kube/annotations.py` (`make docs`): what the injector",
        "(`pillion webhook`, `pillion inject`) reads from a pod. A malformed value skips",
        "the pod, with the reason in its `pillion.dev/status` annotation and in",
        "`pillion_injections_total{result,reason}`. Where a vault-k8s",
        "(`vault.hashicorp.com/...`) annotation is named, it is read too; the",
        "`pillion.dev/` one wins.",
        "",
        "| annotation | values | default | what | vault-k8s |",
        "|---|---|---|---|---|",
    ]
    for doc in ANNOTATIONS:
        vault = f"`{VAULT_PREFIX}{doc.vault}`" if doc.vault else ""
        lines.append(
            f"| `{PREFIX}{doc.name}` | {doc.values} | {doc.default} | {doc.description} | {vault} |"
        )
    lines += [
        "",
        "Written by the injector: `pillion.dev/status` (the decision and its reason, as",
        "JSON; how the pod's vault-k8s annotations were taken, under `vault-k8s`),",
        "`pillion.dev/generated-config` (the generated `pillion.yaml`, without a",
        "ConfigMap), `pillion.dev/original-prometheus-*` (the pod's own Prometheus",
        "annotations, which now point at Pillion's merged `/metrics`).",
        "",
        *markdown_table(),
        "",
    ]
    return "\n".join(lines)
