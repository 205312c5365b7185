"""Parametric bootstrap of a fit (lme4's bootMer with use.u = FALSE), percentile intervals.

Replicate r simulates a response from the fitted model (new random effects) with its own
generator numpy.random.default_rng(SeedSequence(seed).spawn(n_boot)[r]) and refits the model
from the estimates. Every replicate depends on its own seed only, so the output is the same bit
for bit whatever the number of worker processes. A refit that fails (the optimizer does not
converge, a non-finite deviance, a fixed effect running away, an error) is counted and listed,
and its row is NaN; percentiles use the successful replicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction, positive_int
from glmm_binomial.model.separation import looks_divergent
from glmm_binomial.numerics import blas
from glmm_binomial.numerics.seeds import seed_sequence
from glmm_binomial.parallel import check_start_method, contiguous_pieces, map_pieces
from glmm_binomial.progress import progress_bar
from glmm_binomial.results.aliases import renamed_level
from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.parameters import all_parameters, covariance_values
from glmm_binomial.results.simulate import (
    FastRefit,
    fast_refit,
    prepare_fast_refit,
    refit,
    simulate_successes,
)

FloatArray = NDArray[np.float64]

R = TypeVar("R", bound=ResultBase)

SEPARATION_SCREEN = 20.0
"""A replicate whose |beta_j| * max |x_j| exceeds this (log-odds), or with a row's fixed-effect
predictor beyond the link's value at these log-odds, is counted as failed: its fixed effects
run away (separation in the simulated response)."""


@dataclass(frozen=True)
class BootstrapResult:
    """Replicates (one row per replicate, NaN where the refit failed), the original
    estimates, and the failures as (replicate, message)."""

    replicates: pd.DataFrame
    estimates: pd.Series
    failures: tuple[tuple[int, str], ...]
    seed: Any

    @property
    def n_boot(self) -> int:
        return len(self.replicates)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    def confint(self, conf_level: float = 0.95, *, level: float | None = None) -> pd.DataFrame:
        """Percentile intervals (lower, upper) of every column at `conf_level` (level: its
        deprecated name)."""
        conf_level = fraction(renamed_level(conf_level, level), "conf_level")
        alpha = (1.0 - conf_level) / 2.0
        ok = self.replicates.dropna(how="all")
        return pd.DataFrame(
            {"lower": ordered_quantile(ok, alpha), "upper": ordered_quantile(ok, 1.0 - alpha)},
            index=pd.Index(self.replicates.columns, name="parameter"),
        )

    def __repr__(self) -> str:
        return (
            f"<BootstrapResult: {self.n_boot} replicates, {self.n_failed} failed refits, "
            f"seed {self.seed!r}>"
        )


def ordered_quantile(replicates: pd.DataFrame, q: float) -> NDArray[np.float64]:
    """Each column's q quantile (linear interpolation, as pandas' and R's type 7), with
    infinite replicates (the beta-binomial's phi at its limit) ordered beyond every finite one:
    a quantile that reaches into them is infinite, not NaN (inf - inf)."""
    values = replicates.to_numpy(dtype=np.float64)
    big = np.finfo(np.float64).max / 4.0  # interpolating between -big and big cannot overflow
    quantile = np.array(pd.DataFrame(np.clip(values, -big, big)).quantile(q), dtype=np.float64)
    finite = np.isfinite(values)
    # Beyond the largest (smallest) finite replicate, -inf (inf) where a column has none: the
    # quantile came from interpolating with an infinite one. NaN stays NaN.
    high = np.where(finite, values, -np.inf).max(axis=0, initial=-np.inf)
    low = np.where(finite, values, np.inf).min(axis=0, initial=np.inf)
    quantile[quantile > high] = np.inf
    quantile[quantile < low] = -np.inf
    return quantile


def bootstrap(
    result: R,
    n_boot: int = 1000,
    seed: Any = None,
    n_jobs: int = 1,
    statistic: Callable[[R], Any] | None = None,
    progress: bool | None = None,
    start_method: str | None = None,
) -> BootstrapResult:
    """Parametric bootstrap: `n_boot` responses simulated from the fit, each refitted.

    The replicates hold every parameter (SDs, correlations, fixed effects, named as
    confint() names them) and, with `statistic` (a function of a GLMMResult returning a number,
    a sequence or a pandas Series; a top-level function when n_jobs > 1), its values as further
    columns (`stat` or `stat_<i>`, or the Series' names). With a statistic each replicate is a
    full refit (standard errors and modes too), otherwise a lighter one.
    seed: an int or a numpy SeedSequence (None: fresh entropy, recorded on the result).
    n_jobs: worker processes (1 runs in this process); start_method: multiprocessing's ("fork"
    on Linux, else "spawn", by default; with "spawn" a script needs the
    `if __name__ == "__main__":` guard).
    progress: a progress bar (needs the `progress` extra: tqdm); None shows it on a terminal."""
    if not isinstance(result, ResultBase):
        raise ValueError("result must be a GLMMResult")
    positive_int(n_boot, "n_boot")
    positive_int(n_jobs, "n_jobs")
    if statistic is not None and not callable(statistic):
        raise ValueError("statistic must be a function of a GLMMResult")
    sequence = seed_sequence(seed)
    children = sequence.spawn(int(n_boot))
    plan = prepare_fast_refit(result)
    estimates = all_parameters(result)
    names = list(estimates.index)
    check_start_method(start_method)
    task = _Task(plan, names, result if statistic is not None else None, statistic, start_method)
    stat_names: list[str] | None = None
    if statistic is not None:
        stat_names = _statistic_names(statistic(result))

    rows: list[FloatArray] = [np.empty(0)] * int(n_boot)
    failures: list[tuple[int, str]] = []
    chunks = contiguous_pieces(list(enumerate(children)), int(n_jobs), largest=50)
    bar = progress_bar(int(n_boot), progress, "bootstrap", "refit")
    try:
        for chunk_result in map_pieces(_replicates, task, chunks, int(n_jobs), task.start_method):
            for index, values, message in chunk_result:
                rows[index] = values
                if message:
                    failures.append((index, message))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    columns = names + (stat_names or [])
    width = len(columns)
    table = np.vstack([row if len(row) == width else np.full(width, np.nan) for row in rows])
    replicates = pd.DataFrame(table, columns=columns)
    replicates.index.name = "replicate"
    if statistic is not None and stat_names:
        original = _statistic_values(statistic(result), len(stat_names))
        estimates = pd.concat([estimates, pd.Series(original, index=stat_names)])
    return BootstrapResult(replicates, estimates, tuple(sorted(failures)), sequence.entropy)


@dataclass(frozen=True)
class _Task(Generic[R]):
    plan: FastRefit
    names: list[str]
    result: R | None
    statistic: Callable[[R], Any] | None
    start_method: str | None = None


def _replicates(
    task: _Task, chunk: list[tuple[int, np.random.SeedSequence]]
) -> list[tuple[int, FloatArray, str]]:
    out = []
    # One BLAS thread: the products are small, and worker processes already share the cores.
    with blas.blas_threads(1):
        for index, child in chunk:
            values, message = _one_replicate(task, np.random.default_rng(child))
            out.append((index, values, message))
    return out


def _one_replicate(task: _Task, rng: np.random.Generator) -> tuple[FloatArray, str]:
    """Values of one replicate and "" (or NaN and the reason it failed)."""
    plan = task.plan
    model = plan.model
    try:
        y = simulate_successes(model, plan.theta, plan.beta, rng)
        if task.statistic is not None:
            assert task.result is not None
            refitted = refit(task.result, y)
            theta, beta = refitted.fit_output.theta, refitted.fit_output.beta
            ok, message = refitted.converged, "; ".join(refitted.warnings) or "did not converge"
            extra = _statistic_values(task.statistic(refitted), None)
        else:
            theta, beta, _, ok, message = fast_refit(plan, y)
            extra = np.empty(0)
        if ok and looks_divergent(model, beta, SEPARATION_SCREEN):
            ok, message = False, "fixed effects diverge (separation in the simulated response)"
        if not ok:
            return np.empty(0), f"refit failed: {message}"
        values = np.concatenate([covariance_values(model, theta), beta, extra])
        return values, ""
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
        return np.empty(0), f"refit failed: {type(error).__name__}: {error}"


def _statistic_names(value: Any) -> list[str]:
    if isinstance(value, pd.Series):
        return [str(name) for name in value.index]
    array = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if array.ndim != 1:
        raise ValueError("statistic must return a number, a 1-d sequence or a pandas Series")
    return ["stat"] if np.ndim(value) == 0 else [f"stat_{i}" for i in range(len(array))]


def _statistic_values(value: Any, size: int | None) -> FloatArray:
    array = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    if size is not None and len(array) != size:
        raise ValueError("statistic returned a different number of values")
    return array
