"""Likelihood-ratio tests between nested fits: anova() of fits given, drop1() of a fit's
terms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import droppable_terms, term_columns
from glmm_binomial.model.formula import r_text
from glmm_binomial.results.base import ResultBase

FloatArray = NDArray[np.float64]

NESTING_RTOL = 1e-8
"""Relative residual below which a design column counts as in the span of the larger model's."""


def anova(*results: ResultBase) -> pd.DataFrame:
    """Likelihood-ratio tests of a sequence of nested models, as lme4's anova().

    Models are ordered by their number of parameters; each row after the first tests the model
    against the one before it: chisq = 2 (loglik - previous loglik) on the difference in
    parameters, p from the chi-squared distribution. All models must be fitted by maximum
    likelihood, by the same method, to the same observations (ValueError otherwise). When the
    difference in parameters is 0, or the smaller model is not nested in the larger (its fixed
    columns and random-effect terms are not contained in the larger's, as far as the designs
    tell), or either did not converge (its log-likelihood short of its maximum:
    FitOutput.at_supremum, as drop1), there is no test: chisq and p are NaN and the `note`
    column says why."""
    if len(results) < 2:
        raise ValueError(
            "anova compares at least two fitted models; for a test of each term of one model "
            "use result.wald_test_terms() (car's Anova: Wald chi-square) or "
            "glmm_binomial.drop1(result) (likelihood-ratio tests by refits)"
        )
    for r in results:
        if not isinstance(r, ResultBase):
            raise ValueError("anova takes GLMMResult objects")
        if r.method_object.posterior:
            raise ValueError(
                f"likelihood-ratio tests need maximum-likelihood fits, not method {r.method!r}"
            )
    first = results[0]
    for r in results[1:]:
        check_comparable(first, r)
    ordered = sorted(results, key=lambda r: r.df_model)
    rows = []
    previous: ResultBase | None = None
    for r in ordered:
        row = {
            "formula": r.formula,
            "npar": r.df_model,
            "AIC": r.aic,
            "BIC": r.bic,
            "logLik": r.loglik,
            "deviance": r.deviance,
            "chisq": float("nan"),
            "df": float("nan"),
            "p": float("nan"),
            "note": "",
        }
        if previous is not None:
            df = r.df_model - previous.df_model
            row["df"] = df
            if df == 0:
                row["note"] = "no test: both models have the same number of parameters"
            elif (previous.family, previous.link) != (r.family, r.link):
                # A binomial is the beta-binomial's limit phi -> inf, on the boundary: no
                # chi-square reference there, and other links are not nested at all.
                row["note"] = (
                    "no test: the models differ in family or link (not nested); compare their AIC"
                )
            elif not nested_in(previous.model, r.model):
                row["note"] = (
                    "no test: the smaller model is not nested in this one (its fixed effects or "
                    "random-effect terms are not contained in this model's)"
                )
            elif not (previous.fit_output.at_supremum and r.fit_output.at_supremum):
                # As drop1: a log-likelihood short of its maximum (the log link's bound, a
                # variance without an estimate, a search that stopped) is no test's statistic.
                failed = [
                    name
                    for name, fit in (("the smaller model", previous), ("this model", r))
                    if not fit.fit_output.at_supremum
                ]
                row["note"] = f"no test: {' and '.join(failed)} did not converge (see warnings)"
            else:
                chisq = max(2.0 * (r.loglik - previous.loglik), 0.0)
                row.update(chisq=chisq, p=float(stats.chi2.sf(chisq, df)))
        rows.append(row)
        previous = r
    return pd.DataFrame(rows)


