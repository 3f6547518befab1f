"""The soak's report: tables of what happened, the failures and lost or duplicated
lines told one by one with the faults closest to them, Pillion's own warnings and
errors, the pass criteria, and last the line that ``soak_results`` describes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from soak_logs import SeqRun, seq_runs
from soak_pillion import metric
from soak_proc import ProcSample
from soak_results import (
    Reload,
    Results,
    criteria,
    fds,
    growth,
    last_line,
    num,
    reload_counters,
    resource_windows,
    rss_mib,
    trend_per_hour,
    up_failures,
    while_down,
)

SHOWN_FAILURES = 12  # failures while the upstream was up, listed one by one


# --- the tables ------------------------------------------------------------------------


def table(rows: list[list[object]]) -> str:
    """Rows of cells, the first column left-aligned, the others right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join([row[0].ljust(widths[0]), *map(str.rjust, row[1:], widths[1:])]) for row in cells
    )


def traffic_table(r: Results) -> str:
    rows: list[list[object]] = [
        ["traffic", "requests", "failed", "while down", "while up", "retried"]
    ]
    for t in r.tallies:
        down = sum(while_down(f, r.windows, r.grace) for f in t.failures)
        failed = len(t.failures)
        rows.append([t.kind, t.requests, failed, down, failed - down, t.retried])
    return table(rows)


def logs_table(r: Results) -> str:
    written = r.writer.next_seq
    lost = len(r.receiver.missing(written))
    kinds = Counter(rotation.kind for rotation in r.writer.rotations)
    return table(
        [
            ["log lines", "written", "received", "lost", "dup", "rename rot.", "copytruncate rot."],
            [
                "app.log -> syslog",
                written,
                written - lost,
                lost,
                r.receiver.duplicates(),
                kinds["rename"],
                kinds["copytruncate"],
            ],
        ]
    )


def reloads_table(r: Results) -> str:
    def row(name: str, reloads: list[Reload]) -> list[object]:
        results = Counter(x.result for x in reloads)
        configs = sum(x.config_ok for x in reloads)
        return [name, len(reloads), results["success"], results["error"], configs]

    success, error = reload_counters(r)
    return table(
        [
            ["reloads", "sent", "accepted", "refused", "/config as expected"],
            row("good (max_connections 10000/10001)", [x for x in r.reloads if x.good]),
            row("bad (max_connections 0)", [x for x in r.reloads if not x.good]),
            ["pillion_config_reloads_total", len(r.reloads), f"{success:g}", f"{error:g}", ""],
        ]
    )


def secrets_table(r: Results) -> str:
    files = r.files
    lags = files.kv_lags()
    shown = len(files.kv_written.keys() & files.kv_seen.keys())

    def count(name: str, *results: str) -> str:
        return " / ".join(f"{metric(r.metrics, name, result=result):g}" for result in results)

    return table(
        [
            [f"secrets (renewed every {r.renew:g}s)", "seen"],
            ["certificate files rendered (new content)", files.cert_changes],
            ["certificate past its end at a poll", files.expired_seen],
            ["KV versions written / seen in the file", f"{len(files.kv_written)} / {shown}"],
            ["KV version to file, max seconds", f"{max(lags):.1f}" if lags else "-"],
            [
                "token renewals ok / failed",
                count("pillion_vault_auth_total", "renewed", "renew_failed"),
            ],
            ["logins ok / failed", count("pillion_vault_auth_total", "ok", "failed")],
            ["fetches ok / failed", count("pillion_secret_fetches_total", "ok", "failed")],
            [
                "renders changed / unchanged / error",
                count("pillion_secret_renders_total", "changed", "unchanged", "error"),
            ],
            ["files missing at a poll", files.missing_seen],
        ]
    )


def resources_table(r: Results) -> str:
    start, end = resource_windows(r)
    rss = rss_mib(start), rss_mib(end)
    fd = fds(start), fds(end)
    peak_rss = max((s.rss_kib for s in r.samples), default=0) / 1024
    peak_fds = max((s.fds for s in r.samples), default=0)
    rss_trend = trend_per_hour(r, lambda s: s.rss_kib / 1024)
    fd_trend = trend_per_hour(r, lambda s: s.fds)
    return table(
        [
            ["pillion process", "after warm-up", "end", "growth", "trend per hour", "peak"],
            [
                "RSS MiB (median of window)",
                num(rss[0], ".1f"),
                num(rss[1], ".1f"),
                num(growth(*rss), "+.1%"),
                num(rss_trend, "+.1f"),
                f"{peak_rss:.1f}",
            ],
            [
                "open fds (fewest in window)",
                num(fd[0], "d"),
                num(fd[1], "d"),
                num(growth(*fd), "+.1%"),
                num(fd_trend, "+.1f"),
                peak_fds,
            ],
        ]
    )


