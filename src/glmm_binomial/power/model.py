"""PowerModel: the model a power analysis simulates from, and the fixed effects it tests.

A PowerModel is a design (ModelData: fixed-effects matrix, random-effect blocks, trials,
offset) with the parameters (theta, beta) the responses are drawn from and the method (with
its settings) that refits them. It is made from a maximum-likelihood fit (``power_model``),
from a formula, data and chosen parameters (``make_model``, simr's makeGlmer), or by growing
or shrinking another (power.design: ``extend``). The design is built once; a simulation only
replaces the response.

Fixed effects are named by their design columns (``age``, ``livch1``) or, when the model came
from a formula, by their terms (``livch``: its three columns at once).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.family import make_family
from glmm_binomial.methods.base import Method
from glmm_binomial.methods.registry import make_method
from glmm_binomial.model.covariance import Unstructured
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import DesignInfo, build_model, formula_of, term_columns
from glmm_binomial.model.formula import parse_formula
from glmm_binomial.model.separation import Separation
from glmm_binomial.results.base import ResultBase

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PowerModel:
    """A design with the parameters responses are simulated from.

    model: the design (its response is not used); theta, beta: the relative covariance
    factors (lme4's layout) and fixed effects (log-odds) of the simulation; method: the method
    object that refits each simulated response (maximum likelihood: "laplace" or "agq", with
    its settings and priors); design: the formula's record (term names), None for a design
    given as ModelData; description: where the model came from, as reports say it."""

    model: ModelData
    theta: FloatArray
    beta: FloatArray
    method: Method
    design: DesignInfo | None = None
    description: str = ""

    def __post_init__(self) -> None:
        theta = np.array(self.theta, dtype=np.float64).ravel()
        beta = np.array(self.beta, dtype=np.float64).ravel()
        if theta.shape != (self.model.n_theta,):
            raise ValueError(f"theta must have {self.model.n_theta} values, got {len(theta)}")
        if beta.shape != (self.model.n_fixed,):
            raise ValueError(f"beta must have {self.model.n_fixed} values, got {len(beta)}")
        if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(beta))):
            raise ValueError("the parameters to simulate from (theta, beta) must be finite")
        theta.flags.writeable = False
        beta.flags.writeable = False
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "beta", beta)

    @property
    def fixed_names(self) -> list[str]:
        return list(self.model.fixed_names)

    @property
    def params(self) -> pd.Series:
        """The fixed effects responses are simulated from (log-odds)."""
        return pd.Series(self.beta.copy(), index=self.fixed_names, name="beta")

    @property
    def n_obs(self) -> int:
        return self.model.n_obs

    @property
    def ngroups(self) -> dict[str, int]:
        """Levels per grouping factor."""
        return {b.group: b.n_levels for b in self.model.blocks}

    @property
    def formula(self) -> str:
        return self.design.formula.text if self.design is not None else formula_of(self.model)

    def table(self) -> pd.DataFrame:
        """The design's rows: each grouping factor's level, the fixed-effects columns, the
        trials and the offset (what a simulation draws responses for)."""
        columns: dict[str, Any] = {}
        for block in self.model.blocks:
            if block.group not in columns:
                levels = np.asarray(block.levels, dtype=object)
                columns[block.group] = levels[block.codes]
        for j, name in enumerate(self.model.fixed_names):
            columns[name] = self.model.x[:, j]
        columns["trials"] = self.model.trials
        columns["offset"] = self.model.offset
        return pd.DataFrame(columns)

    def with_effect(self, effect: Mapping[str, Any] | None) -> PowerModel:
        """The same model with some fixed effects set: {"age": -0.02}, a term of several
        columns to a sequence ({"livch": [0.5, 0.8, 0.8]}). None: unchanged."""
        if effect is None:
            return self
        if not isinstance(effect, Mapping):
            raise ValueError(
                "effect must be a dict of fixed effects to set, e.g. {'age': -0.02}, "
                f"got {type(effect).__name__}"
            )
        beta = self.beta.copy()
        for name, value in effect.items():
            _, columns = fixed_columns(self, name, "effect")
            values = np.atleast_1d(numbers(value)).ravel()
            if values.shape != (len(columns),) or not np.all(np.isfinite(values)):
                raise ValueError(
                    f"effect[{name!r}] must be {len(columns)} finite number"
                    f"{'s' if len(columns) > 1 else ''} (one per column: "
                    f"{', '.join(self.model.fixed_names[j] for j in columns)}), got {value!r}"
                )
            beta[list(columns)] = values
        return dataclasses.replace(self, beta=beta)

    def __repr__(self) -> str:
        groups = ", ".join(f"{g}: {n}" for g, n in self.ngroups.items())
        return (
            f"<PowerModel {self.formula!r}: {self.n_obs} rows, groups {groups}; "
            f"refit by {self.method.name}>"
        )


def power_model(source: Any, effect: Mapping[str, Any] | None = None) -> PowerModel:
    """The PowerModel of a maximum-likelihood fit (its design, estimates and method), or
    `source` itself when it is one; `effect` sets fixed effects (PowerModel.with_effect)."""
    if isinstance(source, PowerModel):
        return source.with_effect(effect)
    if not isinstance(source, ResultBase):
        raise ValueError(
            "model must be a GLMMResult (a fit by method 'laplace' or 'agq') or a PowerModel "
            f"(make_model, extend), got {type(source).__name__}"
        )
    if source.method_object.posterior:
        raise ValueError(
            f"power simulation refits by maximum likelihood; the fit is by method "
            f"{source.method!r}: fit with method='laplace' (or 'agq'), or build the model with "
            "make_model"
        )
    model = source.model
    if model.successes.shape[0] != model.n_obs:
        raise ValueError(
            "the fit's rows stay on the Dask cluster: fit the computed frame in memory "
            "(glmm_binomial.fit(formula, ddf.compute())) for a power simulation"
        )
    fit = source.fit_output
    pm = PowerModel(
        model,
        fit.theta,
        fit.beta,
        source.method_object,
        source.design,
        f"the fit of {source.formula}",
    )
    if fit.link_bound_rows:
        raise ValueError(
            f"the fit's linear predictor reaches the {model.family.link} link's bound (mu = 1) "
            f"at {fit.link_bound_rows} row(s): its estimates lie on the boundary of the "
            "parameter space (see its warning), no model to simulate from; build the model to "
            "simulate with make_model(formula, data, fixef=..., varcorr=...)"
        )
    not_estimated(pm, fit.separation, effect)
    return pm.with_effect(effect)


def not_estimated(pm: PowerModel, found: Separation, effect: Mapping[str, Any] | None) -> None:
    """ValueError when the fit's separation (model.separation.Separation) left parameters
    without a finite estimate that effect= does not set: responses simulated from a point on
    a diverging path say nothing about a study's power."""
    names = pm.model.fixed_names
    if found.complete:
        raise ValueError(
            "the fit has no finite estimates (complete separation: the fixed effects predict "
            "every response, and the random-effect variances no longer change the "
            "likelihood): build the model to simulate with make_model(formula, data, "
            "fixef=..., varcorr=...)"
        )
    if found.blocks:
        groups = ", ".join(dict.fromkeys(pm.model.blocks[t].group for t in found.blocks))
        raise ValueError(
            f"the fit has no finite estimate of the random-effect covariance of {groups} "
            "(separation within groups; see its warning): build the model to simulate with "
            "make_model(formula, data, fixef=..., varcorr=...)"
        )
    covered: set[int] = set()
    if isinstance(effect, Mapping):
        for name in effect:
            covered.update(fixed_columns(pm, name, "effect")[1])
    missing = [names[j] for j in found.coefficients if j not in covered]
    if missing:
        listed = ", ".join(missing)
        raise ValueError(
            f"the fit has no finite estimate for {listed} (separation; see its warning): "
            f"set {'them' if len(missing) > 1 else 'it'} with effect={{{missing[0]!r}: ...}} "
            "or build the model with make_model"
        )


def make_model(
    formula: str,
    data: Any,
    fixef: Mapping[str, Any] | Sequence[float],
    varcorr: Mapping[str, Any] | None = None,
    *,
    theta: Sequence[float] | None = None,
    weights: Any = None,
    offset: Any = None,
    family: Any = None,
    link: str | None = None,
    method: str | Method = "laplace",
    contrasts: Any = None,
) -> PowerModel:
    """A model to simulate from, given its design and parameters instead of a fit (simr's
    makeGlmer).

    formula, data, weights, offset: as fit() takes them; the response may be missing from
    data (its successes are simulated; a cbind(k, n - k) response needs n). fixef: the fixed
    effects on the log-odds scale, a dict by column or term name (every column given) or a
    sequence in design-column order. varcorr: per grouping factor, the SD of a one-column
    term or the covariance matrix of a term with several columns (a sequence of SDs: no
    correlation), e.g. {"district": 0.5}; or theta= (lme4's relative covariance factors) for
    any term, structured ones included (then the family's parameters follow, e.g. the
    beta-binomial's, as a fit's result.theta holds them). family, link, contrasts: as fit()
    takes them (fixef then names the contrast's columns, e.g. period1).
    method: how each simulated response is refitted ("laplace" or "agq", or a method
    object)."""
    frame = _with_response(formula, data)
    chosen = make_family(family, link)
    model, design = build_model(
        formula, frame, weights=weights, offset=offset, family=chosen, contrasts=contrasts
    )
    fitter = make_method(method)
    if fitter.posterior:
        raise ValueError(
            f"method must be a maximum-likelihood method ('laplace' or 'agq'), got {fitter.name!r}"
        )
    fitter.check(model, design)
    beta = _fixef_vector(model, design, fixef)
    if (varcorr is None) == (theta is None):
        raise ValueError("give the random-effect covariances as varcorr= or theta= (one of them)")
    if theta is not None:
        theta_values = numbers(theta).ravel()
        if theta_values.shape != (model.n_theta,) or not np.all(np.isfinite(theta_values)):
            raise ValueError(
                f"theta must be {model.n_theta} finite numbers (lme4's layout), got {theta!r}"
            )
    else:
        assert varcorr is not None
        theta_values = _theta_from_varcorr(model, varcorr)
    return PowerModel(model, theta_values, beta, fitter, design, "make_model")


def _with_response(formula: str, data: Any) -> Any:
    """data with the response's successes column added as zeros when it is missing (a
    planned study has no response yet); data itself is not modified."""
    if not isinstance(formula, str):
        raise ValueError("formula must be a string such as 'y ~ x + (1 | g)'")
    if not isinstance(data, pd.DataFrame):
        return data
    name = parse_formula(formula).response.successes.strip().strip("`")
    if name.isidentifier() and name not in data.columns:
        return data.assign(**{name: 0})
    return data


def _fixef_vector(
    model: ModelData, design: DesignInfo | None, fixef: Mapping[str, Any] | Sequence[float]
) -> FloatArray:
    names = model.fixed_names
    if isinstance(fixef, Mapping):
        holder = PowerModel(
            model, model.theta_start(), np.zeros(model.n_fixed), make_method("laplace"), design
        )
        given = holder.with_effect(fixef)
        covered: set[int] = set()
        for name in fixef:
            covered.update(fixed_columns(holder, name, "fixef")[1])
        missing = [names[j] for j in range(len(names)) if j not in covered]
        if missing:
            raise ValueError(f"fixef has no value for {', '.join(missing)}")
        return given.beta.copy()
    values = numbers(fixef).ravel()
    if values.shape != (len(names),) or not np.all(np.isfinite(values)):
        raise ValueError(
            f"fixef must be a dict by name or {len(names)} finite numbers in the order "
            f"{', '.join(names)}"
        )
    return values


def _theta_from_varcorr(model: ModelData, varcorr: Mapping[str, Any]) -> FloatArray:
    """theta from each grouping factor's SD or covariance matrix (Lambda = chol(Sigma))."""
    if not isinstance(varcorr, Mapping):
        raise ValueError("varcorr must be a dict by grouping factor, e.g. {'district': 0.5}")
    groups = [b.group for b in model.blocks]
    unknown = [g for g in varcorr if g not in groups]
    if unknown:
        raise ValueError(
            f"varcorr names {', '.join(map(repr, unknown))}, not a grouping factor of the "
            f"model ({', '.join(map(repr, groups))})"
        )
    if model.family.n_parameters:
        raise ValueError(
            f"family {model.family.name!r} has parameters of its own: give theta= (the "
            "covariance parameters, then the family's, as a fit's result.theta) instead of "
            "varcorr="
        )
    theta = np.zeros(model.n_theta)
    for block, where in zip(model.blocks, model.theta_slices(), strict=True):
        if groups.count(block.group) > 1:
            raise ValueError(
                f"grouping factor {block.group!r} has several terms: give theta= instead of "
                "varcorr="
            )
        if block.group not in varcorr:
            raise ValueError(f"varcorr has no value for grouping factor {block.group!r}")
        if not isinstance(block.covariance, Unstructured):
            raise ValueError(
                f"the {block.covariance.name} term of {block.group!r} takes theta= (its own "
                "parametrization), not varcorr="
            )
        sigma = _covariance(varcorr[block.group], block.k, block.group)
        lam = np.linalg.cholesky(sigma) if np.any(sigma) else np.zeros_like(sigma)
        rows, cols = block.lower_indices()
        theta[where] = lam[rows, cols]
    return theta


def numbers(value: Any) -> FloatArray:
    """value as a float array; NaN (refused by every caller's finiteness check, whose message
    names the argument) where it is not numbers (text, None, ragged lists)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array(np.nan)


def _covariance(value: Any, k: int, group: str) -> FloatArray:
    array = numbers(value)
    message = (
        f"varcorr[{group!r}] must be an SD (one column), {k} SDs or a {k} x {k} positive "
        f"definite covariance matrix, got {value!r}"
    )
    if array.ndim == 0 or (array.ndim == 1 and array.shape == (k,)):
        sds = np.broadcast_to(array, (k,)) if array.ndim == 1 or k == 1 else None
        if sds is None or not np.all(np.isfinite(sds)) or np.any(sds < 0):
            raise ValueError(message)
        return np.diag(np.asarray(sds) ** 2)
    if array.shape != (k, k) or not np.all(np.isfinite(array)):
        raise ValueError(message)
    if not np.allclose(array, array.T):
        raise ValueError(message)
    try:
        np.linalg.cholesky(array)
    except np.linalg.LinAlgError:
        raise ValueError(message) from None
    return 0.5 * (array + array.T)


def fixed_columns(model: PowerModel, name: Any, argument: str) -> tuple[str, tuple[int, ...]]:
    """(label, design columns) of a fixed effect named by a column (``age``, ``livch1``) or,
    for a model from a formula, a term (``livch``, ``urban:livch``, ``I(age^2)``);
    ValueError naming `argument` otherwise."""
    names = model.model.fixed_names
    if isinstance(name, str) and name in names:
        return name, (names.index(name),)
    terms = term_columns(model.design, len(names))
    if isinstance(name, str):
        key = _normalized(name)
        for label, columns in terms.items():
            if _normalized(label) == key:
                return label, columns
    choices = list(names) + [t for t in terms if t not in names]
    raise ValueError(
        f"{argument} {name!r} is not a fixed effect of the model; choose from "
        f"{', '.join(map(repr, choices))}"
    )


def tested_columns(model: PowerModel, test: Any) -> tuple[str, tuple[int, ...]]:
    """The fixed effects `test` names: a column or term name, a sequence of column names
    (tested jointly), or None (the first term after the intercept)."""
    names = model.model.fixed_names
    if test is None:
        terms = [t for t in term_columns(model.design, len(names)).items() if t[0] != "1"]
        if terms:
            return terms[0]
        others = [j for j, n in enumerate(names) if n != "(Intercept)"]
        if not others:
            raise ValueError("the model has no fixed effect besides the intercept to test")
        return names[others[0]], (others[0],)
    if isinstance(test, str):
        return fixed_columns(model, test, "test")
    if isinstance(test, Sequence) and test and all(isinstance(t, str) for t in test):
        columns: list[int] = []
        for t in test:
            columns.extend(fixed_columns(model, t, "test")[1])
        if len(set(columns)) != len(columns):
            raise ValueError(f"test names a column twice: {list(test)!r}")
        return " + ".join(test), tuple(columns)
    raise ValueError(f"test must be a fixed effect's name (or a list of names), got {test!r}")


def _normalized(text: str) -> str:
    return "".join(text.split()).replace("**", "^")


def clopper_pearson(successes: int, trials: int, conf_level: float) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion; (nan, nan) without trials."""
    from scipy.special import betaincinv

    if trials <= 0:
        return math.nan, math.nan
    tail = (1.0 - conf_level) / 2.0
    lower = 0.0 if successes == 0 else float(betaincinv(successes, trials - successes + 1, tail))
    upper = (
        1.0
        if successes == trials
        else float(betaincinv(successes + 1, trials - successes, 1.0 - tail))
    )
    return lower, upper
