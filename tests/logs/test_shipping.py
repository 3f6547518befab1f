"""Log shipping end to end: a real Pillion tails files that the test writes,
rotates and truncates, and every line is counted by its id in the output."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PillionProcess, http, metric_value, running_pillion, wait_until

POD = {"POD_NAMESPACE": "shop", "POD_NAME": "web-7", "CONTAINER_NAME": "app", "NODE_NAME": "node-1"}


@dataclass
class Shipper:
    directory: Path
    logs: Path  # the app's log directory
    out: Path  # the file output
    body: str  # the config, after admin and status
    process: PillionProcess | None = None  # the last one started
    started: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def start(self) -> PillionProcess:
        """A new ``pillion run`` on new ports (the ones before have been stopped)."""
        self.process = self.started.enter_context(
            running_pillion(self.directory, self.body, env=POD)
        )
        return self.process

    def ids(self) -> Counter[str]:
        """How many times each line id arrived."""
        found: Counter[str] = Counter()
        for record in self.records():
            found[record["message"]] += 1
        return found

    def records(self) -> list[dict[str, Any]]:
        """The file output's records; a line cut short by a SIGKILL (sent again after
        the restart) is left out: at most one, followed by a newline of its own."""
        if not self.out.exists():
            return []
        lines = self.out.read_bytes().splitlines()
        if lines and not lines[-1].endswith(b"}"):
            lines.pop()  # still being written
        found = []
        torn = 0
        for line in lines:
            try:
                found.append(json.loads(line))
            except ValueError:
                torn += 1
        assert torn <= 1, f"{torn} broken lines in the file output"
        return found

    def wait_for(self, expected: set[str], timeout: float = 20) -> Counter[str]:
        wait_until(lambda: expected <= set(self.ids()), timeout=timeout)
        return self.ids()

    def metrics(self) -> bytes:
        assert self.process is not None
        return http("GET", f"{self.process.status_url}/metrics")[2]


@pytest.fixture
def shipper(tmp_path: Path) -> Iterator[Shipper]:
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "podinfo").mkdir()
    (tmp_path / "podinfo" / "labels").write_text('app="shop"\nversion="v2"\n')
    out = tmp_path / "shipped.jsonl"
    body = f"""
logs:
  checkpoints: {tmp_path}/state/logs.db
  kubernetes: {{labels_file: {tmp_path}/podinfo/labels}}
  inputs:
    - name: app
      paths: ["{logs}/*.log"]
      exclude: ["*.skip.log"]
      rotate_wait: 1s
      scan_interval: 50ms
      max_line_size: 1KiB
    - name: pods
      paths: ["{logs}/pods/**/*.log"]
      format: cri
      scan_interval: 50ms
    - name: docker
      paths: ["{logs}/docker/*-json.log"]
      format: docker
      scan_interval: 50ms
    - name: parsed
      paths: ["{logs}/parsed/*.log"]
      parser: {{type: json, time_field: ts, time_format: unix}}
      fields: {{cluster: test-cluster}}
      filters:
        - exclude: {{field: level, regex: "^debug$"}}
        - redact: {{regex: "Bearer [A-Za-z0-9._-]+", replacement: "Bearer [token]"}}
        - throttle: {{threshold: 2, window: 1h, key: level}}
      scan_interval: 50ms
    - name: java
      paths: ["{logs}/java/*.log"]
      multiline: {{preset: java, flush_timeout: 200ms}}
      scan_interval: 50ms
  outputs:
    - {{name: archive, type: file, path: {out}, batch_timeout: 20ms}}
