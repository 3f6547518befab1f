"""A summary's quantiles over a sliding window, as client_golang (and so
statsd_exporter) computes them. No I/O; compiled with the StatsD hot path.

Each quantile ``q`` has an allowed rank error ``e``: the value reported has a rank
within ``(q - e, q + e)`` of the observations in the window. The estimate is the
targeted-quantiles stream of Cormode, Korn, Muthukrishnan and Srivastava
("Effective computation of biased quantiles over data streams", 2005), which
keeps a few hundred samples whatever the number of observations.

The window: ``max_age`` split into ``age_buckets`` streams started one step apart;
every observation goes into each of them, the oldest answers, and every
``max_age / age_buckets`` the oldest is emptied and becomes the newest. So the
answer covers between ``max_age - step`` and ``max_age`` of observations.
Observations wait in a buffer of ``buf_cap`` (or one step) before they go into the
streams; a stream sorts its own batches of 500 in before it estimates, and
answers exactly while it holds fewer than that.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["QuantileWindow"]

_BATCH: Final = 500  # a stream's own buffer, as in client_golang's streams


class _Stream:
    """One targeted-quantiles stream: samples (value, width, delta) by value."""

    __slots__ = ("batch", "count", "deltas", "targets", "values", "widths")

    def __init__(self, targets: list[tuple[float, float]]) -> None:
        self.targets = targets
        self.values: list[float] = []
        self.widths: list[float] = []
        self.deltas: list[float] = []
        self.count = 0.0  # observations merged in
        self.batch: list[float] = []  # observations not merged in yet

    def reset(self) -> None:
        self.values = []
        self.widths = []
        self.deltas = []
        self.count = 0.0
        self.batch = []

    def size(self) -> int:
        return int(self.count) + len(self.batch)

    def _allowed(self, rank: float) -> float:
        """The largest error the targets allow at ``rank``."""
        allowed = math.inf
        count = self.count
        for quantile, error in self.targets:
            if quantile * count <= rank:
                bound = 2.0 * error * rank / quantile
            else:
                bound = 2.0 * error * (count - rank) / (1.0 - quantile)
            if bound < allowed:
                allowed = bound
        return allowed

    def add(self, values: list[float]) -> None:
        self.batch.extend(values)
        if len(self.batch) >= _BATCH:
            self.merge()

    def merge(self) -> None:
        """Sort the batch in, then compress."""
        batch = self.batch
        if not batch:
            return
        batch.sort()
        values, widths, deltas = self.values, self.widths, self.deltas
        merged_values: list[float] = []
        merged_widths: list[float] = []
        merged_deltas: list[float] = []
        rank = 0.0
        index = 0
        size = len(values)
        for value in batch:
            while index < size and values[index] <= value:
                merged_values.append(values[index])
                merged_widths.append(widths[index])
                merged_deltas.append(deltas[index])
                rank += widths[index]
                index += 1
            delta = 0.0
            if index < size:  # inside: as uncertain as the targets allow here
                delta = max(0.0, math.floor(self._allowed(rank)) - 1.0)
            merged_values.append(value)
            merged_widths.append(1.0)
            merged_deltas.append(delta)
            self.count += 1.0
            rank += 1.0
        while index < size:
            merged_values.append(values[index])
            merged_widths.append(widths[index])
            merged_deltas.append(deltas[index])
            index += 1
        self.batch = []
        self._compress(merged_values, merged_widths, merged_deltas)

    def _compress(self, values: list[float], widths: list[float], deltas: list[float]) -> None:
        """Fold each sample into the next one while the targets allow, from the top."""
        last = len(values) - 1
        if last < 1:
            self.values, self.widths, self.deltas = values, widths, deltas
            return
        kept_values = [values[last]]
        kept_widths = [widths[last]]
        kept_deltas = [deltas[last]]
        rank = self.count - 1.0 - widths[last]
        for index in range(last - 1, -1, -1):
            width = widths[index]
            if width + kept_widths[-1] + kept_deltas[-1] <= self._allowed(rank):
                kept_widths[-1] += width
            else:
                kept_values.append(values[index])
                kept_widths.append(width)
                kept_deltas.append(deltas[index])
            rank -= width
        kept_values.reverse()
        kept_widths.reverse()
        kept_deltas.reverse()
        self.values, self.widths, self.deltas = kept_values, kept_widths, kept_deltas

    def query(self, quantile: float) -> float:
        if not self.values:  # never merged: the batch answers exactly
            batch = self.batch
            if not batch:
                return math.nan
            batch.sort()
            at = math.ceil(len(batch) * quantile)
            return batch[at - 1 if at > 0 else 0]
        self.merge()
        target = math.ceil(quantile * self.count)
        target += math.ceil(self._allowed(target) / 2.0)
        values, widths, deltas = self.values, self.widths, self.deltas
        rank = 0.0
        for index in range(1, len(values)):
            rank += widths[index - 1]
            if rank + widths[index] + deltas[index] > target:
                return values[index - 1]
        return values[-1]


class QuantileWindow:
    """The quantiles of one summary series over its sliding window. Times are the
    caller's clock (seconds)."""

    __slots__ = ("head", "head_expires", "hot", "hot_cap", "hot_expires", "quantiles", "step",
                 "streams")  # fmt: skip

    def __init__(self, quantiles: tuple[tuple[float, float], ...], max_age: float,
                 age_buckets: int, buf_cap: int, now: float) -> None:  # fmt: skip
        targets = list(quantiles)
        self.quantiles = [quantile for quantile, _ in quantiles]
        self.streams = [_Stream(targets) for _ in range(age_buckets)]
        self.head = 0
        self.step = max_age / age_buckets
        self.head_expires = now + self.step
        self.hot: list[float] = []
        self.hot_cap = buf_cap
        self.hot_expires = self.head_expires

    def add(self, value: float, weight: int, now: float) -> None:
        """An observation, ``weight`` times (a sample rate)."""
        if now > self.hot_expires:
            self.flush(now)
        hot = self.hot
        if weight == 1:
            hot.append(value)
        else:
            hot.extend([value] * weight)
        if len(hot) >= self.hot_cap:
            self.flush(now)

    def flush(self, now: float) -> None:
        """Put the buffered observations into the streams, and move the window."""
        if self.hot:
            for stream in self.streams:
                stream.add(self.hot)
            self.hot = []
        while now > self.hot_expires:
            self.hot_expires += self.step
        while now >= self.head_expires:
            self.streams[self.head].reset()
            self.head = (self.head + 1) % len(self.streams)
            self.head_expires += self.step

    def values(self) -> list[float]:
        """The quantiles (in their order) of the window's observations; NaN for each
        when it holds none. Buffered observations count."""
        if self.hot:
            for stream in self.streams:
                stream.add(self.hot)
            self.hot = []
        head = self.streams[self.head]
        if head.size() == 0:
            return [math.nan for _ in self.quantiles]
        return [head.query(quantile) for quantile in self.quantiles]
