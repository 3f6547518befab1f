"""Log shipping benchmark: Pillion against rsyslog, file -> TCP syslog, on 127.0.0.1 only.

One input file (by default 1 GiB: half JSON lines like a web service's, half plain
text lines, each with a unique number) is shipped, once by each subject, to a
receiver here that reads as fast as it can and stops its clock when the last line's
marker arrives.

* ``pillion``: ``pillion run`` with one ``logs`` input on the file and a ``syslog``
  output (RFC 5424, octet counting) to a TCP receiver, default buffers;
* ``pillion-http``: the same input, an ``http`` output (JSON lines, gzip, the
  defaults) to an HTTP/1.1 receiver that answers 200 to each batch;
* ``rsyslog``: ``rsyslogd -n`` with ``imfile`` on the file and ``omfwd`` (TCP,
  octet-counted framing) to the TCP receiver, its default in-memory queue.

Each subject starts fresh (no checkpoint or state), reads the file from its start, and
is timed from its start to the marker. Reported per subject: MiB/s and records/s of
the input, CPU seconds (user + system of the process tree) and peak RSS. The last
line is exactly::

    logs_bench mib_s=X records_s=Y vs_rsyslog=R rss_mib=M

X and Y are Pillion's MiB/s and records/s, R Pillion's MiB/s divided by rsyslog's, M
Pillion's peak RSS in MiB. A value is ``nan`` when the subject failed (its row says
why). Exit status: 0 when the run completed, 1 when the harness broke.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
MARKER = b"logs-bench-end-of-input"
REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600.0


@dataclass
class Result:
    name: str
    seconds: float | None = None
    cpu_seconds: float | None = None
    peak_rss_kib: int = 0
    received_bytes: int = 0
    failure: str | None = None


def make_input(path: Path, size: int) -> int:
    """Write about ``size`` bytes of log lines; return how many lines."""
    rng = random.Random(7)  # noqa: S311 - test data
    paths = ["/api/orders", "/api/users/42", "/healthz", "/static/app.js", "/api/cart"]
    count = 0
    with path.open("w") as out:
        written = 0
        while written < size:
            block = []
            for _ in range(1000):
                count += 1
                if count % 2:
                    line = json.dumps({
                        "time": "2026-11-24T12:00:00.000Z", "level": "info", "msg": "request",
                        "method": "GET", "path": rng.choice(paths), "status": 200,
                        "duration_ms": round(rng.random() * 50, 3), "id": count,
                    })  # fmt: skip
                else:
                    line = (
                        f"2026-11-24 12:00:00,000 INFO [worker-{count % 8}] processed job "
                        f"{count} in {rng.randint(1, 900)} ms (queue depth {rng.randint(0, 40)})"
                    )
                block.append(line + "\n")
            text = "".join(block)
            out.write(text)
            written += len(text)
        out.write(MARKER.decode() + "\n")
    return count + 1


class Receiver:
    """Accepts TCP connections, reads everything, notes when the marker arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.done = threading.Event()
        self.received = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        tail = b""
        with conn:
            while True:
                try:
                    data = conn.recv(1 << 20)
                except OSError:
                    return
                if not data:
                    return
                self.received += len(data)
                if MARKER in tail + data[: len(MARKER)] or MARKER in data:
                    self.done.set()
                tail = data[-len(MARKER) :]

    def reset(self) -> None:
        self.done.clear()
        self.received = 0

    def close(self) -> None:
        self.sock.close()


class HttpReceiver(Receiver):
    """An HTTP/1.1 server taking POSTed batches (gzip or not), 200 to each; notes when
    the marker arrives. Its own requests are parsed by hand: cheap, keep-alive."""

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(1 << 20)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
                }
                length = int(headers.get(b"content-length", b"0"))
                while len(buffer) < length:
                    data = conn.recv(1 << 20)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                if headers.get(b"content-encoding") == b"gzip":
                    body = zlib.decompress(body, wbits=31)
                self.received += len(body)
                if MARKER in body:
                    self.done.set()
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")


def tree(root: int) -> list[int]:
    pids: list[int] = [root]
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    index = 0
    while index < len(pids):
        pids += children.get(pids[index], [])
        index += 1
    return pids


def cpu_and_rss(pids: list[int]) -> tuple[float, int]:
    ticks, rss = 0, 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK"), rss


def run_subject(name: str, argv: list[str], receiver: Receiver, env: dict[str, str]) -> Result:
    result = Result(name)
    receiver.reset()
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    cpu = 0.0
    try:
        while not receiver.done.wait(0.1):
            if proc.poll() is not None:
                err = proc.stderr.read().decode()[-300:] if proc.stderr else ""
                result.failure = f"exited {proc.returncode}: {err}"
                return result
            if time.monotonic() - started > TIMEOUT_S:
                result.failure = f"not done in {TIMEOUT_S:.0f}s"
                return result
            cpu, rss = cpu_and_rss(tree(proc.pid))
            result.peak_rss_kib = max(result.peak_rss_kib, rss)
        result.seconds = time.monotonic() - started
        cpu, rss = cpu_and_rss(tree(proc.pid))
        result.cpu_seconds = cpu
        result.peak_rss_kib = max(result.peak_rss_kib, rss)
        result.received_bytes = receiver.received
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return result