def log_problems(path: Path) -> Counter[str]:
    """Pillion's own warning and error records, by level and message."""
    found: Counter[str] = Counter()
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            if line.strip():
                found[f"(not JSON) {line[:100]}"] += 1
            continue
        if isinstance(record, dict) and record.get("level") in ("warning", "error", "critical"):
            found[f"{record['level']}: {record.get('message')}"] += 1
    return found


def _offset(r: Results, at: float) -> str:
    return f"{at - r.started:7.1f}s"


def nearest_events(r: Results, at: float) -> str:
    """The rotation, the reload and the upstream kill closest to ``at``."""
    kinds: list[list[tuple[float, str]]] = [
        [(x.at, f"{x.kind} rotation") for x in r.writer.rotations],
        [(x.at, f"{'good' if x.good else 'bad'} reload") for x in r.reloads],
        [(w.down, "upstream kill") for w in r.windows],
    ]
    said = []
    for events in kinds:
        if events:
            when, what = min(events, key=lambda event: abs(event[0] - at))
            side = "after" if when >= at else "before"
            said.append(f"{what} {abs(when - at):.2f}s {side}")
    return "closest: " + ", ".join(said) if said else "no fault near"


def by_minute(r: Results) -> list[str]:
    """RSS (median) and open fds (fewest) of each minute of the run, to tell a steady
    climb from steps (at reloads, say) or a plateau."""
    minutes: dict[int, list[ProcSample]] = {}
    for sample in r.samples:
        minutes.setdefault(int((sample.at - r.started) // 60), []).append(sample)
    rss = " ".join(f"{rss_mib(samples):.1f}" for samples in minutes.values())
    fd = " ".join(str(fds(samples)) for samples in minutes.values())
    return [f"  RSS MiB by minute: {rss}", f"  open fds by minute: {fd}"]


def fd_changes(r: Results) -> list[str]:
    """The kinds of descriptors whose count differs between the fewest-fds samples
    of the start and end windows."""
    start, end = resource_windows(r)
    if not start or not end:
        return []
    before = min(start, key=lambda s: s.fds).kinds
    after = min(end, key=lambda s: s.fds).kinds
    changed = sorted(set(before) | set(after), key=lambda kind: after[kind] - before[kind])
    return [
        f"  open fds {after[kind] - before[kind]:+d} (after warm-up {before[kind]}, end "
        f"{after[kind]}): {kind}"
        for kind in changed
        if after[kind] != before[kind]
    ]


def seq_details(r: Results, what: str, runs: list[SeqRun]) -> list[str]:
    lines = [
        f"  {what} lines seq {run.first}-{run.last} ({run.last - run.first + 1}), the first "
        f"written at {_offset(r, run.written_at).strip()}; {nearest_events(r, run.written_at)}"
        for run in runs[:SHOWN_FAILURES]
    ]
    if len(runs) > SHOWN_FAILURES:
        lines.append(f"  ... and {len(runs) - SHOWN_FAILURES} more runs of {what} lines")
    return lines


def details(r: Results) -> list[str]:
    """The failures while up, the lost lines and Pillion's own complaints, in words."""
    lines = []
    up = up_failures(r)
    for f in up[:SHOWN_FAILURES]:
        lines.append(f"  failed while up at {_offset(r, f.started)}: {f.kind}: {f.reason}")
    if len(up) > SHOWN_FAILURES:
        lines.append(f"  ... and {len(up) - SHOWN_FAILURES} more failed while up")
    down = Counter(
        f"{f.kind}: {f.reason}"
        for t in r.tallies
        for f in t.failures
        if while_down(f, r.windows, r.grace)
    )
    for reason, count in down.most_common(SHOWN_FAILURES // 2):
        lines.append(f"  failed while down x{count}: {reason}")
    lines += by_minute(r)
    lines += fd_changes(r)
    lines += seq_details(r, "lost", seq_runs(r.receiver.missing(r.writer.next_seq), r.writer))
    lines += seq_details(r, "duplicated", seq_runs(r.receiver.duplicated(), r.writer))
    for message, count in log_problems(r.pillion_log).most_common(SHOWN_FAILURES):
        lines.append(f"  pillion log x{count}: {message[:160]}")
    return lines


def report(r: Results) -> bool:
    """Print everything; whether every criterion passed."""
    logs = logs_table(r)
    windows = ", ".join(f"{w.down - r.started:.0f}-{w.up - r.started:.0f}s" for w in r.windows)
    print(
        f"\nsoak: {r.minutes:g} minutes on 127.0.0.1; upstream down at {windows or 'never'}; "
        f"warm-up {r.warmup:.0f}s; pillion's hot path: {r.hot_path}\n"
    )
    for section in (traffic_table(r), logs, reloads_table(r), secrets_table(r), resources_table(r)):
        print(section, end="\n\n")
    notes = details(r)
    if notes:
        print("details:", *notes, sep="\n", end="\n\n")
    results = criteria(r)
    for name, passed, detail in results:
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
    print()
    print(last_line(r), flush=True)
    return all(passed for _, passed, _ in results)
