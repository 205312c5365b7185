"""ResultBase: the facts of a fit (estimates, tables, criteria, random effects, prediction).

No fitting happens here, and nothing done after the fit (intervals, profiles, simulation,
plots, the summary): those modules take a ResultBase and import this module; the user-facing
GLMMResult (results.result) composes them above it. The estimates arrive as a FitOutput and
everything here is derived from it and from the model data.

Names are the package's own (loglik, params, varcorr, fitted(), resid(), zvalues, ...); the
lme4 and statsmodels spellings of the same facts are in results.aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction
from glmm_binomial.family import Family
from glmm_binomial.methods.base import Method
from glmm_binomial.methods.estimates import FitOutput, PosteriorDraws
from glmm_binomial.methods.mcmc_diagnostics import equal_tailed_interval
from glmm_binomial.methods.registry import make_method
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import DesignInfo, fit_rows, formula_of
from glmm_binomial.numerics.optimize import OptSummary
from glmm_binomial.results import prediction
from glmm_binomial.results.facts import variance_components, wald_statistics

FloatArray = NDArray[np.float64]

R = TypeVar("R", bound="ResultBase")


@dataclass(frozen=True)
class FitCall:
    """What fit() was called with, for update(): the formula, the data object itself (not a
    copy: as R's update, a later change to it is seen) and the other arguments."""

    formula: str
    data: Any
    arguments: Mapping[str, Any]


class ResultBase:
    """The facts of a binomial (or beta-binomial) GLMM fit, read-only.

    Fixed effects are on the link scale (log-odds for the logit link; ``family``, ``link``);
    random-effect variances and SDs are of the random effects on that scale. For the Bayesian
    methods ("vb", "vb_meanfield", "mcmc"), estimates are posterior means and standard errors
    posterior SDs; an "mcmc" fit also carries its draws (``posterior``), from which its
    intervals are taken.
    """

    _model: ModelData
    _fit: FitOutput
    _design: DesignInfo | None
    _method: Method
    _call: FitCall | None
    conf_level: float
    data_name: str | None

    def __init__(
        self,
        model: ModelData,
        fit: FitOutput,
        design: DesignInfo | None = None,
        conf_level: float = 0.95,
        data_name: str | None = None,
        method_object: Method | None = None,
        call: FitCall | None = None,
    ) -> None:
        conf_level = fraction(conf_level, "conf_level")
        if method_object is None:
            # Made without the method object: the method by name, with its default settings.
            method_object = make_method(fit.method, n_agq=fit.n_agq if fit.n_agq != 1 else None)
        object.__setattr__(self, "_method", method_object)
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_fit", fit)
        object.__setattr__(self, "_design", design)
        object.__setattr__(self, "conf_level", conf_level)
        object.__setattr__(self, "data_name", data_name)
        object.__setattr__(self, "_call", call)

    def __getstate__(self) -> dict[str, Any]:
        # A pickled result (sent to worker processes) leaves the caller's data behind.
        return {**self.__dict__, "_call": None}

    @property
    def call(self) -> FitCall | None:
        """fit()'s arguments, data included, for update() (None: made otherwise, e.g. by
        fit_model, refit or a Dask fit, or unpickled)."""
        return self._call

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("GLMMResult is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("GLMMResult is read-only")

    def with_fit(self: R, model: ModelData, fit: FitOutput) -> R:
        """A result of the same class for another fit of this model (a refit to a new
        response): the same design, conf_level, data_name and method object."""
        return type(self)(
            model,
            fit,
            design=self._design,
            conf_level=self.conf_level,
            data_name=self.data_name,
            method_object=self._method,
        )

    # --- basic facts ------------------------------------------------------------------------
    @property
    def model(self) -> ModelData:
        return self._model

    @property
    def method(self) -> str:
        return self._fit.method

    @property
    def method_object(self) -> Method:
        """The method that made the fit, with its settings (methods.base.Method)."""
        return self._method

    @property
    def n_agq(self) -> int:
        return self._fit.n_agq

    @property
    def family(self) -> str:
        """The family as R names it: "binomial" or "betabinomial"."""
        return self._model.family.name

    @property
    def link(self) -> str:
        """The link: "logit", "probit", "cloglog", "cauchit" or "log"."""
        return self._model.family.link

    @property
    def fitted_family(self) -> Family:
        """The family object at the estimates (the beta-binomial with its phi)."""
        return self._model.family_at(self._fit.theta)

    @property
    def phi(self) -> float | None:
        """The beta-binomial dispersion phi (glmmTMB's sigma(): Var k = m mu (1 - mu)
        (1 + (m - 1) / (phi + 1))); inf where the fit put it at its limit (no overdispersion:
        the binomial); None for the binomial family, which has none."""
        model = self._model
        if not model.family.n_parameters:
            return None
        return float(model.family_values(self._fit.theta)[0])

    @property
    def phi_se(self) -> float | None:
        """Standard error of phi by the delta method, phi * SE(log phi), SE(log phi) from the
        inverse Hessian (NaN where that is not available); None for the binomial family."""
        phi = self.phi
        if phi is None:
            return None
        cov = self._fit.theta_cov
        index = self._model.family_slice.start
        if cov is None or not np.isfinite(cov[index, index]) or cov[index, index] < 0:
            return float("nan")
        return float(phi * np.sqrt(cov[index, index]))

    @property
    def formula(self) -> str:
        if self._design is not None:
            return self._design.formula.text
        return formula_of(self._model)

    @property
    def nobs(self) -> int:
        return self._model.n_obs

    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values (R's na.omit)."""
        return 0 if self._design is None else self._design.n_dropped

    @property
    def ngroups(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self._model.blocks:
            out[b.group] = b.n_levels
        return out

    @property
    def converged(self) -> bool:
        return self._fit.converged

    @property
    def limit_verified(self) -> bool:
        """True for a fit separated by the fixed effects alone whose optimizer verified its end
        along every other direction: the variances and the coefficients off the diverging
        directions are the estimates of the diverging path's limit (converged stays False)."""
        return self._fit.limit_verified

    @property
    def singular(self) -> bool:
        return self._fit.singular

    @property
    def warnings(self) -> tuple[str, ...]:
        design = () if self._design is None else self._design.warnings
        return tuple(design) + tuple(self._fit.warnings)

    @property
    def opt_summary(self) -> OptSummary:
        return self._fit.opt_summary

    @property
    def elbo(self) -> float | None:
        """The evidence lower bound at the variational optimum, all constants included: a lower
        bound on the log marginal likelihood of the Bayesian model (priors included); None for
        the maximum-likelihood methods."""
        return self._fit.elbo

    @property
    def fit_output(self) -> FitOutput:
        return self._fit

    @property
    def posterior(self) -> PosteriorDraws | None:
        """The posterior draws with their diagnostics (method "mcmc"; None for the others)."""
        return self._fit.posterior

    @property
    def design(self) -> DesignInfo | None:
        """What the fit remembers of its formula and data (rebuilds designs for new data);
        None for a model fitted from ModelData (the spreadsheet)."""
        return self._design

    # --- fixed effects ----------------------------------------------------------------------
    @property
    def fixed_names(self) -> list[str]:
        return list(self._model.fixed_names)

    @property
    def params(self) -> pd.Series:
        """Fixed effects (link scale: log-odds for the logit), in design-column order."""
        return pd.Series(self._fit.beta.copy(), index=self.fixed_names, name="estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects (inverse observed information; posterior
        covariance for the Bayesian methods)."""
        names = self.fixed_names
        return pd.DataFrame(self._fit.vcov_beta.copy(), index=names, columns=names)

    @property
    def bse(self) -> pd.Series:
        """Standard errors of the fixed effects (statsmodels' name; there is no other)."""
        return pd.Series(
            np.sqrt(np.diag(self._fit.vcov_beta)), index=self.fixed_names, name="std_error"
        )

    @property
    def diverging(self) -> list[str]:
        """Fixed effects with no finite maximum-likelihood estimate (separation), as the fit
        found them; their values are points on a diverging path. Empty for "vb"."""
        names = self._model.fixed_names
        return [names[j] for j in self._fit.diverging]

    def fixed_effects_table(self, conf_level: float | None = None) -> pd.DataFrame:
        """Estimate, std_error, z, p (two-sided, normal), interval at conf_level (default: the
        fit's) and odds ratio (exp(estimate) under the logit link; NaN for the other links,
        under which it is no odds ratio); all NaN for a coefficient with no finite estimate
        (`diverging`; params keeps its value on the diverging path). The interval is Wald's
        (estimate -+ z std_error; for "vb" the posterior mean -+ z posterior SD), and for a
        fit with draws ("mcmc") the equal-tailed credible interval (quantiles of the draws;
        NaN where too few draws lie beyond it, mcmc_diagnostics.equal_tailed_interval)."""
        level = self.conf_level if conf_level is None else fraction(conf_level, "conf_level")
        beta = self._fit.beta
        if self._fit.diverging:
            # A coefficient with no finite estimate (separation): its value is a point on a
            # diverging path (params keeps it), not an estimate; the table shows none, as the
            # summary and the spreadsheet do.
            beta = beta.copy()
            beta[list(self._fit.diverging)] = np.nan
        # exp(beta) is an odds ratio under the logit link only.
        columns = wald_statistics(
            beta, self._fit.vcov_beta, level, odds_ratios=self.link == "logit"
        )
        posterior = self._fit.posterior
        if posterior is not None:
            # A sampled posterior: equal-tailed credible intervals from the draws.
            bounds = [
                equal_tailed_interval(posterior.draws[name], (1.0 - level) / 2.0)
                for name in self.fixed_names
            ]
            columns["ci_lower"] = np.array([b[0] for b in bounds])
            columns["ci_upper"] = np.array([b[1] for b in bounds])
        return pd.DataFrame(
            columns,
            index=pd.Index(self.fixed_names, name="term"),
        )

    @cached_property
    def fixed_effects(self) -> pd.DataFrame:
        """fixed_effects_table() at the fit's conf_level (computed once)."""
        return self.fixed_effects_table()

    @property
    def zvalues(self) -> pd.Series:
        """Wald z statistics (estimate / standard error) of the fixed effects; their reference
        distribution is the standard normal (tvalues is statsmodels' name for them)."""
        return self.fixed_effects["z"].rename("z")

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values of the Wald z statistics of the fixed effects."""
        return self.fixed_effects["p"].rename("p")

    # --- random effects ---------------------------------------------------------------------
    @property
    def theta(self) -> FloatArray:
        """Relative covariance factor parameters in lme4's layout (copy), followed for the
        beta-binomial family by log phi (the optimizer's parameters before beta)."""
        return self._fit.theta.copy()

    def covariance_matrices(self) -> list[FloatArray]:
        """Lambda_t Lambda_t', the covariance of each block's random effects."""
        return [lam @ lam.T for lam in self._model.lambdas(self._fit.theta)]

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """One row per variance component: group, term, variance, std_dev, and correlations
        with the earlier terms of the same block (corr_1, corr_2, ...; NaN elsewhere)."""
        rows = []
        max_k = max(b.k for b in self._model.blocks)
        for component in variance_components(self._model, self._fit.theta):
            row: dict[str, Any] = {
                "group": component.group,
                "term": component.term,
                "variance": component.variance,
                "std_dev": component.std_dev,
            }
            earlier = component.correlations
            for d in range(max_k - 1):
                row[f"corr_{d + 1}"] = earlier[d] if d < len(earlier) else np.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects (posterior means for the Bayesian methods),
        one DataFrame per grouping factor indexed by level; with condvar, their conditional SDs
        as `<term>_sd` and the conditional covariance matrices of each level's effects (levels
        x k x k, as lme4's postVar) in `frame.attrs["condvar"]` (also ranef_cov())."""
        if not isinstance(condvar, (bool, np.bool_)):
            raise ValueError(f"condvar must be True or False, got {condvar!r}")
        out: dict[str, pd.DataFrame] = {}
        for block, modes, covs in zip(
            self._model.blocks, self._fit.ranef, self._fit.ranef_cov, strict=True
        ):
            index = pd.Index(list(block.levels), name=block.group)
            frame = pd.DataFrame(modes.copy(), index=index, columns=list(block.terms))
            if condvar:
                sds = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
                for c, term in enumerate(block.terms):
                    frame[f"{term}_sd"] = sds[:, c]
            if block.group in out:
                # Another term on the same factor ('||'): its columns beside the first's, a
                # repeated name marked with a trailing "_".
                overlap = frame.columns.intersection(out[block.group].columns)
                frame = frame.rename(columns={c: f"{c}_" for c in overlap})
                frame = pd.concat([out[block.group], frame], axis=1)
            out[block.group] = frame
        if condvar:
            for group, covariances in self.ranef_cov().items():
                out[group].attrs["condvar"] = covariances
        return out

    def ranef_cov(self) -> dict[str, FloatArray]:
        """Conditional covariances of the random effects per grouping factor, shape
        (levels, k, k) in ranef()'s column order (lme4's attr(ranef(condVar = TRUE), "postVar"),
        levels first)."""
        out: dict[str, FloatArray] = {}
        for block, covs in zip(self._model.blocks, self._fit.ranef_cov, strict=True):
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

    def coef(self) -> dict[str, pd.DataFrame]:
        """Per grouping factor, one row per level: the fixed effects plus that level's random
        effects on the same terms (lme4's coef())."""
        fixed = self.params
        out: dict[str, pd.DataFrame] = {}
        for group, modes in self.ranef().items():
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

    # --- likelihood and criteria ------------------------------------------------------------
    @property
    def loglik(self) -> float:
        """Marginal log-likelihood (binomial coefficients included, as lme4's logLik)."""
        return float(self._fit.loglik)

    @property
    def loglik_method(self) -> str:
        return self._fit.loglik_label

    @property
    def deviance(self) -> float:
        """-2 loglik (the deviance of lme4's summary table)."""
        return -2.0 * self.loglik

    # --- penalized (posterior-mode) fits ----------------------------------------------------
    @property
    def penalized(self) -> bool:
        """Whether the fit is a posterior mode under priors (fit(priors=...)), not a
        maximum-likelihood estimate."""
        return bool(self._fit.priors)

    @property
    def priors(self) -> tuple[str, ...]:
        """The priors of a penalized fit, as the summary lists them (() for an ML fit)."""
        return tuple(self._fit.priors)

    @property
    def prior_deviance(self) -> float:
        """-2 log prior density at the estimates (blme's penalty; 0 for an ML fit)."""
        return float(self._fit.prior_deviance)

    @property
    def penalized_objective(self) -> float:
        """The objective minimized: deviance + prior_deviance (bglmer's dev + penalty); the
        deviance itself for an ML fit."""
        return self.deviance + self.prior_deviance

    @property
    def df_model(self) -> int:
        """Fixed effects plus covariance parameters (and the beta-binomial's phi)."""
        return self._model.n_fixed + self._model.n_theta

    @property
    def df_resid(self) -> int:
        """Observations minus parameters (fixed effects and covariance parameters), as lme4's
        df.resid."""
        return self.nobs - self.df_model

    @property
    def aic(self) -> float:
        return self.deviance + 2.0 * self.df_model

    @property
    def bic(self) -> float:
        return self.deviance + np.log(self.nobs) * self.df_model

    # --- prediction -------------------------------------------------------------------------
    @property
    def dropped_columns(self) -> tuple[str, ...]:
        """Fixed-effect columns dropped as aliased (rank-deficient design), as lme4 drops them."""
        return () if self._design is None else self._design.dropped_columns

    def predict(
        self,
        newdata: Any = None,
        re: Literal["include", "exclude"] | Sequence[str] = "include",
        type: Literal["response", "link"] = "response",
        offset: Any = None,
        se_fit: bool = False,
        conf_level: float | None = None,
        *,
        re_form: Any = None,
        allow_new_levels: bool = True,
    ) -> Any:
        """Predicted probabilities (type="response") or the linear predictor (type="link": the
        log-odds for the logit link).

        Without newdata: the fitted values, a numpy array over the rows of the fit. With newdata:
        the model's design rebuilt for it (stateful transforms such as scale, poly and bs with
        the fit's parameters; an offset column or ``offset(...)`` term taken from newdata); a
        pandas Series indexed like newdata when it is a pandas DataFrame (else a numpy array),
        NaN on rows missing a value the model needs. re="include" adds the conditional modes of
        the random effects; grouping levels not seen in the fit get a zero random effect and a
        NewLevelsWarning; re="exclude" needs no grouping columns. re may also be a list of
        grouping-factor names (lme4's partial re.form, e.g. ``re=["district"]``; names as in
        ``ngroups``, so ``(1 | a/b)`` gives "a" and "a:b"): only the random-effect terms of
        those factors are added, the others taken as zero (and their columns not needed);
        ``re=[]`` is re="exclude". A factor level not seen in the fit raises a ValueError naming
        it. re_form: lme4's re.form, instead of re: None (R's NULL) all terms; "~0", "NA" or
        float("nan") (R's NA) none; "~(1 | district)" the fit's terms written there.
        allow_new_levels: False raises a ValueError for grouping levels not seen in the fit
        (lme4's default); True (the default here) predicts them at population level with a
        NewLevelsWarning.

        se_fit=True also returns standard errors: a pandas DataFrame with columns ``fit`` and
        ``se_fit`` indexed like newdata when it is a pandas DataFrame, else a numpy array of two
        columns (fit, se_fit). On the link scale the variance is x' V x (V = ``vcov``, the delta
        method for x'beta) plus, for each random-effect term added, z' Cov(b_j | y) z with the
        conditional covariance of the row's level (``ranef_cov()``); the fixed and random parts
        are treated as independent (their covariance is ignored, as lme4's
        predict(se.fit=TRUE) and merTools do). A level not seen in the fit has a zero effect
        and contributes zero variance. type="response" applies the family's inverse link
        (expit for the logit, Phi for the probit, ...) and the delta method, se * d mu / d eta
        (se * mu (1 - mu) for the logit). conf_level (e.g. 0.95) adds the Wald interval of
        each prediction, ci_lower and ci_upper (with se_fit's columns): eta -+ z se on the link
        scale, mapped by the inverse link for type="response", so that it stays inside (0, 1).
        See glmm_binomial.results.prediction."""
        return prediction.predict(
            self._model,
            self._fit,
            self._design,
            newdata,
            re,
            type,
            offset,
            se_fit,
            stacklevel=2,
            conf_level=conf_level,
            re_form=re_form,
            allow_new_levels=allow_new_levels,
        )

    def fitted(self) -> FloatArray:
        """Fitted probabilities with the random effects at their conditional modes, in the
        fit's row order (lme4's fitted(); statsmodels' fittedvalues)."""
        return np.asarray(self.predict(re="include", type="response"), dtype=np.float64)


def require_fit(result: Any, what: str) -> ResultBase:
    """``result`` itself when it is a fit; a ValueError naming ``what`` otherwise."""
    if not isinstance(result, ResultBase):
        raise ValueError(f"{what} needs a fit (a GLMMResult), got {type(result).__name__}")
    return result


def keeps_rows(result: ResultBase) -> bool:
    """Whether the fit's ModelData holds its rows (a Dask fit's stay on the cluster)."""
    return bool(result.model.successes.shape[0] == result.nobs)


def require_rows(result: Any, what: str) -> ModelData:
    """The fit's ModelData with its rows; a clear error for a Dask fit (rows on the cluster)
    or for something that is not a fit."""
    model = require_fit(result, what).model
    if not keeps_rows(result):
        raise ValueError(
            f"{what} needs the rows of the fit, which stay on the Dask cluster; fit the computed "
            "frame in memory (glmm_binomial.fit(formula, ddf.compute())) for it"
        )
    return model


def data_rows(
    result: ResultBase, what: str, hint: str = ": pass newdata="
) -> tuple[pd.DataFrame, FloatArray | None]:
    """The rows of the data fit() was given that the model was fitted to (R's model frame
    rows: subset taken, rows missing a value dropped), as pandas, and their offset when fit()
    was given offset= values (None otherwise: an offset column is in the rows). ValueError,
    naming `what` and ending with `hint`, for a result that keeps no data (fit_model, refit, a
    Dask fit, unpickled) or whose data were changed after the fit (another number of complete
    rows)."""
    call = result.call
    design = result.design
    if call is None or design is None:
        raise ValueError(
            f"{what}: this result does not keep the data it was fitted to (made by fit_model, "
            f"refit, a Dask fit or unpickled){hint}"
        )
    arguments = call.arguments
    rows = fit_rows(
        design.formula,
        call.data,
        arguments.get("weights"),
        arguments.get("offset"),
        arguments.get("subset"),
    )
    kept = np.flatnonzero(rows.complete)
    if len(kept) != result.nobs:
        raise ValueError(
            f"{what}: the data given to fit() now has {len(kept)} complete rows where the fit "
            f"had {result.nobs} (it was changed after the fit){hint}"
        )
    values = rows.offset if rows.offset_source == "values" else None
    return rows.frame.iloc[kept], None if values is None else values[kept]
