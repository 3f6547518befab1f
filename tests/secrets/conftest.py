"""Fixtures with real secret servers (see ``servers.py``).

``openbao`` is a fresh dev server for each test: it is ready in about 0.15 s and
killed at teardown at once, so no test sees another's mounts, tokens or leases.
``postgres`` is shared by the tests of a module (about 0.5 s to initialise and
start); the login roles that leases create in it are left there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.secrets.servers import OpenBao, Postgres


@pytest.fixture
def openbao(tmp_path: Path) -> Iterator[OpenBao]:
    """A started OpenBao dev server; its log is ``openbao.log`` under ``tmp_path``."""
    with OpenBao(tmp_path / "openbao") as server:
        yield server


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A started PostgreSQL with its superuser's password set; removed afterwards."""
    with Postgres() as server:
        yield server
