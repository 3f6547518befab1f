"""Models of the ``secrets`` section (Vault / OpenBao, and local sources rendered
into files) and of the app's notification targets (``app.notify``)."""

from __future__ import annotations

import hashlib
import re
import signal as signals
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pillion.config.redaction import credentials_twice
from pillion.config.types import HttpUrl, Secret, Section
from pillion.config.units import Duration

__all__ = [
    "SERVICE_ACCOUNT_TOKEN",
    "ExecConfig",
    "ExecTargetConfig",
    "HttpTargetConfig",
    "NotifyTargetConfig",
    "SecretSourceConfig",
    "SecretTemplateConfig",
    "SecretsConfig",
    "SignalTargetConfig",
    "TemplateConfig",
    "VaultAuthConfig",
    "VaultConfig",
    "VaultRequest",
    "check_templates",
    "go_template_requests",
]

_NAME = r"^[a-z0-9][a-z0-9_.-]*$"  # a file name may be one (database-config.txt)
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105


class SignalTargetConfig(Section):
    """Send a signal to the app's process (the pod needs `shareProcessNamespace: true`
    unless the app is Pillion's child, see `pillion exec`)."""

    process: str | None = Field(
        None, description="The process's name (its `comm`, or its command's file name)."
    )
    pid_file: str | None = Field(None, description="A file holding the process's pid.")
    signal: str = Field("HUP", description="The signal, e.g. `HUP`, `USR1`, `TERM`.")

    @model_validator(mode="after")
    def _one_way(self) -> SignalTargetConfig:
        if (self.process is None) == (self.pid_file is None):
            raise ValueError("set exactly one of process and pid_file")
        name = self.signal.upper().removeprefix("SIG")
        if not hasattr(signals.Signals, f"SIG{name}"):
            raise ValueError(f"unknown signal {self.signal!r}")
        return self


class HttpTargetConfig(Section):
    """Call the app over HTTP (e.g. a reload endpoint); 2xx is success, anything
    else is retried with backoff."""

    url: HttpUrl = Field(description="The URL.")
    method: Literal["POST", "PUT", "GET"] = Field("POST", description="The method.")
    headers: dict[str, Secret] = Field(
        default_factory=dict, description="Request headers; shown as *** everywhere."
    )
    timeout: Duration = Field(5.0, description="Longest wait for an answer. Default 5s.")
    attempts: int = Field(5, ge=1, description="Tries before giving up (counted as failed).")

    @model_validator(mode="after")
    def _one_authorization(self) -> HttpTargetConfig:
        problem = credentials_twice(self.url, self.headers)
        if problem:
            raise ValueError(problem)
        return self


class ExecTargetConfig(Section):
    """Run a command (e.g. `nginx -s reload`); exit 0 is success."""

    command: list[str] = Field(min_length=1, description="The command and its arguments.")
    timeout: Duration = Field(30.0, description="Killed after this long. Default 30s.")


