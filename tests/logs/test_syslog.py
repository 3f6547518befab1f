"""The syslog output against a real rsyslog (imtcp, octet counting), including
rsyslog going away while lines keep coming: the buffer fills, the input pauses,
and everything arrives once rsyslog is back."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pillion.tls.devca import issue, new_ca
from tests.helpers import PillionProcess, free_port, http, metric_value, running_pillion, wait_until


@dataclass
class Rsyslog:
    directory: Path
    port: int
    out: Path
    proc: subprocess.Popen[bytes] | None = None

    tls: tuple[Path, Path, Path] | None = None  # CA, certificate, key: RFC 5425

    def start(self) -> None:
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        assert os.path.exists(rsyslogd), "rsyslog comes from Debian; `make test` installs it"
        config = self.directory / "rsyslog.conf"
        if self.tls is None:
            prelude = f'global(workDirectory="{self.directory}")\nmodule(load="imtcp")'
        else:
            ca, cert, key = self.tls
            prelude = (
                f'global(workDirectory="{self.directory}" DefaultNetstreamDriver="ossl" '
                f'DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}" '
                f'DefaultNetstreamDriverKeyFile="{key}")\n'
                'module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" '
                'StreamDriver.AuthMode="anon")'
            )
        config.write_text(f"""
{prelude}
input(type="imtcp" port="{self.port}" address="127.0.0.1")
template(name="fields" type="string" string="%app-name% %hostname% %msg%\\n")
*.* action(type="omfile" file="{self.out}" template="fields")
""")
        self.proc = subprocess.Popen(
            [rsyslogd, "-n", "-f", str(config), "-i", str(self.directory / "rsyslog.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._listening)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def messages(self) -> Counter[str]:
        if not self.out.exists():
            return Counter()
        found: Counter[str] = Counter()
        for line in self.out.read_text().splitlines():
            app, host, message = line.split(" ", 2)
            assert (app, host) == ("web", "pod-7")
            found[message] += 1
        return found


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    directory = tmp_path / "rsyslog"
    directory.mkdir()
    server = Rsyslog(directory, free_port(), directory / "received.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pillion(tmp_path: Path, rsyslog: Rsyslog) -> Iterator[PillionProcess]:
    with shipping_to(tmp_path, rsyslog, disk_buffer="512KiB") as process:
        yield process


@contextlib.contextmanager
def shipping_to(tmp_path: Path, rsyslog: Rsyslog, disk_buffer: str) -> Iterator[PillionProcess]:
    (tmp_path / "logs").mkdir()
    body = f"""
logs:
  checkpoints: {tmp_path}/logs.db
  memory_buffer: 64KiB
  disk_buffer: {{path: {tmp_path}/spill/buffer.db, max_size: {disk_buffer}}}
  inputs:
    - {{name: web, paths: ["{tmp_path}/logs/*.log"], scan_interval: 50ms}}
  outputs:
    - name: central
      type: syslog
      address: 127.0.0.1:{rsyslog.port}
      hostname: pod-7
      timeout: 1s
      batch_timeout: 20ms
