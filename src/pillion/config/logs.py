"""Models of the ``logs`` section: files to tail, outputs to deliver to."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pillion.config.proxy import UpstreamTlsConfig
from pillion.config.redaction import credentials_twice
from pillion.config.types import HttpUrl, Listen, Regex, Secret, Section
from pillion.config.units import Duration, Size

__all__ = [
    "DiskBufferConfig",
    "FilterConfig",
    "KubernetesMetadataConfig",
    "LogInputConfig",
    "LogOutputConfig",
    "LogsConfig",
    "MultilineConfig",
    "MultilineRuleConfig",
    "ParserConfig",
    "ThrottleConfig",
    "field_path",
]

_NAME = r"^[a-z0-9][a-z0-9_-]*$"

# One step of a field path: a plain name up to the next dot or bracket, a quoted
# name (`"app.kubernetes.io/name"`), or a bracketed one (`['...']`, `["..."]`).
_PATH_STEP = re.compile(r"""([^."'\[\]]+)|"([^"]*)"|\['([^']*)'\]|\["([^"]*)"\]""")


def field_path(name: str) -> tuple[str, ...]:
    """A record field's path: ``kubernetes.labels.app`` -> ``("kubernetes", "labels",
    "app")``; a key with dots is quoted or bracketed, as Vector and Fluent Bit write
    it: ``kubernetes.labels."app.kubernetes.io/name"`` or
    ``kubernetes.labels['app.kubernetes.io/name']``. ``ValueError`` for what is not
    a path."""
    steps: list[str] = []
    position = 0
    while position < len(name):
        match = _PATH_STEP.match(name, position)
        if match is None:
            raise ValueError(f"{name!r} is not a field path: cannot read {name[position:]!r}")
        steps.append(next(group for group in match.groups() if group is not None))
        position = match.end()
        if position < len(name) and name[position] == ".":
            position += 1
            if position == len(name):
                raise ValueError(f"{name!r} is not a field path: it ends with a dot")
        elif position < len(name) and name[position] != "[":
            raise ValueError(f"{name!r} is not a field path: cannot read {name[position:]!r}")
    if not steps:
        raise ValueError("a field path names at least one field")
    return tuple(steps)


def _checked_path(name: str | None) -> str | None:
    if name is not None:
        field_path(name)
    return name


class MultilineRuleConfig(Section):
    """One rule of a multiline state machine, as Fluent Bit's `rule "state" /regex/
    "next_state"`."""

    state: str = Field(
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The state it applies in; `start_state` is where a record begins.",
    )
    regex: Regex = Field(description="Searched in the line (anchor it with `^`).")
    next_state: str = Field(
        pattern=r"^[A-Za-z0-9_-]+$", description="The state after a line that matches."
    )


class MultilineConfig(Section):
    """Joining lines into one record (stack traces): a record starts at a line matching
    `start` (or a preset's pattern) and the lines that do not are appended to it; or,
    with `rules`, Fluent Bit's state machine: a record starts at a line a
    `start_state` rule matches, goes on while each next line matches a rule of the
    state the previous one led to, and ends at the first line that matches none."""

    start: Regex | None = Field(None, description="Regex of a record's first line.")
    preset: Literal["java", "python", "go"] | None = Field(
        None,
        description="Built-in start pattern for Java stack traces, Python tracebacks or Go panics.",
    )
    rules: list[MultilineRuleConfig] = Field(
        default_factory=list,
        description="State machine rules, as in a Fluent Bit `[MULTILINE_PARSER]` "
        '(`rule "start_state" "/^\\d{4}-/" "cont"`, `rule "cont" "/^\\s+at /" "cont"`).',
    )
    flush_timeout: Duration = Field(
        1.0, description="A record with no new line for this long is sent. Default 1s."
    )

    @model_validator(mode="after")
    def _one_pattern(self) -> MultilineConfig:
        if sum((self.start is not None, self.preset is not None, bool(self.rules))) != 1:
            raise ValueError("set one of start, preset and rules")
        if self.rules:
            states = {rule.state for rule in self.rules}
            if "start_state" not in states:
                raise ValueError("rules need a rule for start_state, where a record begins")
            for rule in self.rules:
                if rule.next_state not in states:
                    raise ValueError(
                        f"rule {rule.state} -> {rule.next_state}: no rule for state "
                        f"{rule.next_state}"
                    )
        return self


class ParserConfig(Section):
    """Fields from each record's message; a message that does not parse is kept
    without them (and counted)."""

    type: Literal["json", "logfmt", "regex"] = Field(description="The message's format.")
    pattern: Regex | None = Field(
        None, description="For `regex`: a pattern whose named groups become fields."
    )
    time_field: str | None = Field(
        None, description="A field holding the record's own time. Default: the time read."
    )
    time_format: str = Field(
        "rfc3339",
        description="`rfc3339`, `unix`, `unix_ms`, or a `strptime` format (UTC unless it "
        "has a zone).",
    )

    @model_validator(mode="after")
    def _pattern_for_regex(self) -> ParserConfig:
        if (self.type == "regex") != (self.pattern is not None):
            raise ValueError("set `pattern` exactly when `type` is `regex`")
        if self.pattern is not None and not re.compile(self.pattern).groupindex:
            raise ValueError("the pattern has no named group (?P<name>...)")
        return self


class FieldMatchConfig(Section):
    """A condition: the field (`message`, or a parsed or added field) matches `regex`."""

    field: str = Field(
        "message",
        description="The field (dotted for nested; a key with dots quoted, e.g. "
        '`kubernetes.labels."app.kubernetes.io/name"`). Default: the message.',
    )
    regex: Regex = Field(description="A regex searched in the field's value.")

    _field_path = field_validator("field")(_checked_path)


class RedactConfig(Section):
    """Replace what `regex` matches in the message and every string field, before the
    record leaves the pod (card numbers, tokens, passwords)."""

    regex: Regex = Field(description="What to hide.")
    replacement: str = Field("[REDACTED]", description="What it becomes.")


class ThrottleConfig(Section):
    """At most `threshold` records per `window` for each value of `key` (a token bucket
    per key, refilled evenly): a noisy caller or a log loop cannot flood the outputs."""

    threshold: int = Field(ge=1, description="Records allowed per window, per key.")
    window: Duration = Field(1.0, gt=0, description="The window. Default 1s.")
    key: str | None = Field(
        None,
        description="The field whose value is the key (dotted for nested, e.g. "
        "`kubernetes.pod`; `message` for the message). Default: one bucket for the input.",
    )

    _key_path = field_validator("key")(_checked_path)


class FilterConfig(Section):
    """One step of an input's filters, in order; set exactly one key."""

    include: FieldMatchConfig | None = Field(
        None, description="Keep only the records that match; the rest are dropped (counted)."
    )
    exclude: FieldMatchConfig | None = Field(
        None, description="Drop the records that match (counted)."
    )
    redact: RedactConfig | None = Field(None, description="Hide what matches.")
    set: dict[str, str] | None = Field(None, description="Set fields to fixed values.")
    rename: dict[str, str] | None = Field(None, description="Rename fields (`old: new`).")
    remove: list[str] | None = Field(None, description="Remove fields.")
    throttle: ThrottleConfig | None = Field(
        None, description="Drop records over a rate, per key (counted as `throttled`)."
    )

    @model_validator(mode="after")
    def _one_step(self) -> FilterConfig:
        steps = [self.include, self.exclude, self.redact, self.set, self.rename, self.remove,
                 self.throttle]  # fmt: skip
        if sum(step is not None for step in steps) != 1:
            raise ValueError(
                "set exactly one of include, exclude, redact, set, rename, remove, throttle"
            )
        return self


class LogInputConfig(Section):
    """Files the app writes, tailed line by line."""

    name: str = Field(pattern=_NAME, description="Name of the input in records and metrics.")
    paths: list[str] = Field(
        min_length=1,
        description="Glob patterns of the files (`**` matches any depth), e.g. "
        "`/var/log/app/*.log`.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns of files to leave out (e.g. `*.gz`)."
    )
    format: Literal["plain", "cri", "docker"] = Field(
        "plain",
        description="`plain` lines; the Kubernetes CRI format (`<time> <stream> <P|F> "
        "<log>`: partial lines joined per stream; time and stream kept); or Docker's "
        'json-file format (`{"log": ..., "stream": ..., "time": ...}` per line: a '
        "`log` without its newline is a part of a long line, joined with the next parts "
        "of its stream, as Fluent Bit's `docker` multiline parser does).",
    )
    multiline: MultilineConfig | None = Field(
        None, description="Join continuation lines into one record. Default: none."
    )
    parser: ParserConfig | None = Field(None, description="Parse messages into fields.")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Fields added to every record, e.g. `{cluster: prod, pod: ${POD_NAME}}`.",
    )
    filters: list[FilterConfig] = Field(
        default_factory=list,
        description="Steps applied to each record in order (after parsing): include, "
        "exclude, redact, set, rename, remove, throttle.",
    )
    read_from: Literal["head", "tail"] = Field(
        "head",
        description="Where to start in a file found at the first start with no checkpoint: "
        "its beginning, or its end. Files that appear later are always read from the "
        "beginning (they are new). Default head: nothing is skipped.",
    )
    max_line_size: Size = Field(
        256 * 1024,
        description="Longest line kept; the rest of a longer line is dropped and counted "
        "(`pillion_logs_truncated_lines_total`), never stalling the file. Default 256KiB.",
    )
    rotate_wait: Duration = Field(
        5.0,
        description="How long a rotated (renamed or deleted) file is still read after its "
        "path moved on, for lines written late. Default 5s.",
    )
    scan_interval: Duration = Field(
        0.25,
        description="How often the paths are globbed and the files checked for new data, "
        "whether or not inotify is used. Default 250ms.",
    )
    inotify: bool = Field(
        True,
        description="Also watch the files' directories with inotify, so new lines and "
        "files are read at once rather than at the next scan. Where inotify cannot be "
        "used (no watches left, a file system without it), the input polls, logs why, "
        "and sets `pillion_logs_input_polling` to 1.",
    )


_HTTP_OUTPUTS = ("http", "loki", "otlp", "elasticsearch")


class LogOutputConfig(Section):
    """Where records go; each output has its own cursor, retries and batches."""

    name: str = Field(pattern=_NAME, description="Name of the output in metrics.")
    type: Literal["stdout", "file", "syslog", "http", "loki", "otlp", "elasticsearch"] = Field(
        description="`stdout` (JSON lines), `file` (JSON lines appended to `path`), "
        "`syslog` (RFC 5424 over TCP with octet counting, to `address`), `http` (JSON "
        "lines POSTed to `url`), `loki` (Loki's push API at `url`), `otlp` (OTLP/HTTP "
        "logs, JSON, to `url`/v1/logs), or `elasticsearch` (`_bulk` at `url`, per-item "
        "retries)."
    )
    url: HttpUrl | None = Field(
        None,
        description="For HTTP outputs: where to POST (for Loki, its base URL or the "
        "full `/loki/api/v1/push` URL).",
    )
    headers: dict[str, Secret] = Field(
        default_factory=dict,
        description="For HTTP outputs: request headers (e.g. `Authorization`); "
        "shown as *** everywhere.",
    )
    index: str = Field(
        "logs-pillion-default",
        description="For `elasticsearch`: the index or data stream. Default "
        "`logs-pillion-default` (a data stream under Elasticsearch's `logs-*-*` template).",
    )
    tls: UpstreamTlsConfig | None = Field(
        None,
        description="For `syslog`: TLS to the receiver (RFC 5425), verified against `ca` "
        "(by host name or `identities`), presenting `cert` if set. For HTTP outputs: "
        "the CA (and client certificate) for an `https` URL. Default: plain / system CAs.",
    )
    tenant_id: str | None = Field(
        None, description="For `loki`: the tenant (`X-Scope-OrgID`). Default: none."
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="For `loki`: stream labels, each from a record field (dotted for "
        "nested, e.g. `{app: kubernetes.labels.app, level: level}`; a key with dots "
        'quoted: `kubernetes.labels."app.kubernetes.io/name"`); `input` is always one.',
    )

    @field_validator("labels")
    @classmethod
    def _label_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value.values():
            field_path(path)
        return value

    compression: Literal["none", "gzip"] = Field(
        "gzip",
        description="For HTTP outputs: the request body's encoding.",
    )
    dead_letter: str | None = Field(
        None,
        description="For HTTP outputs: where batches the receiver refuses for good "
        "(a 4xx other than 408 and 429) are written, as JSON lines, and counted. "
        "Default: `dead-letter-<name>.jsonl` next to the checkpoints.",
    )
    path: str | None = Field(None, description="The file, for `type: file`.")
    address: Listen | None = Field(None, description="`host:port`, for `type: syslog`.")
    facility: Literal[
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5",
        "local6", "local7",
    ] = Field("user", description="Syslog facility (severity is informational).")  # fmt: skip
    app_name: str | None = Field(
        None, description="Syslog APP-NAME. Default: the record's input name."
    )
    hostname: str | None = Field(
        None, description="Syslog HOSTNAME. Default: `$HOSTNAME` (the pod's name)."
    )
    timeout: Duration = Field(
        10.0, description="Longest connect or send before the batch is retried. Default 10s."
    )
    batch_max_records: int = Field(
        2048, ge=1, description="Most records per batch (`batch_max_bytes` may stop it first)."
    )
    batch_max_bytes: Size = Field(1024 * 1024, description="Most bytes per batch.")
    batch_timeout: Duration = Field(
        0.2, description="Longest time a record waits for its batch to fill. Default 200ms."
    )

    @model_validator(mode="after")
    def _destination(self) -> LogOutputConfig:
        if (self.type == "file") != (self.path is not None):
            raise ValueError("set `path` exactly when `type` is `file`")
        if (self.type == "syslog") != (self.address is not None):
            raise ValueError("set `address` exactly when `type` is `syslog`")
        if (self.type in _HTTP_OUTPUTS) != (self.url is not None):
            raise ValueError("set `url` exactly when `type` is http, loki, otlp or elasticsearch")
        problem = credentials_twice(self.url, self.headers) if self.url else None
        if problem:
            raise ValueError(problem)
        return self


class KubernetesMetadataConfig(Section):
    """Pod metadata in every record's `kubernetes` field: namespace, pod, container and
    node from `POD_NAMESPACE`, `POD_NAME`, `CONTAINER_NAME`, `NODE_NAME` (Downward API
    env vars), labels and annotations from Downward API files."""

    labels_file: str | None = Field(
        "/etc/podinfo/labels", description="The Downward API file of the pod's labels."
    )
    annotations_file: str | None = Field(
        None, description="The Downward API file of the pod's annotations. Default: none."
    )


class DiskBufferConfig(Section):
    """Records that do not fit in `memory_buffer` go to a SQLite database on disk, so
    the inputs keep reading (and rotated files are released) while an output is slow
    or down. Its content is not needed after a restart (nor after a power loss): the
    checkpoints only advance past delivered records, so the files are read again from
    there; it is started empty and never fsynced. When it cannot be written (its disk
    full or read-only) the inputs pause, the reason is in `/healthz/ready`'s body and
    `pillion_logs_buffer_errors_total`, and they resume once a retry (each second)
    works."""

    path: str | None = Field(
        None, description="The database. Default: `buffer.db` next to the checkpoints."
    )
    max_size: Size = Field(
        256 * 1024 * 1024,
        description="Most bytes of records on disk; when it and the memory buffer are "
        "full, the inputs pause. Default 256MiB.",
    )


class LogsConfig(Section):
    """Log shipping: every line of the inputs reaches every output at least once."""

    inputs: list[LogInputConfig] = Field(min_length=1, description="Files to tail.")
    outputs: list[LogOutputConfig] = Field(min_length=1, description="Where records go.")
    checkpoints: str = Field(
        "/var/lib/pillion/logs.db",
        description="SQLite database of how far each file has been delivered (on a volume "
        "that survives restarts of the container, e.g. an emptyDir).",
    )
    kubernetes: KubernetesMetadataConfig | None = Field(
        None, description="Add pod metadata to records. Default: none."
    )
    memory_buffer: Size = Field(
        16 * 1024 * 1024,
        description="Most bytes of records held in memory until every output has them; "
        "then they go to the disk buffer, and when that is full (or off) the inputs "
        "pause (the files keep the lines: nothing is lost). Default 16MiB.",
    )
    disk_buffer: DiskBufferConfig | None = Field(
        default_factory=DiskBufferConfig,
        description="The disk tier of the buffer; `null` for memory only. Default: on, 256MiB.",
    )
    fsync: Literal["batch", "interval", "never"] = Field(
        "batch",
        description="When what is delivered and checkpointed is forced to disk (it matters "
        "for a power loss or a kernel crash, not for a crash of Pillion). `batch`: a "
        "`file` output fsyncs each batch before acknowledging it, and each checkpoint "
        "save is fsynced before it counts (SQLite `synchronous=FULL`). `interval`: every "
        "`fsync_interval`, the `file` outputs are fsynced and then the checkpoints saved "
        "and fsynced, so a checkpoint never outlives the lines it counts. `never`: the "
        "OS writes when it likes (`synchronous=OFF`); after a power loss lines may be "
        "lost or the checkpoints torn. Default `batch`: at-least-once across a power "
        "loss, for about one fsync a second beyond the file outputs'.",
    )
    fsync_interval: Duration = Field(
        1.0,
        gt=0,
        description="For `fsync: interval`: how often, which is also how often the "
        "checkpoints are saved (the other modes save them each second). Default 1s.",
    )

    @model_validator(mode="after")
    def _distinct_names(self) -> LogsConfig:
        for kind, names in (
            ("input", [i.name for i in self.inputs]),
            ("output", [o.name for o in self.outputs]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} names must be distinct")
        return self
