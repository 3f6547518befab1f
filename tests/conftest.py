from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, running_pillion


@pytest.fixture
def pillion(tmp_path: Path) -> Iterator[PillionProcess]:
    """A started, ready ``pillion run`` on free loopback ports; stopped afterwards."""
    with running_pillion(tmp_path, "lifecycle:\n  drain_timeout: 10s\n") as process:
        yield process
