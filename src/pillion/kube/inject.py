"""Sidecar injection: a pod (a dict) plus settings in, the injected pod out. No I/O.

The webhook and ``pillion inject`` both call ``inject_pod``; the webhook's
JSONPatch is ``json_patch(pod, decision.pod)``. The input is never mutated, and
bad user input never raises: it becomes a ``Decision`` that says why the pod was
left alone, recorded in the pod's ``pillion.dev/status`` annotation.

Order in the pod: in native mode ``initContainers`` becomes ``[pillion-init (only
with traffic capture), pillion, ...the pod's own]``, so Pillion has started (and
rendered the secrets) before the pod's own init containers run; in classic mode
``pillion-init`` leads ``initContainers`` and ``pillion`` leads ``containers``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from pillion import __version__
from pillion.config import PillionConfig
from pillion.config.errors import format_path
from pillion.kube import containers as c
from pillion.kube.annotations import (
    PREFIX,
    InvalidAnnotation,
    PodAnnotations,
    image_version,
    log_directory,
    parse_annotations,
    parse_inject,
)
from pillion.kube.jsonpatch import json_patch
from pillion.kube.podshape import shape_problem
from pillion.kube.sidecarconfig import (
    DATA_DIR,
    SECRETS_DIR,
    AppMetrics,
    SecretAccess,
    generated_config,
    vault_subdirectory,
)
from pillion.kube.vaultk8s import EXTRA_SECRET_DIR, TLS_DIR, VaultPod

__all__ = ["Decision", "InjectSettings", "InvalidAnnotation", "inject_pod", "json_patch"]

STATUS = PREFIX + "status"
VERSION = PREFIX + "version"
REVISION_LABEL = PREFIX + "rev"
DEFAULT_REVISION = "default"
GENERATED_CONFIG = PREFIX + "generated-config"
PROTECTED_NAMESPACES = frozenset({"kube-system", "kube-public"})
_PROMETHEUS = ("scrape", "port", "path")


@dataclass(frozen=True)
class InjectSettings:
    """The injector's defaults; pod annotations override the per-pod ones."""

    image: str = f"ghcr.io/pillion/pillion:{__version__}"  # pinned: never :latest
    injector_namespace: str = "pillion-system"
    # Which pods this injector takes: with `default`, those no `pillion.dev/rev` label
    # names; with a revision, those labelled `pillion.dev/rev=<it>` (a namespace so
    # labelled is routed here by the webhook configuration's selectors).
    revision: str = DEFAULT_REVISION
    native_sidecar: bool = True  # `pillion.dev/native-sidecar: "false"` selects classic mode
    default_inject: bool = False  # when neither the namespace label nor the pod says
    force_host_network: bool = False
    cpu_request: str = "10m"
    memory_request: str = "64Mi"
    cpu_limit: str | None = None  # no CPU limit by default: throttling a proxy adds latency
    memory_limit: str | None = "256Mi"
    app_port: int = 8080  # the app's port when `pillion.dev/app-port` is absent
    vault_address: str = "https://vault.vault.svc:8200"
    vault_role: str | None = None  # default: the pod's service account name


@dataclass(frozen=True)
class Decision:
    injected: bool
    reason: str
    pod: dict[str, Any]


