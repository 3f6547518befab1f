"""A config that version N accepts, N+1 accepts: the configs of every release
(``compat/<version>/``) still validate, renamed keys at most warned about."""

from __future__ import annotations

from pathlib import Path

import pytest

from pillion.config import parse_config
from tests.examples.test_full import POD_ENV

RELEASES = Path(__file__).parent / "compat"
CONFIGS = sorted(RELEASES.glob("*/*.yaml"))


def test_every_release_has_its_configs() -> None:
    assert {p.parent.name for p in CONFIGS} >= {"0.1.0"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_released_config_still_validates(path: Path) -> None:
    config = parse_config(path.read_text(), str(path), POD_ENV)
    assert config.version in (None, 1)
