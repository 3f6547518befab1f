"""A listener's routes, compiled: for each matching rule, where its requests go.

A route sends to a named cluster, splits between weighted clusters, answers
directly, or (inbound) goes to the listener's app with the route's timeout.
"""

from __future__ import annotations

import bisect
import random
from itertools import accumulate
from typing import TYPE_CHECKING, Protocol

from pillion.config.proxy import RouteConfig
from pillion.http.request import RequestHead
from pillion.proxy.cluster import Cluster, Target
from pillion.proxy.edits import RouteSettings
from pillion.proxy.routing import RouteTable, compile_match

if TYPE_CHECKING:
    from pillion.proxy.gate import Peer

__all__ = ["CompiledRoute", "InboundRouter", "OutboundRouter", "route_table"]


class CompiledRoute:
    """A configured route, ready: where its requests go, what changes on the way."""

    __slots__ = ("cluster", "fixed", "settings", "split", "weights")

    def __init__(
        self,
        index: int,
        config: RouteConfig,
        clusters: dict[str, Cluster],
        default: Target | None,
        default_cluster: Cluster | None,
    ) -> None:
        direct = config.direct_response
        self.settings = RouteSettings.from_route(config.name or str(index), config)
        self.cluster: Cluster | None = None
        self.fixed: Target | None = None
        self.split: list[Cluster] = []
        self.weights: list[int] = []
        if config.weighted_clusters:
            self.split = [clusters[w.cluster] for w in config.weighted_clusters]
            self.weights = list(accumulate(w.weight for w in config.weighted_clusters))
        elif direct is not None:
            self.fixed = Target(None, 0.0, b"", route=self.settings)
        elif config.cluster is not None:
            self.cluster = clusters[config.cluster]
        elif default_cluster is not None:
            self.cluster = default_cluster
        else:
            assert default is not None  # config validation: outbound routes name a cluster
            timeout = config.timeout if config.timeout is not None else default.request_timeout
            self.fixed = Target(
                default.pool,
                timeout,
                default.host,
                route=self.settings,
                retries=default.retries,
            )

    def resolve(self, head: RequestHead) -> Target:
        if self.fixed is not None:
            return self.fixed
        cluster = self.cluster
        if self.split:
            # weights are cumulative: the first above a random point in their range
            point = random.randrange(self.weights[-1])  # noqa: S311 - traffic, not secrets
            cluster = self.split[bisect.bisect_right(self.weights, point)]
        assert cluster is not None
        return cluster.target(head.host, self.settings)


def route_table(
    routes: list[RouteConfig],
    clusters: dict[str, Cluster],
    default: Target | None,
    default_cluster: Cluster | None,
) -> RouteTable[CompiledRoute] | None:
    if not routes:
        return None
    return RouteTable(
        [
            (
                compile_match(route.match),
                CompiledRoute(index, route, clusters, default, default_cluster),
            )
            for index, route in enumerate(routes)
        ]
    )


class InboundRouter:
    """An inbound listener's router (the gate's ``Router``): the first matching
    route's target; with no routes, the app."""

    __slots__ = ("_default", "_routes")

    def __init__(self, routes: RouteTable[CompiledRoute] | None, default: Target) -> None:
        self._routes = routes
        self._default = default

    def __call__(self, head: RequestHead, peer: Peer) -> Target | None:
        routes = self._routes
        if routes is None:
            return self._default
        found = routes.match(head.method, head.target, head.headers)
        return found.resolve(head) if found is not None else None


class Destinations(Protocol):
    """Where captured connections were sent (``transparent.OriginalDestinations``)."""

    def target(self, destination: tuple[str, int], *, http2: bool = False) -> Target: ...


class OutboundRouter:
    """An outbound listener's router: a route's target, else the cluster fixed for
    the listener or named by the host, else (for a captured connection) the
    destination the app sent it to."""

    __slots__ = ("_by_host", "_destinations", "_fixed", "_routes")

    def __init__(
        self,
        routes: RouteTable[CompiledRoute] | None,
        fixed: Cluster | None,
        by_host: dict[bytes, Cluster],
        destinations: Destinations | None,
    ) -> None:
        self._routes = routes
        self._fixed = fixed
        self._by_host = by_host
        self._destinations = destinations

    def __call__(self, head: RequestHead, peer: Peer) -> Target | None:
        routes = self._routes
        if routes is not None:
            found = routes.match(head.method, head.target, head.headers)
            if found is not None:
                return found.resolve(head)
        elif self._fixed is not None:
            return self._fixed.target(head.host)
        else:
            host = head.host.lower()
            if not host.startswith(b"["):
                host = host.rsplit(b":", 1)[0]
            cluster = self._by_host.get(host)
            if cluster is not None:
                return cluster.target(head.host)
        destinations = self._destinations
        original = peer.original
        if original is not None and destinations is not None:
            return destinations.target(original, http2=head.version == b"2")
        return None
