"""StatsD lines to samples, read as statsd_exporter reads them. No I/O.

A packet holds lines separated by ``\\n``; a line is
``name:value|type[|@rate][|#tags][|c:container][|T<unix time>]`` (at most six
``|`` fields, none empty). Types: ``c`` counter, ``g`` gauge (``+n`` / ``-n``
are deltas), ``ms`` timer, ``h`` / ``d`` histogram, ``s`` set. A line may carry
several values:

* ``name:1|c:2|g`` (statsd_exporter's multi-metric lines), not with DogStatsD
  tags, whose values may hold ``:``;
* ``name:0.5:120|ms|#k:v`` (DogStatsD extended aggregation): each value is a
  sample with the same type, rate and tags; only ``ms``, ``h`` and ``d`` allow
  it, any other type refuses the line.

Tags come in four dialects, one per line (a line with DogStatsD tags and tags
in its name is refused, ``mixed_tags``):

* DogStatsD: ``name:1|c|#k:v,#k2:v2`` (a ``#`` in front of a tag is dropped)
* InfluxDB: ``name,k=v,k2=v2:1|c``
* Librato: ``name#k=v,k2=v2:1|c``
* SignalFX: ``name[k=v,k2=v2]:1|c`` (anywhere in the name; with only one of
  the brackets the name is kept whole, brackets and all)

The container ID (``|c:<id>``) and the DogStatsD 1.3 timestamp (``|T...``) are
read and ignored. A line that is not UTF-8 is refused (``invalid_utf8``).

Splitting (``split_packet``) leaves the name and its tags as text: the ingest
caches what they resolve to, so tags are parsed (``parse_name``) once per
distinct name, not once per sample. A problem drops the sample, never the
packet, and is tallied by reason in ``drops``.

A sample rate must be in (0, 1], and given once: statsd_exporter reads ``@0``
and an unreadable rate as 1, but a counter scaled by a rate nobody meant is
worse than a dropped sample, so those are dropped (``sample_rate``).
docs/statsd.md lists every difference from statsd_exporter.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import NamedTuple

__all__ = [
    "TYPES",
    "ParsedName",
    "RawSample",
    "decode_packet",
    "label_name",
    "metric_name",
    "observations",
    "parse_name",
    "parse_rate",
    "sample_value",
    "split_packet",
    "suffix_sample",
]

TYPES = frozenset({"c", "g", "ms", "h", "d", "s"})
AGGREGATE_TYPES = frozenset({"ms", "h", "d"})
"""The types a DogStatsD extended aggregation (several values, one type) may have."""

RawSample = tuple[str, str, str, float, str]
"""``(head, value, type, rate, dogstatsd_tags)``: ``head`` is the name with any
InfluxDB, Librato or SignalFX tags still in it; the value is still text; the
DogStatsD tags keep their leading ``#`` (a bare ``#`` is an empty tag section,
which still makes tags in the name a mix of dialects)."""

_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_INVALID_METRIC = re.compile(r"[^a-zA-Z0-9_:]")
_DASHES = re.compile(r"--+")
_isfinite = math.isfinite


def decode_packet(data: bytes, drops: Counter[str]) -> str:
    """``data`` as text, without its lines that are not UTF-8 (each counted,
    ``invalid_utf8``): statsd_exporter refuses those lines whole rather than
    guess at a name or a tag value."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    kept = []
    for line in data.split(b"\n"):
        try:
            kept.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            drops["invalid_utf8"] += 1
    return "\n".join(kept)


def split_packet(text: str, out: list[RawSample], drops: Counter[str]) -> None:
    """Append the samples of every line of ``text`` to ``out``."""
    append = out.append
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
        if "|#" in rest:
            bar = rest.find("|")
            pieces = [rest] if rest.find(":", 0, bar) == -1 else _aggregated(rest, bar)
        else:
            pieces = rest.split(":")
            if len(pieces) > 1 and "|" not in pieces[0]:
                pieces = _aggregated(rest, rest.find("|"))
        if not pieces:
            drops["malformed"] += 1
            continue
        for piece in pieces:
            bar = piece.find("|")
            if bar <= 0:  # no type, or no value
                drops["malformed"] += 1
                continue
            found = suffix_sample(piece[bar:])
            if isinstance(found, str):
                drops[found] += 1
            else:
                kind, rate, tags = found
                append((head, piece[:bar], kind, rate, tags))


