"""The `upgrades` of HTTP listeners and routes: tokens, lower case, never `h2c`."""

from __future__ import annotations

import pytest

from pillion.config import ConfigError, PillionConfig, parse_config


def parsed(text: str) -> PillionConfig:
    return parse_config(text, "test.yaml", {})


def errors_of(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as caught:
        parsed(text)
    return [(i.path, i.line, i.message) for i in caught.value.issues]


def test_websocket_by_default_and_routes_follow_their_listener() -> None:
    config = parsed("proxy:\n  inbound: [{routes: [{}]}]\n  outbound: [{}]\n")
    assert config.proxy is not None
    [inbound], [outbound] = config.proxy.inbound, config.proxy.outbound
    assert inbound.upgrades == ["websocket"]
    assert outbound.upgrades == ["websocket"]
    assert inbound.routes[0].upgrades is None


def test_protocols_are_lower_cased_and_may_carry_a_version() -> None:
    config = parsed(
        "proxy:\n  inbound:\n    - upgrades: [WebSocket, 'TLS/1.3', 'x-my~proto']\n"
        "      routes: [{match: {prefix: /none}, upgrades: []}, {upgrades: [WEBSOCKET]}]\n"
    )
    assert config.proxy is not None
    [inbound] = config.proxy.inbound
    assert inbound.upgrades == ["websocket", "tls/1.3", "x-my~proto"]
    assert [route.upgrades for route in inbound.routes] == [[], ["websocket"]]


@pytest.mark.parametrize("protocol", ["web socket", "", "websocket/", "a/b/c", "ws(1)", "é"])
def test_a_protocol_that_is_not_a_token_is_refused_at_its_path(protocol: str) -> None:
    text = f"proxy:\n  outbound:\n    - upgrades: [websocket, {protocol!r}]\n"
    [(path, line, message)] = errors_of(text)
    assert (path, line) == ("proxy.outbound[0].upgrades[1]", 3)
    assert "is not an upgrade protocol" in message
    assert "RFC 9110" in message


@pytest.mark.parametrize("protocol", ["h2c", "H2C", "h2C/1"])
def test_h2c_is_refused_saying_why(protocol: str) -> None:
    text = (
        "proxy:\n  inbound:\n    - upgrades: [websocket]\n"
        f"      routes: [{{upgrades: [{protocol}]}}]\n"
    )
    [(path, line, message)] = errors_of(text)
    assert (path, line) == ("proxy.inbound[0].routes[0].upgrades[0]", 4)
    assert "h2c is never allowed" in message
    assert "prior knowledge or ALPN" in message


def test_h2c_is_refused_on_a_listener_too() -> None:
    [(path, _, message)] = errors_of("proxy:\n  inbound: [{upgrades: [h2c]}]\n")
    assert path == "proxy.inbound[0].upgrades[0]"
    assert "h2c is never allowed" in message
