"""``examples/logs-to-loki.yaml`` run as it is: container log files in the CRI
format, written as a Java app's container would have them, reach a loopback
receiver that checks Loki's push API (JSON, gzip) joined, parsed, redacted and
labelled as the file says."""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
from pathlib import Path
from typing import Any

from tests.examples.running import running_example
from tests.helpers import wait_until
from tests.logs.test_http_outputs import Receiver

POD = "shop-7d9f8c6b5-x2x9q"
UID = "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
ENV = {"POD_NAMESPACE": "shop", "POD_NAME": POD, "POD_UID": UID, "NODE_NAME": "node-1",
       "CONTAINER_NAME": "app"}  # fmt: skip
SECRETS = ("hunter2", "4111", "sk_live_51Hx9", "eyJhbGciOiJIUzI1NiJ9")


def cri(stream: str, tag: str, log: str) -> str:
    """One line as containerd writes it: the runtime's time in nanoseconds."""
    now = datetime.datetime.now(datetime.UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond:06d}000Z {stream} {tag} {log}\n"


def app_time(seconds: int) -> tuple[str, int]:
    """A logback timestamp some seconds ago, and the same time in nanoseconds."""
    moment = datetime.datetime.now(datetime.UTC).replace(microsecond=123000)
    moment -= datetime.timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"), int(
        moment.timestamp()
    ) * 10**9 + 123 * 10**6


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def lines_with_labels(receiver: Receiver) -> list[tuple[dict[str, str], int, str]]:
    with receiver.lock:
        return [
            (stream["stream"], int(value[0]), value[1])
            for stream in receiver.loki
            for value in stream["values"]
        ]


