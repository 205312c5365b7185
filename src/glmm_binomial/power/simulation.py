"""Power of a test of fixed effects by simulation (simr's powerSim, mixedlm's powerSim).

Simulation i draws a response from the model (new random effects b = Lambda u, u ~ N(0, I),
then successes ~ Binomial(trials, expit(eta))) with its own generator
numpy.random.default_rng(SeedSequence(seed).spawn(nsim)[i]), refits the model by its method
from the parameters simulated from, and tests the named fixed effects:

    wald: z = beta_j / SE_j (one column; chi-squared b' V^{-1} b on k degrees of freedom for a
          term of k columns), V the refit's covariance of the fixed effects;
    lrt:  2 (loglik of the model - loglik without the tested columns), chi-squared on k.

A simulation rejects when its p-value is below alpha; the power is the share of rejections
among the refits that succeeded, with its exact (Clopper-Pearson) interval. A refit separated
by the fixed effects alone whose search verified its end gives a test: the likelihood ratio at
the limit along the diverging path (the supremum), and the Wald test of columns that stay
finite there, by the limit's covariance (as anova and the fixed-effects table of such a fit).
A refit that fails (an error, no verified optimum, a random-effect variance running away, a
tested column with no finite estimate for the Wald test, a non-finite statistic) is counted in
n_failed with its reason and left out of the share; a singular refit (a variance at zero) is a
valid fit, counted in n_singular. Each simulation depends on its seed alone, so the results are
the same bit for bit whatever n_jobs (BLAS held to one thread in every process).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction, positive_int
from glmm_binomial.methods.laplace import sorted_by_first_factor
from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics import blas
from glmm_binomial.numerics.seeds import seed_sequence
from glmm_binomial.parallel import check_start_method, contiguous_pieces, map_pieces
from glmm_binomial.power.model import PowerModel, clopper_pearson, power_model, tested_columns
from glmm_binomial.progress import progress_bar
from glmm_binomial.results.simulate import simulate_successes, with_response

FloatArray = NDArray[np.float64]

TESTS = ("wald", "lrt")


@dataclass(frozen=True)
class PowerResult:
    """The power of one test by simulation.

    power: the share of valid simulations whose p-value is below alpha (NaN when none is
    valid); ci_lower, ci_upper: its exact binomial (Clopper-Pearson) interval at conf_level;
    nsim: simulations run; n_valid: refits that gave a test; n_failed: those that did not
    (failures: (simulation, reason)); n_singular: valid refits with a variance at zero;
    warnings: the fits' warnings counted by class; effect: the tested fixed effects the
    responses were simulated from; p_values: one per simulation (NaN where it failed)."""

    test: str
    method: str
    alpha: float
    nsim: int
    n_significant: int
    n_failed: int
    n_singular: int
    effect: pd.Series
    p_values: FloatArray
    failures: tuple[tuple[int, str], ...]
    warnings: Mapping[str, int]
    seed: Any
    n_obs: int
    ngroups: Mapping[str, int]
    conf_level: float = 0.95

    @property
    def n_valid(self) -> int:
        return self.nsim - self.n_failed

    @property
    def power(self) -> float:
        return self.n_significant / self.n_valid if self.n_valid else math.nan

    @property
    def ci_lower(self) -> float:
        return clopper_pearson(self.n_significant, self.n_valid, self.conf_level)[0]

    @property
    def ci_upper(self) -> float:
        return clopper_pearson(self.n_significant, self.n_valid, self.conf_level)[1]

    @property
    def effect_text(self) -> str:
        """The effect simulated as "name = value, ..." (4 significant digits)."""
        return ", ".join(f"{k} = {v:.4g}" for k, v in self.effect.items())

    def summary(self) -> str:
        """A few lines as simr prints them."""
        level = f"{100 * self.conf_level:g}%"
        effect = self.effect_text
        groups = ", ".join(f"{g}: {n}" for g, n in self.ngroups.items())
        if self.n_valid:
            line = (
                f"Power for {self.test} ({self.method} test, alpha {self.alpha:g}): "
                f"{100 * self.power:.2f}% ({level} CI {100 * self.ci_lower:.2f}, "
                f"{100 * self.ci_upper:.2f})"
            )
        else:
            line = f"Power for {self.test}: no valid simulation"
        lines = [
            line,
            f"  {self.n_significant} of {self.n_valid} valid simulations significant; "
            f"{self.n_failed} of {self.nsim} refits failed, {self.n_singular} singular",
            f"  Effect simulated: {effect}",
            f"  Rows: {self.n_obs}; groups: {groups}",
        ]
        if self.warnings:
            counts = ", ".join(f"{k} {v}" for k, v in self.warnings.items())
            lines.append(f"  Warnings in the refits: {counts}")
        if self.failures:
            lines.append(
                f"  First failure: simulation {self.failures[0][0]}: {self.failures[0][1]}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"<PowerResult {self.test}: power {self.power:.3f} [{self.ci_lower:.3f}, "
            f"{self.ci_upper:.3f}], {self.nsim} simulations, {self.n_failed} failed>"
        )


def power_sim(
    model: Any,
    test: str | Sequence[str] | None = None,
    nsim: int = 1000,
    alpha: float = 0.05,
    method: Literal["wald", "lrt"] = "wald",
    *,
    effect: Mapping[str, Any] | None = None,
    seed: Any = None,
    n_jobs: int = 1,
    progress: bool | None = None,
    conf_level: float = 0.95,
    start_method: str | None = None,
) -> PowerResult:
    """Power of the test of fixed effect(s) `test` at level `alpha`, by `nsim` simulations.

    model: a maximum-likelihood fit (GLMMResult by "laplace" or "agq"), or a PowerModel
    (make_model, extend); responses are simulated from its parameters, with `effect` setting
    fixed effects first ({"age": -0.02}; 0 gives the type-I error). test: a column or term name
    (a term of several columns, or a list of names, is tested jointly); None: the first term
    after the intercept. method: "wald" (z test from the refit's standard errors, lme4's
    summary) or "lrt" (likelihood ratio against the model without the tested columns, twice
    the refits). seed: an int or a numpy SeedSequence (None: fresh entropy, recorded on the
    result). n_jobs: worker processes (the same result for any n_jobs); start_method:
    multiprocessing's ("fork" on Linux, else "spawn"). progress: a progress bar (extra
    `progress`: tqdm or rich); None shows it on a terminal. conf_level: of the power's
    interval."""
    plan, sequence = plan_simulations(model, test, nsim, alpha, method, effect, seed, n_jobs)
    conf_level = fraction(conf_level, "conf_level")
    check_start_method(start_method)
    outcomes = run_simulations(
        plan, sequence.spawn(int(nsim)), int(n_jobs), progress, start_method, "power_sim"
    )
    return summarize(plan, outcomes, sequence.entropy, conf_level)


@dataclass(frozen=True)
class SimulationPlan:
    """What every simulation needs: the design sorted as the objective wants it (each refit
    then skips the sort), the parameters, the refitting method, the tested columns and the
    design without them (for the likelihood-ratio test)."""

    source: PowerModel
    model: ModelData
    label: str
    columns: tuple[int, ...]
    test: str
    alpha: float
    reduced: ModelData | None = None
    effect: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.float64))


@dataclass(frozen=True)
class Outcome:
    """One simulation: its p-value (NaN: failed, with the reason), whether the refit was
    singular, and the classes of its warnings."""

    p_value: float
    singular: bool
    warnings: tuple[str, ...]
    failure: str = ""


def plan_simulations(
    model: Any,
    test: Any,
    nsim: Any,
    alpha: Any,
    method: Any,
    effect: Mapping[str, Any] | None,
    seed: Any,
    n_jobs: Any,
) -> tuple[SimulationPlan, np.random.SeedSequence]:
    """The checked arguments of power_sim as a SimulationPlan and the root SeedSequence."""
    positive_int(nsim, "nsim")
    positive_int(n_jobs, "n_jobs")
    alpha = fraction(alpha, "alpha")
    if method not in TESTS:
        raise ValueError(f"method must be one of {', '.join(map(repr, TESTS))}, got {method!r}")
    source = power_model(model, effect)
    label, columns = tested_columns(source, test)
    sequence = seed_sequence(seed)
    return make_plan(source, label, columns, method, alpha), sequence


def make_plan(
    source: PowerModel, label: str, columns: tuple[int, ...], test: str, alpha: float
) -> SimulationPlan:
    """The plan of simulations from `source` testing `columns` (named `label`) by `test`;
    ValueError for what cannot be simulated or refitted (trials that are not whole numbers, a
    model without the tested columns that the method refuses)."""
    trials = source.model.trials
    if not np.array_equal(trials, np.round(trials)):
        raise ValueError(
            "power simulation draws binomial counts: the trials (weights) must be whole numbers"
        )
    sorted_model, _ = sorted_by_first_factor(source.model)
    reduced = None
    if test == "lrt":
        keep = np.setdiff1d(np.arange(sorted_model.n_fixed), columns)
        reduced = sorted_model.with_fixed_columns(keep)
        try:
            source.method.check(reduced)
        except ValueError as error:
            raise ValueError(
                f"method='lrt' refits the model without {label}, which the fit's method "
                f"refuses: {error}"
            ) from None
    names = [source.model.fixed_names[j] for j in columns]
    effect = pd.Series(source.beta[list(columns)], index=names, name="effect")
    return SimulationPlan(source, sorted_model, label, columns, test, alpha, reduced, effect)


def simulate_one(plan: SimulationPlan, rng: np.random.Generator) -> Outcome:
    """Simulate a response, refit, test (see the module docstring)."""
    from scipy.special import chdtrc

    source = plan.source
    try:
        y = simulate_successes(plan.model, source.theta, source.beta, rng)
        full = source.method.fit(with_response(plan.model, y), start=(source.theta, source.beta))
        kinds = tuple(sorted({getattr(w, "kind", "warning") for w in full.warnings}))
        columns = list(plan.columns)
        if plan.reduced is None:
            # A fit separated by the fixed effects alone, its search verified, tests a column
            # that stays finite by the limit's covariance; a diverging one has no estimate.
            if not (full.converged or full.limit_verified):
                return Outcome(math.nan, bool(full.singular), kinds, _reason(full.warnings))
            if set(columns) & set(full.diverging):
                return Outcome(
                    math.nan,
                    bool(full.singular),
                    kinds,
                    "separation: no finite estimate for the tested column(s)",
                )
            b = full.beta[columns]
            v = full.vcov_beta[np.ix_(columns, columns)]
            statistic = (
                float(b @ np.linalg.solve(v, b)) if len(b) > 1 else float(b[0] ** 2 / v[0, 0])
            )
        else:
            # A separated fit's log-likelihood at its limit is the supremum the test compares.
            if not full.at_supremum:
                return Outcome(math.nan, bool(full.singular), kinds, _reason(full.warnings))
            keep = np.setdiff1d(np.arange(len(source.beta)), columns)
            reduced = source.method.fit(
                with_response(plan.reduced, y), start=(source.theta, source.beta[keep])
            )
            kinds = tuple(
                sorted(set(kinds) | {getattr(w, "kind", "warning") for w in reduced.warnings})
            )
            if not reduced.at_supremum:
                return Outcome(
                    math.nan,
                    bool(full.singular),
                    kinds,
                    "model without the tested columns: " + _reason(reduced.warnings),
                )
            statistic = max(0.0, 2.0 * (full.loglik - reduced.loglik))
        if not math.isfinite(statistic) or statistic < 0:
            return Outcome(math.nan, bool(full.singular), kinds, "the test statistic is not finite")
        return Outcome(float(chdtrc(len(columns), statistic)), bool(full.singular), kinds)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
        return Outcome(math.nan, False, (), f"{type(error).__name__}: {error}")


def _reason(warnings: Sequence[str]) -> str:
    return "; ".join(str(w) for w in warnings) or "the refit did not converge"


def summarize(
    plan: SimulationPlan, outcomes: list[Outcome], entropy: Any, conf_level: float
) -> PowerResult:
    """The PowerResult of the simulations' outcomes (in simulation order)."""
    p_values = np.array([o.p_value for o in outcomes], dtype=np.float64)
    failures = tuple((i, o.failure) for i, o in enumerate(outcomes) if o.failure)
    counts: Counter[str] = Counter(kind for o in outcomes for kind in o.warnings)
    valid = ~np.isnan(p_values)
    return PowerResult(
        test=plan.label,
        method=plan.test,
        alpha=plan.alpha,
        nsim=len(outcomes),
        n_significant=int(np.sum(p_values[valid] < plan.alpha)),
        n_failed=len(failures),
        n_singular=int(sum(o.singular for o, ok in zip(outcomes, valid, strict=True) if ok)),
        effect=plan.effect,
        p_values=p_values,
        failures=failures,
        warnings=dict(sorted(counts.items())),
        seed=entropy,
        n_obs=plan.model.n_obs,
        ngroups=plan.source.ngroups,
        conf_level=conf_level,
    )


# --- running the simulations, in this process or in workers ----------------------------------


def run_simulations(
    plan: SimulationPlan,
    seeds: list[np.random.SeedSequence],
    n_jobs: int,
    progress: bool | None,
    start_method: str | None,
    label: str,
) -> list[Outcome]:
    """Every simulation's outcome, in order; each depends on its seed alone."""
    outcomes: list[Outcome | None] = [None] * len(seeds)
    chunks = contiguous_pieces(list(enumerate(seeds)), n_jobs, largest=25)
    bar = progress_bar(len(seeds), progress, label, "fit", rich=True)
    try:
        for chunk in map_pieces(_simulate_chunk, plan, chunks, n_jobs, start_method):
            for index, outcome in chunk:
                outcomes[index] = outcome
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return [o for o in outcomes if o is not None]


Chunk = list[tuple[int, np.random.SeedSequence]]


def _simulate_chunk(plan: SimulationPlan, chunk: Chunk) -> list[tuple[int, Outcome]]:
    # One BLAS thread in every process: the products are small, and the thread count changes
    # how BLAS splits sums (hence their rounding), which must not depend on n_jobs.
    with blas.blas_threads(1):
        return [(index, simulate_one(plan, np.random.default_rng(child))) for index, child in chunk]