class NotifyTargetConfig(Section):
    """One way to tell the app that its files changed; set exactly one of `signal`,
    `http`, `exec`."""

    name: str = Field(pattern=_NAME, description="Named by templates' and watches' `notify`.")
    signal: SignalTargetConfig | None = Field(None, description="Signal a process.")
    http: HttpTargetConfig | None = Field(None, description="Call a URL.")
    exec: ExecTargetConfig | None = Field(None, description="Run a command.")
    splay: Duration = Field(
        0.0,
        description="Wait a random time up to this long before notifying, so replicas "
        "that change together do not all restart at once. Default 0.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> NotifyTargetConfig:
        if sum(x is not None for x in (self.signal, self.http, self.exec)) != 1:
            raise ValueError("set exactly one of signal, http, exec")
        return self


class VaultAuthConfig(Section):
    """How Pillion logs in to Vault / OpenBao."""

    method: Literal["kubernetes", "jwt", "approle", "token"] = Field(
        description="`kubernetes` (the pod's service-account token), `jwt` (any token "
        "file), `approle` (role-id and secret-id files) or `token` (a token file)."
    )
    mount: str | None = Field(
        None, description="Where the auth method is mounted. Default: the method's name."
    )
    role: str | None = Field(None, description="The role, for `kubernetes` and `jwt`.")
    token_file: str | None = Field(
        None,
        description="For `token`: the Vault token; for `jwt`: the JWT; for `kubernetes`: "
        f"the service-account token (default `{SERVICE_ACCOUNT_TOKEN}`). Re-read at "
        "each login.",
    )
    role_id_file: str | None = Field(None, description="For `approle`: the role id.")
    secret_id_file: str | None = Field(None, description="For `approle`: the secret id.")

    @model_validator(mode="after")
    def _what_each_method_needs(self) -> VaultAuthConfig:
        needs: dict[str, tuple[str, ...]] = {
            "kubernetes": ("role",),
            "jwt": ("role", "token_file"),
            "approle": ("role_id_file", "secret_id_file"),
            "token": ("token_file",),
        }
        missing = [name for name in needs[self.method] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"method {self.method} needs {', '.join(missing)}")
        return self

    @property
    def token_path(self) -> str | None:
        if self.method == "kubernetes":
            return self.token_file or SERVICE_ACCOUNT_TOKEN
        return self.token_file


class VaultConfig(Section):
    """The Vault or OpenBao server."""

    address: HttpUrl = Field(description="Its URL, e.g. `https://vault.vault:8200`.")
    namespace: str | None = Field(
        None, description="The namespace (`X-Vault-Namespace`). Default: none."
    )
    ca: str | None = Field(
        None, description="CA certificate file for an `https` address. Default: system CAs."
    )
    auth: VaultAuthConfig = Field(description="How to log in.")
    timeout: Duration = Field(10.0, description="Longest wait for one request. Default 10s.")
    max_backoff: Duration = Field(
        300.0,
        gt=0,
        description="Longest wait between two tries of a failed login or fetch (from 1s, "
        "doubling, with jitter): after an outage, Pillion is back within about this "
        "long. Default 5m, as Vault Agent's auto-auth.",
    )
    static_secret_render_interval: Duration = Field(
        300.0,
        gt=0,
        description="How often the secrets a `syntax: go` template reads that have no lease "
        "(KV) are read again; leased ones are renewed. Vault Agent's "
        "`template_config.static_secret_render_interval`. Default 5m.",
    )


class SecretSourceConfig(Section):
    """Where a template's values come from; templates see them as
    `secrets.<name>.<key>` (in `config.templates`: `config.<name>.<key>`)."""

    name: str = Field(pattern=_NAME, description="Its name in templates and metrics.")
    type: Literal["kv", "dynamic", "pki", "file", "env", "directory"] = Field(
        description="`kv` (Vault KV v1 or v2), `dynamic` (a secret with a lease, e.g. "
        "`database/creds/app`), `pki` (a certificate issued by a PKI role), `file` (a "
        "JSON, YAML or dotenv file), `env` (environment variables) or `directory` (a "
        "mounted ConfigMap or Secret: a key per file)."
    )
    path: str | None = Field(
        None,
        description="`kv`: `<mount>/<path>` (e.g. `secret/app`); `dynamic`: the API path "
        "(e.g. `database/creds/app`); `pki`: `<mount>/issue/<role>`; `file`, "
        "`directory`: the local path.",
    )
    kv_version: Literal[1, 2] = Field(2, description="For `kv`: the engine's version.")
    version: int | None = Field(
        None, ge=1, description="For `kv` v2: pin this version. Default: the latest."
    )
    refresh: Duration = Field(
        300.0,
        description="For `kv`, `file` and `directory`: how often to read again. Default 5m.",
    )
    prefix: str | None = Field(
        None, description="For `env`: the variables starting with it (the key is the rest)."
    )
    common_name: str | None = Field(None, description="For `pki`: the certificate's name.")
    alt_names: list[str] = Field(default_factory=list, description="For `pki`: DNS SANs.")
    ip_sans: list[str] = Field(default_factory=list, description="For `pki`: IP SANs.")
    ttl: Duration | None = Field(
        None, description="For `pki`: the lifetime asked for. Default: the role's."
    )
    renew_at: float = Field(
        2 / 3,
        gt=0,
        lt=1,
        description="For `pki`: re-issue after this fraction of the lifetime. Default 2/3.",
    )

    @model_validator(mode="after")
    def _what_each_type_needs(self) -> SecretSourceConfig:
        if self.type == "env":
            if self.prefix is None:
                raise ValueError("type env needs prefix")
        elif self.path is None:
            raise ValueError(f"type {self.type} needs path")
        if self.type == "pki" and self.common_name is None:
            raise ValueError("type pki needs common_name")
        if self.type == "kv" and self.path is not None and "/" not in self.path.strip("/"):
            raise ValueError("a kv path is <mount>/<path>, e.g. secret/app")
        if self.version is not None and not (self.type == "kv" and self.kv_version == 2):
            raise ValueError("version pins a kv v2 secret only")
        # a key given its default says nothing (a dumped config has every key)
        foreign = [
            key
            for key in sorted(self.model_fields_set)
            if self.type not in _TYPES_OF.get(key, {self.type}) and not self.is_default(key)
        ]
        if foreign:
            raise ValueError(
                "; ".join(
                    f"{key} applies to type {' or '.join(_TYPES_OF[key])} only" for key in foreign
                )
                + f", not {self.type}"
            )
        return self


# The keys of a source that only some types read; any other key applies to all.
_TYPES_OF: dict[str, tuple[str, ...]] = {
    "path": ("kv", "dynamic", "pki", "file", "directory"),
    "kv_version": ("kv",),
    "refresh": ("kv", "file", "directory"),
    "prefix": ("env",),
    **dict.fromkeys(("common_name", "alt_names", "ip_sans", "ttl", "renew_at"), ("pki",)),
}


class TemplateConfig(Section):
    """A file rendered from sources: by a Jinja2 template (`template` or
    `template_file`, sandboxed, undefined names are errors) or, without one, by a
    built-in `format` of one source's keys."""

    name: str = Field(pattern=_NAME, description="Its name in metrics and errors.")
    destination: str = Field(pattern=r"^/", description="The file written (absolute path).")
    template: str | None = Field(
        None,
        description="An inline template; sources are `secrets.<name>.<key>` (in "
        "`config.templates`: `config.<name>.<key>`).",
    )
    template_file: str | None = Field(None, description="A template file.")
    format: Literal["dotenv", "json", "yaml", "raw"] | None = Field(
        None,
        description='Without a template: `dotenv` (KEY="value" lines), `json`, `yaml` '
        "of `source`'s keys, or `raw`: the value of `key`, as it is.",
    )
    source: str | None = Field(None, description="For `format`: the source.")
    key: str | None = Field(None, description="For `format: raw`: the key.")
    mode: int = Field(
        0o400,
        ge=0,
        le=0o777,
        description="The file's permissions, e.g. `0440` (YAML reads a leading 0 as "
        "octal). Default 0400.",
    )
    owner: int | None = Field(None, ge=0, description="The file's uid. Default: Pillion's.")
    group: int | None = Field(None, ge=0, description="The file's gid. Default: Pillion's.")
    notify: list[str] = Field(
        default_factory=list,
        description="Targets of `app.notify` told when the file's content changes.",
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _octal_text(cls, value: object) -> object:
        if isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value):
            return int(value.replace("o", ""), 8)
        return value

    @model_validator(mode="after")
    def _one_way(self) -> TemplateConfig:
        ways = [self.template, self.template_file, self.format]
        if sum(x is not None for x in ways) != 1:
            raise ValueError("set exactly one of template, template_file, format")
        if (self.format is not None) != (self.source is not None):
            raise ValueError("set `source` exactly when `format` is set")
        if (self.format == "raw") != (self.key is not None):
            raise ValueError("set `key` exactly when `format` is raw")
        return self


class SecretTemplateConfig(TemplateConfig):
    """A file rendered from sources: by a Jinja2 template (`template` or
    `template_file`, sandboxed, undefined names are errors) or, without one, by a
    built-in `format` of one source's keys. With `syntax: go`, the template is a
    Vault Agent (consul-template) one, as written for Vault Agent: it reads Vault
    itself (`{{ with secret "secret/data/app" }}{{ .Data.data.password }}{{ end }}`),
    without a `sources` entry."""

    syntax: Literal["jinja", "go"] = Field(
        "jinja",
        description="`jinja` (Pillion's: `{{ secrets.<source>.<key> }}`) or `go`: Vault "
        "Agent's Go template language as HashiCorp documents it (`secret`, `pkiCert`, "
        "`.Data.data.<key>`, `range`, `toJSON`, `base64Decode`, ...); what Vault Agent "
        "allows and Pillion does not support is refused when the config is loaded, "
        "naming the line and construct. Its secrets' leases are renewed, the others "
        "read again every `vault.static_secret_render_interval`. Default `jinja`.",
    )
    error_on_missing_key: bool = Field(
        False,
        description="For `syntax: go`: a key a secret does not have is an error (the "
        "previous file is kept) instead of printing `<no value>`, as Vault Agent's "
        "`error_on_missing_key`. Default false.",
    )
    create_directories: bool = Field(
        False,
        description="Make the destination's missing directories (0755), as Vault Agent "
        "does. Default false: a missing directory is an error.",
    )

    @model_validator(mode="after")
    def _go(self) -> SecretTemplateConfig:
        if self.syntax == "go" and self.format is not None:
            raise ValueError("syntax go renders a template: set template or template_file")
        if self.error_on_missing_key and self.syntax != "go":
            raise ValueError("error_on_missing_key applies to syntax go only")
        if self.syntax == "go" and self.template is not None:
            go_template_requests(self.name, self.template)  # refuses what is not supported
        return self


def check_templates(
    sources: list[SecretSourceConfig],
    templates: Sequence[TemplateConfig],
    *more: tuple[str, list[str]],
    variable: str = "secrets",
) -> None:
    """What a section's sources and templates must agree on: distinct names (also of
    ``more``: (kind, names) pairs), known sources, distinct destinations, and inline
    templates that compile and name only known sources (as ``<variable>.<source>``)."""
    for kind, names in (
        ("source", [s.name for s in sources]),
        ("template", [t.name for t in templates]),
        *more,
    ):
        if len(set(names)) != len(names):
            raise ValueError(f"{kind} names must be distinct")
    known = {s.name for s in sources}
    for template in templates:
        if template.source is not None and template.source not in known:
            raise ValueError(f"template {template.name}: no source named {template.source}")
    destinations = [t.destination for t in templates]
    if len(set(destinations)) != len(destinations):
        raise ValueError("two templates write the same destination")
    for template in templates:
        go = isinstance(template, SecretTemplateConfig) and template.syntax == "go"
        if template.template is not None and not go:  # a go one is checked by its model
            _check_inline(template.name, template.template, variable, known)


@dataclass(frozen=True)
class VaultRequest:
    """A ``secret`` or ``pkiCert`` call of a ``syntax: go`` template: Vault's whole
    answer for ``path``, read (GET), or with ``params`` written (PUT: a PKI issue)."""

    path: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """Its name in metrics and logs: the path, and for a write a digest of its
        parameters (they may hold a value)."""
        if not self.params:
            return f"vault:{self.path}"
        return f"vault:{self.path}#{hashlib.sha256(repr(self.params).encode()).hexdigest()[:8]}"


def go_template_requests(name: str, text: str) -> list[VaultRequest]:
    """The Vault requests of a ``syntax: go`` template, in order; ``ValueError``
    naming the template, line and construct for one that does not parse, uses what
    is not supported, or builds a secret's path when it runs."""
    from pillion.gotemplate import TemplateSyntax, parse  # loaded only when used

    try:
        parsed = parse(text)
    except TemplateSyntax as exc:
        raise ValueError(f"template {name}: {exc}") from None
    if parsed.dynamic_call is not None:
        line, function = parsed.dynamic_call
        raise ValueError(
            f"template {name}: line {line}: {function} with a path or parameter computed "
            "when the template runs is not supported: write them as quoted strings"
        )
    return [VaultRequest(path, tuple(params.items())) for path, params in parsed.secret_paths()]


# Filters the renderer adds to Jinja2's own (``pillion.render.templates``).
TEMPLATE_FILTERS = ("json", "yaml", "dotenv", "b64encode", "b64decode")


def _check_inline(name: str, text: str, variable: str, known: set[str]) -> None:
    """A template file is read when it renders; an inline one is checked here: it
    compiles, and the sources it names (``<variable>.<source>`` or
    ``<variable>["<source>"]``) exist."""
    import jinja2
    from jinja2 import meta, nodes
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    env.filters.update(dict.fromkeys(TEMPLATE_FILTERS, str))
    try:
        tree = env.parse(text)
        env.compile(tree)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template {name}: line {exc.lineno}: {exc.message}") from None
    unknown = meta.find_undeclared_variables(tree) - {variable}
    if unknown:
        raise ValueError(
            f"template {name}: {', '.join(sorted(unknown))} is not defined "
            f"(sources are {variable}.<source>.<key>)"
        )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        if not (isinstance(node.node, nodes.Name) and node.node.name == variable):
            continue
        if isinstance(node, nodes.Getattr):
            source: object = node.attr
        elif isinstance(node.arg, nodes.Const):
            source = node.arg.value
        else:
            continue
        if source not in known:
            raise ValueError(
                f"template {name}: line {node.lineno}: no source named {source} "
                f"(sources: {', '.join(sorted(known)) or 'none'})"
            )


class ExecConfig(Section):
    """`pillion exec -- CMD`: the app runs as Pillion's child, with secrets in its
    environment."""

    environment: list[str] = Field(
        default_factory=list,
        description="Templates whose rendered `KEY=value` lines (e.g. `format: dotenv`) "
        "become the child's environment variables.",
    )
    on_change: Literal["restart", "signal", "none"] = Field(
        "restart",
        description="When a rendered file changes: restart the child (needed for new "
        "environment variables), send it `signal`, or nothing.",
    )
    signal: str = Field("HUP", description="For `on_change: signal`.")
    stop_timeout: Duration = Field(
        10.0, description="On restart, how long after SIGTERM before SIGKILL. Default 10s."
    )

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        if not hasattr(signals.Signals, f"SIG{value.upper().removeprefix('SIG')}"):
            raise ValueError(f"unknown signal {value!r}")
        return value


class SecretsConfig(Section):
    """Secrets rendered into files before the app starts, and kept fresh: the
    status server's `/healthz/started` passes once every template has rendered."""

    vault: VaultConfig | None = Field(
        None,
        description="The Vault / OpenBao server, for `kv`, `dynamic` and `pki` sources and "
        "`syntax: go` templates.",
    )
    sources: list[SecretSourceConfig] = Field(
        default_factory=list,
        description="Where values come from (none needed when every template is `syntax: go`).",
    )
    templates: list[SecretTemplateConfig] = Field(min_length=1, description="The files written.")
    exec: ExecConfig = Field(
        default_factory=ExecConfig, description="For `pillion exec`: the child's environment."
    )
    init_timeout: Duration = Field(
        120.0,
        description="`pillion init` / `run --once`: how long to keep trying (logging in, "
        "fetching) before failing. Default 2m.",
    )

    @model_validator(mode="after")
    def _references(self) -> SecretsConfig:
        check_templates(self.sources, self.templates)
        unknown = [name for name in self.exec.environment
                   if name not in {t.name for t in self.templates}]  # fmt: skip
        if unknown:
            raise ValueError(f"exec.environment: no template named {', '.join(unknown)}")
        go = [t.name for t in self.templates if t.syntax == "go"]
        if not self.sources and len(go) < len(self.templates):
            raise ValueError("sources: at least one is needed (a `syntax: go` template needs none)")
        if self.vault is None:
            remote = [s.name for s in self.sources if s.type in ("kv", "dynamic", "pki")]
            if remote:
                raise ValueError(f"sources {', '.join(remote)} need `vault`")
            if go:
                raise ValueError(f"templates {', '.join(go)} (syntax go) need `vault`")
        return self