def inject_pod(
    pod: Mapping[str, Any],
    settings: InjectSettings,
    namespace: str,
    namespace_labels: Mapping[str, str] | None = None,
    prestop_token: str | None = None,
    tag: str | None = None,
) -> Decision:
    """Inject Pillion into ``pod`` if the policy says so; never mutates ``pod``.
    With ``prestop_token`` (random, per pod: whoever holds it can drain the pod),
    the app containers get a preStop hook that drains Pillion's inbound traffic
    before they are signalled. ``tag`` is the revision tag the request came through
    (a pod labelled ``pillion.dev/rev=<tag>`` is this injector's too)."""
    result: dict[str, Any] = copy.deepcopy(dict(pod))
    problem = shape_problem(result)
    if problem is not None:  # not a pod Kubernetes would take: left as it is
        return Decision(False, f"malformed pod: {problem}", result)
    annotations: dict[str, str] = dict((result.get("metadata") or {}).get("annotations") or {})
    if _already_injected(annotations.get(STATUS)):
        return Decision(False, "already injected", result)
    wanted: PodAnnotations | None = None
    try:
        reason = _skip_reason(result, annotations, settings, namespace, namespace_labels or {})
        if reason is None:
            wanted = parse_annotations(annotations)
            reason = _clash(result, wanted, _native(wanted, settings))
    except InvalidAnnotation as exc:
        reason = f"invalid annotation {exc}"
    if reason is None and wanted is not None:
        reason = _revision_skip(result, settings, namespace_labels or {}, tag)
    if reason is not None or wanted is None:
        reason = reason or "not injected"
        _record(result, False, reason, settings, tag)
        return Decision(False, reason, result)
    done = copy.deepcopy(result)
    _inject(done, annotations, wanted, settings, prestop_token)
    problem = _generated_problem(done)
    if problem is not None:  # what the sidecar would refuse at start: refused now
        _record(result, False, problem, settings, tag)
        return Decision(False, problem, result)
    vault = wanted.vault.report() if wanted.vault is not None else None
    _record(done, True, "injected", settings, tag, vault)
    return Decision(True, "injected", done)


def _generated_problem(pod: dict[str, Any]) -> str | None:
    """Why the config generated for ``pod`` would be refused by the sidecar, if it
    would (a safety net: the annotations were checked one by one)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(GENERATED_CONFIG)
    if text is None:
        return None
    try:
        PillionConfig.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"generated config refused: {format_path(first['loc'])}: {first['msg']}"
    return None


def revision_of(pod: Mapping[str, Any], namespace_labels: Mapping[str, str]) -> str | None:
    """The revision a pod asks for: its ``pillion.dev/rev`` label, else its
    namespace's (the pod's own wins)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    asked = labels.get(REVISION_LABEL, namespace_labels.get(REVISION_LABEL))
    return None if asked is None else str(asked)


def _revision_skip(
    pod: dict[str, Any],
    settings: InjectSettings,
    namespace_labels: Mapping[str, str],
    tag: str | None,
) -> str | None:
    asked = revision_of(pod, namespace_labels)
    if asked is None or asked in (settings.revision, tag):
        # (no label the review shows: the webhook configuration's selectors routed the
        # pod here by its namespace's label, which an AdmissionReview does not carry)
        return None
    return f"{REVISION_LABEL}={asked}: revision {asked} injects it, not {settings.revision}"


def _already_injected(status: str | None) -> bool:
    try:
        return bool(status) and json.loads(status or "").get("injected") is True
    except (ValueError, AttributeError):
        return False


def _skip_reason(
    pod: dict[str, Any],
    annotations: Mapping[str, str],
    settings: InjectSettings,
    namespace: str,
    namespace_labels: Mapping[str, str],
) -> str | None:
    if namespace in PROTECTED_NAMESPACES or namespace == settings.injector_namespace:
        return f"namespace {namespace}"
    inject = parse_inject(annotations)
    label = namespace_labels.get(PREFIX + "inject")
    if inject is False:
        key = PREFIX + "inject" if PREFIX + "inject" in annotations else "vault agent-inject"
        return f"annotation {key}=false"
    if inject is None:
        if label == "disabled":
            return "namespace label pillion.dev/inject=disabled"
        if label != "enabled" and not settings.default_inject:
            return "namespace not enabled"
    if (pod.get("spec") or {}).get("hostNetwork") and not settings.force_host_network:
        return "hostNetwork"
    return None


def _native(wanted: PodAnnotations, settings: InjectSettings) -> bool:
    return settings.native_sidecar if wanted.native_sidecar is None else wanted.native_sidecar


