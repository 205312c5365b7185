"""GLMMResult: what a fit returns, the facts (results.base) with the work done after the fit.

The layers of the results package, each importing only those below it:

    prediction, aliases
                    functions of the fit's parts (ModelData, FitOutput); the alias table
    base            ResultBase: estimates, tables, criteria, random effects, prediction
    parameters, residuals, simulate, profile, marginal, bootstrap, intervals, plots, summary,
    inference, posterior, wald, influence, emmeans, slopes
                    post-fit modules: functions of a ResultBase
    result          GLMMResult = ResultBase + their methods + the lme4/statsmodels aliases

so no post-fit module imports this one; a post-fit module that makes a new result (refit, the
bootstrap) makes one of the same class through ResultBase.with_fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.results import influence as deletion
from glmm_binomial.results import (
    intervals,
    marginal,
    plots,
    posterior,
    residuals,
    simulate,
    wald,
)
from glmm_binomial.results import profile as profiling
from glmm_binomial.results.aliases import ResultAliases, renamed_level
from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.profile import LikelihoodProfile, ProfileControl
from glmm_binomial.results.summary import Summary

FloatArray = NDArray[np.float64]


class GLMMResult(ResultAliases, ResultBase):
    """Result of a binomial GLMM fit (logit link).

    Fixed effects are on the log-odds scale; random-effect variances and SDs are of the random
    effects on the log-odds scale. For the Bayesian methods ("vb", "vb_meanfield", "mcmc"),
    estimates are posterior means, standard errors posterior SDs and intervals credible
    intervals under the priors (see ``elbo``); "mcmc" results also carry the draws (``draws``,
    ``mcmc_summary``, ``to_inference_data()``) and their intervals are posterior quantiles.
    The facts are ResultBase's; the methods below delegate to the post-fit modules (intervals,
    profile, simulate, marginal, plots, residuals, summary, posterior, wald, influence); the
    lme4 and statsmodels spellings are listed in glmm_binomial.results.aliases.
    """

    # --- intervals and profiles ---------------------------------------------------------------
    def confint(
        self,
        method: str | None = None,
        conf_level: float = 0.95,
        *,
        parm: Any = None,
        level: float | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Confidence intervals for every parameter (SDs, correlations, fixed effects), or
        those in parm (lme4's: names, "theta_" or "beta_"), by method "wald", "profile"
        (lme4's default), "boot" or "posterior" (credible intervals from the draws of an
        "mcmc" fit, its default); see glmm_binomial.results.intervals.
        level: the deprecated name of conf_level."""
        conf_level = renamed_level(conf_level, level)
        return intervals.confint(self, method, conf_level, parm=parm, **options)

    def profile(
        self,
        conf_level: float = 0.95,
        which: Sequence[str] | str | None = None,
        control: ProfileControl | Mapping[str, Any] | None = None,
    ) -> LikelihoodProfile:
        """Profiles of the Laplace deviance over each parameter (lme4's profile()); see
        glmm_binomial.results.profile."""
        return profiling.profile(self, conf_level, which=which, control=control)

    # --- Wald tests ----------------------------------------------------------------------------
    def wald_test(self, hypothesis: Any, rhs: Any = None) -> wald.WaldTest:
        """Wald chi-square test of linear hypotheses about the fixed effects ("period2 =
        period3", a list of such, or a matrix with `rhs`), as car's linearHypothesis and
        statsmodels' wald_test; see glmm_binomial.results.wald."""
        return wald.wald_test(self, hypothesis, rhs)

    def wald_test_terms(self, type: Any = "II") -> pd.DataFrame:  # noqa: A002 - car's name
        """One Wald chi-square test per fixed-effects term, as car's Anova(model, type = "II")
        (or "III"); see glmm_binomial.results.wald."""
        return wald.wald_test_terms(self, type)

    def influence(
        self, groups: str | None = None, n_jobs: int = 1, start_method: str | None = None
    ) -> deletion.Influence:
        """The fit refitted without each level of the grouping factor `groups` (None: each
        row), with dfbeta, dfbetas and Cook's distance, as lme4's influence(model, groups);
        see glmm_binomial.results.influence."""
        return deletion.influence(self, groups, n_jobs, start_method)

    # --- posterior draws (method "mcmc") -------------------------------------------------------
    @property
    def draws(self) -> dict[str, FloatArray]:
        """Posterior draws, name -> array (chains, draws): fixed effects, SDs
        (sd_<term>|<group>) and correlations (cor_<term2>.<term1>|<group>) (copies);
        AttributeError for a fit without draws. See glmm_binomial.results.posterior."""
        return posterior.draws(self)

    @cached_property
    def mcmc_summary(self) -> pd.DataFrame:
        """One row per parameter (fixed effects, SDs, correlations) with ArviZ's columns mean,
        sd, mcse_mean, ess_bulk, ess_tail, r_hat (rank-normalized split R-hat)."""
        return posterior.mcmc_summary(self)

    def to_inference_data(self) -> Any:
        """The draws as an ArviZ InferenceData (needs the extra "arviz")."""
        return posterior.to_inference_data(self)

    # --- simulation and refits ----------------------------------------------------------------
    def simulate(
        self, n: int = 1, seed: Any = None, use_u: bool = False, *, nsim: int | None = None
    ) -> FloatArray:
        """`n` responses (successes per row, fit's row order) simulated from the fitted model,
        shape (nobs, n); use_u=True holds the random effects at their conditional modes (lme4's
        use.u), False draws new ones. nsim: lme4's name for n."""
        if nsim is not None:
            if n != 1:
                raise ValueError("give n or nsim (lme4's name for n), not both")
            n = nsim
        return simulate.simulate(self, n=n, seed=seed, use_u=use_u)

    def refit(self, new_response: Any) -> GLMMResult:
        """The same model (design, groups, trials, offset) fitted to a new response (successes
        per row), starting from the current estimates."""
        return simulate.refit(self, new_response)

    # --- marginal (population-averaged) effects -------------------------------------------------
    def marginal_predict(self, newdata: Any = None, offset: Any = None) -> FloatArray:
        """Population-averaged probabilities (random effects integrated out, not set to zero)
        of the rows of newdata (None: the fit's rows); see glmm_binomial.results.marginal."""
        return marginal.marginal_predict(self, newdata, offset)

    def marginal_coefs(self, std_errors: bool = True) -> pd.DataFrame:
        """Marginal coefficients as GLMMadaptive's marginal_coefs (Hedeker et al. 2018), with
        delta-method standard errors; see glmm_binomial.results.marginal."""
        return marginal.marginal_coefs(self, std_errors=std_errors)

    # --- pictures (matplotlib, the `plot` extra) ------------------------------------------------
    def plot_ranef(
        self, conf_level: float = 0.95, group: str | None = None, *, level: float | None = None
    ) -> Any:
        """Caterpillar plot of the conditional modes with intervals; returns the figure.
        level: the deprecated name of conf_level."""
        conf_level = renamed_level(conf_level, level)
        return plots.caterpillar_plot(self, conf_level=conf_level, group=group)

    def plot_profile(
        self, which: Any = None, conf_level: float = 0.95, *, level: float | None = None
    ) -> Any:
        """Profile (zeta) plots of the parameters in `which`; returns the figure. level: the
        deprecated name of conf_level."""
        conf_level = renamed_level(conf_level, level)
        return plots.profile_plot(self, which=which, conf_level=conf_level)

    def plot_calibration(self, group: str | None = None) -> Any:
        """Observed against fitted proportions by level of a grouping factor; returns the
        figure."""
        return plots.calibration_plot(self, group=group)

    # --- residuals ------------------------------------------------------------------------------
    def resid(self, type: str = "deviance") -> FloatArray:
        """Residuals on the proportion scale, in the fit's row order, as lme4's residuals() for
        glmer: "deviance" (signed square roots of the deviance contributions), "pearson"
        ((y - mu) / sqrt(mu (1 - mu) / m)), "response" (y - mu) or "working"
        ((y - mu) / (mu (1 - mu))); y the observed proportion, m the trials."""
        return residuals.residuals(self, type)

    # --- display ----------------------------------------------------------------------------
    def summary(self, data_name: str | None = None) -> Summary:
        """The summary laid out as lme4's (a str with tables and an HTML form; see summary.py).
        data_name: shown on the `Data:` line (default: the fit's data_name, else "data")."""
        return Summary(self, data_name)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"<GLMMResult {self.method}: {self.formula}; logLik {self.loglik:.4f}, "
            f"nobs {self.nobs}>"
        )

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()
