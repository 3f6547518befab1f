"""vault-k8s' (the Vault Agent injector's) pod annotations, read so that a pod
written for it gets from Pillion what it got from Vault Agent. No I/O.

Each ``vault.hashicorp.com/`` annotation is one of:

- **honoured**: Pillion does what vault-k8s does (the secrets and their templates
  in Vault Agent's Go template language, the files where vault-k8s puts them,
  their permissions and commands, the login, the Vault TLS settings, ...);
- **not applicable**: its job does not exist in Pillion (the Vault Agent
  container's image, resources, user, ...): accepted, and the reason reported;
- **refused**: the pod would not work as written (the app reads Vault Agent's
  token, a ConfigMap of Vault Agent HCL, ...): ``InvalidAnnotation`` names the
  annotation and what to write instead, and the pod is skipped.

An annotation vault-k8s does not define is reported as unknown. The report goes
into the pod's ``pillion.dev/status`` (``vault-k8s``), ``REFERENCE`` into
``docs/annotations.md``.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pillion.config.secrets import go_template_requests
from pillion.config.units import parse_duration

__all__ = [
    "DEFAULT_VOLUME_PATH",
    "PREFIX",
    "REFERENCE",
    "InvalidVaultAnnotation",
    "VaultLogin",
    "VaultPod",
    "VaultSecret",
    "markdown_table",
    "parse_vault_annotations",
]

PREFIX = "vault.hashicorp.com/"
DEFAULT_VOLUME_PATH = "/vault/secrets"
TLS_DIR = "/vault/tls"  # where vault-k8s mounts `tls-secret`
EXTRA_SECRET_DIR = "/vault/custom"  # noqa: S105  # and `agent-extra-secret`

# vault-k8s' default templates (its `agent-inject-default-template`), the path
# quoted here (vault-k8s inserts it as it is)
_DEFAULT_TEMPLATES = {
    "map": "{{ with secret %s }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}",
    "json": "{{ with secret %s }}{{ .Data | toJSON }}\n{{ end }}",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")  # Pillion's template names
_PERMS = re.compile(r"^0?[0-7]{3}$")

Support = Literal["honoured", "not applicable", "refused"]


class InvalidVaultAnnotation(ValueError):
    """A vault-k8s annotation Pillion cannot take, or takes with a bad value."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Rule:
    """How Pillion takes one vault-k8s annotation (``-<name>``: per secret)."""

    name: str
    support: Support
    why: str
    # refused only when its value is not this (e.g. `agent-inject-token: "false"` is fine)
    harmless: str | None = None