def _ours(wanted: PodAnnotations, native: bool) -> tuple[set[str], set[str]]:
    """The container and volume names this injection adds."""
    names = {c.SIDECAR_NAME} | ({c.INIT_NAME} if wanted.capture != "none" else set())
    volumes = {c.PODINFO_VOLUME}
    volumes |= {c.CONFIG_VOLUME} if wanted.config_map else set()
    volumes |= {c.SECRETS_VOLUME} if wanted.any_secrets else set()
    if wanted.vault is not None:
        volumes |= {VAULT_TLS_VOLUME} if wanted.vault.tls_secret else set()
        volumes |= {VAULT_EXTRA_VOLUME} if wanted.vault.extra_secret else set()
    volumes |= {c.LOGS_VOLUME, c.DATA_VOLUME} if wanted.logs else set()
    volumes |= set() if native else {c.LIFECYCLE_VOLUME}
    return names, volumes


def _clash(pod: dict[str, Any], wanted: PodAnnotations, native: bool) -> str | None:
    spec = pod.get("spec") or {}
    names, volumes = _ours(wanted, native)
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if container.get("name") in names:
                return f"name clash: the pod already has a container named {container['name']}"
    for volume in spec.get("volumes") or []:
        if volume.get("name") in volumes:
            return f"name clash: the pod already has a volume named {volume['name']}"
    paths = (
        ({SECRETS_DIR} if wanted.any_secrets else set())
        | (set(wanted.vault.volume_paths()) if wanted.vault_secrets and wanted.vault else set())
        | ({log_directory(wanted.logs)} if wanted.logs else set())
        | (set() if native else {c.LIFECYCLE_DIR})
    )
    copied = wanted.vault.copy_volume_mounts if wanted.vault is not None else None
    if copied is not None and _container(spec, copied) is None:
        return (
            "invalid annotation vault.hashicorp.com/agent-copy-volume-mounts: "
            f"the pod has no container named {copied}"
        )
    for container in spec.get("containers") or []:
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPath", "").rstrip("/") in paths:
                name, path = container.get("name"), mount["mountPath"]
                return f"mount clash: container {name} already mounts {path}"
    return _volume_mount_problem(spec, wanted, paths | _sidecar_paths(wanted, native))


def _sidecar_paths(wanted: PodAnnotations, native: bool) -> set[str]:
    """Where Pillion's container mounts its own volumes."""
    return (
        {c.PODINFO_DIR}
        | ({c.CONFIG_DIR} if wanted.config_map else set())
        | ({SECRETS_DIR} if wanted.any_secrets else set())
        | ({TLS_DIR} if wanted.vault and wanted.vault.tls_secret else set())
        | ({EXTRA_SECRET_DIR} if wanted.vault and wanted.vault.extra_secret else set())
        | ({log_directory(wanted.logs), DATA_DIR} if wanted.logs else set())
        | (set() if native else {c.LIFECYCLE_DIR})
    )


def _volume_mount_problem(
    spec: dict[str, Any], wanted: PodAnnotations, taken: set[str]
) -> str | None:
    """Why ``pillion.dev/volume-mounts`` cannot be done, if it cannot."""
    names = {volume.get("name") for volume in spec.get("volumes") or []}
    for mount in wanted.volume_mounts:
        if mount.volume not in names:
            return f"volume-mounts: the pod has no volume named {mount.volume}"
        for path in taken:
            if mount.path == path or mount.path.startswith(path + "/"):
                return f"volume-mounts: Pillion mounts {path} itself"
    return None


