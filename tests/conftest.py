from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, base_config, free_port, write_config


@pytest.fixture
def pillion(tmp_path: Path) -> Iterator[PillionProcess]:
    """A started, ready ``pillion run`` on free loopback ports; stopped afterwards."""
    admin, status = free_port(), free_port()
    config = write_config(tmp_path, base_config(admin, status))
    process = PillionProcess(config, admin, status).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
