"""Tests of the fixed effects and of functions of them, as R's marginaleffects 0.11.0's
hypotheses() makes them for a model (the table as results.effect_rows makes it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from glmm_binomial.arguments import fraction
from glmm_binomial.results.base import require_fit
from glmm_binomial.results.effect_rows import draws_table, effect_table, posterior_beta
from glmm_binomial.results.hypothesis import HYPOTHESIS_KEYWORDS, Tests

__all__ = [
    "hypotheses",
]


def hypotheses(
    result: Any,
    hypothesis: Any = None,
    equivalence: Any = None,
    p_adjust: str | None = None,
    conf_level: float | None = None,
    transform: Any = None,
    df: float = math.inf,
) -> pd.DataFrame:
    """Tests of the fixed effects or of functions of them (marginaleffects' hypotheses on a
    model): without ``hypothesis`` each coefficient against 0 (Wald, the link scale); with
    it, the functions it asks for of the coefficients b1, b2, ... in design-column order, or
    of their names ("urbanY = 2 * livch1", "exp(b4) / exp(b5) = 1"; results.hypothesis), with
    delta-method SEs from their exact derivatives (transform="exp": odds ratios and their
    limits). equivalence, p_adjust, conf_level, transform and df as
    slopes(). Columns: term, estimate, std_error, z, p_value, ci_lower, ci_upper."""
    fit = require_fit(result, "hypotheses")
    tests = Tests(hypothesis, equivalence, p_adjust, transform, df)
    tests.check()
    level = fit.conf_level if conf_level is None else fraction(conf_level, "conf_level")
    beta = np.asarray(fit.fit_output.beta, dtype=np.float64)
    vcov = np.asarray(fit.fit_output.vcov_beta, dtype=np.float64)
    keys = {"term": list(fit.fixed_names)}
    draws = posterior_beta(fit)
    if draws is not None:  # a sampled posterior: the draws' medians and credible intervals
        table = draws_table(keys, draws.T, level, tests)
    else:
        table = effect_table(
            keys, beta, np.eye(len(beta)), vcov, level, tests, limit=fit.fit_output.vcov_limit
        )
    if isinstance(hypothesis, str) and hypothesis not in HYPOTHESIS_KEYWORDS:
        table["term"] = [hypothesis]  # hypotheses() labels an equation as written
    notes = (
        ("Posterior medians and equal-tailed credible intervals (link scale), from the draws.",)
        if draws is not None
        else ("Wald tests of the fixed effects (link scale); delta-method SEs.",)
    )
    table.attrs.update({"type": "link", "level": level, "notes": notes})
    return table