def _rules() -> tuple[Rule, ...]:
    h: Support = "honoured"
    n: Support = "not applicable"
    r: Support = "refused"
    agent = "sizes or shapes the Vault Agent container; Pillion has its own (pillion.dev/*)"
    return (
        Rule("agent-inject", h, "the same switch as pillion.dev/inject"),
        Rule("agent-inject-secret-<name>", h, "the secret, read as vault-k8s reads its path; "
             "without a template, rendered by vault-k8s' default template"),
        Rule("agent-inject-template-<name>", h, "rendered as Vault Agent renders it (Go "
             "template; what Pillion does not support refuses the pod, naming it)"),
        Rule("agent-inject-template-file-<name>", h, "a Go template file in Pillion's "
             "container (mount it with agent-copy-volume-mounts or pillion.dev/volume-mounts)"),
        Rule("agent-inject-default-template", h, "`map` (vault-k8s' default) or `json`"),
        Rule("agent-inject-file-<name>", h, "the file's name under its volume path"),
        Rule("agent-inject-perms-<name>", h, "the file's mode"),
        Rule("agent-inject-command-<name>", h, "run with `sh -c` in Pillion's container "
             "when the file changes (not after the first render: the app has not started)"),
        Rule("error-on-missing-key-<name>", h, "a missing key is an error"),
        Rule("secret-volume-path", h, "where the app containers see the files"),
        Rule("secret-volume-path-<name>", h, "where the app containers see this file"),
        Rule("preserve-secret-case", h, "file names keep their case"),
        Rule("preserve-secret-case-<name>", h, "this file's name keeps its case"),
        Rule("agent-inject-containers", h, "the containers that get the files"),
        Rule("agent-init-first", h, "Pillion renders before every init container runs"),
        Rule("agent-pre-populate", n, "Pillion renders before the app starts and keeps the "
             "files fresh, always"),
        Rule("agent-pre-populate-only", n, "Pillion renders before the app starts, and runs "
             "on for the rest of its work, keeping the files fresh"),
        Rule("template-static-secret-render-interval", h, "secrets.vault.static_secret_"
             "render_interval"),
        Rule("template-config-exit-on-retry-failure", n, "Pillion keeps the last good file "
             "and retries; the failure shows in /healthz/ready and the metrics"),
        Rule("template-max-connections-per-host", n, "one connection pool to Vault"),
        Rule("template-lease-renewal-threshold", n, "leases are renewed at 2/3 of their TTL"),
        Rule("role", h, "the kubernetes auth role"),
        Rule("auth-type", h, "`kubernetes`, `jwt` or `approle`; another is refused"),
        Rule("auth-path", h, "the auth method's mount"),
        Rule("auth-config-<param>", h, "`role`, `token-path` (kubernetes), `path` (jwt), "
             "`role-id-file-path` and `secret-id-file-path` (approle); another is refused"),
        Rule("auth-min-backoff", n, "retries start at 1s"),
        Rule("auth-max-backoff", h, "secrets.vault.max_backoff"),
        Rule("namespace", h, "the Vault namespace"),
        Rule("service", h, "the Vault address, as pillion.dev/vault-address"),
        Rule("ca-cert", h, "the CA file Pillion checks Vault's certificate with"),
        Rule("tls-secret", h, f"the Secret, mounted at {TLS_DIR} in Pillion's container"),
        Rule("tls-skip-verify", r, "Pillion always checks Vault's certificate: give its CA "
             "with ca-cert (and tls-secret)", harmless="false"),
        Rule("tls-server-name", r, "Pillion checks the name in the Vault address: use a name "
             "the certificate has"),
        Rule("client-cert", r, "Pillion does not log in to Vault with a client certificate: "
             "use the kubernetes, jwt or approle method"),
        Rule("client-key", r, "as client-cert"),
        Rule("ca-key", r, "a directory of CAs (Vault Agent's ca_path): give one CA file "
             "with ca-cert"),
        Rule("client-timeout", h, "secrets.vault.timeout"),
        Rule("client-max-retries", n, "Pillion retries with backoff until Vault answers"),
        Rule("proxy-address", r, "Pillion connects to Vault directly, not through an HTTPS "
             "proxy: exclude Vault from the proxy, or let the app's traffic go through "
             "Pillion's outbound"),
        Rule("agent-inject-token", r, "Pillion does not hand its Vault token to the app: "
             "give the app its own login, or a template that renders what it needs",
             harmless="false"),
        Rule("agent-configmap", r, "Vault Agent's own config (HCL) is not read: write its "
             "templates as annotations, or a pillion.yaml in pillion.dev/config"),
        Rule("agent-extra-secret", h, f"the Secret, mounted at {EXTRA_SECRET_DIR} in "
             "Pillion's container"),
        Rule("agent-copy-volume-mounts", h, "that container's mounts, also in Pillion's"),
        Rule("agent-share-process-namespace", h, "the pod's shareProcessNamespace (for a "
             "command that signals the app)"),
        Rule("agent-cache-enable", n, "Pillion has no Vault API listener for the app: an app "
             "that calls Vault itself needs its own login"),
        Rule("agent-cache-use-auto-auth-token", n, "no Vault API listener"),
        Rule("agent-cache-listener-port", n, "no Vault API listener"),
        Rule("agent-cache-exit-on-err", n, "no Vault API listener"),
        Rule("agent-enable-quit", n, "Pillion stops with the pod"),
        Rule("agent-revoke-on-shutdown", n, "Pillion does not revoke its token when it "
             "stops: its leases end at their TTL"),
        Rule("agent-revoke-grace", n, "as agent-revoke-on-shutdown"),
        Rule("agent-auto-auth-exit-on-err", n, "a failed login is retried with backoff"),
        Rule("agent-template-left-delim-<name>", r, "Pillion's Go templates use {{ }}: "
             "rewrite the template with them", harmless="{{"),
        Rule("agent-template-right-delim-<name>", r, "as agent-template-left-delim",
             harmless="}}"),
        Rule("agent-image", n, "Pillion's image is pillion.dev/image"),
        Rule("agent-limits-cpu", n, agent),
        Rule("agent-limits-mem", n, agent),
        Rule("agent-limits-ephemeral", n, agent),
        Rule("agent-requests-cpu", n, agent),
        Rule("agent-requests-mem", n, agent),
        Rule("agent-requests-ephemeral", n, agent),
        Rule("agent-run-as-user", n, agent),
        Rule("agent-run-as-group", n, agent),
        Rule("agent-run-as-same-user", n, agent),
        Rule("agent-set-security-context", n, agent),
        Rule("agent-json-patch", n, agent),
        Rule("agent-init-json-patch", n, agent),
        Rule("agent-service-account-token-volume-name", n, "Pillion logs in with the token "
             "the kubelet mounts in the app's container"),
        Rule("agent-disable-idle-connections", n, agent),
        Rule("agent-disable-keep-alives", n, agent),
        Rule("agent-telemetry-<param>", n, "Pillion's metrics are on its status port"),
        Rule("go-max-procs", n, agent),
        Rule("log-level", h, "Pillion's log level (trace and debug: debug; warn: warning)"),
        Rule("log-format", n, "Pillion logs JSON lines"),
        Rule("agent-inject-status", n, "vault-k8s' own marker"),
        Rule("agent-request-namespace", n, "vault-k8s' own"),
    )  # fmt: skip


