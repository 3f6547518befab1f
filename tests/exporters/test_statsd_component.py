"""The StatsD component in-process on real loopback sockets: start, reload in
place or by replacement, close; a port in use fails the start."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from pillion.components import ComponentStartError
from pillion.config import PillionConfig
from pillion.exporters.statsd_component import StatsdComponent
from pillion.telemetry import Metrics
from tests.helpers import async_wait_until, metric_value


def config(**statsd: Any) -> PillionConfig:
    settings = {"udp": "127.0.0.1:0", "tcp": "127.0.0.1:0", **statsd}
    return PillionConfig.model_validate({"exporters": {"statsd": settings}})


def statsd(metrics: Metrics, **settings: Any) -> StatsdComponent:
    """The component as the builders make it: from its section of ``config(**settings)``."""
    exporters = config(**settings).exporters
    assert exporters is not None
    assert exporters.statsd is not None
    return StatsdComponent(exporters.statsd, metrics, reserved=exporters.declared_metric_names())


async def send_udp(component: StatsdComponent, data: bytes) -> None:
    assert component.udp_address is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, (component.udp_address.host, component.udp_address.port))


async def eventually(metrics: Metrics, series: str, value: float) -> None:
    await async_wait_until(lambda: metric_value(metrics.exposition(None)[0], series) == value)


async def test_start_serve_and_close() -> None:
    metrics = Metrics(process=False)
    component = statsd(metrics)
    await component.start()
    try:
        assert component.started
        assert component.udp_address is not None
        assert component.udp_address.port != 0
        await send_udp(component, b"a:1|c")
        await eventually(metrics, "a_total", 1.0)
        assert component.tcp_address is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", component.tcp_address.port)
        writer.write(b"a:2|c\n")
        await writer.drain()
        await eventually(metrics, "a_total", 3.0)
        await component.drain(asyncio.get_running_loop().time() + 1)
    finally:
        await component.close()
    writer.close()
    assert await reader.read() == b""  # the connection was closed with the server
    page = metrics.exposition(None)[0]
    assert b"a_total" not in page
    assert metric_value(page, "pillion_statsd_series") == 0.0
    assert not component.started


async def test_reload_in_place_keeps_or_clears_series() -> None:
    metrics = Metrics(process=False)
    component = statsd(metrics)
    await component.start()
    try:
        await send_udp(component, b"a.b:1|c")
        await eventually(metrics, "a_b_total", 1.0)
        same_rules = config(ttl="1m", max_series=5)
        assert component.can_reconfigure(same_rules)
        component.reconfigure(same_rules)
        assert component.store.max_series == 5
        assert metric_value(metrics.exposition(None)[0], "a_b_total") == 1.0
        new_rules = config(mappings=[{"match": "a.*", "name": "renamed"}])
        component.reconfigure(new_rules)
        await send_udp(component, b"a.b:1|c")
        await eventually(metrics, "renamed_total", 1.0)
        assert metric_value(metrics.exposition(None)[0], "a_b_total") is None
        assert not component.can_reconfigure(config(tcp=None))
        assert not component.can_reconfigure(PillionConfig())
    finally:
        await component.close()


async def test_a_replacement_takes_the_series_over() -> None:
    metrics = Metrics(process=False)
    old = statsd(metrics)
    await old.start()
    new = statsd(metrics)  # port 0: other ports
    try:
        await send_udp(old, b"a:1|c")
        await eventually(metrics, "a_total", 1.0)
        new.take_over(old)
        await new.start()
        assert new.store is old.store
        await send_udp(new, b"a:1|c")
        await eventually(metrics, "a_total", 2.0)
        assert metrics.exposition(None)[0].count(b"# TYPE a_total counter") == 1
        await old.close()
        assert metrics.exposition(None)[0].count(b"# TYPE a_total counter") == 1
    finally:
        await new.close()
        await old.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_port_in_use_is_a_start_error(transport: str) -> None:
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if transport == "tcp":
            taken.listen()
        port = taken.getsockname()[1]
        component = statsd(Metrics(), **{transport: f"127.0.0.1:{port}"})
        with pytest.raises(ComponentStartError, match=f"{transport.upper()} 127.0.0.1:{port}"):
            await component.start()
        await component.close()
        assert component._udp is None
        assert component._tcp is None
