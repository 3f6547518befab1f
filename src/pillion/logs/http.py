"""HTTP outputs: JSON lines to any endpoint, Loki's push API, OTLP/HTTP logs.

A batch is one POST (gzip by default). 2xx: delivered. 408, 429, 5xx and
connection errors: retried (``OSError``, with the worker's backoff). Any other
4xx is a refusal for good: the batch goes to the dead-letter file, counted, and
the output moves on, so one bad batch never blocks the rest.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
from typing import TYPE_CHECKING, Any

import orjson

from pillion.config.logs import LogOutputConfig, field_path
from pillion.config.redaction import redact_in, redact_url
from pillion.logs.buffer import Record
from pillion.logs.otlp import otlp_body
from pillion.logs.render import Sink, json_lines
from pillion.logs.tlsfiles import client_tls, load_tls

if TYPE_CHECKING:  # loaded when an HTTP output opens: syslog, file and stdout need none
    import aiohttp

__all__ = [
    "ElasticsearchSink",
    "HttpSink",
    "LokiSink",
    "OtlpSink",
    "PartlyDelivered",
    "Refused",
    "loki_body",
]

log = logging.getLogger("pillion.logs")

_MAX_ANSWER = 16 * 1024 * 1024  # a bulk answer lists every item


class Refused(Exception):
    """The receiver refused the batch for good (a 4xx): never retried."""


class PartlyDelivered(Exception):
    """Some records were taken, some refused for good (``refused``, dead-lettered),
    and ``remaining`` are to be sent again."""

    def __init__(self, remaining: list[Record], refused: int) -> None:
        super().__init__(f"{len(remaining)} to retry, {refused} refused")
        self.remaining = remaining
        self.refused = refused


_INPUT, _STREAM = ("input",), ("stream",)


def _field(record: Record, path: tuple[str, ...]) -> str | None:
    if path == _INPUT:
        return record.input
    if path == _STREAM:
        return record.stream
    value: Any = record.fields or {}
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return None if value is None or isinstance(value, dict | list) else str(value)


def loki_body(batch: list[Record], labels: dict[str, str]) -> bytes:
    """Loki's push JSON: one stream per distinct label set, values in order."""
    streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    paths = [(label, field_path(path)) for label, path in labels.items()]
    for record in batch:
        found = [("input", record.input)]
        for label, path in paths:
            value = _field(record, path)
            if value is not None:
                found.append((label, value))
        stream = tuple(sorted(found))
        line = record.message.decode("utf-8", "replace")
        streams.setdefault(stream, []).append([str(int(record.time * 1e9)), line])
    return orjson.dumps({"streams": [{"stream": dict(k), "values": v} for k, v in streams.items()]})


class HttpSink(Sink):
    def __init__(self, config: LogOutputConfig, dead_letter: str) -> None:
        assert config.url is not None
        self.config = config
        self.url = config.url
        self.dead_letter = dead_letter
        self.headers = {name: value.get_secret_value() for name, value in config.headers.items()}
        self.headers["Content-Type"] = "application/json"
        if config.compression == "gzip":
            self.headers["Content-Encoding"] = "gzip"
        self._session: aiohttp.ClientSession | None = None
        # Bodies of the next batches, encoded while the one before is sent, by the
        # first and last numbers of their records.
        self._ahead: dict[tuple[int, int], asyncio.Future[bytes]] = {}

    encodes_ahead = True

    async def open(self) -> None:
        import aiohttp

        tls = client_tls(self.config)
        connector = None
        if tls is not None:
            load_tls(tls)
            connector = aiohttp.TCPConnector(ssl=tls.context)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            trust_env=False,
            connector=connector,
        )

    def body(self, batch: list[Record]) -> bytes:
        return json_lines(batch)

    async def send(self, batch: list[Record]) -> None:
        await self.post(batch)

    def prepare(self, batch: list[Record]) -> None:
        span = (batch[0].seq, batch[-1].seq)
        if span in self._ahead:
            return
        # The body here, gzip in a thread: the body is Python and would hold the GIL
        # against the event loop; zlib lets it go.
        data = self.body(batch)
        encoded: asyncio.Future[bytes]
        if self.config.compression == "gzip":
            encoded = asyncio.ensure_future(asyncio.to_thread(gzip.compress, data, 6))
        else:
            encoded = asyncio.get_running_loop().create_future()
            encoded.set_result(data)
        self._ahead[span] = encoded
        while len(self._ahead) > 3:  # the one being sent and the two after it
            self._ahead.pop(next(iter(self._ahead))).cancel()

    async def _encoded(self, batch: list[Record]) -> bytes:
        """The batch's body: the one encoded ahead if it is this batch's (record
        numbers name the same records), else encoded now."""
        ahead = self._ahead.pop((batch[0].seq, batch[-1].seq), None)
        if ahead is not None:
            return await ahead
        data = self.body(batch)
        if self.config.compression == "gzip":
            data = await asyncio.to_thread(gzip.compress, data, 6)
        return data

    async def post(self, batch: list[Record]) -> bytes:
        """POST the batch; the answer's body when 2xx."""
        import aiohttp

        assert self._session is not None
        data = await self._encoded(batch)
        try:
            async with self._session.post(self.url, data=data, headers=self.headers) as answer:
                status = answer.status
                content = await answer.content.read(_MAX_ANSWER)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: bad URL
            raise OSError(redact_in(f"{self.url}: {exc or type(exc).__name__}", self.url)) from exc
        if 200 <= status < 300:
            return content
        detail = content[:300].decode("utf-8", "replace")
        if status in (408, 429) or status >= 500:
            raise OSError(f"{redact_url(self.url)}: status {status}: {detail}")
        await asyncio.to_thread(self._dead_letter, batch, status, detail)
        raise Refused(f"status {status}: {detail}")

    def _dead_letter(self, batch: list[Record], status: int, detail: str) -> None:
        fd = os.open(self.dead_letter, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     0o600)  # fmt: skip
        try:
            os.write(fd, json_lines(batch))
            os.fsync(fd)
        finally:
            os.close(fd)
        log.error(
            "log batch refused by the receiver; written to the dead-letter file",
            extra={"output": self.config.name, "status": status, "records": len(batch),
                   "detail": detail, "dead_letter": self.dead_letter},
        )  # fmt: skip

    async def close(self) -> None:
        for encoded in self._ahead.values():
            encoded.cancel()
        self._ahead.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


