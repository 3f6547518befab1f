"""What the soak saw, and its verdict: the pass criteria and the last line

    soak minutes=M requests=N failed=F lost_lines=L dup_lines=D rss_start_mib=A
        rss_end_mib=B fds_start=X fds_end=Y

(one line). N and F count every request of every kind (F: failed ones, the upstream's
down windows included), L and D log lines, A and B Pillion's RSS after warm-up and
at the end, X and Y its open file descriptors at the same times.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from soak_logs import LogWriter, SyslogReceiver
from soak_pillion import Metrics, metric
from soak_proc import ProcSample
from soak_secrets import SecretFiles
from soak_traffic import Failure, Tally

GROWTH_LIMIT = 0.05  # RSS and fds may grow less than 5 % after warm-up
# Resource samples this soon after the upstream came back are left out: its
# keep-alive pool is still filling up again, which is not growth.
SETTLE_S = 10.0
TREND_MIN_SPAN_S = 120.0


@dataclass(frozen=True)
class Reload:
    at: float
    good: bool
    result: str  # "success" or "error" (Pillion's counter that moved), or "none"
    config_ok: bool  # GET /config showed the new value (good) or the old one (bad)


@dataclass(frozen=True)
class Window:
    """The upstream down: killed at ``down``, listening again at ``up``."""

    down: float
    up: float


@dataclass
class Results:
    minutes: float
    started: float  # time.monotonic() when the traffic began
    ended: float
    warmup: float  # seconds
    grace: float
    renew: float
    tallies: list[Tally]
    windows: list[Window]
    writer: LogWriter
    receiver: SyslogReceiver
    reloads: list[Reload]
    files: SecretFiles
    metrics: Metrics
    samples: list[ProcSample]
    pillion_exit: int | None
    pillion_log: Path
    hot_path: str


# --- computations ----------------------------------------------------------------------


def while_down(failure: Failure, windows: list[Window], grace: float) -> bool:
    return any(failure.started <= w.up + grace and failure.ended >= w.down for w in windows)


def settled_samples(r: Results) -> list[ProcSample]:
    """The samples after warm-up, without those taken while the upstream was down or
    within ``SETTLE_S`` after."""
    after = r.started + r.warmup
    return [
        s
        for s in r.samples
        if s.at >= after and not any(w.down <= s.at <= w.up + SETTLE_S for w in r.windows)
    ]


def resource_windows(r: Results) -> tuple[list[ProcSample], list[ProcSample]]:
    """Settled samples of the start window (just after warm-up) and of the end
    window, each as long as the warm-up."""
    settled = settled_samples(r)
    start = [s for s in settled if s.at <= r.started + 2 * r.warmup]
    end = [s for s in settled if s.at >= r.ended - r.warmup]
    return start, end


def trend_per_hour(r: Results, value: Callable[[ProcSample], float]) -> float | None:
    """The least-squares slope of ``value`` over the settled samples, per hour (when
    they span two minutes at least: a shorter line says little)."""
    settled = settled_samples(r)
    if len(settled) < 3 or settled[-1].at - settled[0].at < TREND_MIN_SPAN_S:
        return None
    slope, _ = statistics.linear_regression([s.at for s in settled], [value(s) for s in settled])
    return slope * 3600


def rss_mib(samples: list[ProcSample]) -> float | None:
    """The median RSS of a window, in MiB."""
    return statistics.median(s.rss_kib for s in samples) / 1024 if samples else None


def fds(samples: list[ProcSample]) -> int | None:
    """The fewest descriptors open in a window: what stays open, whatever is in flight."""
    return min(s.fds for s in samples) if samples else None


def growth(start: float | None, end: float | None) -> float | None:
    """(end - start) / start, when both are known."""
    return (end - start) / start if start and end is not None else None


def up_failures(r: Results) -> list[Failure]:
    every = [f for t in r.tallies for f in t.failures]
    up = (f for f in every if not while_down(f, r.windows, r.grace))
    return sorted(up, key=lambda f: f.started)


def reload_counters(r: Results) -> tuple[float, float]:
    """Pillion's own count of reloads: (success, error)."""
    name = "pillion_config_reloads_total"
    return metric(r.metrics, name, result="success"), metric(r.metrics, name, result="error")


def num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# --- criteria and the last line ----------------------------------------------------------


def criteria(r: Results) -> list[tuple[str, bool, str]]:
    """(name, passed, detail) for each pass criterion."""
    up = up_failures(r)
    lost = len(r.receiver.missing(r.writer.next_seq))
    start, end = resource_windows(r)
    rss_growth = growth(rss_mib(start), rss_mib(end))
    fd_growth = growth(fds(start), fds(end))
    reloads_ok = all(
        x.config_ok and x.result == ("success" if x.good else "error") for x in r.reloads
    )
    success, error = reload_counters(r)
    good = sum(x.good for x in r.reloads)
    counted = (success, error) == (good, len(r.reloads) - good)
    lags = r.files.kv_lags()
    lag_limit = 2 * r.renew + 5
    fresh = r.files.expired_seen == 0 and all(lag <= lag_limit for lag in lags)
    return [
        (
            "no failed request while the upstream was up",
            not up,
            f"{len(up)} failed outside the down windows (+{r.grace:g}s grace)",
        ),
        ("no lost log line", lost == 0, f"{lost} lost"),
        (
            "reloads: good accepted, bad refused, old config kept",
            reloads_ok and counted,
            f"metrics success={success:g} error={error:g}, sent good={good} "
            f"bad={len(r.reloads) - good}",
        ),
        (
            "secrets kept fresh",
            fresh,
            f"certificate expired at {r.files.expired_seen} polls; KV lag max "
            f"{max(lags, default=0):.1f}s (limit {lag_limit:g}s)",
        ),
        (
            "RSS flat after warm-up",
            rss_growth is not None and rss_growth < GROWTH_LIMIT,
            f"growth {num(rss_growth, '+.1%')} (limit {GROWTH_LIMIT:.0%})",
        ),
        (
            "open fds flat after warm-up",
            fd_growth is not None and fd_growth < GROWTH_LIMIT,
            f"growth {num(fd_growth, '+.1%')} (limit {GROWTH_LIMIT:.0%})",
        ),
        (
            "Pillion stopped cleanly (exit 0 on SIGTERM)",
            r.pillion_exit == 0,
            f"exit code {r.pillion_exit}",
        ),
    ]


def last_line(r: Results) -> str:
    start, end = resource_windows(r)
    requests = sum(t.requests for t in r.tallies)
    failed = sum(len(t.failures) for t in r.tallies)
    return (
        f"soak minutes={r.minutes:g} requests={requests} failed={failed} "
        f"lost_lines={len(r.receiver.missing(r.writer.next_seq))} "
        f"dup_lines={r.receiver.duplicates()} rss_start_mib={num(rss_mib(start), '.1f')} "
        f"rss_end_mib={num(rss_mib(end), '.1f')} fds_start={num(fds(start), 'd')} "
        f"fds_end={num(fds(end), 'd')}"
    )
