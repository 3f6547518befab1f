"""gRPC as the proxy sees it: which requests are calls, their deadlines, their
statuses, and Pillion's own answers as gRPC errors."""

from __future__ import annotations

import typing

import pytest

from pillion.config.proxy.tokens import GrpcCode
from pillion.http.grpc import (
    CODE_NAMES,
    code_for_status,
    format_timeout,
    is_grpc,
    parse_timeout,
    reply_headers,
    status_in,
)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (b"application/grpc", True),
        (b"application/grpc+proto", True),
        (b"Application/GRPC+json", True),
        (b"application/grpc;charset=utf-8", True),
        (b"application/grpc-web", False),
        (b"application/grpc-web+proto", False),
        (b"application/json", False),
        (b"", False),
    ],
)
def test_what_is_a_grpc_call(content_type: bytes, expected: bool) -> None:
    assert is_grpc(content_type) is expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"1H", 3600.0),
        (b"2M", 120.0),
        (b"3S", 3.0),
        (b"250m", 0.25),
        (b"1500u", 0.0015),
        (b"99999999n", 0.099999999),
        (b"", None),
        (b"5", None),
        (b"123456789S", None),  # at most 8 digits
        (b"-1S", None),
        (b"1s", None),  # units are case-sensitive
    ],
)
def test_grpc_timeout_is_parsed_as_the_spec_writes_it(value: bytes, seconds: float | None) -> None:
    parsed = parse_timeout(value)
    if seconds is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(seconds)


def test_a_deadline_is_forwarded_in_milliseconds_rounded_up() -> None:
    assert format_timeout(0.25) == b"250m"
    assert format_timeout(0.0001) == b"1m"  # never 0: that would be no time at all
    assert format_timeout(1.2345) == b"1235m"
    assert format_timeout(10**6) == b"1000000S"  # past 8 digits of milliseconds
    assert parse_timeout(format_timeout(7.5)) == pytest.approx(7.5)


def test_pillions_answers_map_to_the_codes_a_client_acts_on() -> None:
    assert code_for_status(429) == CODE_NAMES["resource-exhausted"]
    assert code_for_status(401) == CODE_NAMES["unauthenticated"]
    assert code_for_status(403) == CODE_NAMES["permission-denied"]
    assert code_for_status(404) == CODE_NAMES["unimplemented"]
    assert code_for_status(503) == CODE_NAMES["unavailable"]
    assert code_for_status(502) == CODE_NAMES["unavailable"]
    assert code_for_status(504) == CODE_NAMES["deadline-exceeded"]
    assert code_for_status(418) == CODE_NAMES["unknown"]


def test_a_reply_is_trailers_only_with_a_percent_encoded_message() -> None:
    fields = dict(reply_headers(14, "upstream connect error: 100% down\n"))
    assert fields[b"content-type"] == b"application/grpc"
    assert fields[b"grpc-status"] == b"14"
    assert fields[b"grpc-message"] == b"upstream connect error: 100%25 down%0A"
    assert status_in(list(fields.items())) == b"14"
    assert status_in([(b"Grpc-Status", b"3")]) == b"3"
    assert status_in([(b"content-type", b"application/grpc")]) is None


def test_the_retry_policys_code_names_are_grpcs() -> None:
    names = set(typing.get_args(GrpcCode))
    assert names == set(CODE_NAMES) - {"ok"}
    assert CODE_NAMES["unavailable"] == 14
    assert sorted(CODE_NAMES.values()) == list(range(17))
