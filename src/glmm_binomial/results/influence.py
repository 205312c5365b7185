"""Deletion diagnostics by refits, as lme4's influence(model, groups) for merMod fits: the model
refitted without each level of a grouping factor (or each row), and from those refits
dfbeta, dfbetas and Cook's distance (lme4's cooks.distance of an influence.merMod)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import positive_int
from glmm_binomial.methods.base import Method
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import aliased_columns
from glmm_binomial.parallel import check_start_method, contiguous_pieces, map_pieces
from glmm_binomial.results.base import ResultBase, require_rows

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class Influence:
    """The fit and its refits without each deleted unit (a level of `groups`, or a row: groups
    "row"), lme4's influence.merMod: `fixed_effects` and `var_cov` (the random effects'
    variances v[term] and covariances C[term,term], lme4's names, prefixed by the group where
    the model has several terms) of the fit; `fixed_effects_deleted`, `var_cov_deleted` one row
    per deleted unit; `vcov` of the fit and `vcov_deleted` (unit -> DataFrame); `converged`,
    `evaluations` and `note` (why a refit has no numbers: NaN rows) per unit."""

    groups: str
    fixed_effects: pd.Series
    fixed_effects_deleted: pd.DataFrame
    var_cov: pd.Series
    var_cov_deleted: pd.DataFrame
    vcov: pd.DataFrame
    vcov_deleted: dict[Any, pd.DataFrame]
    converged: pd.Series
    evaluations: pd.Series
    note: pd.Series

    def __repr__(self) -> str:
        cooks = self.cooks_distance().sort_values(ascending=False)
        largest = ", ".join(f"{unit} {value:.3g}" for unit, value in cooks.head(3).items())
        failed = int((self.note != "").sum())
        return (
            f"Influence: the fit refitted without each {self.groups} "
            f"({len(self.fixed_effects_deleted)} refits, {failed} with a note); "
            f"largest Cook's distances: {largest}"
        )

    def dfbeta(self, which: str = "fixed") -> pd.DataFrame:
        """The refit's estimates minus the fit's, one row per deleted unit: fixed effects
        ("fixed") or variance components ("var.cov"), as lme4's dfbeta."""
        if which == "fixed":
            return self.fixed_effects_deleted - self.fixed_effects
        if which in ("var.cov", "var_cov"):
            return self.var_cov_deleted - self.var_cov
        raise ValueError(f"which must be 'fixed' or 'var.cov', got {which!r}")

    def dfbetas(self) -> pd.DataFrame:
        """dfbeta of the fixed effects over the refit's standard errors (lme4's dfbetas)."""
        errors = pd.DataFrame(
            [
                np.sqrt(np.diag(self.vcov_deleted[unit].to_numpy()))
                if unit in self.vcov_deleted
                else np.full(len(self.fixed_effects), np.nan)
                for unit in self.fixed_effects_deleted.index
            ],
            index=self.fixed_effects_deleted.index,
            columns=self.fixed_effects.index,
        )
        return self.dfbeta() / errors

    def cooks_distance(self) -> pd.Series:
        """Cook's distance of each deleted unit, lme4's: d' V^{-1} d (n - p) / (n p), d its
        dfbeta, V the fit's covariance of the fixed effects, n the number of units, p of fixed
        effects."""
        change = self.dfbeta().to_numpy()
        n, p = change.shape
        solved = np.linalg.solve(self.vcov.to_numpy(), change.T).T
        distance = np.einsum("ij,ij->i", change, solved) * (n - p) / (n * p)
        return pd.Series(distance, index=self.fixed_effects_deleted.index, name="cooks_distance")


def influence(
    result: ResultBase,
    groups: str | None = None,
    n_jobs: int = 1,
    start_method: str | None = None,
) -> Influence:
    """The fit refitted without each level of the grouping factor `groups` (the name of one of
    the model's grouping factors, as in its random-effect terms: "district", or "b:a" of a
    nested (1 | a/b)), or without each row (None, lme4's default: one refit per row, the
    units labelled by row position), each by the fit's method from the fit's estimates;
    lme4's influence(model, groups). Maximum-likelihood fits of a model with rows (not a Dask
    fit's). n_jobs: worker processes (start_method as the bootstrap's)."""
    if not isinstance(result, ResultBase):
        raise ValueError("influence takes a GLMMResult (what glmm_binomial.fit returns)")
    method = result.method_object
    if method.posterior:
        raise ValueError(
            "influence refits the model by maximum likelihood; it is not available for method "
            f"{result.method!r}"
        )
    positive_int(n_jobs, "n_jobs")
    check_start_method(start_method)
    model, fit = require_rows(result, "influence"), result.fit_output
    labels, unit_of_row, units = _units(model, groups)
    names = list(result.fixed_names)
    task = _Task(model, method, (fit.theta, fit.beta), unit_of_row)
    pieces = contiguous_pieces(list(enumerate(units)), int(n_jobs), largest=25)
    refits: list[_Refit] = []
    for piece_result in map_pieces(_refits, task, pieces, int(n_jobs), start_method):
        refits.extend(piece_result)
    var_names = _var_cov_names(model)
    index = pd.Index(labels, name=groups if groups is not None else "row")
    vcov_deleted = {
        label: pd.DataFrame(r.vcov, index=names, columns=names)
        for label, r in zip(labels, refits, strict=True)
        if r.vcov is not None
    }
    return Influence(
        groups=groups if groups is not None else "row",
        fixed_effects=result.params.rename(None),
        fixed_effects_deleted=pd.DataFrame(
            np.array([r.beta for r in refits]), index=index, columns=names
        ),
        var_cov=pd.Series(_var_cov(model, fit.theta), index=var_names),
        var_cov_deleted=pd.DataFrame(
            np.array([r.var_cov for r in refits]), index=index, columns=var_names
        ),
        vcov=result.vcov,
        vcov_deleted=vcov_deleted,
        converged=pd.Series([r.converged for r in refits], index=index, name="converged"),
        evaluations=pd.Series([r.evaluations for r in refits], index=index, name="evaluations"),
        note=pd.Series([r.note for r in refits], index=index, name="note"),
    )