"""
    with running_pillion(tmp_path, body) as process:
        yield process


def lines(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:06d}" for n in range(count)]


def test_lines_reach_rsyslog_once(
    tmp_path: Path, rsyslog: Rsyslog, pillion: PillionProcess
) -> None:
    expected = lines("s", 5000)
    (tmp_path / "logs" / "web.log").write_text("".join(f"{m}\n" for m in expected))
    wait_until(lambda: set(expected) <= set(rsyslog.messages()), timeout=30)
    assert set(rsyslog.messages().values()) == {1}


def test_rsyslog_down_pauses_the_input_and_everything_arrives_later(
    tmp_path: Path, rsyslog: Rsyslog, pillion: PillionProcess
) -> None:
    log = tmp_path / "logs" / "web.log"
    log.write_text("first\n")
    wait_until(lambda: "first" in rsyslog.messages())
    rsyslog.stop()
    expected = lines("d", 20_000)  # about 6 MiB with overhead: 10 times both tiers
    with log.open("a") as file:
        file.write("".join(f"{m}\n" for m in expected))

    def metrics() -> bytes:
        return http("GET", f"{pillion.status_url}/metrics")[2]

    wait_until(lambda: metric_value(metrics(), 'pillion_logs_input_paused{input="web"}') == 1.0)
    lag = f'pillion_logs_lag_bytes{{file="{log}",input="web"}}'
    wait_until(lambda: (metric_value(metrics(), lag) or 0) > 64 * 1024)  # most of the file
    held = metric_value(metrics(), 'pillion_logs_buffer_bytes{tier="memory"}')
    assert held is not None
    assert held <= 64 * 1024 + 1024  # the limit, plus at most the one record that crossed it
    on_disk = metric_value(metrics(), 'pillion_logs_buffer_bytes{tier="disk"}')
    assert on_disk is not None
    assert 400 * 1024 < on_disk <= 512 * 1024 + 1024  # filled to its limit, not past it
    errors = 'pillion_logs_output_errors_total{output="central"}'
    wait_until(lambda: (metric_value(metrics(), errors) or 0) >= 2)  # retried, not dropped
    time.sleep(1)  # the output stays down a while longer: it keeps retrying, drops nothing
    rsyslog.start()
    wait_until(lambda: set(expected) <= set(rsyslog.messages()), timeout=60)
    assert metric_value(metrics(), 'pillion_logs_input_paused{input="web"}') == 0.0
    wait_until(lambda: metric_value(metrics(), lag) == 0.0)


def test_the_disk_buffer_keeps_the_input_reading_while_rsyslog_is_down(
    tmp_path: Path, rsyslog: Rsyslog
) -> None:
    with shipping_to(tmp_path, rsyslog, disk_buffer="64MiB") as pillion:
        log = tmp_path / "logs" / "web.log"
        log.write_text("first\n")
        wait_until(lambda: "first" in rsyslog.messages())
        rsyslog.stop()
        expected = lines("k", 20_000)  # about 6 MiB counted: 90 times the memory tier
        with log.open("a") as file:
            file.write("".join(f"{m}\n" for m in expected))

        def metric(name: str) -> float:
            return metric_value(http("GET", f"{pillion.status_url}/metrics")[2], name) or 0.0

        # every line is read: into memory, then to disk; the input never pauses
        read = 'pillion_logs_input_records_total{input="web"}'
        wait_until(lambda: metric(read) == 20_001)
        # (the buffer gauges are sampled each second)
        wait_until(lambda: metric('pillion_logs_buffer_bytes{tier="disk"}') > 5 * 1024 * 1024)
        assert metric('pillion_logs_input_paused{input="web"}') == 0.0
        assert metric('pillion_logs_buffer_bytes{tier="memory"}') <= 64 * 1024 + 1024
        # so a rotated and deleted file is let go (the app's volume gets its space back)
        os.rename(log, tmp_path / "logs" / "web.log.1")
        os.unlink(tmp_path / "logs" / "web.log.1")
        rotated = 'pillion_logs_files_rotated_total{input="web"}'
        wait_until(lambda: metric(rotated) == 1.0)
        wait_until(lambda: not open_files_under(pillion.proc.pid, tmp_path / "logs"), timeout=15)
        rsyslog.start()
        wait_until(lambda: set(expected) <= set(rsyslog.messages()), timeout=60)
        wait_until(lambda: metric('pillion_logs_buffer_bytes{tier="disk"}') == 0.0)
        assert metric('pillion_logs_output_records_total{output="central"}') == 20_001


def open_files_under(pid: int, directory: Path) -> list[str]:
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(f"{directory}/"):
            found.append(target)
    return found


def test_rotation_twice_while_the_output_is_down_loses_nothing(
    tmp_path: Path, rsyslog: Rsyslog, pillion: PillionProcess
) -> None:
    logs = tmp_path / "logs"
    log = logs / "web.log"
    log.write_text("hello\n")
    wait_until(lambda: "hello" in rsyslog.messages())
    rsyslog.stop()
    expected: list[str] = []
    for generation in range(3):
        batch = lines(f"g{generation}", 5000)
        expected += batch
        with log.open("a") as file:
            file.write("".join(f"{m}\n" for m in batch))
        if generation < 2:  # rename rotation, twice, while nothing can be delivered
            # once Pillion has the file open under its name (it scans every 50ms)
            wait_until(lambda: str(log) in open_files_under(pillion.proc.pid, logs))
            os.rename(log, logs / f"web.log.{generation + 1}.old")
    pillion.wait_for_log("log file rotated", count=2)  # both seen, the files still unread
    rsyslog.start()
    wait_until(lambda: set(expected) <= set(rsyslog.messages()), timeout=60)


def test_syslog_over_tls_to_rsyslog(tmp_path: Path) -> None:
    ca = new_ca()
    server = issue(ca, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "server.crt").write_bytes(server.cert_pem)
    (tmp_path / "server.key").write_bytes(server.key_pem)
    (tmp_path / "other-ca.crt").write_bytes(new_ca("another CA").cert_pem)
    directory = tmp_path / "rsyslog"
    directory.mkdir()
    files = (tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "server.key")
    receiver = Rsyslog(directory, free_port(), directory / "received.log", tls=files)
    receiver.start()
    (tmp_path / "logs").mkdir()
    body = f"""
lifecycle: {{drain_timeout: 1s}}  # the distrustful output never catches up
logs:
  checkpoints: {tmp_path}/logs.db
  inputs:
    - {{name: web, paths: ["{tmp_path}/logs/*.log"], scan_interval: 50ms}}
  outputs:
    - name: central
      type: syslog
      address: 127.0.0.1:{receiver.port}
      hostname: pod-7
      tls: {{ca: {tmp_path}/ca.crt, server_name: localhost}}
      batch_timeout: 20ms
    - name: distrustful  # trusts another CA: never delivers, keeps retrying
      type: syslog
      address: 127.0.0.1:{receiver.port}
      tls: {{ca: {tmp_path}/other-ca.crt, server_name: localhost}}
      timeout: 1s
"""
    try:
        with running_pillion(tmp_path, body) as process:
            expected = lines("t", 2000)
            (tmp_path / "logs" / "web.log").write_text("".join(f"{m}\n" for m in expected))
            wait_until(lambda: set(expected) <= set(receiver.messages()), timeout=30)
            assert set(receiver.messages().values()) == {1}
            failed = process.wait_for_log("log output failed; retrying")
            assert failed["output"] == "distrustful"
            assert "CERTIFICATE_VERIFY_FAILED" in failed["error"]
    finally:
        receiver.stop()