def delivered(checkpoints: Path, log: Path) -> int | None:
    """How far the checkpoints say ``log`` is delivered."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{checkpoints}?mode=ro", uri=True)) as db:
            query = "SELECT delivered FROM files WHERE path = ?"
            row = db.execute(query, (str(log),)).fetchone()
    except sqlite3.OperationalError:  # in the middle of a save: asked again
        return None
    return None if row is None else int(row[0])


def the_one(found: list[tuple[dict[str, str], int, str]], start: str) -> Any:
    matching = [entry for entry in found if entry[2].startswith(start)]
    assert len(matching) == 1, (start, found)
    return matching[0]


def test_container_logs_reach_loki_joined_redacted_and_labelled(tmp_path: Path) -> None:
    logs = tmp_path / f"var/log/pods/shop_{POD}_{UID}/app"  # as the kubelet names it
    podinfo = tmp_path / "etc/podinfo"
    state = tmp_path / "var/lib/pillion"
    for directory in (logs, podinfo, state):
        directory.mkdir(parents=True)
    (podinfo / "labels").write_text(
        'app.kubernetes.io/name="shop"\npod-template-hash="7d9f8c6b5"\n'
    )
    started, started_ns = app_time(30)
    failed, failed_ns = app_time(20)
    warned, _ = app_time(10)
    log = logs / "0.log"
    # the node's other containers and pods, beside this one's: never read
    for other in (f"shop_{POD}_{UID}/istio-proxy", f"shop_cart-5c4b_{UID[::-1]}/app"):
        (tmp_path / "var/log/pods" / other).mkdir(parents=True)
        append(tmp_path / "var/log/pods" / other / "0.log", cri("stdout", "F", "NOT THIS POD"))
    # Before Pillion starts: a JVM warning on stderr, a start-up line, and the first
    # two parts of a line the runtime split (P), with a password and a card number
    # cut across the parts.
    append(
        log,
        cri("stderr", "F", "OpenJDK 64-Bit Server VM warning: Sharing is only supported for "
            "boot loader classes because bootstrap classpath has been appended")
        + cri("stdout", "F", f"{started} INFO  [main] com.example.shop.Application - "
              "Started Application in 4.21 seconds")
        + cri("stdout", "P", f"{started} INFO  [http-nio-8080-exec-1] "
              "com.example.shop.auth.LoginController - login user=alice pass")
        + cri("stdout", "P", "word=hunter2 card=4111 1111 "),
    )  # fmt: skip
    with (
        Receiver() as receiver,
        running_example(
            "logs-to-loki.yaml",
            tmp_path,
            moves={
                "/var/log/pods/": f"{tmp_path}/var/log/pods/",
                "/etc/podinfo": str(podinfo),
                "/var/lib/pillion": str(state),
                "http://loki-gateway.monitoring.svc.cluster.local": (
                    f"http://127.0.0.1:{receiver.port}"
                ),
            },
            env=ENV,
        ),
    ):
        # Tailed while running: the last part (F), an error with its stack trace, a
        # probe's access log line, and a warning with a bearer token.
        append(
            log,
            cri("stdout", "F", "1111 1111 accepted")
            + cri("stdout", "F", f"{failed} ERROR [http-nio-8080-exec-2] "
                  "com.example.shop.checkout.PaymentService - charge failed for order 1042")
            + cri("stdout", "F", "java.lang.IllegalStateException: payment gateway refused "
                  "api_key=sk_live_51Hx9")
            + cri("stdout", "F", "\tat com.example.shop.checkout.PaymentClient.charge("
                  "PaymentClient.java:88)")
            + cri("stdout", "F", "\tat com.example.shop.checkout.PaymentService.pay("
                  "PaymentService.java:41)")
            + cri("stdout", "F", "Caused by: java.net.SocketTimeoutException: Read timed out")
            + cri("stdout", "F", "\tat java.base/java.net.SocketInputStream.read("
                  "SocketInputStream.java:168)")
            + cri("stdout", "F", "\t... 42 more")
            + cri("stdout", "F", f"{warned} INFO  [http-nio-8080-exec-3] "
                  "org.apache.catalina.AccessLog - 10.0.0.7 GET /actuator/health 200 "
                  "kube-probe/1.29")
            + cri("stdout", "F", f"{warned} WARN  [http-nio-8080-exec-4] "
                  "com.example.shop.api.Client - retrying with Authorization: Bearer "
                  "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"),
        )  # fmt: skip
        # six records: the probe's line is excluded; the last record goes out after
        # the multiline flush_timeout, as nothing follows it
        wait_until(lambda: len(lines_with_labels(receiver)) >= 6)
        found = lines_with_labels(receiver)
        # the checkpoints on the volume: the whole file is delivered
        wait_until(lambda: delivered(state / "logs.db", log) == log.stat().st_size)
        assert (state / "buffer.db").exists()

    assert len(found) == 6, found
    assert not any("NOT THIS POD" in line for _, _, line in found)
    assert not any("kube-probe" in line for _, _, line in found)
    for secret in SECRETS:
        assert not any(secret in line for _, _, line in found), secret

    pod = {"input": "app", "namespace": "shop", "pod": POD, "container": "app", "app": "shop"}
    jvm = the_one(found, "OpenJDK 64-Bit Server VM warning")
    assert jvm[0] == {**pod, "stream": "stderr"}  # not a logback line: no level

    # the P parts and their F are one line, redacted after they were joined
    login = the_one(found, f"{started} INFO  [http-nio-8080-exec-1]")
    assert login[2].endswith("login user=alice password=[REDACTED] card=[CARD] accepted")
    assert login[0] == {**pod, "stream": "stdout", "level": "INFO"}
    assert abs(login[1] - started_ns) < 10**6  # the app's own time (ns, float-rounded)

    error = the_one(found, f"{failed} ERROR")
    assert error[0] == {**pod, "stream": "stdout", "level": "ERROR"}
    assert abs(error[1] - failed_ns) < 10**6

    # the exception, its frames, the cause and "... n more": one record
    trace = the_one(found, "java.lang.IllegalStateException")
    assert trace[2] == (
        "java.lang.IllegalStateException: payment gateway refused api_key=[REDACTED]\n"
        "\tat com.example.shop.checkout.PaymentClient.charge(PaymentClient.java:88)\n"
        "\tat com.example.shop.checkout.PaymentService.pay(PaymentService.java:41)\n"
        "Caused by: java.net.SocketTimeoutException: Read timed out\n"
        "\tat java.base/java.net.SocketInputStream.read(SocketInputStream.java:168)\n"
        "\t... 42 more"
    )
    assert trace[0] == {**pod, "stream": "stdout"}

    warning = the_one(found, f"{warned} WARN")
    assert warning[2].endswith("retrying with Authorization: Bearer [REDACTED]")
    assert warning[0]["level"] == "WARN"

    pushes = [h for h in receiver.headers if h["path"] == "/loki/api/v1/push"]
    assert pushes
    for headers in pushes:
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered["x-scope-orgid"] == "shop"
        assert lowered["content-encoding"] == "gzip"  # and the receiver gunzipped it
