"""Response flags (Envoy's vocabulary), recorded in the access log and metrics.

``-`` means none. A request can carry one flag: the first thing that went wrong.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DC", "DPE", "DT", "NONE", "NR", "RL", "UC", "UF", "UO", "UPE", "UT"]

NONE: Final = "-"
UF: Final = "UF"  # upstream connection failure (refused, connect timeout): 503
UT: Final = "UT"  # upstream request timeout: 504
UC: Final = "UC"  # upstream connection termination (reset, closed mid-response): 502
UPE: Final = "UPE"  # upstream protocol error (malformed response): 502
DC: Final = "DC"  # downstream connection termination (client went away)
DPE: Final = "DPE"  # downstream protocol error (malformed or over-limit request): 4xx
DT: Final = "DT"  # downstream timeout (request headers too slow): 408
RL: Final = "RL"  # rate limited locally: 429
UO: Final = "UO"  # upstream overflow: a circuit-breaker cap was reached: 503
UAEX: Final = "UAEX"  # unauthorized: the caller's identity is not allowed: 403
NR: Final = "NR"  # no route: no cluster for the request's host: 404
