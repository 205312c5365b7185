"""GLMMResult: the read-only result of a fit, with derived statistics computed on demand.

No fitting happens here: the estimates arrive as a FitOutput and everything else (tables,
criteria, predictions) is derived from it and from the model data.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from glmm_binomial.family import Family, inverse_link
from glmm_binomial.methods.base import Method
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.registry import make_method
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import DesignInfo, formula_of
from glmm_binomial.model.newdata import new_data_design, new_levels_warning
from glmm_binomial.numerics.covariance import sd_correlation
from glmm_binomial.numerics.optimize import OptSummary
from glmm_binomial.results.accessors import ResultsAPI

if TYPE_CHECKING:
    from glmm_binomial.results.summary import Summary

FloatArray = NDArray[np.float64]


class GLMMResult(ResultsAPI):
    """Result of a binomial (or beta-binomial) GLMM fit.

    Fixed effects are on the link scale (log-odds for the logit link; ``family``, ``link``);
    random-effect variances and SDs are of the random effects on that scale. For method "vb",
    estimates are posterior means and standard errors posterior SDs.
    """

    _model: ModelData
    _fit: FitOutput
    _design: DesignInfo | None
    _method: Method
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
    ) -> None:
        if not 0.0 < conf_level < 1.0:
            raise ValueError("conf_level must be strictly between 0 and 1")
        if method_object is None:
            # Made without the method object: the method by name, with its default settings.
            method_object = make_method(fit.method, n_agq=fit.n_agq if fit.n_agq != 1 else None)
        object.__setattr__(self, "_method", method_object)
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_fit", fit)
        object.__setattr__(self, "_design", design)
        object.__setattr__(self, "conf_level", float(conf_level))
        object.__setattr__(self, "data_name", data_name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("GLMMResult is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("GLMMResult is read-only")

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
        (1 + (m - 1) / (phi + 1))); None for the binomial family, which has none."""
        model = self._model
        if not model.family.n_parameters:
            return None
        return float(np.exp(self._fit.theta[model.family_slice][0]))

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
    def fit_output(self) -> FitOutput:
        return self._fit

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
        """Fixed effects (log-odds scale), in design-column order."""
        return pd.Series(self._fit.beta.copy(), index=self.fixed_names, name="estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        names = self.fixed_names
        return pd.DataFrame(self._fit.vcov_beta.copy(), index=names, columns=names)

    @property
    def bse(self) -> pd.Series:
        return pd.Series(
            np.sqrt(np.diag(self._fit.vcov_beta)), index=self.fixed_names, name="std_error"
        )

    def fixed_effects_table(self, conf_level: float | None = None) -> pd.DataFrame:
        """Estimate, std_error, z, p (two-sided, normal), Wald interval and odds ratio."""
        level = self.conf_level if conf_level is None else float(conf_level)
        if not 0.0 < level < 1.0:
            raise ValueError("conf_level must be strictly between 0 and 1")
        est = self._fit.beta
        se = np.sqrt(np.diag(self._fit.vcov_beta))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = est / se
        p = 2.0 * stats.norm.sf(np.abs(z))
        q = stats.norm.ppf(0.5 + level / 2.0)
        with np.errstate(over="ignore"):  # a diverging (separated) estimate: odds ratio inf
            # exp(beta) is an odds ratio under the logit link only.
            odds_ratio = np.exp(est) if self.link == "logit" else np.full(len(est), np.nan)
        return pd.DataFrame(
            {
                "estimate": est,
                "std_error": se,
                "z": z,
                "p": p,
                "ci_lower": est - q * se,
                "ci_upper": est + q * se,
                "odds_ratio": odds_ratio,
            },
            index=pd.Index(self.fixed_names, name="term"),
        )

    @cached_property
    def fixed_effects(self) -> pd.DataFrame:
        return self.fixed_effects_table()

    def conf_int(self, alpha: float | None = None, conf_level: float | None = None) -> pd.DataFrame:
        """Wald intervals for the fixed effects at level 1 - alpha (statsmodels' argument) or
        conf_level (default: the fit's conf_level). See confint() for every parameter."""
        if alpha is not None:
            if conf_level is not None:
                raise ValueError("give alpha or conf_level, not both")
            if isinstance(alpha, bool) or not 0.0 < float(alpha) < 1.0:
                raise ValueError("alpha must be strictly between 0 and 1")
            conf_level = 1.0 - float(alpha)
        table = self.fixed_effects_table(conf_level)
        return table[["ci_lower", "ci_upper"]].copy()

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
        for block, cov in zip(self._model.blocks, self.covariance_matrices(), strict=True):
            sd, corr = sd_correlation(cov)
            for c, term in enumerate(block.terms):
                row: dict[str, Any] = {
                    "group": block.group,
                    "term": term,
                    "variance": cov[c, c],
                    "std_dev": sd[c],
                }
                for d in range(max_k - 1):
                    row[f"corr_{d + 1}"] = corr[c, d] if d < c else np.nan
                rows.append(row)
        return pd.DataFrame(rows)

    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects (posterior means for "vb"), one DataFrame per
        grouping factor indexed by level; with condvar, their conditional SDs as `<term>_sd`
        and the conditional covariance matrices of each level's effects (levels x k x k, as
        lme4's postVar) in `frame.attrs["condvar"]` (also ranef_cov())."""
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
        return -2.0 * self.loglik

    @property
    def df_model(self) -> int:
        """Fixed effects plus covariance parameters."""
        return self._model.n_fixed + self._model.n_theta

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
    ) -> Any:
        """Predicted probabilities (type="response") or log-odds (type="link").

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
        it.

        se_fit=True also returns standard errors: a pandas DataFrame with columns ``fit`` and
        ``se_fit`` indexed like newdata when it is a pandas DataFrame, else a numpy array of two
        columns (fit, se_fit). On the link scale the variance is x' V x (V = ``vcov``, the delta
        method for x'beta) plus, for each random-effect term added, z' Cov(b_j | y) z with the
        conditional covariance of the row's level (``ranef_cov()``); the fixed and random parts
        are treated as independent (their covariance is ignored, as lme4's
        predict(se.fit=TRUE) and merTools do). A level not seen in the fit has a zero effect
        and contributes zero variance. type="response" applies the family's inverse link
        (expit for the logit, Phi for the probit, ...) and the delta method, se * d mu / d eta
        (se * mu (1 - mu) for the logit)."""
        if type not in ("response", "link"):
            raise ValueError("type must be 'response' or 'link'")
        chosen = self._chosen_blocks(re)
        if newdata is None:
            if offset is not None:
                raise ValueError("offset applies only with newdata")
            model = self._model
            random = [(model.blocks[t].codes, model.blocks[t].z) for t in chosen]
            fitted, fitted_var = self._linear_predictor(
                model.x, model.offset, random, chosen, se_fit
            )
            return _predict_output(fitted, fitted_var, type, None, model.family)
        if self._design is None:
            raise ValueError("predict with newdata needs a model fitted from a formula")
        design = new_data_design(self._design, newdata, offset, random=chosen)
        if chosen:
            warning = new_levels_warning(self._design, design)
            if warning is not None:
                warning.emit(stacklevel=2)
        eta_complete, var_complete = self._linear_predictor(
            design.x, design.offset, design.random, design.blocks, se_fit
        )
        eta = np.full(design.complete.shape[0], np.nan)
        eta[design.complete] = eta_complete
        var: FloatArray | None = None
        if var_complete is not None:
            var = np.full(design.complete.shape[0], np.nan)
            var[design.complete] = var_complete
        index = design.index if isinstance(newdata, pd.DataFrame) else None
        return _predict_output(eta, var, type, index, self._model.family)

    def _chosen_blocks(self, re: Any) -> tuple[int, ...]:
        """Indices of the random blocks that ``re`` asks predict to add."""
        blocks = self._model.blocks
        valid = list(dict.fromkeys(b.group for b in blocks))
        listed = ", ".join(map(repr, valid))
        if isinstance(re, str):
            if re == "include":
                return tuple(range(len(blocks)))
            if re == "exclude":
                return ()
            hint = f"; for that factor only pass re=[{re!r}]" if re in valid else ""
            raise ValueError(
                "re must be 'include', 'exclude' or a list of grouping-factor names "
                f"(got {re!r}; grouping factors: {listed}){hint}"
            )
        try:
            names = list(re)
        except TypeError:
            raise ValueError(
                "re must be 'include', 'exclude' or a list of grouping-factor names "
                f"(grouping factors: {listed})"
            ) from None
        unknown = [n for n in names if not isinstance(n, str) or n not in valid]
        if unknown:
            raise ValueError(
                f"re: {', '.join(map(repr, unknown))} not a grouping factor of the model "
                f"(grouping factors: {listed})"
            )
        return tuple(t for t, b in enumerate(blocks) if b.group in names)

    def _linear_predictor(
        self,
        x: FloatArray,
        offset: FloatArray,
        random: list[tuple[NDArray[np.intp], FloatArray]],
        blocks: tuple[int, ...],
        se_fit: bool,
    ) -> tuple[FloatArray, FloatArray | None]:
        """x beta + offset + the chosen blocks' z b (codes -1: zero effect), and with se_fit its
        variance x' V x + sum z' Cov(b | y) z (fixed and random parts taken as independent)."""
        eta = x @ self._fit.beta + offset
        var = np.einsum("ij,jk,ik->i", x, self._fit.vcov_beta, x) if se_fit else None
        for (codes, z), t in zip(random, blocks, strict=True):
            seen = codes >= 0
            modes = self._fit.ranef[t]
            contribution = np.zeros(len(codes))
            contribution[seen] = np.einsum("ic,ic->i", z[seen], modes[codes[seen]])
            eta = eta + contribution
            if var is not None:
                covs = self._fit.ranef_cov[t]
                zs = z[seen]
                extra = np.zeros(len(codes))
                extra[seen] = np.einsum("ic,icd,id->i", zs, covs[codes[seen]], zs)
                var = var + extra
        return eta, var

    # --- display ----------------------------------------------------------------------------
    def summary(self, data_name: str | None = None) -> Summary:
        """The summary laid out as lme4's (a str with tables and an HTML form; see summary.py).
        data_name: shown on the `Data:` line (default: the fit's data_name, else "data")."""
        from glmm_binomial.results.summary import Summary

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


def _predict_output(
    eta: FloatArray, var: FloatArray | None, type: str, index: pd.Index | None, family: Family
) -> Any:
    """predict's return value: values (a Series when index is given), or with var the fit and
    its se as a DataFrame (index given) or an n x 2 array; response values by the family's
    inverse link, their se by the delta method, se * d mu / d eta (se * mu (1 - mu) for the
    logit)."""
    logit = family.link == "logit"
    if type == "link":
        values = eta
    else:
        values = inverse_link(eta) if logit else family.inverse_link(eta)
    if var is None:
        return values if index is None else pd.Series(values, index=index, name=type)
    se = np.sqrt(var)
    if type == "response":
        se = se * values * (1.0 - values) if logit else se * family.mu_eta(eta)
    if index is None:
        return np.column_stack([values, se])
    return pd.DataFrame({"fit": values, "se_fit": se}, index=index)