class LokiSink(HttpSink):
    def __init__(self, config: LogOutputConfig, dead_letter: str) -> None:
        super().__init__(config, dead_letter)
        if not self.url.rstrip("/").endswith("/loki/api/v1/push"):
            self.url = self.url.rstrip("/") + "/loki/api/v1/push"
        if config.tenant_id:
            self.headers["X-Scope-OrgID"] = config.tenant_id

    def body(self, batch: list[Record]) -> bytes:
        return loki_body(batch, self.config.labels)


class OtlpSink(HttpSink):
    """OTLP/HTTP logs, JSON encoding, to ``<url>/v1/logs``."""

    def __init__(self, config: LogOutputConfig, dead_letter: str) -> None:
        super().__init__(config, dead_letter)
        if not self.url.rstrip("/").endswith("/v1/logs"):
            self.url = self.url.rstrip("/") + "/v1/logs"

    def body(self, batch: list[Record]) -> bytes:
        return otlp_body(batch)


class ElasticsearchSink(HttpSink):
    """The ``_bulk`` API, one ``create`` per record (data streams accept only that).
    Each item's status is read: the ones refused for good (400, mapping errors) go
    to the dead-letter file, the ones to retry (429, 5xx) are sent again alone."""

    def __init__(self, config: LogOutputConfig, dead_letter: str) -> None:
        super().__init__(config, dead_letter)
        if not self.url.rstrip("/").endswith("/_bulk"):
            self.url = self.url.rstrip("/") + "/_bulk"
        self.headers["Content-Type"] = "application/x-ndjson"
        self._action = orjson.dumps({"create": {"_index": config.index}}) + b"\n"

    def body(self, batch: list[Record]) -> bytes:
        documents = json_lines(batch).splitlines(keepends=True)
        return b"".join(self._action + document for document in documents)

    async def send(self, batch: list[Record]) -> None:
        answer = orjson.loads(await self.post(batch))
        if not answer.get("errors"):
            return
        items = answer.get("items", [])
        if len(items) != len(batch):
            raise OSError(
                f"{redact_url(self.url)}: {len(items)} items answered for {len(batch)} sent"
            )
        retry, refused = [], []
        for record, item in zip(batch, items, strict=True):
            result: dict[str, Any] = next(iter(item.values()), {})
            status = int(result.get("status", 500))
            if status in (408, 429) or status >= 500:
                retry.append(record)
            elif status >= 300:
                refused.append((record, status, str(result.get("error", ""))[:300]))
        if refused:
            first = refused[0]
            await asyncio.to_thread(self._dead_letter, [r for r, _, _ in refused], first[1],
                                    first[2])  # fmt: skip
        if retry or refused:
            raise PartlyDelivered(retry, len(refused))
