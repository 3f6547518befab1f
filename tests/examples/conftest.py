"""The real secret servers of ``tests/secrets`` (an OpenBao dev server, a PostgreSQL),
for the examples that use them."""

from __future__ import annotations

from tests.secrets.conftest import openbao, postgres

__all__ = ["openbao", "postgres"]
