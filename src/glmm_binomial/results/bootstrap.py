"""Parametric bootstrap of a fit (lme4's bootMer with use.u = FALSE), percentile intervals.

Replicate r simulates a response from the fitted model (new random effects) with its own
generator numpy.random.default_rng(SeedSequence(seed).spawn(n_boot)[r]) and refits the model
from the estimates. Every replicate depends on its own seed only, so the output is the same bit
for bit whatever the number of worker processes.

A replicate whose fast refit fails or whose fixed effects run away is refitted by the fit's
method, whose separation check finds the limit: a simulated response separated by the fixed
effects alone (some rows left mixed, every random-effect SD estimable) whose fit verified its
end along the other directions is kept, its diverging coefficients at -+inf (no finite
estimate: the sign of the path) and every other parameter at the limit (the fit of the rows
left mixed), so that percentile intervals reach -+inf where a share of the replicates diverges
rather than leaving them out (lme4's bootMer keeps glmer's stopping point along the path
instead). A refit that still fails (the optimizer does not converge, a non-finite deviance, a
random-effect SD without an estimate, an error) is counted and listed, and its row is NaN;
percentiles use the other replicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction, positive_int
from glmm_binomial.methods.base import Method
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.separation import (
    DEFAULT_CONTROL,
    looks_divergent,
    no_separation_certificate,
    separation_possible,
)
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
    in_fit_order,
    prepare_fast_refit,
    refit,
    simulate_successes,
    with_response,
)

FloatArray = NDArray[np.float64]

R = TypeVar("R", bound=ResultBase)

SEPARATION_SCREEN = 20.0
"""A replicate whose |beta_j| * max |x_j| exceeds this (log-odds), or with a row's fixed-effect
predictor beyond the link's value at these log-odds, is counted as failed: its fixed effects
run away (separation in the simulated response)."""

SEPARATION_CHECK = 8.0
"""A fast refit whose coefficient moves the log-odds by more than this across its column, or
with a row's fixed-effect predictor beyond the link's value at these log-odds, has its
simulated response checked for separation (a full refit where it may be separated): its BFGS
stops on a separating path where the rows' probabilities fall below its gradient tolerance,
log-odds -+12 and beyond (the logit's; the probit's and cloglog's the same probabilities)."""


@dataclass(frozen=True)
class BootstrapResult:
    """Replicates (one row per replicate, NaN where the refit failed), the original
    estimates, the failures as (replicate, message) and the replicates kept at a separation
    limit (their diverging coefficients -+inf)."""

    replicates: pd.DataFrame
    estimates: pd.Series
    failures: tuple[tuple[int, str], ...]
    seed: Any
    separated: tuple[int, ...] = ()

    @property
    def n_boot(self) -> int:
        return len(self.replicates)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @property
    def n_separated(self) -> int:
        """Replicates separated by the fixed effects, kept at the limit (-+inf coefficients)."""
        return len(self.separated)

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
            f"{self.n_separated} separated (coefficients at -+inf), seed {self.seed!r}>"
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
    above, below = quantile > high, quantile < low
    # A column without a finite replicate (both hold): -big or big is -inf or inf, and a
    # value between them interpolated between -inf and inf (no quantile: NaN).
    none = above & below
    out = quantile.copy()
    out[above] = np.inf
    out[below] = -np.inf
    out[none] = np.where(
        quantile[none] == big, np.inf, np.where(quantile[none] == -big, -np.inf, np.nan)
    )
    return out


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
    method = result.method_object
    if method.posterior:
        raise ValueError(
            f"the parametric bootstrap refits by maximum likelihood; method {method.name!r} "
            "fits a posterior, whose draws or intervals give the uncertainty"
        )
    sequence = seed_sequence(seed)
    children = sequence.spawn(int(n_boot))
    # Laplace: the fast refit (BFGS whitened by the fit's Hessian); other methods (AGQ) refit
    # in full from the estimates.
    plan = prepare_fast_refit(result) if result.method == "laplace" else None
    estimates = all_parameters(result)
    names = list(estimates.index)
    check_start_method(start_method)
    fit = result.fit_output
    task = _Task(
        plan,
        plan.model if plan is not None else result.model,
        fit.theta.copy(),
        fit.beta.copy(),
        names,
        result if statistic is not None else None,
        statistic,
        method,
        start_method,
    )
    stat_names: list[str] | None = None
    if statistic is not None:
        stat_names = _statistic_names(statistic(result))

    rows: list[FloatArray] = [np.empty(0)] * int(n_boot)
    failures: list[tuple[int, str]] = []
    separated: list[int] = []
    chunks = contiguous_pieces(list(enumerate(children)), int(n_jobs), largest=50)
    bar = progress_bar(int(n_boot), progress, "bootstrap", "refit")
    try:
        for chunk_result in map_pieces(_replicates, task, chunks, int(n_jobs), task.start_method):
            for index, values, message in chunk_result:
                rows[index] = values
                if message == SEPARATED:
                    separated.append(index)
                elif message:
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
    return BootstrapResult(
        replicates, estimates, tuple(sorted(failures)), sequence.entropy, tuple(sorted(separated))
    )


@dataclass(frozen=True)
class _Task(Generic[R]):
    plan: FastRefit | None
    model: ModelData  # the model simulated from and refitted (plan.model with a plan)
    theta: FloatArray
    beta: FloatArray
    names: list[str]
    result: R | None
    statistic: Callable[[R], Any] | None
    method: Method
    start_method: str | None = None


SEPARATED = "separated"
"""_one_replicate's message for a replicate kept at a separation limit."""


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
    """Values of one replicate and "" (SEPARATED when kept at a separation limit; NaN and the
    reason it failed)."""
    plan, model = task.plan, task.model
    try:
        y = simulate_successes(model, task.theta, task.beta, rng)
        if task.statistic is not None:
            assert task.result is not None
            refitted = refit(task.result, y if plan is None else in_fit_order(plan, y))
            extra = _statistic_values(task.statistic(refitted), None)
            return _fitted_values(model, refitted.fit_output, extra)
        if plan is not None:
            theta, beta, _, ok, _ = fast_refit(plan, y)
            if ok and not looks_divergent(model, beta, SEPARATION_SCREEN):
                # The fast refit stops on a separating path where its gradient falls below
                # its tolerance, a logit coefficient near -12 to -16: past SEPARATION_CHECK,
                # short of the screen, so such a response is checked.
                if not looks_divergent(model, beta, SEPARATION_CHECK) or not _separable(model, y):
                    return np.concatenate([covariance_values(model, theta), beta]), ""
            # The full fit's separation check tells a limit from a failure.
        output = task.method.fit(with_response(model, y), start=(task.theta, task.beta))
        return _fitted_values(model, output, np.empty(0))
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
        return np.empty(0), f"refit failed: {type(error).__name__}: {error}"


def _separable(model: ModelData, successes: FloatArray) -> bool:
    """Whether the fixed effects may separate the simulated response: an evenly spaced
    sample of the rows is separable (separation_possible) and, on more rows than that sample,
    no_separation_certificate does not hold for all of them."""
    x, trials = model.x, model.trials
    if not separation_possible(x, successes, trials):
        return False
    if model.n_obs <= DEFAULT_CONTROL.sample_rows:
        return True
    return not no_separation_certificate(x, successes, trials)


def _fitted_values(
    model: ModelData, output: FitOutput, extra: FloatArray
) -> tuple[FloatArray, str]:
    """A full refit's values and message (see _one_replicate)."""
    beta = output.beta.copy()
    if output.limit_verified:
        diverging = list(output.diverging)
        beta[diverging] = np.copysign(np.inf, beta[diverging])
        message = SEPARATED
    elif not output.converged:
        return np.empty(0), "refit failed: " + (
            "; ".join(map(str, output.warnings)) or "did not converge"
        )
    elif looks_divergent(model, beta, SEPARATION_SCREEN):
        diverge = "fixed effects diverge (separation in the simulated response)"
        return np.empty(0), f"refit failed: {diverge}"
    else:
        message = ""
    return np.concatenate([covariance_values(model, output.theta), beta, extra]), message


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
