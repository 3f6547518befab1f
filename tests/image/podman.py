"""podman as the tests call it: with the project's settings for this kind of machine
(``.build/containers.conf``, written by ``scripts/image.sh``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]
REFERENCE = "localhost/pillion:test"  # what the tests build and run
CONTAINERS_CONF = str(ROOT / ".build" / "containers.conf")


def environ() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF}


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False,
        env=environ(),
    )  # fmt: skip


def build() -> str:
    """Builds the image with ``scripts/image.sh`` (``make image``), its layers cached
    between runs; returns its reference."""
    built = subprocess.run(
        [str(ROOT / "scripts" / "image.sh")], capture_output=True, text=True, timeout=1200,
        check=False, env={**os.environ, "IMAGE": REFERENCE},
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert built.stdout.splitlines()[-1] == REFERENCE  # the last line names what it built
    return REFERENCE
