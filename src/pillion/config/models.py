"""Pydantic models of ``pillion.yaml``: one model per section, every field documented.

These models are the single source of the JSON Schema (``pillion schema``) and of
the reference in ``docs/configuration.md``; never describe a field anywhere else.
Sections for features still to come are typed and empty, and disabled when absent.
"""

from __future__ import annotations

import os
import typing
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from pillion import __version__
from pillion.config.configwatch import ConfigWatchConfig
from pillion.config.errors import ConfigIssue
from pillion.config.exporters import ExportersConfig
from pillion.config.logs import LogsConfig
from pillion.config.proxy import ProxyConfig
from pillion.config.secrets import NotifyTargetConfig, SecretsConfig
from pillion.config.tracing import TracingConfig
from pillion.config.types import Listen, ListenAddress, Port, Secret, Section, is_loopback
from pillion.config.units import Duration, Size

__all__ = [
    "AdminConfig",
    "AppConfig",
    "ConfigWatchConfig",
    "ExportersConfig",
    "LifecycleConfig",
    "LogLevel",
    "LogsConfig",
    "PillionConfig",
    "ProxyConfig",
    "SecretsConfig",
    "StatusConfig",
    "TelemetryConfig",
    "TracingConfig",
    "model_in",
]

LogLevel = Literal["debug", "info", "warning", "error"]


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``X``, ``X | None``, ``list[X]`` or ``dict[str, X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def _environment(name: str) -> str | None:
    """A default taken from the environment: the injector passes per-pod values to
    Pillion this way, whatever the config (generated or a ConfigMap)."""
    return os.environ.get(name) or None


def _secret_environment(name: str) -> SecretStr | None:
    value = _environment(name)
    return SecretStr(value) if value is not None else None


class AppConfig(Section):
    """The application container Pillion sits beside."""

    host: str = Field(
        "127.0.0.1",
        description="Address the app listens on inside the pod. Default: loopback, "
        "because the app shares the pod's network namespace with Pillion.",
    )
    port: Port = Field(
        8080,
        description="TCP port the app listens on. Default 8080, the most common app port.",
    )
    protocol: Literal["http1", "http2", "auto"] = Field(
        "http1",
        description="The HTTP version the inbound proxy speaks to the app: `http2` "
        "(cleartext, prior knowledge: a gRPC server), `http1`, or `auto` (HTTP/1.1, "
        "since the app is reached in cleartext: ALPN needs TLS). Default http1.",
    )
    health: str | None = Field(
        None,
        pattern=r"^/",
        description="HTTP path on the app polled once a second; while it does not answer "
        "2xx, `/healthz/ready` fails. Default: none (the app's readiness is not checked).",
    )
    notify: list[NotifyTargetConfig] = Field(
        default_factory=list,
        description="Ways to tell the app that its secrets or config files changed, "
        "named by `notify` in templates and watches.",
    )

    @field_validator("notify")
    @classmethod
    def _distinct_targets(cls, value: list[NotifyTargetConfig]) -> list[NotifyTargetConfig]:
        names = [target.name for target in value]
        if len(set(names)) != len(names):
            raise ValueError("notify target names must be distinct")
        return value


class AdminConfig(Section):
    """Admin server: config dump, drain, log level. Loopback only unless allowed."""

    allow_remote: bool = Field(
        False,
        description="Allow `listen` on a non-loopback address. Default false: the admin "
        "API can drain and stop Pillion, so only the pod itself should reach it.",
    )
    listen: Listen = Field(
        ListenAddress("127.0.0.1", 15000),
        description="Address of the admin server. Default 127.0.0.1:15000 (the Envoy "
        "admin port convention, loopback only).",
    )
    auth_token: Secret | None = Field(
        None,
        description="If set, every admin request must carry `Authorization: Bearer "
        "<token>`. Default: none, as the admin server is loopback only. Set it when "
        "`allow_remote` is true (required then).",
        validate_default=True,
    )
    max_request_size: Size = Field(
        64 * 1024,
        description="Largest admin request body in bytes; larger ones get 413. "
        "Default 64KiB: admin requests are tiny JSON documents.",
    )

    @field_validator("auth_token")
    @classmethod
    def _token_when_remote(cls, value: Secret | None, info: ValidationInfo) -> Secret | None:
        if value is None and info.data.get("allow_remote", False):
            raise ValueError(
                "required when admin.allow_remote is true: the admin API can drain and "
                "stop the pod, so it is never open to the network without a token"
            )
        return value

    @field_validator("listen")
    @classmethod
    def _loopback_unless_allowed(cls, value: ListenAddress, info: ValidationInfo) -> ListenAddress:
        if not info.data.get("allow_remote", False) and not is_loopback(value.host):
            raise ValueError(
                f"admin must listen on a loopback address, not {value.host!r}; "
                "set admin.allow_remote: true (and admin.auth_token) to expose it"
            )
        return value


class StatusConfig(Section):
    """Status server: kubelet probes and the merged Prometheus `/metrics`."""

    listen: Listen = Field(
        ListenAddress("0.0.0.0", 15020),
        description="Address of the status server. Default 0.0.0.0:15020: the kubelet "
        "and Prometheus reach it on the pod IP.",
    )
    max_request_size: Size = Field(
        4 * 1024,
        description="Largest status request body in bytes; larger ones get 413. "
        "Default 4KiB: probes and scrapes send no body.",
    )
    prestop_token: Secret | None = Field(
        default_factory=lambda: _secret_environment("PILLION_PRESTOP_TOKEN"),
        description="Turns on `GET /prestop`, the app containers' preStop hook: it must "
        "carry `Authorization: Bearer <token>`; Pillion then stops taking inbound "
        "traffic, and answers once the requests in flight are done, so the app is "
        "signalled only after. Default: the `PILLION_PRESTOP_TOKEN` environment "
        "variable (the injector sets it, and the hook), else off (404).",
    )


class LifecycleConfig(Section):
    """Start-up and shut-down behaviour of the whole sidecar."""

    drain_timeout: Duration = Field(
        20.0,
        description="Longest time to finish in-flight work after SIGTERM, SIGINT or "
        "`POST /quitquitquit` before exiting. Default 20s: below Kubernetes' default "
        "terminationGracePeriodSeconds of 30s, so Pillion exits before the kubelet's SIGKILL.",
    )
    exit_file: str | None = Field(
        default_factory=lambda: _environment("PILLION_EXIT_FILE"),
        description="A file that, once it exists, means the app has finished: Pillion "
        "drains and exits 0, so a Job's pod completes in classic mode (where nothing "
        "stops the sidecar). Checked twice a second. Default: the `PILLION_EXIT_FILE` "
        "environment variable (the injector sets it in classic mode), else none.",
    )
    watch_config: bool = Field(
        True,
        description="Reload the config file when its content changes, as on SIGHUP: an "
        "edit, a file renamed over it, a mounted ConfigMap's update. Noticed by inotify "
        "on its directory and by a look at its content every 2s; a touch or the same "
        "content again reloads nothing. A bad, empty or missing file is logged and the "
        "running config stays. Default true; false: only SIGHUP reloads.",
    )


class TelemetryConfig(Section):
    """Pillion's own logs (JSON lines on stderr), metrics and traces."""

    log_level: LogLevel = Field(
        "info",
        description="Lowest level of Pillion's own log records. Default info; change it "
        "at run time with `POST /logging` on the admin server.",
    )
    tracing: TracingConfig | None = Field(
        None,
        description="Spans of proxied requests, exported over OTLP/HTTP. Default: off.",
    )


FEATURES = ("proxy", "logs", "secrets", "config", "exporters")
"""The sections that turn a feature on by being present."""


# The config format this Pillion reads. A file may say which it is written for
# (`version: 1`); the injector's generated configs always do.
CONFIG_FORMAT = 1


class PillionConfig(Section):
    """The whole of `pillion.yaml`."""

    _turned_off: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _deprecations: tuple[ConfigIssue, ...] = PrivateAttr(default=())

    version: int | None = Field(
        None,
        ge=1,
        description="The config format the file is written for: 1, the only one so far. "
        "A Pillion that reads an older format refuses a newer one and says so, rather "
        "than misreading it. Default: this Pillion's format.",
    )
    app: AppConfig = Field(default_factory=AppConfig, description="The application.")
    admin: AdminConfig = Field(default_factory=AdminConfig, description="Admin server.")
    status: StatusConfig = Field(default_factory=StatusConfig, description="Status server.")
    lifecycle: LifecycleConfig = Field(
        default_factory=LifecycleConfig, description="Start-up and shut-down."
    )
    telemetry: TelemetryConfig = Field(
        default_factory=TelemetryConfig, description="Pillion's own logs and metrics."
    )
    proxy: ProxyConfig | None = Field(None, description="Proxy; disabled when absent.")
    logs: LogsConfig | None = Field(None, description="Log shipping; disabled when absent.")
    secrets: SecretsConfig | None = Field(None, description="Secrets; disabled when absent.")
    config: ConfigWatchConfig | None = Field(
        None, description="Config watching; disabled when absent."
    )
    exporters: ExportersConfig | None = Field(
        None, description="Metrics exporters; disabled when absent."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _note_turned_off(
        cls, data: Any, handler: ModelWrapValidatorHandler[PillionConfig]
    ) -> PillionConfig:
        config = handler(data)
        if isinstance(data, dict):
            config._turned_off = frozenset(
                name for name in FEATURES if name in data and data[name] is None
            )
        return config

    @field_validator("version")
    @classmethod
    def _a_format_this_pillion_reads(cls, value: int | None) -> int | None:
        if value is not None and value > CONFIG_FORMAT:
            raise ValueError(
                f"the file is written for config format {value}, of a newer Pillion; this "
                f"is Pillion {__version__}, which reads format {CONFIG_FORMAT}: run a newer "
                "sidecar image, or write the file for this format"
            )
        return value

    @property
    def deprecations(self) -> tuple[ConfigIssue, ...]:
        """The renamed keys the file still used (``ConfigIssue``s): read under their
        new names, to be logged and counted."""
        return self._deprecations

    @property
    def turned_off(self) -> frozenset[str]:
        """Features the file turns off in so many words (`proxy: null`), not by omission.

        A reload stops a running feature only when it is named here: a file that
        came up empty or half-written is not a reason to close a listener.
        """
        return self._turned_off

    @model_validator(mode="after")
    def _log_inputs_exist(self) -> PillionConfig:
        """Every `exporters.from_logs[].input` names a `logs.inputs[]` entry."""
        if self.exporters is None:
            return self
        inputs = {i.name for i in self.logs.inputs} if self.logs is not None else set()
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "unknown_log_input", "no logs.inputs[] entry named {name}", {"name": f.input}
                ),
                loc=("exporters", "from_logs", index, "input"),
                input=f.input,
            )
            for index, f in enumerate(self.exporters.from_logs)
            if f.input not in inputs
        ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @model_validator(mode="after")
    def _notify_targets_exist(self) -> PillionConfig:
        """Every `notify` names an `app.notify` target; each unknown name is reported
        at its own path (e.g. `config.watch[0].notify[1]`)."""
        known = {target.name for target in self.app.notify}
        users: list[tuple[tuple[str | int, ...], str, list[str]]] = []
        if self.secrets is not None:
            users += [(("secrets", "templates", index), f"secrets template {t.name}", t.notify)
                      for index, t in enumerate(self.secrets.templates)]  # fmt: skip
        if self.config is not None:
            users += [(("config", "templates", index), f"config template {t.name}", t.notify)
                      for index, t in enumerate(self.config.templates)]  # fmt: skip
            users += [(("config", "watch", index), f"config watch {w.name}", w.notify)
                      for index, w in enumerate(self.config.watch)]  # fmt: skip
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "unknown_notify_target",
                    "{user}: no app.notify target named {target}",
                    {"user": user, "target": name},
                ),
                loc=(*where, "notify", position),
                input=name,
            )
            for where, user, names in users
            for position, name in enumerate(names)
            if name not in known
        ]
        if self.secrets is not None and self.config is not None:
            secret_files = {t.destination for t in self.secrets.templates}
            errors += [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "destination_taken", "{destination} is also a secrets template's",
                        {"destination": t.destination},
                    ),
                    loc=("config", "templates", index, "destination"),
                    input=t.destination,
                )
                for index, t in enumerate(self.config.templates)
                if t.destination in secret_files
            ]  # fmt: skip
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self
