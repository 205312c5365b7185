"""Methods of GLMMResult for the work after the fit, each delegating to its own module:
intervals (intervals.py, profile.py, bootstrap.py), simulation and refits (simulate.py),
statsmodels/lme4-style accessors, marginal effects (marginal.py) and plots (plots.py).

Kept apart from result.py so that the result's core stays small; GLMMResult inherits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

if TYPE_CHECKING:
    from glmm_binomial.profile import LikelihoodProfile, ProfileControl
    from glmm_binomial.result import GLMMResult


class ResultsAPI:
    """Intervals, simulation, refits and accessors shared by both camps (lme4, statsmodels)."""

    def confint(self, method: str = "profile", level: float = 0.95, **options: Any) -> pd.DataFrame:
        """Confidence intervals for every parameter (SDs, correlations, fixed effects) by
        method "wald", "profile" (lme4's default) or "boot"; see glmm_binomial.intervals."""
        from glmm_binomial.intervals import confint

        return confint(_self(self), method, level, **options)

    def profile(
        self,
        conf_level: float = 0.95,
        which: Sequence[str] | str | None = None,
        control: ProfileControl | None = None,
    ) -> LikelihoodProfile:
        """Profiles of the Laplace deviance over each parameter (lme4's profile())."""
        from glmm_binomial.profile import profile

        return profile(_self(self), conf_level, which=which, control=control)

    def simulate(self, n: int = 1, seed: Any = None, use_u: bool = False) -> NDArray[np.float64]:
        """`n` responses (successes per row, fit's row order) simulated from the fitted model,
        shape (nobs, n); use_u=True holds the random effects at their conditional modes (lme4's
        use.u), False draws new ones."""
        from glmm_binomial.simulate import simulate

        return simulate(_self(self), n=n, seed=seed, use_u=use_u)

    def refit(self, new_response: Any) -> GLMMResult:
        """The same model (design, groups, trials, offset) fitted to a new response (successes
        per row), starting from the current estimates."""
        from glmm_binomial.simulate import refit

        return refit(_self(self), new_response)


def _self(obj: object) -> GLMMResult:
    from glmm_binomial.result import GLMMResult

    assert isinstance(obj, GLMMResult)
    return obj
