"""The names lme4 and statsmodels users look for, beside the package's own: one table, one
meaning per name.

Each alias below only forwards to the package's name for the same thing (no computation of
its own), so the two spellings can never disagree. The package's names are on ResultBase
(results.base) and GLMMResult (results.result).

==================  ============  ==========================================================
name                camp          meaning
==================  ============  ==========================================================
loglik              package       marginal log-likelihood, binomial constants included
llf                 statsmodels   = loglik
logLik()            lme4          = loglik
params              package,      fixed effects (log-odds scale), a Series
                    statsmodels
fixef()             lme4          = params
fe_params           statsmodels   = params (MixedLM's name)
varcorr             package       variance components: SDs, variances, correlations
VarCorr             lme4          = varcorr (a property here, a function in lme4)
fitted()            package,      fitted probabilities, random effects at their
                    lme4          conditional modes, in the fit's row order
fittedvalues        statsmodels   = fitted()
resid(type)         package,      residuals on the proportion scale ("deviance",
                    lme4          "pearson", "response", "working"), as lme4's for glmer
residuals(type)     lme4          = resid(type)
resid_deviance      statsmodels   = resid("deviance") (an attribute, as statsmodels' GLM)
resid_pearson       statsmodels   = resid("pearson")
resid_response      statsmodels   = resid("response")
resid_working       statsmodels   = resid("working")
zvalues             package       Wald z statistics of the fixed effects (estimate / SE,
                                  standard normal reference)
tvalues             statsmodels   = zvalues: statsmodels' GLM results call their Wald z
                                  statistics tvalues too; they are z statistics here
pvalues, bse        statsmodels   two-sided normal p-values of zvalues; standard errors
                                  (the package's only names for them)
bse_fe              statsmodels   = bse (MixedLM's name)
conf_int(alpha)     statsmodels   Wald intervals of the fixed effects at level 1 - alpha
                                  (conf_level= also accepted): columns ci_lower, ci_upper;
                                  = fixed_effects_table(conf_level)[["ci_lower", "ci_upper"]]
confint(method)     lme4          intervals of every parameter (SDs, correlations, fixed
                                  effects) by "profile" (the default, as lme4), "wald",
                                  "boot" or "posterior" (an "mcmc" fit's credible
                                  intervals, its default), at conf_level: columns lower, upper
coef()              lme4          per grouping factor, fixed effects plus each level's
                                  random effects (not statsmodels' params)
cov_params()        statsmodels   = vcov, the fixed effects' covariance (a DataFrame)
t_test(hypothesis)  statsmodels   = wald_test(hypothesis): its ``table`` holds each
                                  hypothesis' estimate, SE, z and p (statsmodels'
                                  summary_frame), its statistic the joint chi-square
singular            package       whether the fit is singular (an SD at zero or a
                                  correlation at -+1)
isSingular()        lme4          = singular
ngroups             package       levels per grouping factor, a dict
ngrps()             lme4          = ngroups
==================  ============  ==========================================================

The confidence level is called ``conf_level`` throughout the package (fit, confint, profile,
profile_confint, BootstrapResult.confint, the plots, fixed_effects_table, emmeans, emtrends,
contrast, pairs, the command line's --conf-level): ``level`` could be read as a level of a
grouping factor, a word the package uses everywhere for those. ``level=``, accepted by
confint, BootstrapResult.confint, the plots and the emmeans functions before (lme4's and
emmeans' name), still works there with a DeprecationWarning (``renamed_level``); statsmodels'
conf_int keeps its ``alpha``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction

if TYPE_CHECKING:
    from glmm_binomial.results.wald import WaldTest

FloatArray = NDArray[np.float64]


def renamed_level(conf_level: float, level: float | None, stacklevel: int = 3) -> float:
    """conf_level, or the value of the deprecated keyword ``level`` when given (with a
    DeprecationWarning pointing `stacklevel` frames up, as warnings.warn counts them from the
    caller of this function plus one)."""
    if level is None:
        return conf_level
    warnings.warn(
        "the keyword 'level' is deprecated: use conf_level (the package's one name for the "
        "confidence level)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    if conf_level != 0.95:
        raise ValueError("give conf_level only (level is its deprecated name)")
    return level


class ResultAliases:
    """lme4's and statsmodels' spellings of the result's facts (see the module's table)."""

    if TYPE_CHECKING:  # what the aliases forward to (ResultBase and GLMMResult define them)

        @property
        def loglik(self) -> float: ...
        @property
        def params(self) -> pd.Series: ...
        @property
        def bse(self) -> pd.Series: ...
        @property
        def varcorr(self) -> pd.DataFrame: ...
        @property
        def zvalues(self) -> pd.Series: ...
        def fitted(self) -> FloatArray: ...
        def resid(self, type: str = "deviance") -> FloatArray: ...
        def fixed_effects_table(self, conf_level: float | None = None) -> pd.DataFrame: ...
        @property
        def vcov(self) -> pd.DataFrame: ...
        def wald_test(self, hypothesis: Any, rhs: Any = None) -> WaldTest: ...
        @property
        def singular(self) -> bool: ...
        @property
        def ngroups(self) -> dict[str, int]: ...

    @property
    def llf(self) -> float:
        """statsmodels' name for `loglik`."""
        return self.loglik

    def logLik(self) -> float:  # noqa: N802 - lme4's name
        """lme4's name for `loglik`."""
        return self.loglik

    def fixef(self) -> pd.Series:
        """lme4's name for `params`."""
        return self.params

    @property
    def fe_params(self) -> pd.Series:
        """statsmodels MixedLM's name for `params`."""
        return self.params

    @property
    def bse_fe(self) -> pd.Series:
        """statsmodels MixedLM's name for `bse`."""
        return self.bse

    @property
    def VarCorr(self) -> pd.DataFrame:  # noqa: N802 - lme4's name
        """lme4's name for `varcorr`."""
        return self.varcorr

    @property
    def fittedvalues(self) -> FloatArray:
        """statsmodels' name for fitted()."""
        return self.fitted()

    def residuals(self, type: str = "deviance") -> FloatArray:
        """lme4's name for resid()."""
        return self.resid(type)

    @property
    def resid_deviance(self) -> FloatArray:
        """statsmodels' name for resid("deviance")."""
        return self.resid("deviance")

    @property
    def resid_pearson(self) -> FloatArray:
        """statsmodels' name for resid("pearson")."""
        return self.resid("pearson")

    @property
    def resid_response(self) -> FloatArray:
        """statsmodels' name for resid("response")."""
        return self.resid("response")

    @property
    def resid_working(self) -> FloatArray:
        """statsmodels' name for resid("working")."""
        return self.resid("working")

    def isSingular(self) -> bool:  # noqa: N802 - lme4's name
        """lme4's name for `singular`."""
        return self.singular

    def ngrps(self) -> dict[str, int]:
        """lme4's name for `ngroups`."""
        return self.ngroups

    @property
    def tvalues(self) -> pd.Series:
        """statsmodels' name for `zvalues` (Wald z statistics; statsmodels' GLM results name
        theirs tvalues too)."""
        return self.zvalues

    def conf_int(self, alpha: float | None = None, conf_level: float | None = None) -> pd.DataFrame:
        """statsmodels' Wald intervals of the fixed effects at level 1 - alpha (or conf_level;
        default: the fit's conf_level): fixed_effects_table's ci_lower and ci_upper. confint()
        gives intervals of every parameter."""
        if alpha is not None:
            if conf_level is not None:
                raise ValueError("give alpha or conf_level, not both")
            conf_level = 1.0 - fraction(alpha, "alpha")
        table = self.fixed_effects_table(conf_level)
        return table[["ci_lower", "ci_upper"]].copy()

    def cov_params(self) -> pd.DataFrame:
        """statsmodels' name for `vcov` (the covariance of the fixed effects)."""
        return self.vcov

    def t_test(self, hypothesis: Any, rhs: Any = None) -> WaldTest:
        """statsmodels' name for `wald_test`: each hypothesis' z test in its ``table``."""
        return self.wald_test(hypothesis, rhs)


__all__ = ["ResultAliases", "renamed_level"]