def drop1(result: ResultBase, test: str = "Chisq") -> pd.DataFrame:
    """Single term deletions, as lme4's drop1(model, test = "Chisq"): each fixed-effects term
    that no other term contains (marginality kept: with age * urban only age:urban) is dropped
    in turn and the model refitted by the fit's method from the fit's estimates. One row per
    term after "<none>" (the fit itself): npar, the number of columns dropped; AIC of the
    smaller model; LRT = 2 (loglik - its loglik) and Pr(Chi) from the chi-squared on npar.
    Where a refit does not converge its numbers are NaN and `note` says so; where the fit itself
    did not converge there is no test (LRT and Pr(Chi) NaN). A fit or refit separated by the
    fixed effects is compared at its log-likelihood's limit (FitOutput.at_supremum; `note`
    says so), as R's drop1 compares glmer's at its stopping point. test="none" (lme4's default)
    leaves out the LRT and Pr(Chi) columns. Maximum-likelihood fits with their formula's terms
    only (ValueError otherwise)."""
    if test not in ("Chisq", "none"):
        raise ValueError(f"test must be 'Chisq' or 'none' (lme4's drop1), got {test!r}")
    if not isinstance(result, ResultBase):
        raise ValueError("drop1 takes a GLMMResult")
    method = result.method_object
    if method.posterior:
        raise ValueError(
            f"likelihood-ratio tests need maximum-likelihood fits, not method {result.method!r}"
        )
    if result.penalized:
        raise ValueError(
            "drop1 compares maximum-likelihood fits; this fit is penalized by priors (its "
            "objective is not a likelihood): refit without priors="
        )
    model, design, fit = result.model, result.design, result.fit_output
    if design is None or model.x.shape[0] == 0:
        raise ValueError(
            "drop1 refits the model without each term: it needs a fit of glmm_binomial.fit("
            "formula, data) in memory (not fit_model's or a Dask fit)"
        )
    columns = term_columns(design, model.n_fixed)
    rows = [
        {
            "term": "<none>",
            "npar": math.nan,
            "AIC": result.aic,
            "LRT": math.nan,
            "Pr(Chi)": math.nan,
            "note": "",
        }
    ]
    for label in droppable_terms(design):
        if label not in columns:
            continue  # every column of the term aliased: nothing to drop
        dropped = columns[label]
        keep = np.setdiff1d(np.arange(model.n_fixed), dropped)
        smaller = model.with_fixed_columns(keep)
        row = {
            "term": r_text(label),
            "npar": len(dropped),
            "AIC": math.nan,
            "LRT": math.nan,
            "Pr(Chi)": math.nan,
            "note": "",
        }
        try:
            method.check(smaller)
            output = method.fit(smaller, start=(fit.theta, fit.beta[keep]))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
            row["note"] = f"the model without {r_text(label)} cannot be fitted: {error}"
            rows.append(row)
            continue
        if not (output.at_supremum and math.isfinite(output.loglik)):
            row["note"] = f"the refit without {r_text(label)} did not converge"
            rows.append(row)
            continue
        row["AIC"] = -2.0 * output.loglik + 2.0 * (result.df_model - len(dropped))
        if not fit.at_supremum:
            row["note"] = "no test: the fit itself did not converge"
        else:
            lrt = max(2.0 * (result.loglik - output.loglik), 0.0)
            row.update(LRT=lrt, **{"Pr(Chi)": float(stats.chi2.sf(lrt, len(dropped)))})
            separated = [n for n, o in (("the fit", fit), ("the refit", output)) if o.diverging]
            if separated:
                row["note"] = (
                    f"{' and '.join(separated)} separated: log-likelihood at its limit along "
                    "the diverging path"
                )
        rows.append(row)
    table = pd.DataFrame(rows).set_index("term")
    return table.drop(columns=["LRT", "Pr(Chi)"]) if test == "none" else table


def check_comparable(a: ResultBase, b: ResultBase) -> None:
    """Refuse models whose log-likelihoods cannot be compared."""
    if a.nobs != b.nobs:
        raise ValueError(
            f"models were fitted to different numbers of observations ({a.nobs} and {b.nobs}); "
            "a likelihood-ratio test needs the same rows (check rows dropped for missing values)"
        )
    ma, mb = a.model, b.model
    if not (np.array_equal(ma.successes, mb.successes) and np.array_equal(ma.trials, mb.trials)):
        raise ValueError(
            "models were fitted to different responses or rows (successes and trials differ); "
            "a likelihood-ratio test needs the same data"
        )
    if (a.method, a.n_agq) != (b.method, b.n_agq):
        raise ValueError(
            f"models were fitted by different methods ({_method(a)} and {_method(b)}), whose "
            "log-likelihoods are different approximations; refit them by the same method"
        )


def _method(r: ResultBase) -> str:
    return f"agq with n_agq = {r.n_agq}" if r.method == "agq" else r.method


def nested_in(small: ModelData, large: ModelData) -> bool:
    """Whether `small` is contained in `large`, as far as the designs tell: the same offset, the
    fixed-effects columns of `small` in the column space of `large`'s, and every random-effect
    block of `small` matched by a block of `large` with the same grouping (levels and rows)
    whose columns span `small`'s."""
    if not np.allclose(small.offset, large.offset):
        return False
    if not _in_span(small.x, large.x):
        return False
    for block in small.blocks:
        if not any(
            other.group == block.group
            and np.array_equal(other.codes, block.codes)
            and _in_span(block.z, other.z)
            for other in large.blocks
        ):
            return False
    return True


def _in_span(columns: FloatArray, basis: FloatArray) -> bool:
    """Every column of `columns` is (numerically) a linear combination of `basis`'s columns."""
    if columns.shape[1] == 0:
        return True
    if basis.shape[1] == 0:
        return False
    coef, *_ = np.linalg.lstsq(basis, columns, rcond=None)
    residual = np.linalg.norm(columns - basis @ coef, axis=0)
    return bool(np.all(residual <= NESTING_RTOL * np.maximum(np.linalg.norm(columns, axis=0), 1)))
