"""The image, built by ``make image`` (podman here: ``scripts/image.sh``) and run
as users run it: non-root, a read-only root filesystem, every capability dropped,
tini as PID 1. It serves, reports its build, stops with exit 0, and refuses a
missing or unreadable config with exit 2."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import base_config, free_port, http, wait_until
from tests.image.podman import ROOT, podman

# The first test waits for the build: the bases (made once) and two stages.
pytestmark = pytest.mark.timeout(1200)


def _run(
    image: str, *args: str, volumes: tuple[str, ...] = (), options: tuple[str, ...] = ()
) -> str:
    hardened = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                *options]  # fmt: skip
    mounts = [f"--volume={v}" for v in volumes]
    started = podman("run", "--detach", "--network", "host", *hardened, *mounts, image, *args)
    assert started.returncode == 0, started.stderr
    return started.stdout.strip()


@pytest.fixture
def containers() -> Iterator[list[str]]:
    started: list[str] = []
    yield started
    for container in started:
        podman("rm", "--force", "--time", "0", container)


def _state(container: str) -> dict[str, object]:
    inspected = podman("inspect", container)
    state: dict[str, object] = json.loads(inspected.stdout)[0]["State"]
    return state


def test_the_image_is_labelled_non_root_and_has_the_compiled_hot_path(image: str) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    labels = inspected["Config"]["Labels"]
    init = (ROOT / "src" / "pillion" / "__init__.py").read_text()
    version = re.search(r'^__version__ = "(.+)"$', init, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert labels["org.opencontainers.image.version"] == version
    git = ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"]
    revision = subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == (revision or "unknown")
    assert inspected["Config"]["User"] == "1337:1337"
    assert inspected["Config"]["Entrypoint"] == ["/usr/bin/tini", "--", "pillion"]
    shown = podman("run", "--rm", image, "version")
    assert shown.returncode == 0, shown.stderr
    assert "compiled (mypyc" in shown.stdout, shown.stdout
    # no compiler, no pip, no wheels left in the image
    look = "command -v gcc pip apt dpkg; for p in /wheel /opt/pillion/bin/pip; do "
    look += "[ -e $p ] && echo $p; done; true"
    found = podman("run", "--rm", "--entrypoint", "/bin/sh", image, "-c", look)
    assert found.stdout.strip() == ""
    # what the capture init container runs: `pillion iptables` needs both families' tools
    for tool in ("iptables-restore", "ip6tables-restore"):
        ran = podman("run", "--rm", "--entrypoint", tool, image, "--version")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "nf_tables" in ran.stdout or "legacy" in ran.stdout, ran.stdout


def test_the_capture_init_container_needs_only_the_two_network_capabilities(image: str) -> None:
    """``pillion iptables`` as the injector runs it: root, every capability dropped
    but NET_ADMIN and NET_RAW, in the container's own network namespace."""
    ran = podman("run", "--rm", "--user", "0", "--read-only", "--cap-drop", "ALL",
                 "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", image, "iptables")  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "capture installed (inbound): ipv4" in ran.stdout + ran.stderr


def test_it_serves_hardened_and_stops_with_exit_0(
    image: str, tmp_path: Path, containers: list[str]
) -> None:
    admin, status = free_port(), free_port()
    config = tmp_path / "pillion.yaml"
    config.write_text(base_config(admin, status))
    config.chmod(0o644)
    container = _run(image, "run", "-c", "/etc/pillion/pillion.yaml",
                     volumes=(f"{config}:/etc/pillion/pillion.yaml:ro",))  # fmt: skip
    containers.append(container)
    wait_until(lambda: _ready(status), timeout=60)
    metrics = http("GET", f"http://127.0.0.1:{status}/metrics")[2]
    checked = subprocess.run(["promtool", "check", "metrics"], input=metrics,
                             capture_output=True, timeout=30, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    stopped = podman("stop", "--time", "20", container)
    assert stopped.returncode == 0, stopped.stderr
    assert _state(container)["ExitCode"] == 0
    logs = podman("logs", container).stderr
    assert '"message":"stopped"' in logs, logs


def _ready(port: int) -> bool:
    try:
        return http("GET", f"http://127.0.0.1:{port}/healthz/ready", timeout=1)[0] == 200
    except OSError:
        return False


@pytest.mark.parametrize("problem", ["missing", "unreadable"])
def test_a_config_it_cannot_read_exits_2_with_a_clear_line(
    image: str, tmp_path: Path, containers: list[str], problem: str
) -> None:
    config = tmp_path / "pillion.yaml"
    config.write_text("status: {listen: 127.0.0.1:1}\n")
    config.chmod(0o600)  # root's: uid 1337 cannot read it
    volumes = (f"{config}:/etc/pillion/pillion.yaml:ro",) if problem == "unreadable" else ()
    container = _run(image, "run", "-c", "/etc/pillion/pillion.yaml", volumes=volumes)
    containers.append(container)
    wait_until(lambda: _state(container)["Status"] == "exited", timeout=60)
    assert _state(container)["ExitCode"] == 2
    output = podman("logs", container).stderr
    assert "/etc/pillion/pillion.yaml" in output
    assert ("cannot read" if problem == "missing" else "not readable") in output, output
    assert "Traceback" not in output


def test_with_nothing_writable_it_serves_and_a_component_that_must_write_says_why(
    image: str, tmp_path: Path, containers: list[str]
) -> None:
    """A read-only root and a read-only /tmp: Pillion itself writes nothing there;
    the log pipeline, whose checkpoints need a volume that was not mounted, stops
    the start with one clear line and exit 1 (a runtime failure), no traceback."""
    admin, status = free_port(), free_port()
    config = tmp_path / "pillion.yaml"
    config.write_text(base_config(admin, status))
    config.chmod(0o644)
    volumes = (f"{config}:/etc/pillion/pillion.yaml:ro",)
    read_only_tmp = ("--read-only-tmpfs=false",)
    serving = _run(image, "run", "-c", "/etc/pillion/pillion.yaml", volumes=volumes,
                   options=read_only_tmp)  # fmt: skip
    containers.append(serving)
    wait_until(lambda: _ready(status), timeout=60)
    assert podman("stop", "--time", "20", serving).returncode == 0
    assert _state(serving)["ExitCode"] == 0

    logs = tmp_path / "logs.yaml"
    logs.write_text(
        base_config(free_port(), free_port())
        + "logs:\n  inputs: [{name: app, paths: [/var/log/app/*.log]}]\n"
        + "  outputs: [{name: out, type: stdout}]\n"
    )
    logs.chmod(0o644)
    failing = _run(image, "run", "-c", "/etc/pillion/pillion.yaml", options=read_only_tmp,
                   volumes=(f"{logs}:/etc/pillion/pillion.yaml:ro",))  # fmt: skip
    containers.append(failing)
    wait_until(lambda: _state(failing)["Status"] == "exited", timeout=60)
    assert _state(failing)["ExitCode"] == 1
    output = podman("logs", failing).stderr
    assert "cannot open checkpoints /var/lib/pillion/logs.db" in output, output
    assert "Read-only file system" in output
    assert "Traceback" not in output