def _record(
    pod: dict[str, Any],
    injected: bool,
    reason: str,
    settings: InjectSettings,
    tag: str | None,
    vault: dict[str, object] | None = None,
) -> None:
    """The decision, in ``pillion.dev/status``; with ``vault``, how the pod's
    vault-k8s annotations were taken (honoured, not applicable and why, unknown)."""
    decided: dict[str, object] = {
        "injected": injected,
        "reason": reason,
        "version": __version__,
        "revision": settings.revision,
    }
    if tag is not None:
        decided["tag"] = tag
    if vault is not None:
        decided["vault-k8s"] = vault
    metadata = pod.setdefault("metadata", {})
    annotations = metadata.get("annotations")
    metadata["annotations"] = {**(annotations or {}), STATUS: json.dumps(decided)}


def _app_metrics(annotations: dict[str, str], app_port: int) -> AppMetrics | None:
    """Moves the pod's Prometheus annotations to Pillion's status port, keeping the
    originals; returns the app's own endpoint if it had one to merge."""
    originals = {key: annotations.get(f"prometheus.io/{key}") for key in _PROMETHEUS}
    for key, value in originals.items():
        if value is not None:
            annotations[f"{PREFIX}original-prometheus-{key}"] = value
    annotations["prometheus.io/scrape"] = "true"
    annotations["prometheus.io/port"] = str(c.STATUS_PORT)
    annotations["prometheus.io/path"] = "/metrics"
    if (originals["scrape"] or "").lower() != "true":
        return None
    port = originals["port"]
    path = originals["path"] or "/metrics"
    chosen = int(port) if port and port.isdigit() and 0 < int(port) < 65536 else app_port
    return AppMetrics(chosen, path if path.startswith("/") else "/" + path)


def _secret_access(spec: dict[str, Any]) -> tuple[SecretAccess, int]:
    """The group that may read the rendered secrets, and the group Pillion runs as:
    the pod's ``fsGroup`` (every container has it); else the first app container's
    ``runAsGroup``, which Pillion then shares; else none (files 0444). Never gid 0."""
    pod_context = spec.get("securityContext") or {}
    fs_group = pod_context.get("fsGroup")
    if isinstance(fs_group, int) and fs_group > 0:
        return SecretAccess(fs_group), c.PROXY_UID
    apps = spec.get("containers") or [{}]
    own = (apps[0].get("securityContext") or {}).get("runAsGroup")
    group = own if own is not None else pod_context.get("runAsGroup")
    if isinstance(group, int) and group > 0:
        return SecretAccess(group), group
    return SecretAccess(None), c.PROXY_UID


