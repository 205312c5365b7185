"""Seeded simulated ModelData with nested grouping factors (e.g. children in mothers in
communities), for the multilevel quadrature tests and benchmarks."""

from __future__ import annotations

import numpy as np

from glmm_binomial.model.data import ModelData, RandomBlock


def nested_model(
    seed: int,
    branching: tuple[int, ...] = (30, 3),
    rows_per_leaf: tuple[int, int] = (1, 4),
    sds: tuple[float, ...] = (1.0, 1.5),
    trials: int = 1,
) -> ModelData:
    """Binary (or binomial) data with one random intercept per nesting level.

    branching[0] outer groups, each with branching[1] inner groups, and so on; each innermost
    group gets a uniform number of rows in [rows_per_leaf[0], rows_per_leaf[1]]. Blocks are
    listed outermost first, with codes numbering the groups of each level consecutively."""
    if len(sds) != len(branching):
        raise ValueError("sds needs one standard deviation per level of branching")
    rng = np.random.default_rng(seed)
    n_groups = np.cumprod(branching)  # groups per level, outermost first
    sizes = rng.integers(rows_per_leaf[0], rows_per_leaf[1] + 1, size=int(n_groups[-1]))
    leaf = np.repeat(np.arange(int(n_groups[-1])), sizes)
    n = leaf.size
    # Level d's code of a row: its leaf index divided by the number of leaves per level-d group.
    codes = [leaf // int(n_groups[-1] // n_groups[d]) for d in range(len(branching))]
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    eta = x @ np.array([-0.5, 0.8])
    blocks = []
    for d, (code, sd) in enumerate(zip(codes, sds, strict=True)):
        b = rng.normal(scale=sd, size=int(n_groups[d]))
        eta = eta + b[code]
        name = ":".join(f"g{e}" for e in range(d + 1))
        levels = tuple(range(int(n_groups[d])))
        blocks.append(
            RandomBlock(name, ("(Intercept)",), code.astype(np.intp), levels, np.ones((n, 1)))
        )
    m = np.full(n, float(trials))
    k = rng.binomial(trials, 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return ModelData(k, m, x, np.zeros(n), ("(Intercept)", "x1"), tuple(blocks))
