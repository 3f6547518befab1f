"""The log pipeline's metric families, and children bound per input and output."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from pillion.telemetry import Metrics

__all__ = ["InputMetrics", "LogFamilies", "OutputMetrics"]


class LogFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.input_records = Counter(
            "pillion_logs_input_records", "Lines read, by input.", ["input"], registry=registry
        )
        self.input_bytes = Counter(
            "pillion_logs_input_bytes", "Bytes of lines read, by input.", ["input"],
            registry=registry,
        )  # fmt: skip
        self.truncated = Counter(
            "pillion_logs_truncated_lines",
            "Lines longer than max_line_size, cut to it, by input.",
            ["input"],
            registry=registry,
        )
        self.parse_errors = Counter(
            "pillion_logs_parse_errors",
            "Messages the input's parser could not read (or whose time it could not); "
            "they are shipped without fields.",
            ["input"],
            registry=registry,
        )
        self.dropped = Counter(
            "pillion_logs_dropped_records",
            "Records not shipped, on purpose, by input and reason (filtered, throttled).",
            ["input", "reason"],
            registry=registry,
        )
        self.rotated = Counter(
            "pillion_logs_files_rotated",
            "Files renamed, deleted or truncated under an input.",
            ["input"],
            registry=registry,
        )
        self.paused = Gauge(
            "pillion_logs_input_paused",
            "1 while an input waits for room in the buffer (its lines wait in the file).",
            ["input"],
            registry=registry,
        )
        self.polling = Gauge(
            "pillion_logs_input_polling",
            "1 when an input finds changes only by scanning every scan_interval (inotify "
            "off or unavailable).",
            ["input"],
            registry=registry,
        )
        self.output_records = Counter(
            "pillion_logs_output_records",
            "Records an output acknowledged.",
            ["output"],
            registry=registry,
        )
        self.output_errors = Counter(
            "pillion_logs_output_errors",
            "Failed deliveries of a batch (each is retried).",
            ["output"],
            registry=registry,
        )
        self.output_retries = Counter(
            "pillion_logs_output_retries",
            "Deliveries of a batch tried again.",
            ["output"],
            registry=registry,
        )
        self.dead_letter = Counter(
            "pillion_logs_dead_letter_records",
            "Records the receiver refused for good, written to the output's dead-letter file.",
            ["output"],
            registry=registry,
        )
        self.lag_bytes = Gauge(
            "pillion_logs_lag_bytes",
            "Bytes of a file not yet delivered to every output (its size minus its "
            "checkpoint), sampled each second.",
            ["input", "file"],
            registry=registry,
        )
        self.buffer_bytes = Gauge(
            "pillion_logs_buffer_bytes",
            "Bytes of records held until every output has them, by tier.",
            ["tier"],
            registry=registry,
        )
        self.buffer_full = Gauge(
            "pillion_logs_buffer_full",
            "1 while the buffer takes no more records and the inputs pause: both tiers "
            "full, or the disk tier cannot be written.",
            registry=registry,
        )
        self.buffer_errors = Counter(
            "pillion_logs_buffer_errors",
            "Writes (or deletions) the disk buffer failed, by reason (disk_full, "
            "read_only, io_error); retried each second.",
            ["reason"],
            registry=registry,
        )
        self.checkpoint_errors = Counter(
            "pillion_logs_checkpoint_errors",
            "Checkpoint saves that failed, by reason (disk_full, read_only, io_error); "
            "retried at the next save.",
            ["reason"],
            registry=registry,
        )
        self.checkpoint_failing = Gauge(
            "pillion_logs_checkpoint_failing",
            "1 while the checkpoints cannot be saved (delivery goes on; a restart would "
            "send again what was delivered since the last save).",
            registry=registry,
        )


class InputMetrics:
    def __init__(self, metrics: Metrics, name: str) -> None:
        families = metrics.family("logs", LogFamilies)
        self.records = families.input_records.labels(name)
        self.bytes = families.input_bytes.labels(name)
        self.truncated = families.truncated.labels(name)
        self.parse_errors = families.parse_errors.labels(name)
        self._dropped = families.dropped
        self._name = name
        self.rotated = families.rotated.labels(name)
        self.paused = families.paused.labels(name)
        self.polling = families.polling.labels(name)

    def dropped(self, reason: str) -> Counter:
        return self._dropped.labels(self._name, reason)


class OutputMetrics:
    def __init__(self, metrics: Metrics, name: str) -> None:
        families = metrics.family("logs", LogFamilies)
        self.records = families.output_records.labels(name)
        self.errors = families.output_errors.labels(name)
        self.retries = families.output_retries.labels(name)
        self.dead_letter = families.dead_letter.labels(name)