def _inject(
    pod: dict[str, Any],
    annotations: dict[str, str],
    wanted: PodAnnotations,
    settings: InjectSettings,
    prestop_token: str | None,
) -> None:
    spec = pod.setdefault("spec", {})
    native = _native(wanted, settings)
    image = wanted.image or settings.image
    annotations[VERSION] = image_version(image)  # what proxy-status reports
    app_port = wanted.app_port or _declared_port(spec) or settings.app_port
    app_metrics = _app_metrics(annotations, app_port)
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = [{"name": c.PODINFO_VOLUME, "mountPath": c.PODINFO_DIR}]
    app_mounts: list[dict[str, Any]] = []
    access, sidecar_group = _secret_access(spec)
    if wanted.config_map:
        config_path = f"{c.CONFIG_DIR}/pillion.yaml"
        volumes.append({"name": c.CONFIG_VOLUME, "configMap": {"name": wanted.config_map}})
        mounts.append({"name": c.CONFIG_VOLUME, "mountPath": c.CONFIG_DIR, "readOnly": True})
    else:
        config_path = f"{c.PODINFO_DIR}/pillion.yaml"
        role = wanted.vault_role or settings.vault_role or spec.get("serviceAccountName")
        annotations[GENERATED_CONFIG] = generated_config(
            wanted,
            app_port,
            app_metrics,
            wanted.vault_address or settings.vault_address,
            role or "default",
            access,
        )
    volumes.append(c.podinfo_volume(generated=not wanted.config_map))
    vault_mounts: list[dict[str, Any]] = []  # where apps written for vault-k8s look
    if wanted.any_secrets:
        volumes.append({"name": c.SECRETS_VOLUME, "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": c.SECRETS_VOLUME, "mountPath": SECRETS_DIR})
        app_mounts.append({"name": c.SECRETS_VOLUME, "mountPath": SECRETS_DIR, "readOnly": True})
    if wanted.vault is not None:
        vault_mounts = _vault_mounts(wanted.vault) if wanted.vault_secrets else []
        volumes += _vault_volumes(wanted.vault)
        mounts += _vault_sidecar_mounts(wanted.vault, spec)
    if wanted.logs:
        directory = log_directory(wanted.logs)
        volumes.append({"name": c.LOGS_VOLUME, "emptyDir": {}})
        volumes.append({"name": c.DATA_VOLUME, "emptyDir": {}})
        mounts.append({"name": c.LOGS_VOLUME, "mountPath": directory, "readOnly": True})
        mounts.append({"name": c.DATA_VOLUME, "mountPath": DATA_DIR})
        app_mounts.append({"name": c.LOGS_VOLUME, "mountPath": directory})
    env: list[dict[str, Any]] = []
    app_env: list[dict[str, Any]] = []
    if not native:  # nothing stops a classic sidecar: the app says it is done with a file
        exit_file = {"name": "PILLION_EXIT_FILE", "value": c.EXIT_FILE}
        volumes.append({"name": c.LIFECYCLE_VOLUME, "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": c.LIFECYCLE_VOLUME, "mountPath": c.LIFECYCLE_DIR})
        app_mounts.append({"name": c.LIFECYCLE_VOLUME, "mountPath": c.LIFECYCLE_DIR})
        env.append(exit_file)
        app_env.append(exit_file)
    if prestop_token is not None:
        env.append({"name": "PILLION_PRESTOP_TOKEN", "value": prestop_token})
    token = _service_account_mount(spec)
    if token is not None:
        mounts.append(token)
    for extra in wanted.volume_mounts:
        mount = {"name": extra.volume, "mountPath": extra.path}
        mounts.append({**mount, "readOnly": True} if extra.read_only else mount)
    apps: list[dict[str, Any]] = spec.setdefault("containers", [])
    chosen = wanted.vault.containers if wanted.vault is not None else None
    for container in apps:
        theirs = vault_mounts if chosen is None or container.get("name") in chosen else []
        container["volumeMounts"] = [
            *(container.get("volumeMounts") or []),
            *app_mounts,
            *theirs,
        ]
        if app_env:
            container["env"] = [*(container.get("env") or []), *app_env]
        lifecycle = container.get("lifecycle") or {}
        if prestop_token is not None and "preStop" not in lifecycle:  # theirs is kept
            container["lifecycle"] = {**lifecycle, "preStop": c.prestop_hook(prestop_token)}
    sidecar = c.sidecar_container(
        c.SidecarSpec(
            image=image,
            config_path=config_path,
            native=native,
            resources=_resources(wanted, settings),
            mounts=mounts,
            app_container=str(apps[0].get("name", "app")) if apps else "app",
            group=sidecar_group,
            env=env,
        )
    )
    init = (
        [
            c.init_container(
                image,
                wanted.capture,
                wanted.exclude_inbound_ports,
                wanted.exclude_outbound_ports,
                wanted.exclude_outbound_cidrs,
            )
        ]
        if wanted.capture != "none"
        else []
    )
    existing_init = list(spec.get("initContainers") or [])
    if native and vault_mounts:  # as vault-k8s: its init container renders before them
        for container in existing_init:
            container["volumeMounts"] = [*(container.get("volumeMounts") or []), *vault_mounts]
    if wanted.vault is not None and wanted.vault.share_process_namespace is not None:
        spec["shareProcessNamespace"] = wanted.vault.share_process_namespace
    if native:
        spec["initContainers"] = [*init, sidecar, *existing_init]
    else:
        if init or existing_init:
            spec["initContainers"] = [*init, *existing_init]
        spec["containers"] = [sidecar, *apps]
    spec["volumes"] = [*(spec.get("volumes") or []), *volumes]
    pod.setdefault("metadata", {})["annotations"] = annotations