REFERENCE: tuple[Rule, ...] = _rules()
_EXACT = {rule.name: rule for rule in REFERENCE if "<" not in rule.name}
_PREFIXED = [(rule.name.split("<", 1)[0], rule) for rule in REFERENCE if "<" in rule.name]


def _rule(key: str) -> Rule | None:
    short = key.removeprefix(PREFIX)
    if short in _EXACT:
        return _EXACT[short]
    matches = [rule for start, rule in _PREFIXED if short.startswith(start)]
    return max(matches, key=lambda rule: len(rule.name), default=None)  # the longest prefix


@dataclass(frozen=True)
class VaultSecret:
    """One vault-k8s secret: its Go template (inline, or a file in Pillion's
    container), rendered to ``file`` under ``volume_path`` as the app sees it."""

    name: str  # Pillion's template name
    file: str  # relative to volume_path, normalised
    volume_path: str
    template: str | None
    template_file: str | None
    mode: int | None = None
    command: str | None = None
    error_on_missing_key: bool = False


@dataclass(frozen=True)
class VaultLogin:
    method: Literal["kubernetes", "jwt", "approle"] = "kubernetes"
    mount: str | None = None
    role: str | None = None
    token_file: str | None = None  # kubernetes, jwt
    role_id_file: str | None = None  # approle
    secret_id_file: str | None = None


@dataclass(frozen=True)
class VaultPod:
    """What a pod's vault-k8s annotations ask for, and how each was taken."""

    secrets: tuple[VaultSecret, ...] = ()
    volume_path: str = DEFAULT_VOLUME_PATH
    containers: tuple[str, ...] | None = None  # None: every app container
    login: VaultLogin = VaultLogin()
    namespace: str | None = None
    ca_file: str | None = None
    tls_secret: str | None = None
    extra_secret: str | None = None
    copy_volume_mounts: str | None = None
    share_process_namespace: bool | None = None
    static_secret_render_interval: float | None = None
    max_backoff: float | None = None
    timeout: float | None = None
    log_level: str | None = None
    honoured: tuple[str, ...] = ()
    not_applicable: dict[str, str] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()

    def volume_paths(self) -> list[str]:
        """Where the app containers see the files: the pod's path, then the others."""
        custom = sorted({s.volume_path for s in self.secrets} - {self.volume_path})
        return [self.volume_path, *custom]

    def report(self) -> dict[str, object]:
        """For the pod's status: what was honoured, and what was not and why."""
        found: dict[str, object] = {"honoured": list(self.honoured)}
        if self.not_applicable:
            found["not_applicable"] = dict(self.not_applicable)
        if self.unknown:
            found["unknown"] = list(self.unknown)
        return found


