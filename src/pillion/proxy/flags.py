"""Response flags (Envoy's vocabulary), recorded in the access log and metrics.

``-`` means none. A request can carry one flag: the first thing that went wrong.
"""

from __future__ import annotations

__all__ = ["DC", "DPE", "DT", "NONE", "NR", "RL", "UC", "UF", "UO", "UPE", "UT"]

NONE = "-"
UF = "UF"  # upstream connection failure (refused, connect timeout): 503
UT = "UT"  # upstream request timeout: 504
UC = "UC"  # upstream connection termination (reset, closed mid-response): 502
UPE = "UPE"  # upstream protocol error (malformed response): 502
DC = "DC"  # downstream connection termination (client went away)
DPE = "DPE"  # downstream protocol error (malformed or over-limit request): 4xx
DT = "DT"  # downstream timeout (request headers too slow): 408
RL = "RL"  # rate limited locally: 429
UO = "UO"  # upstream overflow: a circuit-breaker cap was reached: 503
UAEX = "UAEX"  # unauthorized: the caller's identity is not allowed: 403
NR = "NR"  # no route: no cluster for the request's host: 404
