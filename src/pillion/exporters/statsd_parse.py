"""StatsD lines to samples. No I/O.

A packet holds lines separated by ``\\n``; a line is ``name:value|type[|@rate][|#tags]``
and may carry several values, ``name:1|c:2|c`` (statsd_exporter's extension; not
with DogStatsD tags, whose values may hold ``:``). Types: ``c`` counter, ``g``
gauge (``+n`` / ``-n`` are deltas), ``ms`` timer, ``h`` / ``d`` histogram, ``s``
set. Tags come in four dialects, all read:

* DogStatsD: ``name:1|c|#k:v,k2:v2``
* InfluxDB: ``name,k=v,k2=v2:1|c``
* Librato: ``name#k=v,k2=v2:1|c``
* SignalFX: ``name[k=v,k2=v2]:1|c`` (the bracket may sit anywhere in the name)

Splitting (``split_packet``) leaves the name and its tags as text: the ingest
caches what they resolve to, so tags are parsed (``parse_name``) once per
distinct name, not once per sample. A problem drops the sample, never the
packet, and is tallied by reason in ``drops``.

A sample rate must be in (0, 1]: statsd_exporter reads ``@0`` as 1 and an
unreadable rate as 1, but a counter scaled by a rate nobody meant is worse than
a dropped sample, so those are dropped (``sample_rate``).
"""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = [
    "TYPES",
    "RawSample",
    "label_name",
    "metric_name",
    "observations",
    "parse_name",
    "parse_rate",
    "sample_value",
    "split_packet",
]

TYPES = frozenset({"c", "g", "ms", "h", "d", "s"})

RawSample = tuple[str, str, str, float, str]
"""``(head, value, type, rate, dogstatsd_tags)``: ``head`` is the name with any
InfluxDB, Librato or SignalFX tags still in it; the value is still text."""

_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_INVALID_METRIC = re.compile(r"[^a-zA-Z0-9_:]")
_isfinite = math.isfinite


def split_packet(text: str, out: list[RawSample], drops: Counter[str]) -> None:
    """Append the samples of every line of ``text`` to ``out``."""
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        colon = line.find(":")
        if colon <= 0:
            drops["malformed"] += 1
            continue
        head = line[:colon]
        rest = line[colon + 1 :]
        for piece in (rest,) if "|#" in rest else rest.split(":"):
            fields = piece.split("|")
            if len(fields) < 2 or fields[1] not in TYPES or not fields[0]:
                drops["malformed"] += 1
                continue
            if len(fields) == 2:
                out.append((head, fields[0], fields[1], 1.0, ""))
                continue
            rate, tags, problem = 1.0, "", ""
            for extra in fields[2:]:
                if extra[:1] == "@":
                    parsed = parse_rate(extra[1:])
                    if parsed is None:
                        problem = "sample_rate"
                        break
                    rate = parsed
                elif extra[:1] == "#" and not tags:
                    tags = extra[1:]
                else:
                    problem = "malformed"
                    break
            if problem:
                drops[problem] += 1
            else:
                out.append((head, fields[0], fields[1], rate, tags))


def parse_rate(text: str) -> float | None:
    """A sample rate in (0, 1], or None."""
    try:
        rate = float(text)
    except ValueError:
        return None
    return rate if 0.0 < rate <= 1.0 else None


def sample_value(text: str, kind: str, rate: float) -> float | None:
    """The number a sample carries, or None when it is not one (sets: their value
    is text, not read here).

    A counter's is its value over its sample rate, and never negative; a timer's
    milliseconds become seconds; a gauge's sign is kept (``+n`` / ``-n`` are
    deltas: ``text[0]`` says which) and sample rates do not apply to it.
    """
    try:
        value = float(text)
    except ValueError:
        return None
    if not _isfinite(value):
        return None
    if kind == "c":
        return value / rate if value >= 0 else None
    if kind == "ms":
        return value / 1000.0
    return value


def observations(rate: float) -> int:
    """How many observations a timer or histogram sample stands for (1 / rate)."""
    return 1 if rate == 1.0 else max(1, round(1.0 / rate))


def parse_name(head: str, dogstatsd: str) -> tuple[str, dict[str, str], int]:
    """The bare name, its labels from every tag dialect, and how many tags were
    dropped (no value, or a key that cannot be a label name)."""
    labels: dict[str, str] = {}
    dropped = 0
    start = head.find("[")
    if start != -1:
        end = head.find("]", start)
        if end != -1:
            dropped += _pairs(head[start + 1 : end], "=", labels)
            head = head[:start] + head[end + 1 :]
    cut = _first(head.find("#"), head.find(","))
    if cut != -1:
        dropped += _pairs(head[cut + 1 :], "=", labels)
        head = head[:cut]
    if dogstatsd:
        dropped += _pairs(dogstatsd, ":", labels)
    return head, labels, dropped


def _first(a: int, b: int) -> int:
    if a == -1:
        return b
    return a if b == -1 else min(a, b)


def _pairs(text: str, separator: str, labels: dict[str, str]) -> int:
    dropped = 0
    for item in text.split(","):
        if not item:
            continue
        key, found, value = item.partition(separator)
        name = label_name(key.strip()) if found else None
        if name is None:
            dropped += 1
        else:
            labels[name] = value
    return dropped


def label_name(key: str) -> str | None:
    """``key`` as a Prometheus label name (invalid characters become ``_``, a
    leading digit gets one in front), or None: empty, or reserved (``__``)."""
    name = _INVALID_LABEL.sub("_", key)
    if name[:1].isdigit():
        name = "_" + name
    if not name or name.startswith("__"):
        return None
    return name


def metric_name(name: str) -> str:
    """``name`` as a Prometheus metric name: dots and other invalid characters
    become ``_``, a leading digit gets one in front; empty stays empty."""
    escaped = _INVALID_METRIC.sub("_", name)
    return "_" + escaped if escaped[:1].isdigit() else escaped