def parse_vault_annotations(annotations: Mapping[str, str]) -> VaultPod | None:
    """The pod's vault-k8s annotations, or ``None`` without any; raises
    ``InvalidVaultAnnotation`` for a refused one or a bad value."""
    keys = sorted(key for key in annotations if key.startswith(PREFIX))
    if not keys:
        return None
    honoured: list[str] = []
    not_applicable: dict[str, str] = {}
    unknown: list[str] = []
    for key in keys:
        rule = _rule(key)
        value = annotations[key]
        if rule is None:
            unknown.append(key)
        elif rule.support == "refused":
            if rule.harmless is None or value.strip().lower() != rule.harmless:
                raise InvalidVaultAnnotation(key, f"not supported: {rule.why}")
            honoured.append(key)
        elif rule.support == "not applicable":
            not_applicable[key] = rule.why
        else:
            honoured.append(key)
    pod_path = _volume_path(annotations, PREFIX + "secret-volume-path") or DEFAULT_VOLUME_PATH
    containers = annotations.get(PREFIX + "agent-inject-containers")
    share = annotations.get(PREFIX + "agent-share-process-namespace")
    return VaultPod(
        secrets=_secrets(annotations, pod_path),
        volume_path=pod_path,
        containers=None
        if containers is None
        else tuple(c.strip() for c in containers.split(",") if c.strip()),
        login=_login(annotations),
        namespace=annotations.get(PREFIX + "namespace") or None,
        ca_file=annotations.get(PREFIX + "ca-cert") or None,
        tls_secret=annotations.get(PREFIX + "tls-secret") or None,
        extra_secret=annotations.get(PREFIX + "agent-extra-secret") or None,
        copy_volume_mounts=annotations.get(PREFIX + "agent-copy-volume-mounts") or None,
        share_process_namespace=None if share is None else _bool(PREFIX + "agent-share-"
                                                                  "process-namespace", share),
        static_secret_render_interval=_duration(annotations, "template-static-secret-render-"
                                                "interval"),
        max_backoff=_duration(annotations, "auth-max-backoff"),
        timeout=_duration(annotations, "client-timeout"),
        log_level=_log_level(annotations),
        honoured=tuple(honoured),
        not_applicable=not_applicable,
        unknown=tuple(unknown),
    )  # fmt: skip


def _bool(key: str, value: str) -> bool:
    """As vault-k8s reads a boolean (Go's ``strconv.ParseBool``, and empty is false)."""
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("", "0", "f", "false"):
        return False
    raise InvalidVaultAnnotation(key, f'expected "true" or "false", not {value!r}')


def _duration(annotations: Mapping[str, str], name: str) -> float | None:
    key = PREFIX + name
    value = annotations.get(key, "").strip()
    if not value:
        return None
    try:
        seconds = float(value) if value.replace(".", "", 1).isdigit() else parse_duration(value)
    except ValueError:
        problem = f"expected a duration like 30s or 5m, not {value!r}"
        raise InvalidVaultAnnotation(key, problem) from None
    if seconds <= 0:
        raise InvalidVaultAnnotation(key, f"expected a duration above zero, not {value!r}")
    return seconds


