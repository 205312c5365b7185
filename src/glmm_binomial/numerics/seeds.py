"""The one way a user's seed becomes random streams: a numpy SeedSequence.

Every simulation (bootstrap, power, simulated residuals, MCMC chains) spawns its streams from
the SeedSequence of its seed, so the draws depend on the seed alone, whatever the number of
worker processes.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def seed_sequence(seed: Any, name: str = "seed") -> np.random.SeedSequence:
    """A SeedSequence from None (fresh entropy), a non-negative integer, a sequence of them, a
    SeedSequence (a copy in its state: spawning streams from it advances the copy, not the
    caller's, so that the same SeedSequence given twice gives the same draws) or a Generator
    (which gives one draw of entropy); ValueError naming `name` for anything else."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(
            seed.entropy,
            spawn_key=seed.spawn_key,
            pool_size=seed.pool_size,
            n_children_spawned=seed.n_children_spawned,
        )
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(0, 2**63 - 1)))
    message = f"{name} must be None, a non-negative integer or a SeedSequence, got {seed!r}"
    if isinstance(seed, bool) or isinstance(seed, (float, str, bytes)):
        raise ValueError(message)
    try:
        return np.random.SeedSequence(seed)
    except (TypeError, ValueError):
        raise ValueError(message) from None


def generator(seed: Any, name: str = "seed") -> np.random.Generator:
    """numpy's default generator for `seed`: a Generator is used as it is (its stream goes
    on), anything else through seed_sequence (an integer gives default_rng(integer)'s stream)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed_sequence(seed, name))
