"""A reload never takes down what serves traffic by accident, nor stalls it.

An empty, comment-only, oversized or cut-short file is refused and counted as a
reload error while the proxy keeps serving; a running feature is turned off only
when the file says so (``proxy: null``); a large file is parsed off the event
loop, so requests are answered while it is read.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PillionProcess, free_port, http, refused, running_pillion, wait_until
from tests.proxy.harness import scripted_upstream


class Pod:
    def __init__(self, pillion: PillionProcess, port: int, good: str) -> None:
        self.pillion = pillion
        self.port = port
        self.good = good  # the whole config file it started with

    def get(self) -> int:
        return http("GET", f"http://127.0.0.1:{self.port}/")[0]

    def reload_with(self, text: str | bytes) -> None:
        if isinstance(text, bytes):
            self.pillion.config.write_bytes(text)
        else:
            self.pillion.config.write_text(text)
        self.pillion.signal(signal.SIGHUP)

    def reload_errors(self) -> float:
        _, _, metrics = http("GET", f"{self.pillion.status_url}/metrics")
        for line in metrics.decode().splitlines():
            if line.startswith('pillion_config_reloads_total{result="error"}'):
                return float(line.split()[-1])
        raise AssertionError("no reload counter")


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    port = free_port()
    body = f"proxy:\n  inbound:\n    - name: main\n      listen: 127.0.0.1:{port}\n"
    with (
        scripted_upstream() as upstream,
        running_pillion(tmp_path, body, upstream.port) as process,
    ):
        yield Pod(process, port, process.config.read_text())


def refused_and_serving(pod: Pod, text: str | bytes, count: int, reason: str) -> None:
    pod.reload_with(text)
    record = pod.pillion.wait_for_log(
        "config reload refused; the previous config keeps running", count=count
    )
    assert any(reason in error for error in record["errors"]), record["errors"]
    assert pod.reload_errors() == count
    assert pod.get() == 200


def test_empty_comment_only_and_cut_short_files_keep_the_proxy(pod: Pod) -> None:
    assert pod.get() == 200
    refused_and_serving(pod, "", 1, "empty or only comments")
    refused_and_serving(pod, "# being written\n\n# ...\n", 2, "empty or only comments")
    # Cut short before the proxy section: valid YAML, but the proxy would go.
    cut = pod.good[: pod.good.index("proxy:")]
    refused_and_serving(pod, cut, 3, "write `proxy: null`")
    refused_and_serving(pod, b"x" * (5 * 1024 * 1024), 4, "larger than 4 MiB")


def test_a_feature_is_turned_off_when_the_file_says_so(pod: Pod) -> None:
    cut = pod.good[: pod.good.index("proxy:")]
    pod.reload_with(cut + "proxy: null\n")
    pod.pillion.wait_for_log("config reloaded")
    wait_until(lambda: refused(pod.port))


def big_config(pod: Pod) -> str:
    """The pod's config with a watch of 60k paths (about 3 MiB): slow to parse, and
    refused at the end (the watch names no ``notify``), so nothing is applied."""
    paths = "".join(
        f"        - /etc/app/conf.d/{i:08d}/settings-file.yaml\n" for i in range(60_000)
    )
    return pod.good + f"config:\n  watch:\n    - name: big\n      paths:\n{paths}"


def test_a_large_reload_is_parsed_while_requests_are_answered(pod: Pod) -> None:
    text = big_config(pod)
    assert 2 * 1024 * 1024 < len(text) < 4 * 1024 * 1024
    answered: list[float] = []  # when each request was answered (wall clock)
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            assert pod.get() == 200
            answered.append(time.time())

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_until(lambda: len(answered) > 5)
        pod.reload_with(text)
        started = pod.pillion.wait_for_log("config reload requested")
        ended = pod.pillion.wait_for_log("config reload refused; the previous config keeps running")
    finally:
        stop.set()
        thread.join()
    assert any("notify" in error for error in ended["errors"])
    begin, end = logged_at(started), logged_at(ended)
    during = [t for t in answered if begin < t < end]
    # Parsed on the event loop, no request could be answered between the two records
    # (one or two already under way, as measured); read off the loop, hundreds are.
    assert len(during) >= 20, (len(during), end - begin)
    assert pod.get() == 200


def logged_at(record: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(record["time"]).timestamp()