def _log_level(annotations: Mapping[str, str]) -> str | None:
    key = PREFIX + "log-level"
    value = annotations.get(key)
    if value is None:
        return None
    levels = {"trace": "debug", "debug": "debug", "info": "info", "warn": "warning",
              "warning": "warning", "error": "error"}  # fmt: skip
    if value.strip().lower() not in levels:
        raise InvalidVaultAnnotation(
            key, f"expected trace, debug, info, warn or error, not {value!r}"
        )
    return levels[value.strip().lower()]


def _volume_path(annotations: Mapping[str, str], key: str) -> str | None:
    value = annotations.get(key)
    if value is None or not value.strip():
        return None
    path = posixpath.normpath(value.strip())
    if not path.startswith("/") or path == "/" or ".." in path.split("/"):
        raise InvalidVaultAnnotation(key, f"expected an absolute directory, not {value!r}")
    return path


def _secrets(annotations: Mapping[str, str], pod_path: str) -> tuple[VaultSecret, ...]:
    """Secrets are named by ``agent-inject-secret-<name>``, ``-template-<name>`` or
    ``-template-file-<name>`` (an empty value names nothing, as in vault-k8s)."""
    declaring = (
        PREFIX + "agent-inject-secret-",
        PREFIX + "agent-inject-template-file-",
        PREFIX + "agent-inject-template-",
    )
    names: set[str] = set()
    for key, value in annotations.items():
        for start in declaring:
            if key.startswith(start):
                if value.strip():
                    names.add(key.removeprefix(start))
                break
    default_key = PREFIX + "agent-inject-default-template"
    default = annotations.get(default_key, "map").strip().lower() or "map"
    if default not in _DEFAULT_TEMPLATES:
        raise InvalidVaultAnnotation(default_key, f"expected map or json, not {default!r}")
    preserve = annotations.get(PREFIX + "preserve-secret-case", "")
    found: dict[str, VaultSecret] = {}
    for raw in sorted(names):
        secret = _secret(annotations, raw, pod_path, default, preserve)
        if secret.name in found:
            raise InvalidVaultAnnotation(
                PREFIX + "agent-inject-secret-" + raw, f"a second secret named {secret.name}"
            )
        found[secret.name] = secret
    files = [posixpath.join(s.volume_path, s.file) for s in found.values()]
    if len(set(files)) != len(files):
        raise InvalidVaultAnnotation(PREFIX + "agent-inject-file", "two secrets write one file")
    return tuple(found.values())


def _secret(
    annotations: Mapping[str, str], raw: str, pod_path: str, default: str, preserve: str
) -> VaultSecret:
    def get(name: str) -> str | None:
        value = annotations.get(f"{PREFIX}{name}-{raw}")
        return value if value is not None and value.strip() else None

    key = f"{PREFIX}agent-inject-secret-{raw}"
    name = raw.lower()
    if not _NAME.match(name):
        raise InvalidVaultAnnotation(key, "the secret's name must match [A-Za-z0-9][A-Za-z0-9_.-]*")
    keep_case = _bool(f"{PREFIX}preserve-secret-case-{raw}",
                      annotations.get(f"{PREFIX}preserve-secret-case-{raw}", preserve))  # fmt: skip
    file = get("agent-inject-file")
    relative = posixpath.normpath((file or (raw if keep_case else name)).strip().lstrip("/"))
    if relative in (".", "") or relative.startswith("../") or relative == "..":
        raise InvalidVaultAnnotation(f"{PREFIX}agent-inject-file-{raw}",
                                     f"expected a file name, not {file!r}")  # fmt: skip
    template, template_file = get("agent-inject-template"), get("agent-inject-template-file")
    if template is None and template_file is None:
        path = (annotations.get(key) or "").strip()
        template = _DEFAULT_TEMPLATES[default] % json.dumps(path)
    elif template is not None:
        template_file = None  # as vault-k8s: the inline one wins
        try:
            go_template_requests(name, template)  # what is not supported, refused now
        except ValueError as exc:
            raise InvalidVaultAnnotation(f"{PREFIX}agent-inject-template-{raw}", str(exc)) from None
    elif template_file is not None and not template_file.startswith("/"):
        problem = f"expected an absolute path, not {template_file!r}"
        raise InvalidVaultAnnotation(f"{PREFIX}agent-inject-template-file-{raw}", problem)
    perms = get("agent-inject-perms")
    if perms is not None and not _PERMS.match(perms.strip()):
        problem = f"expected an octal mode like 0440, not {perms!r}"
        raise InvalidVaultAnnotation(f"{PREFIX}agent-inject-perms-{raw}", problem)
    missing = annotations.get(f"{PREFIX}error-on-missing-key-{raw}", "")
    return VaultSecret(
        name=name,
        file=relative,
        volume_path=_volume_path(annotations, f"{PREFIX}secret-volume-path-{raw}") or pod_path,
        template=template,
        template_file=template_file,
        mode=None if perms is None else int(perms.strip(), 8),
        command=get("agent-inject-command"),
        error_on_missing_key=_bool(f"{PREFIX}error-on-missing-key-{raw}", missing),
    )