def suffix_sample(suffix: str) -> tuple[str, float, str] | str:
    """``(type, rate, dogstatsd_tags)`` from what follows a (non-empty) value,
    ``|type[|@rate][|#tags]...``, or the reason the sample is dropped. The same
    for every value: the ingest reads it once per distinct line shape."""
    fields = suffix.split("|")  # fields[0] is what was before the first `|`: nothing
    count = len(fields)
    kind = fields[1]
    if kind not in TYPES:
        return "malformed"
    if count == 2:
        return (kind, 1.0, "")
    if count == 3 and fields[2][:1] == "#":
        return (kind, 1.0, fields[2])  # the usual DogStatsD line
    if count > 6:
        return "malformed"
    rate, tags = 0.0, ""
    for extra in fields[2:]:
        first = extra[:1]
        if first == "@":
            parsed = parse_rate(extra[1:])
            if parsed is None or rate:
                return "sample_rate"
            rate = parsed
        elif first == "#":
            if len(tags) <= 1:
                tags = extra
            elif len(extra) > 1:
                tags = tags + "," + extra[1:]
        elif first == "c":
            if extra[1:2] != ":" or len(extra) < 3:  # `c:<id>`: read, ignored
                return "malformed"
        elif first != "T":  # `T<unix time>`: ignored, as statsd_exporter does
            return "malformed"
    return (kind, rate or 1.0, tags)


def _aggregated(rest: str, bar: int) -> list[str]:
    """The pieces of a DogStatsD extended aggregation, ``v1:v2|type...``: each
    value with the line's type, rate and tags; none when the type allows no
    aggregation (or there is none)."""
    if bar == -1:
        return []
    suffix = rest[bar:]
    end = suffix.find("|", 1)
    if (suffix[1:] if end == -1 else suffix[1:end]) not in AGGREGATE_TYPES:
        return []
    return [value + suffix for value in rest[:bar].split(":")]


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
    """How many observations a timer or histogram sample stands for: 1 / rate,
    rounded down as statsd_exporter rounds it (``@0.35`` is 2)."""
    return 1 if rate == 1.0 else int(1.0 / rate)


class ParsedName(NamedTuple):
    """What a name with its tags resolves to."""

    name: str
    labels: dict[str, str]
    left_out: int  # tags dropped: empty, no value, or a key that is no label name
    problem: str = ""  # a drop reason for the whole sample, or ""


def parse_name(head: str, dogstatsd: str) -> ParsedName:
    """The bare name and its labels from the tag dialect the line uses.

    ``dogstatsd`` is the line's DogStatsD tag text, ``#`` first (or ``""``).
    A SignalFX block is looked for first and, when there is one, the rest of
    the name is not searched for InfluxDB or Librato tags.
    """
    labels: dict[str, str] = {}
    left_out = 0
    start = head.find("[")
    end = head.find("]", start + 1) if start != -1 else -1
    if end != -1:
        left_out = _pairs(head[start + 1 : end], "=", labels)
        head = head[:start] + head[end + 1 :]
    elif start != -1 or "]" in head:
        left_out = 1  # one bracket only: no tags, the name is kept as it is
    else:
        cut = _first(head.find("#"), head.find(","))
        if cut != -1:
            left_out = _pairs(head[cut + 1 :], "=", labels)
            head = head[:cut]
    if dogstatsd:
        if labels:
            return ParsedName(head, labels, left_out, "mixed_tags")
        left_out += _pairs(dogstatsd[1:], ":", labels, dogstatsd=True)
    return ParsedName(head, labels, left_out)


def _first(a: int, b: int) -> int:
    if a == -1:
        return b
    return a if b == -1 else min(a, b)


def _pairs(text: str, separator: str, labels: dict[str, str], dogstatsd: bool = False) -> int:
    """Read ``k<separator>v`` items, ``,`` between them, into ``labels``; how
    many were unusable. An empty item counts, unless it is the last one (a
    trailing comma), as in statsd_exporter."""
    if not text:
        return 0
    items = text.split(",")
    if not items[-1]:
        items.pop()
    dropped = 0
    for item in items:
        if dogstatsd and item[:1] == "#":
            item = item[1:]
        key, _, value = item.partition(separator)
        name = label_name(key) if value else None
        if name is None:
            dropped += 1
        else:
            labels[name] = value
    return dropped


def label_name(key: str) -> str | None:
    """``key`` as a Prometheus label name, escaped as statsd_exporter escapes
    names (see ``metric_name``), or None: empty, or reserved (``__``)."""
    if "--" in key:
        key = _DASHES.sub("-", key)
    name = _INVALID_LABEL.sub("_", key)
    if name[:1].isdigit():
        name = "_" + name
    if not name or name.startswith("__"):
        return None
    return name


def metric_name(name: str) -> str:
    """``name`` as a Prometheus metric name, escaped as statsd_exporter's
    ``EscapeMetricName`` does: a run of ``-`` becomes one ``_``, every other
    invalid character (``.`` included, one by one) becomes ``_``, and a leading
    digit gets one in front; empty stays empty. ``:`` is kept: a name from the
    wire never holds one, a mapped name may."""
    if "--" in name:
        name = _DASHES.sub("-", name)
    escaped = _INVALID_METRIC.sub("_", name)
    return "_" + escaped if escaped[:1].isdigit() else escaped
