"""Request ids and traceparents cut from the random pool: well-formed and unique,
also across a fork."""

from __future__ import annotations

import os
import uuid

from pillion.telemetry.tracecontext import new_request_id, new_traceparent, valid_traceparent


def test_request_ids_are_version_4_uuids_and_unique() -> None:
    ids = [new_request_id() for _ in range(2_000)]  # several refills of the pool
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text.decode())
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed).encode() == text


def test_traceparents_are_valid_sampled_and_unique() -> None:
    parents = [new_traceparent() for _ in range(2_000)]
    assert len(set(parents)) == len(parents)
    assert all(valid_traceparent(p) for p in parents)
    assert all(p.startswith(b"00-") and p.endswith(b"-01") and len(p) == 55 for p in parents)


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    new_request_id()  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_request_id() + new_traceparent())
        os._exit(0)
    os.close(write)
    child = os.read(read, 200)
    os.waitpid(pid, 0)
    os.close(read)
    assert child[:36] != new_request_id()
    assert child[36:] != new_traceparent()