def _declared_port(spec: dict[str, Any]) -> int | None:
    """The app's port as the pod declares it: the first container's first TCP
    ``containerPort`` (``pillion.dev/app-port`` chooses another)."""
    for container in (spec.get("containers") or [])[:1]:
        for port in container.get("ports") or []:
            number = port.get("containerPort")
            if (
                port.get("protocol", "TCP") == "TCP"
                and isinstance(number, int)
                and 0 < number < 65536
            ):
                return number
    return None


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
VAULT_TLS_VOLUME = "pillion-vault-tls"
VAULT_EXTRA_VOLUME = "pillion-vault-extra"


def _container(spec: dict[str, Any], name: str) -> dict[str, Any] | None:
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if container.get("name") == name:
                return dict(container)
    return None


def _vault_mounts(vault: VaultPod) -> list[dict[str, Any]]:
    """The secrets volume where the app containers see vault-k8s' files: at the
    pod's ``secret-volume-path``, and each other path a secret names (its own
    directory of the volume, by ``subPath``)."""
    found = []
    for path in vault.volume_paths():
        mount = {"name": c.SECRETS_VOLUME, "mountPath": path, "readOnly": True}
        subdirectory = vault_subdirectory(vault, path)
        found.append({**mount, "subPath": subdirectory} if subdirectory else mount)
    return found


def _vault_volumes(vault: VaultPod) -> list[dict[str, Any]]:
    volumes = []
    if vault.tls_secret:
        volumes.append({"name": VAULT_TLS_VOLUME, "secret": {"secretName": vault.tls_secret}})
    if vault.extra_secret:
        volumes.append({"name": VAULT_EXTRA_VOLUME, "secret": {"secretName": vault.extra_secret}})
    return volumes


def _vault_sidecar_mounts(vault: VaultPod, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Pillion's own mounts for vault-k8s: ``tls-secret`` and ``agent-extra-secret``
    where vault-k8s mounts them, and ``agent-copy-volume-mounts``' container's mounts
    (but its service-account token: Pillion has its own)."""
    mounts = []
    if vault.tls_secret:
        mounts.append({"name": VAULT_TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": True})
    if vault.extra_secret:
        mounts.append({"name": VAULT_EXTRA_VOLUME, "mountPath": EXTRA_SECRET_DIR, "readOnly": True})
    source = _container(spec, vault.copy_volume_mounts) if vault.copy_volume_mounts else None
    for mount in (source or {}).get("volumeMounts") or []:
        if "serviceaccount" not in str(mount.get("mountPath", "")).lower():
            mounts.append(dict(mount))
    return mounts


def _service_account_mount(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The app containers' service-account token mount, for Pillion too (its Vault
    login reads the token). The API server adds it to every container before the
    webhooks run, so a container a webhook adds has none of its own (vault-k8s
    copies it the same way); a manifest injected before it is created has none yet,
    and the API server adds it to Pillion's container as to the others."""
    for container in spec.get("containers") or []:
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPath", "").rstrip("/") == SERVICE_ACCOUNT_DIR:
                return {"name": mount["name"], "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}
    return None


def _resources(wanted: PodAnnotations, settings: InjectSettings) -> dict[str, dict[str, str]]:
    requests = {
        "cpu": wanted.cpu_request or settings.cpu_request,
        "memory": wanted.memory_request or settings.memory_request,
    }
    limits = {
        key: value
        for key, value in (
            ("cpu", wanted.cpu_limit or settings.cpu_limit),
            ("memory", wanted.memory_limit or settings.memory_limit),
        )
        if value is not None
    }
    return {"requests": requests, "limits": limits} if limits else {"requests": requests}