def pillion_config(work: Path, source: Path, output: str) -> Path:
    state = work / f"pillion-state-{len(list(work.glob('pillion-state-*')))}"
    config = work / f"{state.name}.yaml"
    sock = socket.socket()
    sock.bind((HOST, 0))
    admin = sock.getsockname()[1]
    sock2 = socket.socket()
    sock2.bind((HOST, 0))
    status = sock2.getsockname()[1]
    sock.close()
    sock2.close()
    config.write_text(f"""
admin: {{listen: {HOST}:{admin}}}
status: {{listen: {HOST}:{status}}}
telemetry: {{log_level: warning}}
logs:
  checkpoints: {state}/logs.db
  inputs:
    - {{name: bench, paths: ["{source}"]}}
  outputs:
    - {output}
""")
    return config


def rsyslog_config(work: Path, source: Path, port: int) -> Path:
    state = work / "rsyslog-state"
    state.mkdir()
    config = work / "rsyslog.conf"
    config.write_text(f"""
global(workDirectory="{state}")
module(load="imfile")
input(type="imfile" File="{source}" Tag="bench" freshStartTail="off")
action(type="omfwd" target="{HOST}" port="{port}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
""")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=1024, help="input size (default 1024)")
    parser.add_argument("--quick", action="store_true", help="a 32 MiB smoke run")
    parser.add_argument("--pillion", type=Path, default=REPO / ".venv" / "bin" / "pillion")
    args = parser.parse_args(argv)
    size = (32 if args.quick else args.size_mib) * 1024 * 1024
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not os.path.exists(rsyslogd):
        print("logs_bench: rsyslogd not found (make bench-logs installs it)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="pillion-logs-bench-"))
    receiver, http_receiver = Receiver(), HttpReceiver()
    try:
        source = work / "input.log"
        records = make_input(source, size)
        mib = source.stat().st_size / (1024 * 1024)
        print(f"logs_bench: input {mib:.0f} MiB, {records:,} lines", file=sys.stderr, flush=True)
        env = {**os.environ}
        syslog = (
            f'{{name: receiver, type: syslog, address: "{HOST}:{receiver.port}", hostname: bench}}'
        )
        http = f"{{name: receiver, type: http, url: http://{HOST}:{http_receiver.port}/ingest}}"
        results = [
            run_subject(
                "pillion",
                [str(args.pillion), "run", "-c", str(pillion_config(work, source, syslog))],
                receiver,
                env,
            ),
            run_subject(
                "pillion-http",
                [str(args.pillion), "run", "-c", str(pillion_config(work, source, http))],
                http_receiver,
                env,
            ),
            run_subject(
                "rsyslog",
                [rsyslogd, "-n", "-f", str(rsyslog_config(work, source, receiver.port)),
                 "-i", str(work / "rsyslog.pid")],
                receiver,
                env,
            ),
        ]  # fmt: skip
    finally:
        receiver.close()
        http_receiver.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nlogs_bench: {mib:.0f} MiB, {records:,} lines, file -> TCP syslog "
          f"(pillion-http: file -> HTTP) on {HOST}\n")  # fmt: skip
    header = ("subject", "seconds", "MiB/s", "records/s", "CPU s", "RSS MiB")
    print(f"{header[0]:<14}{header[1]:>9}{header[2]:>9}{header[3]:>12}{header[4]:>8}"
          f"{header[5]:>9}  notes")  # fmt: skip
    by_name = {}
    for result in results:
        by_name[result.name] = result
        if result.seconds is None:
            blanks = f"{'-':>9}{'-':>9}{'-':>12}{'-':>8}{'-':>9}"
            print(f"{result.name:<14}{blanks}  FAILED: {result.failure}")
            continue
        print(
            f"{result.name:<14}{result.seconds:>9.1f}{mib / result.seconds:>9.1f}"
            f"{records / result.seconds:>12,.0f}{result.cpu_seconds or 0:>8.1f}"
            f"{result.peak_rss_kib / 1024:>9.1f}  received {result.received_bytes / 2**20:.0f} MiB"
        )
    ours, theirs = by_name["pillion"], by_name["rsyslog"]
    mib_s = mib / ours.seconds if ours.seconds else None
    records_s = records / ours.seconds if ours.seconds else None
    ratio = (mib_s / (mib / theirs.seconds)) if mib_s and theirs.seconds else None
    rss = ours.peak_rss_kib / 1024 if ours.seconds else None

    def show(value: float | None, spec: str) -> str:
        return "nan" if value is None else format(value, spec)

    print(
        f"\nlogs_bench mib_s={show(mib_s, '.1f')} records_s={show(records_s, '.0f')} "
        f"vs_rsyslog={show(ratio, '.2f')} rss_mib={show(rss, '.1f')}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
