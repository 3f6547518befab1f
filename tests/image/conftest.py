from __future__ import annotations

import pytest

from tests.image.podman import build


@pytest.fixture(scope="session")
def image() -> str:
    """The image ``make image`` builds, once per run."""
    return build()
