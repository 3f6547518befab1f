from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, free_port, json_lines, running_pillion
from tests.proxy.harness import ScriptedUpstream, scripted_upstream


@dataclass
class ProxyPod:
    """A real ``pillion run`` with two inbound listeners in front of a scripted app."""

    pillion: PillionProcess
    upstream: ScriptedUpstream
    port: int  # listener "main": short timeouts, small limits
    dead_port: int  # listener "dead": its upstream refuses connections
    access_log: Path

    def access_records(self) -> list[dict[str, object]]:
        return json_lines(self.access_log)

    def wait_record(self, matches: Callable[[dict[str, object]], bool]) -> dict[str, object]:
        """The first access-log record that ``matches``, once it has been written."""
        deadline = time.monotonic() + 10
        while True:
            found = [record for record in self.access_records() if matches(record)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, "no such access log record"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyPod]:
    directory = tmp_path_factory.mktemp("proxy")
    port, dead_port, closed = free_port(), free_port(), free_port()
    access_log = directory / "access.log"
    proxy = f"""
lifecycle: {{drain_timeout: 5s}}
proxy:
  inbound:
    - name: main
      listen: 127.0.0.1:{port}
      limits: {{max_header_size: 8KiB, max_headers: 50, max_uri_size: 2KiB, max_body_size: 4MiB}}
      timeouts: {{header: 1s, request: 2s, idle: 30s}}
    - name: dead
      listen: 127.0.0.1:{dead_port}
      upstream: 127.0.0.1:{closed}
  access_log:
    path: {access_log}
    flush_interval: 50ms
"""
    with (
        scripted_upstream() as upstream,
        running_pillion(directory, proxy, upstream.port) as process,
    ):
        yield ProxyPod(process, upstream, port, dead_port, access_log)


@pytest.fixture
def app(pod: ProxyPod) -> ScriptedUpstream:
    """The scripted app, set back to echo and with its record cleared."""
    pod.upstream.behaviour = "echo"
    pod.upstream.requests.clear()
    return pod.upstream
