"""A listener's routes, compiled: for each matching rule, where its requests go.

A route sends to a named cluster, splits between weighted clusters, answers
directly, or (inbound) goes to the listener's app with the route's timeout.
"""

from __future__ import annotations

import bisect
import random
from itertools import accumulate

from pillion.config.proxy import RouteConfig
from pillion.http.request import RequestHead
from pillion.proxy.cluster import Cluster, Target
from pillion.proxy.edits import RouteSettings
from pillion.proxy.routing import RouteTable, compile_match

__all__ = ["CompiledRoute", "route_table"]


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
