"""ModelData (glmm_binomial.model.data): row subsets."""

from __future__ import annotations

import numpy as np

import glmm_binomial as g
from glmm_binomial.family import log_binomial_coefficient


def test_subset_drops_empty_levels_and_recomputes_the_constant():
    result = g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
    )
    model = result.model
    (block,) = model.blocks
    rows = np.flatnonzero(block.codes != 2)
    part = model.subset(rows)
    (kept,) = part.blocks
    assert kept.levels == tuple(v for i, v in enumerate(block.levels) if i != 2)
    assert kept.codes.max() == len(kept.levels) - 1
    assert [kept.levels[c] for c in kept.codes] == [block.levels[c] for c in block.codes[rows]]
    np.testing.assert_array_equal(part.x, model.x[rows])
    np.testing.assert_array_equal(kept.z, block.z[rows])
    assert part.log_binomial_constant == log_binomial_coefficient(
        model.successes[rows], model.trials[rows]
    )
    assert part.n_obs == len(rows) and part.fixed_names == model.fixed_names
