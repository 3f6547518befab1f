"""``pillion exec -- CMD``: the app as a child with its secrets in its environment."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import wait_until, write_config
from tests.secrets.servers import OpenBao
from tests.secrets.test_openbao import PASSWORD, approle

# The app: writes its DB_PASSWORD and pid to a file, counts SIGHUPs, exits 0 on TERM,
# or exits with the code in EXIT_WITH if it is set.
APP = """
import os, signal, sys, time
out = sys.argv[1]
with open(out, "a") as f:
    f.write(f"start {os.getpid()} {os.environ.get('DB_PASSWORD')}\\n")
def hup(*_):
    with open(out, "a") as f:
        f.write("hup\\n")
def term(*_):
    with open(out, "a") as f:
        f.write("term\\n")
    sys.exit(0)
signal.signal(signal.SIGHUP, hup)
signal.signal(signal.SIGTERM, term)
if os.environ.get("EXIT_WITH"):
    sys.exit(int(os.environ["EXIT_WITH"]))
while True:
    time.sleep(0.05)
"""


def start(openbao: OpenBao, tmp_path: Path, on_change: str, refresh: str = "200ms",
          extra_env: str = "") -> tuple[subprocess.Popen[str], Path]:  # fmt: skip
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    config = write_config(
        tmp_path,
        f"""
secrets:
  init_timeout: 10s
  vault: {{address: "{openbao.address}", auth: {approle(openbao, tmp_path)}}}
  sources:
    - {{name: db, type: kv, path: secret/db, refresh: {refresh}}}
  templates:
    - name: env
      destination: {out}/db.env
      template: "DB_PASSWORD={{{{ secrets.db.password }}}}\\n{extra_env}"
  exec: {{environment: [env], on_change: {on_change}, stop_timeout: 5s}}
""",
        "exec.yaml",
    )
    (tmp_path / "app.py").write_text(APP)
    report = tmp_path / "app.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "pillion", "exec", "-c", str(config), "--",
         sys.executable, str(tmp_path / "app.py"), str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return process, report


def lines(report: Path) -> list[str]:
    return report.read_text().splitlines() if report.exists() else []


def test_the_child_gets_its_secrets_and_is_restarted_when_they_change(
    openbao: OpenBao, tmp_path: Path
) -> None:
    openbao.put_kv("secret", "db", {"password": PASSWORD})
    process, report = start(openbao, tmp_path, "restart")
    try:
        wait_until(lambda: len(lines(report)) == 1)
        first_pid = lines(report)[0].split()[1]
        assert lines(report)[0].endswith(f" {PASSWORD}")
        openbao.put_kv("secret", "db", {"password": "rotated"})
        wait_until(lambda: len(lines(report)) == 3)  # term, then a new start
        assert lines(report)[1] == "term"
        pid, value = lines(report)[2].split()[1:]
        assert pid != first_pid
        assert value == "rotated"
        process.send_signal(signal.SIGTERM)  # passed on; the child's status is Pillion's
        assert process.wait(timeout=20) == 0
        assert lines(report)[-1] == "term"
    finally:
        process.kill()
        output = process.communicate()[0]
    assert PASSWORD not in output


def test_signal_on_change_and_signals_are_passed_on(openbao: OpenBao, tmp_path: Path) -> None:
    openbao.put_kv("secret", "db", {"password": "one"})
    process, report = start(openbao, tmp_path, "signal")
    try:
        wait_until(lambda: len(lines(report)) == 1)
        openbao.put_kv("secret", "db", {"password": "two"})
        wait_until(lambda: "hup" in lines(report))  # signalled, not restarted
        process.send_signal(signal.SIGHUP)  # Pillion's own SIGHUP goes to the child
        wait_until(lambda: lines(report).count("hup") == 2)
        assert [line for line in lines(report) if line.startswith("start")] == [lines(report)[0]]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.communicate()


def test_the_exit_status_is_the_childs_and_nothing_starts_without_secrets(
    openbao: OpenBao, tmp_path: Path
) -> None:
    openbao.put_kv("secret", "db", {"password": "x"})
    process, report = start(openbao, tmp_path, "none", extra_env="EXIT_WITH=7\\n")
    assert process.wait(timeout=30) == 7
    process.communicate()
    # a secret that does not exist: the command never starts, exit 1 after init_timeout
    tmp = tmp_path / "missing"
    tmp.mkdir()
    openbao.api("DELETE", "secret/metadata/db")
    process, report = start(openbao, tmp, "none")
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 1
    assert "secrets not rendered in init_timeout" in output
    assert not report.exists()