def _units(model: ModelData, groups: str | None) -> tuple[list[Any], IntArray, list[int]]:
    """The labels of the deleted units, each row's unit code and the codes deleted in turn
    (each refit finds its rows from the codes: never a list of row sets, n^2 for rows)."""
    rows = np.arange(model.n_obs)
    if groups is None:
        return list(rows), rows, rows.tolist()
    by_group = {b.group: b for b in model.blocks}
    if groups not in by_group:
        known = ", ".join(repr(name) for name in by_group) or "none"
        raise ValueError(
            f"groups must name a grouping factor of the model ({known}) or be None (each row), "
            f"got {groups!r}"
        )
    block = by_group[groups]
    present = np.unique(block.codes)
    return [block.levels[c] for c in present], block.codes, present.tolist()


def _var_cov_names(model: ModelData) -> list[str]:
    """lme4's names of the variance components: v[term] and C[term,term] (the lower triangle
    column by column), prefixed by the group where the model has several terms."""
    names = []
    for block in model.blocks:
        prefix = f"{block.group}:" if len(model.blocks) > 1 else ""
        for j in range(block.k):
            for i in range(j, block.k):
                a, b = block.terms[i], block.terms[j]
                names.append(prefix + (f"v[{a}]" if i == j else f"C[{a},{b}]"))
    return names


def _var_cov(model: ModelData, theta: FloatArray) -> FloatArray:
    values = []
    for lam in model.lambdas(theta):
        covariance = lam @ lam.T
        values.append(covariance.T[np.triu_indices(covariance.shape[0])])
    return np.concatenate(values) if values else np.empty(0)


@dataclass(frozen=True)
class _Task:
    model: ModelData
    method: Method
    start: tuple[FloatArray, FloatArray]
    unit_of_row: IntArray


@dataclass(frozen=True)
class _Refit:
    beta: FloatArray
    var_cov: FloatArray
    vcov: FloatArray | None
    converged: bool
    evaluations: float
    note: str


def _refits(task: _Task, piece: list[tuple[int, int]]) -> list[_Refit]:
    return [_refit(task, unit) for _, unit in piece]


def _refit(task: _Task, unit: int) -> _Refit:
    """The model fitted without unit `unit`'s rows from the fit's estimates; NaN with a note
    where it fails."""
    model = task.model.subset(np.flatnonzero(task.unit_of_row != unit))
    n_fixed = model.n_fixed
    n_var = len(_var_cov_names(model))
    failed = _Refit(np.full(n_fixed, np.nan), np.full(n_var, np.nan), None, False, math.nan, "")
    # Without the unit some columns of X may be aliased (a level of a factor seen only in it):
    # they have no estimate (NaN), as R's refit drops them; the others are refitted.
    aliased = aliased_columns(model.x)
    keep = np.setdiff1d(np.arange(n_fixed), aliased)
    start = (task.start[0], task.start[1][keep])
    try:
        smaller = model.with_fixed_columns(keep) if aliased else model
        task.method.check(smaller)
        output = task.method.fit(smaller, start=start)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
        return _replace_note(failed, f"the refit cannot be made: {error}")
    if not np.isfinite(output.beta).all() or not math.isfinite(output.loglik):
        return _replace_note(failed, "the refit has no finite estimates")
    beta = np.full(n_fixed, np.nan)
    beta[keep] = output.beta
    vcov = np.full((n_fixed, n_fixed), np.nan)
    vcov[np.ix_(keep, keep)] = output.vcov_beta
    notes = []
    if aliased:
        names = ", ".join(model.fixed_names[j] for j in aliased)
        notes.append(f"without this unit {names} cannot be estimated (aliased)")
    # A refit separated by the fixed effects alone, its end verified, is the limit's fit: its
    # divergence is noted below, not as a failure to converge.
    if not (output.converged or output.limit_verified):
        notes.append("the refit did not converge")
    if output.diverging:
        beta[keep[list(output.diverging)]] = np.nan
        notes.append("some fixed effects of the refit diverge (separation without this unit)")
    return _Refit(
        beta,
        _var_cov(model, output.theta),
        vcov,
        bool(output.converged),
        float(output.opt_summary.evaluations),
        "; ".join(notes),
    )


def _replace_note(refit: _Refit, note: str) -> _Refit:
    return _Refit(refit.beta, refit.var_cov, refit.vcov, refit.converged, refit.evaluations, note)
