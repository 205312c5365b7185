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
    from glmm_binomial.results.profile import LikelihoodProfile, ProfileControl
    from glmm_binomial.results.result import GLMMResult


class ResultsAPI:
    """Intervals, simulation, refits and accessors shared by both camps (lme4, statsmodels)."""

    def confint(self, method: str = "profile", level: float = 0.95, **options: Any) -> pd.DataFrame:
        """Confidence intervals for every parameter (SDs, correlations, fixed effects) by
        method "wald", "profile" (lme4's default) or "boot"; see glmm_binomial.results.intervals."""
        from glmm_binomial.results.intervals import confint

        return confint(_self(self), method, level, **options)

    def profile(
        self,
        conf_level: float = 0.95,
        which: Sequence[str] | str | None = None,
        control: ProfileControl | None = None,
    ) -> LikelihoodProfile:
        """Profiles of the Laplace deviance over each parameter (lme4's profile())."""
        from glmm_binomial.results.profile import profile

        return profile(_self(self), conf_level, which=which, control=control)

    def simulate(self, n: int = 1, seed: Any = None, use_u: bool = False) -> NDArray[np.float64]:
        """`n` responses (successes per row, fit's row order) simulated from the fitted model,
        shape (nobs, n); use_u=True holds the random effects at their conditional modes (lme4's
        use.u), False draws new ones."""
        from glmm_binomial.results.simulate import simulate

        return simulate(_self(self), n=n, seed=seed, use_u=use_u)

    def refit(self, new_response: Any) -> GLMMResult:
        """The same model (design, groups, trials, offset) fitted to a new response (successes
        per row), starting from the current estimates."""
        from glmm_binomial.results.simulate import refit

        return refit(_self(self), new_response)

    # --- marginal (population-averaged) effects -------------------------------------------------
    def marginal_predict(self, newdata: Any = None, offset: Any = None) -> NDArray[np.float64]:
        """Population-averaged probabilities (random effects integrated out, not set to zero)
        of the rows of newdata (None: the fit's rows); see glmm_binomial.results.marginal."""
        from glmm_binomial.results.marginal import marginal_predict

        return marginal_predict(_self(self), newdata, offset)

    def marginal_coefs(self, std_errors: bool = True) -> pd.DataFrame:
        """Marginal coefficients as GLMMadaptive's marginal_coefs (Hedeker et al. 2018), with
        delta-method standard errors; see glmm_binomial.results.marginal."""
        from glmm_binomial.results.marginal import marginal_coefs

        return marginal_coefs(_self(self), std_errors=std_errors)

    # --- pictures (matplotlib, the `plot` extra) ------------------------------------------------
    def plot_ranef(self, level: float = 0.95, group: str | None = None) -> Any:
        """Caterpillar plot of the conditional modes with intervals; returns the figure."""
        from glmm_binomial.results.plots import caterpillar_plot

        return caterpillar_plot(_self(self), level=level, group=group)

    def plot_profile(self, which: Any = None, level: float = 0.95) -> Any:
        """Profile (zeta) plots of the parameters in `which`; returns the figure."""
        from glmm_binomial.results.plots import profile_plot

        return profile_plot(_self(self), which=which, level=level)

    def plot_calibration(self, group: str | None = None) -> Any:
        """Observed against fitted proportions by level of a grouping factor; returns the
        figure."""
        from glmm_binomial.results.plots import calibration_plot

        return calibration_plot(_self(self), group=group)

    # --- names both camps look for --------------------------------------------------------------
    def fixef(self) -> pd.Series:
        """Fixed effects (log-odds scale), as lme4's fixef(); the same as `params`."""
        return _self(self).params

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values of the Wald z statistics of the fixed effects."""
        return _self(self).fixed_effects["p"].rename("p")

    @property
    def tvalues(self) -> pd.Series:
        """Wald z statistics (estimate / standard error) of the fixed effects (statsmodels'
        name; normal reference distribution)."""
        return _self(self).fixed_effects["z"].rename("z")

    @property
    def llf(self) -> float:
        """Log-likelihood (statsmodels' name for `loglik`)."""
        return _self(self).loglik

    @property
    def df_resid(self) -> int:
        """Observations minus parameters (fixed effects and covariance parameters), as lme4's
        df.resid."""
        result = _self(self)
        return result.nobs - result.df_model

    def fitted(self) -> NDArray[np.float64]:
        """Fitted probabilities with the random effects at their conditional modes, in the
        fit's row order (lme4's fitted())."""
        from glmm_binomial.results.residuals import fitted_probabilities

        return fitted_probabilities(_self(self))

    @property
    def fittedvalues(self) -> NDArray[np.float64]:
        """statsmodels' name for fitted()."""
        return self.fitted()

    def resid(self, type: str = "deviance") -> NDArray[np.float64]:
        """Residuals on the proportion scale, in the fit's row order, as lme4's residuals() for
        glmer: "deviance" (signed square roots of the deviance contributions), "pearson"
        ((y - mu) / sqrt(mu (1 - mu) / m)), "response" (y - mu) or "working"
        ((y - mu) / (mu (1 - mu))); y the observed proportion, m the trials."""
        from glmm_binomial.results.residuals import residuals

        return residuals(_self(self), type)

    residuals = resid

    def coef(self) -> dict[str, pd.DataFrame]:
        """Per grouping factor, one row per level: the fixed effects plus that level's random
        effects on the same terms (lme4's coef())."""
        result = _self(self)
        fixed = result.params
        out: dict[str, pd.DataFrame] = {}
        for group, modes in result.ranef().items():
            frame = pd.DataFrame(
                np.tile(fixed.to_numpy(), (len(modes), 1)), index=modes.index, columns=fixed.index
            )
            for term in modes.columns:
                name = str(term).rstrip("_")
                if name in frame.columns:
                    frame[name] = frame[name] + modes[term]
                else:
                    frame[name] = modes[term]
            out[group] = frame
        return out

    def ranef_cov(self) -> dict[str, NDArray[np.float64]]:
        """Conditional covariances of the random effects per grouping factor, shape
        (levels, k, k) in ranef()'s column order (lme4's attr(ranef(condVar = TRUE), "postVar"),
        levels first)."""
        result = _self(self)
        out: dict[str, NDArray[np.float64]] = {}
        for block, covs in zip(result.model.blocks, result.fit_output.ranef_cov, strict=True):
            if block.group in out:
                previous = out[block.group]
                n, a, _ = previous.shape
                k = covs.shape[1]
                joined = np.zeros((n, a + k, a + k))
                joined[:, :a, :a] = previous
                joined[:, a:, a:] = covs
                out[block.group] = joined
            else:
                out[block.group] = covs.copy()
        return out

    @property
    def VarCorr(self) -> pd.DataFrame:  # noqa: N802 - lme4's name
        """lme4's name for `varcorr`."""
        return _self(self).varcorr

    def logLik(self) -> float:  # noqa: N802 - lme4's name
        """lme4's name for `loglik`."""
        return _self(self).loglik


def _self(obj: object) -> GLMMResult:
    from glmm_binomial.results.result import GLMMResult

    assert isinstance(obj, GLMMResult)
    return obj
