"""The access log of the proxy: where it goes, which fields, how often."""

from __future__ import annotations

import typing
from typing import Literal

from pydantic import Field, field_validator

from pillion.config.types import Section
from pillion.config.units import Duration

__all__ = ["ACCESS_LOG_FIELDS", "AccessLogConfig", "AccessLogField"]


AccessLogField = Literal[
    "time",
    "listener",
    "client",
    "method",
    "path",
    "protocol",
    "code",
    "flags",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upstream_ms",
    "request_id",
    "traceparent",
    "user_agent",
    "route",
    "cluster",
    "upstream",
    "retries",
    "identity",
    "grpc_status",
    "grpc_message",
    "user",
]
ACCESS_LOG_FIELDS: tuple[AccessLogField, ...] = typing.get_args(AccessLogField)


class AccessLogConfig(Section):
    """The access log: one JSON line per request, written in batches."""

    path: str = Field(
        "-",
        description="File to append to, or `-` for standard output. Default `-`, as "
        "container logs are collected from stdout.",
    )
    fields: list[AccessLogField] = Field(
        list(ACCESS_LOG_FIELDS),
        description="Fields of each line, in order. Default: all of them.",
    )
    sample: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Fraction of requests logged (errors, code >= 500, are always logged). "
        "Default 1.0: every request.",
    )
    flush_interval: Duration = Field(
        0.1,
        description="Longest time a line waits before it is written. Default 100ms.",
    )

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("fields are listed more than once")
        return value
