"""Hypothesis strategies for the fuzz targets: mutations of each target's corpus
seeds (``fuzz.mutate``), and valid messages built from their fields, for the
properties that compare what a parser read with what was written."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from fuzz.mutate import mutate
from fuzz.target import FINDING_PREFIXES, Target, corpus_files

__all__ = ["FUZZ", "field_values", "mutated", "seeds", "tokens"]

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Bounded, for ``make test``; ``make fuzz`` runs the same checks for minutes."""

TCHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
tokens = st.text(alphabet=TCHARS, min_size=1, max_size=12)
_VALUE_BYTES = [9, 32, *range(0x21, 0x7F), 0x80, 0xC3, 0xA9, 0xFF]
field_values = st.binary(max_size=40).map(
    lambda raw: bytes(_VALUE_BYTES[b % len(_VALUE_BYTES)] for b in raw).lstrip(b" \t")
)
"""Field content (RFC 9110 section 5.5) without leading whitespace."""


def seeds(target: Target) -> list[bytes]:
    """The target's corpus, without the reproducers of failures (replayed on their own)."""
    files = corpus_files(target.corpus())
    found = [p.read_bytes() for p in files if not p.name.startswith(FINDING_PREFIXES)]
    assert found, f"no seeds in {target.corpus()}"
    return found


def mutated(target: Target) -> st.SearchStrategy[bytes]:
    """A seed of ``target`` after one to three structured mutations."""
    return st.builds(
        lambda seed, rng: mutate(seed, rng, target.tokens),
        st.sampled_from(seeds(target)),
        st.randoms(use_true_random=False),
    )
