"""The time limits of a listener, and of the requests to a cluster."""

from __future__ import annotations

from pydantic import Field

from pillion.config.types import Section
from pillion.config.units import Duration

__all__ = ["Timeouts"]


class Timeouts(Section):
    """Time limits of a listener; each failure has its status and response flag."""

    header: Duration = Field(
        10.0,
        description="Longest time to receive a request's headers once it has begun; then "
        "408 and close (slowloris). Default 10s: a real client sends headers at once.",
    )
    connect: Duration = Field(
        2.0,
        description="Longest time to connect to the upstream; then 503 with flag UF. "
        "Default 2s: the app is on localhost, a slow connect means it is overloaded.",
    )
    request: Duration = Field(
        60.0,
        description="Longest time from a request's headers to the end of the response; "
        "then 504 with flag UT (or a reset if the response had begun; a gRPC call gets "
        "DEADLINE_EXCEEDED). 0: none, for streams meant to live long (gRPC streaming, "
        "server-sent events); a gRPC call's own `grpc-timeout` still applies. Default 60s.",
    )
    idle: Duration = Field(
        60.0,
        description="How long a client's keep-alive connection may sit idle before it is "
        "closed. Default 60s, below the 350s of common cloud load balancers' own "
        "keep-alive, and near nginx's 75s.",
    )
    upstream_idle: Duration = Field(
        4.0,
        description="How long a pooled connection to the app may sit idle before Pillion "
        "closes it. Default 4s: below the 5s keep-alive of Node.js, uvicorn and gunicorn, "
        "so Pillion never reuses a connection the app is closing (the cause of sporadic "
        "502s behind proxies with long upstream keep-alive).",
    )
