"""Models of the ``config`` section: watched files that notify the app when their
content changes (the configmap-reload role), and files rendered from local
sources (mounted ConfigMaps, files, environment variables)."""

from __future__ import annotations

import warnings

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from pillion.config.secrets import SecretSourceConfig, TemplateConfig, check_templates
from pillion.config.types import Section
from pillion.config.units import Duration

__all__ = ["ConfigWatchConfig", "WaitConfig", "WatchConfig"]

_NAME = r"^[a-z0-9][a-z0-9_-]*$"
_LOCAL_SOURCES = ("file", "env", "directory")  # no Vault: that is the secrets section


class WaitConfig(Section):
    """How long changes settle before anyone is told: `min` after the last change,
    but never more than `max` after the first of a stream of changes."""

    min: Duration = Field(
        1.0,
        description="Quiet time after the last change. Default 1s: a ConfigMap update is "
        "one atomic swap, but an editor or a script may write several files in a row.",
    )
    max: Duration = Field(
        10.0,
        description="Longest delay after the first change, however often files keep "
        "changing. Default 10s.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> WaitConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}s) is longer than max ({self.max:g}s)")
        return self


# `validate` is the key people write; here it is a field, which hides BaseModel's
# deprecated `validate` class method of the same name on this model only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)

    class WatchConfig(Section):
        """Files and directories whose content is watched: when it changes (and settles,
        and passes `validate`), the `notify` targets are told."""

        name: str = Field(pattern=_NAME, description="Its name in metrics and logs.")
        paths: list[str] = Field(
            min_length=1,
            description="Absolute paths of files and directories. A directory's content "
            "is every file below it, read through symlinks, hidden names (`.` first, "
            "e.g. a ConfigMap's `..data`) skipped. A path that does not exist counts as "
            "empty until it appears.",
        )
        wait: WaitConfig = Field(
            default_factory=WaitConfig, description="How long changes settle first."
        )
        validate: list[str] | None = Field(  # type: ignore[assignment]
            None,
            min_length=1,
            description="A command run before notifying (e.g. `[nginx, -t]`); when it exits "
            "non-zero or times out, the change is not notified (logged with the command's "
            "output, counted in `pillion_config_validation_failures_total`) and the next "
            "change tries again. Default: none.",
        )
        validate_timeout: Duration = Field(
            30.0, gt=0, description="`validate` is killed after this long. Default 30s."
        )
        notify: list[str] = Field(
            min_length=1, description="Targets of `app.notify` told when the content changes."
        )

        @model_validator(mode="after")
        def _absolute_paths(self) -> WatchConfig:
            errors = [
                _error(("paths", index), path, "the path must be absolute")
                for index, path in enumerate(self.paths)
                if not path.startswith("/")
            ]
            if errors:
                raise ValidationError.from_exception_data(type(self).__name__, errors)
            return self


class ConfigWatchConfig(Section):
    """Config files the app reads: watched (notify the app when their content really
    changes, not on a touch) and rendered from local sources. Templates render
    before the app starts: `/healthz/started` passes once each has rendered."""

    sources: list[SecretSourceConfig] = Field(
        default_factory=list,
        description="Where templates' values come from: `file`, `env` or `directory` (a "
        "mounted ConfigMap) only; read again as soon as their content changes "
        "(`refresh` does not apply). Templates see them as `config.<name>.<key>`.",
    )
    templates: list[TemplateConfig] = Field(
        default_factory=list,
        description="Files rendered from `sources`; written when their content changes, "
        "then their `notify` targets are told (not on the first render).",
    )
    watch: list[WatchConfig] = Field(
        default_factory=list, description="Files and directories watched for changes."
    )
    wait: WaitConfig = Field(
        default_factory=WaitConfig,
        description="How long source changes settle before templates render again.",
    )
    scan_interval: Duration = Field(
        1.0,
        gt=0,
        description="How often watched paths and sources are hashed again, on top of "
        "inotify (which notices most changes at once, and is all there is to polling "
        "where inotify is unavailable). Default 1s.",
    )

    @model_validator(mode="after")
    def _references(self) -> ConfigWatchConfig:
        errors = [
            _error(("sources", index, "type"), source.type,
                   f"a config source is file, env or directory, not {source.type}")
            for index, source in enumerate(self.sources)
            if source.type not in _LOCAL_SOURCES
        ] + [
            _error(("sources", index, "refresh"), source.refresh,
                   "config sources are read again when they change; refresh does not apply")
            for index, source in enumerate(self.sources)
            if not source.is_default("refresh")
        ]  # fmt: skip
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        check_templates(
            self.sources,
            self.templates,
            ("watch", [w.name for w in self.watch]),
            variable="config",
        )
        return self


def _error(loc: tuple[str | int, ...], value: object, message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("config_value", message), loc=loc, input=value)
