"""Access log lines rendered without a dict or a serializer per line read back as
the values they carry, whatever bytes the client sent."""

from __future__ import annotations

import json
import urllib.parse

import orjson
from hypothesis import given
from hypothesis import strategies as st
from librt.strings import BytesWriter

from pillion.config.proxy import ACCESS_LOG_FIELDS
from pillion.http.request import RequestHead
from pillion.proxy.accesslog import Entry, _Clock, _compile, _plain
from pillion.proxy.cluster import Target

anything = st.binary(max_size=40)


def rendered(fields: list[str] | tuple[str, ...], *entries: Entry) -> bytes:
    """The lines ``fields``' renderer writes for ``entries``, into one buffer."""
    out = BytesWriter()
    render, clock = _compile(list(fields)), _Clock()
    for each in entries:
        render(each, clock, out)
    return out.getvalue()


def entry(
    path: bytes, agent: bytes, request_id: bytes, message: bytes, listener: str, user: bytes = b""
) -> Entry:
    head = RequestHead(
        b"GET", path, b"1.1", [(b"Host", b"h"), (b"User-Agent", agent)], b"h", True, "none",
        0, set(), False, False,
    )  # fmt: skip
    return (
        1_700_000_000.25, listener, b"10.0.0.1", head, 503, "UF", 12, 3456, 0.0123456, -1.0,
        request_id, b"", Target(None, 1.0, b"h"), 2, "sé".encode(), b"14", message, user or None,
    )  # fmt: skip


@given(anything, anything, anything, anything, st.text(max_size=20), st.text(max_size=20))
def test_a_line_reads_back_as_its_values(
    path: bytes, agent: bytes, request_id: bytes, message: bytes, listener: str, user: str
) -> None:
    line = rendered(
        ACCESS_LOG_FIELDS, entry(path, agent, request_id, message, listener, user.encode())
    )
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1  # one line, whatever the client sent
    fields = json.loads(line)
    assert list(fields) == list(ACCESS_LOG_FIELDS)
    assert fields["time"] == "2023-11-14T22:13:20.250Z"
    assert fields["listener"] == listener
    assert fields["path"] == path.decode("latin-1")
    assert fields["user_agent"] == (agent.decode("latin-1") or None)
    assert fields["request_id"] == (request_id.decode("latin-1") or None)
    assert fields["grpc_message"] == (
        urllib.parse.unquote(message.decode("latin-1")) if message else None
    )
    assert (fields["code"], fields["flags"], fields["bytes_in"], fields["bytes_out"]) == (
        503, "UF", 12, 3456,
    )  # fmt: skip
    assert (fields["duration_ms"], fields["upstream_ms"], fields["retries"]) == (12.346, None, 2)
    assert (fields["identity"], fields["grpc_status"], fields["protocol"]) == ("sé", 14, "HTTP/1.1")
    assert (fields["route"], fields["cluster"], fields["upstream"]) == (None, None, None)
    assert fields["user"] == (user or None)  # who logged in (OIDC), whatever their name


def test_a_chosen_subset_in_its_order() -> None:
    line = rendered(["code", "path", "time"], entry(b"/a", b"", b"", b"", "in"))
    assert line == b'{"code":503,"path":"/a","time":"2023-11-14T22:13:20.250Z"}\n'


@given(st.binary() | st.text().map(str.encode))
def test_bytes_called_plain_are_json_as_they_are(data: bytes) -> None:
    plain = all(0x20 <= c < 0x7F and c not in b'"\\' for c in data)
    assert _plain(data) == plain
    if plain:
        assert b'"' + data + b'"' == orjson.dumps(data.decode())


@given(st.lists(st.sampled_from(ACCESS_LOG_FIELDS), unique=True), anything, anything)
def test_any_choice_of_fields_in_any_order_reads_back_as_the_full_line_does(
    fields: list[str], path: bytes, agent: bytes
) -> None:
    one = entry(path, agent, b"id", b"", "in")
    every = json.loads(rendered(ACCESS_LOG_FIELDS, one))
    lines = rendered(fields, one, one).splitlines(keepends=True)
    assert len(lines) == 2  # each line ends its own, in one buffer
    assert lines[0] == lines[1]
    chosen = json.loads(lines[0])
    assert list(chosen) == fields
    assert chosen == {name: every[name] for name in fields}
