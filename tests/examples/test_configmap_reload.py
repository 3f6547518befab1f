"""``examples/configmap-reload.yaml`` run for real: ConfigMaps laid out and updated as
the kubelet does (the ``..data`` swap), the app's reload endpoint a loopback HTTP
server, and the app's process, for the SIGHUP, a real process of its own name.

Only paths, the app's address and the process's name are moved (a name of the test's
own, so no other process on the machine is signalled)."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.configwatch.running import metric
from tests.configwatch.volumes import ConfigMapVolume
from tests.examples.running import ReloadEndpoint, running_example
from tests.helpers import serve_http, wait_until

SETTINGS = {"log-level": "info\n", "region": "eu-west-1\n", "features.yaml": "checkout_v2: true\n"}
RULES = '{"vat": 0.2, "free_shipping_over": 50}\n'
BROKEN = '{"vat": 0.21, "free_shipping_over": \n'  # cut short
FIXED = '{"vat": 0.21, "free_shipping_over": 50}\n'

# The app's process: named as asked, it writes a line to a file on each SIGHUP.
APP_PROCESS = """
import pathlib, signal, sys
pathlib.Path("/proc/self/comm").write_text(sys.argv[1])
log = pathlib.Path(sys.argv[2])
def hup(signum, frame):
    with log.open("a") as file:
        file.write("HUP\\n")
signal.signal(signal.SIGHUP, hup)
log.touch()
while True:
    signal.pause()
"""


@pytest.fixture
def app_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A process named ``shop-<random>`` (the name the signal target looks for), the
    name, and the file it writes a line to per SIGHUP."""
    name, hups = f"shop-{secrets.token_hex(4)}", tmp_path / "hups"
    child = subprocess.Popen([sys.executable, "-c", APP_PROCESS, name, str(hups)])
    try:
        wait_until(lambda: hups.exists())
        assert Path(f"/proc/{child.pid}/comm").read_text().strip() == name
        yield child, name, hups
    finally:
        child.kill()
        child.wait()


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_the_configmap_reload_example_renders_checks_and_notifies(
    tmp_path: Path, app_process: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    child, name, hups = app_process
    settings = ConfigMapVolume(tmp_path / "settings", SETTINGS)
    pricing = ConfigMapVolume(tmp_path / "pricing", {"rules.json": RULES})
    tls = ConfigMapVolume(tmp_path / "tls", {"tls.crt": "certificate 1\n", "tls.key": "key 1\n"})
    run = tmp_path / "run-app"  # the emptyDir
    run.mkdir()
    rendered = run / "config.json"
    rules = pricing.path / "rules.json"
    # the app re-reads its config: each call sees the rendered file and the rules as they are
    app = ReloadEndpoint(
        lambda: {"config": json.loads(rendered.read_text()), "rules": rules.read_text()}
    )
    failures = 'pillion_config_validation_failures_total{watch="pricing"}'
    with (
        serve_http(app.handler) as app_port,
        running_example(
            "configmap-reload.yaml",
            tmp_path,
            moves={
                "/etc/config/settings": str(settings.path),
                "/etc/config/pricing": str(pricing.path),
                "/etc/shop/tls": str(tls.path),
                "/var/run/app": str(run),
                "127.0.0.1:8080": f"127.0.0.1:{app_port}",
                "port: 8080": f"port: {app_port}",
                "process: shop": f"process: {name}",
            },
        ) as process,
    ):
        # ready: the file is rendered, and the app would now start
        assert json.loads(rendered.read_text()) == {
            "log_level": "info",
            "region": "eu-west-1",
            "features": {"checkout_v2": True},
        }
        assert stat.S_IMODE(os.stat(rendered).st_mode) == 0o444

        # a ConfigMap update: the file is rendered again, then the app is told
        settings.update({**SETTINGS, "region": "us-east-1\n",
                         "features.yaml": "checkout_v2: true\nnew_search: false\n"})  # fmt: skip
        changed = {
            "log_level": "info",
            "region": "us-east-1",
            "features": {"checkout_v2": True, "new_search": False},
        }
        wait_until(lambda: json.loads(rendered.read_text()) == changed)
        wait_until(lambda: len(app.calls) == 1)
        assert app.calls[0] == {"path": "/-/reload", "config": changed, "rules": RULES}

        # a broken pricing file fails the check: logged, counted, the app not told
        assert metric(process, failures) == 0.0
        pricing.update({"rules.json": BROKEN})
        wait_until(lambda: metric(process, failures) == 1.0)
        refused = process.wait_for_log("config change failed validation; the app is not notified")
        assert refused["watch"] == "pricing"
        assert refused["error"] == "python3 exited 1"
        assert "Expecting value" in refused["output"]
        assert len(app.calls) == 1
        # the next good version is checked and notified
        pricing.update({"rules.json": FIXED})
        wait_until(lambda: len(app.calls) == 2)
        assert app.calls[1] == {"path": "/-/reload", "config": changed, "rules": FIXED}
        assert metric(process, failures) == 1.0

        # the certificate renewed: the app's process gets SIGHUP, nobody else is called
        assert lines(hups) == 0
        tls.update({"tls.crt": "certificate 2\n", "tls.key": "key 2\n"})
        wait_until(lambda: lines(hups) == 1)
        assert child.poll() is None  # handled, as the app would
        assert metric(process, 'pillion_notify_total{result="ok",target="hup"}') == 1.0
        assert metric(process, 'pillion_notify_total{result="ok",target="reload"}') == 2.0
        assert len(app.calls) == 2
    # the first render and the first look at each watch told no one: two calls for
    # two changes (above), one signal for one
    assert lines(hups) == 1