def _login(annotations: Mapping[str, str]) -> VaultLogin:
    method = (annotations.get(PREFIX + "auth-type") or "kubernetes").strip()
    if method not in ("kubernetes", "jwt", "approle"):
        raise InvalidVaultAnnotation(
            PREFIX + "auth-type",
            f"not supported: {method!r}; Pillion logs in with kubernetes, jwt or approle",
        )
    params: dict[str, str] = {}
    known = {
        "kubernetes": ("role", "token-path"),
        "jwt": ("role", "path"),
        "approle": ("role-id-file-path", "secret-id-file-path"),
    }[method]
    for key, value in annotations.items():
        if key.startswith(PREFIX + "auth-config-"):
            param = key.removeprefix(PREFIX + "auth-config-").replace("_", "-")
            if param not in known:
                raise InvalidVaultAnnotation(
                    key, f"not supported with auth-type {method}: Pillion reads "
                    f"{', '.join('auth-config-' + k for k in known)}",
                )  # fmt: skip
            params[param] = value.strip()
    if method == "jwt" and not params.get("path"):
        raise InvalidVaultAnnotation(PREFIX + "auth-config-path", "auth-type jwt needs the "
                                     "JWT's file: auth-config-path")  # fmt: skip
    if method == "approle" and not (params.get("role-id-file-path")
                                    and params.get("secret-id-file-path")):  # fmt: skip
        raise InvalidVaultAnnotation(PREFIX + "auth-config-role-id-file-path", "auth-type "
                                     "approle needs auth-config-role-id-file-path and "
                                     "auth-config-secret-id-file-path")  # fmt: skip
    mount = (annotations.get(PREFIX + "auth-path") or "").strip().strip("/")
    return VaultLogin(
        method=method,  # type: ignore[arg-type]  # checked above
        mount=mount.removeprefix("auth/") or None,
        role=params.get("role") or annotations.get(PREFIX + "role") or None,
        token_file=params.get("token-path") or params.get("path"),
        role_id_file=params.get("role-id-file-path"),
        secret_id_file=params.get("secret-id-file-path"),
    )


def markdown_table() -> list[str]:
    """The vault-k8s section of ``docs/annotations.md``."""
    lines = [
        "## vault-k8s annotations",
        "",
        "A pod written for the Vault Agent injector (`vault.hashicorp.com/...`) is",
        "injected with Pillion as it is. Each vault-k8s annotation is **honoured** (Pillion",
        "does what vault-k8s does), **not applicable** (accepted: its job does not exist in",
        "Pillion; the reason is in the pod's `pillion.dev/status`, under `vault-k8s`), or",
        "**refused** (the pod would not work as written: it is skipped, and the reason",
        "names the annotation and what to write instead). An annotation vault-k8s does not",
        "define is listed under `unknown` in the status.",
        "",
        "| annotation | Pillion | how, or why not |",
        "|---|---|---|",
    ]
    for rule in REFERENCE:
        support: str = rule.support
        if rule.harmless is not None:
            support = f"refused unless `{rule.harmless}`"
        lines.append(f"| `{PREFIX}{rule.name}` | {support} | {rule.why} |")
    return lines
