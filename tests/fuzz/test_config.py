"""The config target under Hypothesis: mutated ``pillion.yaml`` files through its
check, and valid files built from values, which must load to exactly those values."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.targets import config, load
from pillion.config.loader import parse_config
from tests.fuzz.strategies import FUZZ, mutated

durations = st.tuples(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m"])).map(
    lambda d: (f"{d[0]}{d[1]}", d[0] * {"ms": 0.001, "s": 1.0, "m": 60.0}[d[1]])
)
sizes = st.tuples(st.integers(1, 4096), st.sampled_from(["B", "KiB", "MiB"])).map(
    lambda s: (f"{s[0]}{s[1]}", s[0] * {"B": 1, "KiB": 1024, "MiB": 1024 * 1024}[s[1]])
)


@settings(FUZZ, max_examples=150)
@given(mutated(load("config")))
def test_mutated_files(data: bytes) -> None:
    config.check(data)


@settings(FUZZ, max_examples=100)
@given(
    st.integers(1, 65535),
    durations,
    sizes,
    st.sampled_from(["debug", "info", "warning", "error"]),
    st.booleans(),
)
def test_valid_files_load_to_their_values(
    port: int, drain: tuple[str, float], size: tuple[str, int], level: str, from_env: bool
) -> None:
    document: dict[str, Any] = {
        "app": {"port": "${APP_PORT}" if from_env else port},
        "lifecycle": {"drain_timeout": drain[0]},
        "admin": {"max_request_size": size[0]},
        "telemetry": {"log_level": level},
    }
    text = yaml.safe_dump(document)
    config.check(text.encode())
    loaded = parse_config(text, "generated.yaml", {**config.ENVIRON, "APP_PORT": str(port)})
    assert loaded.app.port == port
    assert abs(loaded.lifecycle.drain_timeout - drain[1]) < 1e-9
    assert loaded.admin.max_request_size == size[1]
    assert loaded.telemetry.log_level == level