"""
    shipper = Shipper(tmp_path, logs, out, body)
    with shipper.started:  # stops every Pillion started
        yield shipper


def write(path: Path, ids: list[str]) -> None:
    with path.open("a") as file:
        file.write("".join(f"{i}\n" for i in ids))


def batch(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:06d}" for n in range(count)]


def test_every_line_arrives_once(shipper: Shipper) -> None:
    app = shipper.logs / "app.log"
    write(app, batch("a", 1000))
    write(shipper.logs / "ignored.skip.log", ["never"])
    shipper.start()
    write(app, batch("b", 1000))
    found = shipper.wait_for(set(batch("a", 1000) + batch("b", 1000)))
    assert set(found.values()) == {1}
    assert "never" not in found
    lag = f'pillion_logs_lag_bytes{{file="{app}",input="app"}}'
    wait_until(lambda: metric_value(shipper.metrics(), lag) == 0.0)  # all delivered
    record = json.loads(shipper.out.read_bytes().splitlines()[0])
    assert (record["input"], record["file"]) == ("app", str(app))


def test_a_batch_full_by_its_bytes_goes_without_waiting_for_more(shipper: Shipper) -> None:
    # Lines long enough that batch_max_bytes stops each batch at three records, long
    # before batch_max_records: such a batch is full and is sent at once. Were it
    # taken for one still filling, each would wait out batch_timeout (an hour here).
    shipper.body = shipper.body.replace(
        "batch_timeout: 20ms", "batch_timeout: 1h, batch_max_bytes: 4KiB"
    )
    app = shipper.logs / "app.log"
    ids = [f"long-{n:03d}-" + "x" * 990 for n in range(30)]
    write(app, ids)
    shipper.start()
    # all but the last few, which may wait for a fuller batch until the stop flushes them
    wait_until(lambda: len(shipper.ids()) >= 25, timeout=20)
    shipper.started.close()
    found = shipper.ids()
    assert set(found) == set(ids)
    assert set(found.values()) == {1}


def test_rename_rotation_loses_nothing(shipper: Shipper) -> None:
    app = shipper.logs / "app.log"
    shipper.start()
    write(app, batch("before", 500))
    shipper.wait_for({"before-000000"})  # the file is known (a file renamed away before
    # Pillion ever saw it is not under its paths: nothing can find it)
    write(app, batch("unread", 500))  # written, maybe not read yet, then rotated
    os.rename(app, shipper.logs / "app.log.1")  # no longer matched by the glob
    write(shipper.logs / "app.log.1", batch("late", 100))  # written after the rename
    write(app, batch("after", 500))
    found = shipper.wait_for(
        set(batch("before", 500) + batch("unread", 500) + batch("late", 100) + batch("after", 500))
    )
    assert set(found.values()) == {1}
    metrics = shipper.metrics()
    assert (metric_value(metrics, 'pillion_logs_files_rotated_total{input="app"}') or 0) >= 1


def reload_after_a_rename(shipper: Shipper, edit: Callable[[str], str]) -> Counter[str]:
    """Lines written, the file renamed, the config edited and reloaded, then late lines
    written to the renamed file and new ones to the path: what arrived of them all."""
    app = shipper.logs / "app.log"
    process = shipper.start()
    write(app, batch("before", 300))
    shipper.wait_for(set(batch("before", 300)))
    write(app, batch("unread", 300))
    os.rename(app, shipper.logs / "app.log.1")
    process.config.write_text(edit(process.config.read_text()))
    process.signal(signal.SIGHUP)
    process.wait_for_log("config reloaded")
    write(shipper.logs / "app.log.1", batch("late", 100))  # the renamed file, after the reload
    write(app, batch("after", 300))
    expected = (
        batch("before", 300) + batch("unread", 300) + batch("late", 100) + batch("after", 300)
    )
    return shipper.wait_for(set(expected))


def test_a_reload_that_leaves_logs_alone_neither_loses_nor_resends(shipper: Shipper) -> None:
    # A reload of another section, just after a rename rotation: the pipeline goes on
    # as it was, still following the renamed file for its late lines.
    found = reload_after_a_rename(shipper, lambda body: body + "telemetry: {log_level: debug}\n")
    assert set(found.values()) == {1}  # none sent again


def test_a_reload_of_the_logs_after_a_rename_keeps_reading_the_renamed_file(
    shipper: Shipper,
) -> None:
    # The pipeline is replaced (its settings change) while a renamed file is still
    # followed for late lines: the new pipeline takes it over. (Lines delivered since
    # the last checkpoint save may come twice: at least once.)
    found = reload_after_a_rename(
        shipper, lambda body: body.replace("batch_timeout: 20ms", "batch_timeout: 30ms")
    )
    assert found["late-000099"] >= 1


def test_copytruncate_restarts_the_file_at_zero(shipper: Shipper) -> None:
    app = shipper.logs / "app.log"
    shipper.start()
    write(app, batch("old", 300))
    shipper.wait_for(set(batch("old", 300)))
    os.truncate(app, 0)
    write(app, batch("new", 50))  # shorter than what was read before
    found = shipper.wait_for(set(batch("new", 50)))
    assert set(found.values()) == {1}


def test_a_restart_resumes_where_delivery_stopped(shipper: Shipper) -> None:
    app = shipper.logs / "app.log"
    write(app, batch("one", 200))
    process = shipper.start()
    shipper.wait_for(set(batch("one", 200)))
    process.proc.send_signal(signal.SIGTERM)
    assert process.wait_exit() == 0
    with app.open("a") as file:
        file.write("".join(f"{i}\n" for i in batch("two", 200)) + "partial-line-wi")
    shipper.start()
    shipper.wait_for(set(batch("two", 200)))
    with app.open("a") as file:
        file.write("thout-end\n")
    found = shipper.wait_for({"partial-line-without-end"})
    assert set(found.values()) == {1}  # nothing twice after a clean stop


def test_sigkill_under_load_loses_nothing_and_duplicates_are_bounded(shipper: Shipper) -> None:
    app = shipper.logs / "app.log"
    process = shipper.start()
    for round_ in range(10):
        write(app, batch(f"r{round_}", 2000))
        time.sleep(0.01)  # spread out: the kill comes while lines are being shipped
    os.kill(process.proc.pid, signal.SIGKILL)
    process.proc.wait()
    write(app, batch("afterwards", 500))
    shipper.start()
    expected = {i for r in range(10) for i in batch(f"r{r}", 2000)} | set(batch("afterwards", 500))
    found = shipper.wait_for(expected, timeout=60)
    duplicates = sum(n - 1 for n in found.values())
    # at least once: everything arrived; the duplicates are what was shipped but
    # not yet checkpointed at the kill (at most about one second of lines)
    assert duplicates <= 20_500
    assert set(found) == expected


def test_a_long_line_is_cut_and_the_file_goes_on(shipper: Shipper) -> None:
    app = shipper.logs / "app.log"
    shipper.start()
    with app.open("a") as file:
        file.write("start\n" + "x" * (1024 * 1024) + "\nend\n")
    found = shipper.wait_for({"start", "end", "x" * 1024})
    assert set(found.values()) == {1}
    truncated = metric_value(shipper.metrics(), 'pillion_logs_truncated_lines_total{input="app"}')
    assert truncated == 1.0


def test_a_corrupted_checkpoint_database_is_set_aside(shipper: Shipper) -> None:
    state = shipper.directory / "state"
    state.mkdir()
    (state / "logs.db").write_bytes(b"this is not a sqlite database" * 100)
    write(shipper.logs / "app.log", batch("c", 10))
    process = shipper.start()
    shipper.wait_for(set(batch("c", 10)))
    assert list(state.glob("logs.db.corrupt-*"))
    process.wait_for_log(
        "checkpoint database unreadable; moved aside, starting over (files are read again "
        "from their start: duplicates, not losses)"
    )


def test_sighup_to_a_new_destination_loses_nothing(shipper: Shipper) -> None:
    app = shipper.logs / "app.log"
    process = shipper.start()
    stop = threading.Event()
    written: list[str] = []

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            ids = [f"w-{n + i:07d}" for i in range(50)]
            write(app, ids)
            written.extend(ids)
            n += 50
            time.sleep(0.005)  # an app logging steadily

    writer = threading.Thread(target=keep_writing)
    writer.start()
    moved = shipper.directory / "moved.jsonl"
    try:
        wait_until(lambda: shipper.ids())  # lines shipped before the reload
        process.config.write_text(process.config.read_text().replace(str(shipper.out), str(moved)))
        process.signal(signal.SIGHUP)
        process.wait_for_log("config reloaded")
        wait_until(lambda: moved.exists() and moved.stat().st_size > 0)  # and after it
    finally:
        stop.set()
        writer.join()
    before, shipper.out = shipper.ids(), moved
    after = shipper.wait_for(set(written) - set(before), timeout=30)
    assert set(before) | set(after) >= set(written)  # every line, in one file or the other
    assert written[-1] in after  # the new destination has what came after the reload


def test_truncation_while_stopped_reads_the_new_content(shipper: Shipper) -> None:
    app = shipper.logs / "app.log"
    write(app, batch("long-before", 500))
    process = shipper.start()
    shipper.wait_for(set(batch("long-before", 500)))
    process.proc.send_signal(signal.SIGTERM)
    assert process.wait_exit() == 0
    os.truncate(app, 0)
    write(app, batch("short", 20))  # far shorter than the checkpoint's offset
    shipper.start()
    found = shipper.wait_for(set(batch("short", 20)))
    assert set(found.values()) == {1}


def test_a_file_reusing_an_inode_is_read_as_new(shipper: Shipper) -> None:
    """Delete a file and create another: the file system may give it the same
    inode; its different first line makes it a new file, read from its start."""
    app = shipper.logs / "app.log"
    write(app, batch("first-file", 300))
    process = shipper.start()
    shipper.wait_for(set(batch("first-file", 300)))
    process.proc.send_signal(signal.SIGTERM)
    assert process.wait_exit() == 0
    inode = app.stat().st_ino
    app.unlink()
    # longer than the first: resuming at the old offset would skip its first 300 lines
    write(app, batch("second-file", 600))
    reused = app.stat().st_ino == inode
    shipper.start()
    found = shipper.wait_for(set(batch("second-file", 600)))
    assert set(found.values()) == {1}, f"inode reused: {reused}"


def records_of(shipper: Shipper, name: str) -> list[dict[str, Any]]:
    if not shipper.out.exists():
        return []
    found = [json.loads(line) for line in shipper.out.read_bytes().splitlines()]
    return [r for r in found if r["input"] == name]


def test_cri_container_logs_with_partials_over_16_kib(shipper: Shipper) -> None:
    container = shipper.logs / "pods" / "shop_web-7_uid" / "web"
    container.mkdir(parents=True)
    big = "b" * 40_000
    parts = [big[i : i + 16384] for i in range(0, len(big), 16384)]
    text = "".join(f"2026-11-24T10:00:00.{n:09d}Z stdout P {p}\n" for n, p in enumerate(parts))
    text += "2026-11-24T10:00:01.000000000Z stdout F !\n"
    text += "2026-11-24T10:00:02.000000000Z stderr F a warning\n"
    (container / "0.log").write_text(text)
    shipper.start()
    wait_until(lambda: len(records_of(shipper, "pods")) == 2)
    first, second = records_of(shipper, "pods")
    assert (first["message"], first["stream"]) == (big + "!", "stdout")
    assert first["time"] == "2026-11-24T10:00:00.000000000Z"
    assert (second["message"], second["stream"]) == ("a warning", "stderr")


def test_docker_json_file_logs_with_lines_split_by_docker(shipper: Shipper) -> None:
    (shipper.logs / "docker").mkdir()
    big = "d" * 40_000  # Docker writes a line over 16 KiB as parts without newlines
    parts = [big[i : i + 16384] for i in range(0, len(big), 16384)]
    entries = [{"log": p, "stream": "stdout", "time": f"2026-11-24T10:00:00.{n:09d}Z"}
               for n, p in enumerate(parts)]  # fmt: skip
    entries.append({"log": "!\n", "stream": "stdout", "time": "2026-11-24T10:00:01.000000000Z"})
    entries.append({"log": "a warning\n", "stream": "stderr",
                    "time": "2026-11-24T10:00:02.000000000Z"})  # fmt: skip
    (shipper.logs / "docker" / "abc123-json.log").write_text(
        "".join(json.dumps(e) + "\n" for e in entries)
    )
    shipper.start()
    wait_until(lambda: len(records_of(shipper, "docker")) == 2)
    first, second = records_of(shipper, "docker")
    assert (first["message"], first["stream"]) == (big + "!", "stdout")
    assert first["time"] == "2026-11-24T10:00:00.000000000Z"
    assert (second["message"], second["stream"]) == ("a warning", "stderr")


def test_a_java_stack_trace_is_one_record(shipper: Shipper) -> None:
    (shipper.logs / "java").mkdir()
    trace = (
        "2026-11-24 10:00:00 ERROR checkout failed\n"
        'Exception in thread "main" java.lang.IllegalStateException: boom\n'
        "\tat com.shop.Cart.add(Cart.java:42)\n"
        "Caused by: java.io.IOException: disk\n"
        "\t... 12 more\n"
    )
    (shipper.logs / "java" / "app.log").write_text(trace)
    shipper.start()  # the last record goes out after flush_timeout: nothing follows it
    wait_until(lambda: len(records_of(shipper, "java")) == 2)
    first, second = records_of(shipper, "java")
    assert first["message"] == "2026-11-24 10:00:00 ERROR checkout failed"
    assert second["message"].startswith('Exception in thread "main"')
    assert second["message"].endswith("\t... 12 more")


def test_parsed_fields_static_fields_and_pod_metadata(shipper: Shipper) -> None:
    (shipper.logs / "parsed").mkdir()
    lines = [
        '{"ts": 1795514400, "level": "error", "msg": "card declined", "message": "spoof"}',
        '{"level": "debug", "msg": "noise"}',
        "not json at all, Authorization: Bearer eyJ.secret.token",
        '{"ts": 1795514401, "level": "error", "msg": "second error"}',
        '{"ts": 1795514402, "level": "error", "msg": "third error: throttled"}',
    ]
    (shipper.logs / "parsed" / "app.log").write_text("".join(f"{x}\n" for x in lines))
    shipper.start()
    wait_until(lambda: len(records_of(shipper, "parsed")) == 3)
    parsed, plain, second = records_of(shipper, "parsed")
    assert second["msg"] == "second error"
    assert parsed["level"] == "error"
    assert parsed["time"] == "2026-11-24T10:00:00.000Z"  # from the ts field
    assert parsed["message"] == lines[0]  # the record's own keys win over parsed ones
    assert parsed["cluster"] == "test-cluster"
    assert parsed["kubernetes"] == {
        "namespace": "shop", "pod": "web-7", "container": "app", "node": "node-1",
        "labels": {"app": "shop", "version": "v2"},
    }  # fmt: skip
    assert plain["message"] == "not json at all, Authorization: Bearer [token]"
    assert "eyJ" not in shipper.out.read_text()  # the token never left
    assert "level" not in plain
    assert plain["cluster"] == "test-cluster"
    metrics = shipper.metrics()
    # the plain line, and the debug line without its time field
    assert metric_value(metrics, 'pillion_logs_parse_errors_total{input="parsed"}') == 2.0
    dropped = 'pillion_logs_dropped_records_total{input="parsed",reason="filtered"}'
    assert metric_value(metrics, dropped) == 1.0
    throttled = 'pillion_logs_dropped_records_total{input="parsed",reason="throttled"}'
    assert metric_value(metrics, throttled) == 1.0  # two errors an hour, the plain line apart
