"""The parametric bootstrap likelihood-ratio test of two nested fits (pbkrtest's PBmodcomp,
the test the lme4 FAQ recommends over the chi-square for GLMMs).

Responses are simulated from the smaller model at its estimates (new random effects each
time), both models are refitted to each by their method from their own estimates, and the
observed likelihood ratio is compared with the simulated ones: p = (1 + #{LRT* >= LRT}) /
(1 + n), n the simulations whose two refits converged (Davison and Hinkley's estimate, as
pbkrtest's PBtest). A refit separated by the fixed effects alone whose search converged along
the other directions counts, its log-likelihood at the limit along the diverging path (the
supremum the ratio compares, as anova's); one with a random-effect SD without an estimate
does not. Each simulation has its own seed (spawned from `seed`), so the result is
the same whatever the number of worker processes.
"""

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
from glmm_binomial.numerics import blas
from glmm_binomial.numerics.seeds import seed_sequence
from glmm_binomial.parallel import check_start_method, contiguous_pieces, map_pieces
from glmm_binomial.progress import progress_bar
from glmm_binomial.results.base import ResultBase, require_rows
from glmm_binomial.results.inference import check_comparable, nested_in
from glmm_binomial.results.simulate import simulate_successes, with_response

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class BootstrapLRT:
    """The observed likelihood ratio `statistic` = 2 (loglik large - loglik small) on `df`
    parameters, its chi-square p-value `p_chisq`, and the parametric bootstrap p-value
    `p_value` from `reference` (the simulated ratios; NaN where a refit failed: n_failed).
    `table` as pbkrtest prints it: rows LRT and PBtest."""

    statistic: float
    df: int
    p_chisq: float
    p_value: float
    nsim: int
    n_failed: int
    reference: FloatArray
    seed_entropy: Any

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "stat": [self.statistic, self.statistic],
                "df": [float(self.df), math.nan],
                "p.value": [self.p_chisq, self.p_value],
            },
            index=pd.Index(["LRT", "PBtest"], name="test"),
        )

    def __repr__(self) -> str:
        return (
            f"Parametric bootstrap test; {self.nsim - self.n_failed} of {self.nsim} "
            f"simulations valid\n{self.table.to_string()}"
        )


def pb_test(
    large: ResultBase,
    small: ResultBase,
    nsim: int = 1000,
    seed: Any = None,
    n_jobs: int = 1,
    progress: bool | None = None,
    start_method: str | None = None,
) -> BootstrapLRT:
    """Parametric bootstrap likelihood-ratio test of `small` nested in `large` (pbkrtest's
    PBmodcomp(large, small, nsim)); the two fits may come in either order. Both must be
    maximum-likelihood fits by the same method of the same rows, without priors, `small`'s
    design contained in `large`'s (as anova checks). seed: an int or a numpy SeedSequence
    (None: fresh entropy, recorded as seed_entropy); n_jobs: worker processes (start_method as
    the bootstrap's); progress: a progress bar (extra `progress`), None on a terminal."""
    # The arguments first: a bad one is named whatever the fits are.
    positive_int(nsim, "nsim")
    positive_int(n_jobs, "n_jobs")
    check_start_method(start_method)
    sequence = seed_sequence(seed)
    for fit in (large, small):
        if not isinstance(fit, ResultBase):
            raise ValueError("pb_test takes two GLMMResult objects (fits of nested models)")
        if fit.method_object.posterior:
            raise ValueError(
                f"likelihood-ratio tests need maximum-likelihood fits, not method {fit.method!r}"
            )
        if fit.penalized:
            raise ValueError("pb_test compares maximum-likelihood fits; refit without priors=")
        require_rows(fit, "pb_test")
    check_comparable(large, small)
    if small.df_model > large.df_model:
        large, small = small, large
    df = large.df_model - small.df_model
    if df == 0 or not nested_in(small.model, large.model):
        raise ValueError(
            "pb_test needs the smaller model nested in the larger one with fewer parameters "
            "(its fixed-effect columns and random-effect terms contained in the larger's)"
        )
    children = sequence.spawn(int(nsim))
    task = _Task(
        small.model,
        large.model,
        small.method_object,
        (small.fit_output.theta, small.fit_output.beta),
        (large.fit_output.theta, large.fit_output.beta),
    )
    statistic = max(2.0 * (large.loglik - small.loglik), 0.0)
    reference = np.full(int(nsim), np.nan)
    pieces = contiguous_pieces(list(enumerate(children)), int(n_jobs), largest=25)
    bar = progress_bar(int(nsim), progress, "pb_test", "simulation")
    try:
        for piece in map_pieces(_simulations, task, pieces, int(n_jobs), start_method):
            for index, value in piece:
                reference[index] = value
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    valid = reference[np.isfinite(reference)]
    from scipy import special  # noqa: PLC0415 - only where a test is made

    p_chisq = float(special.chdtrc(df, statistic))
    p_value = (1.0 + np.count_nonzero(valid >= statistic)) / (1.0 + valid.size)
    return BootstrapLRT(
        statistic,
        int(df),
        p_chisq,
        float(p_value) if valid.size else math.nan,
        int(nsim),
        int(nsim - valid.size),
        reference,
        sequence.entropy,
    )


@dataclass(frozen=True)
class _Task:
    small: ModelData
    large: ModelData
    method: Method
    small_start: tuple[FloatArray, FloatArray]
    large_start: tuple[FloatArray, FloatArray]


def _simulations(
    task: _Task, piece: list[tuple[int, np.random.SeedSequence]]
) -> list[tuple[int, float]]:
    with blas.blas_threads(1):
        return [(index, _one(task, child)) for index, child in piece]


def _one(task: _Task, child: np.random.SeedSequence) -> float:
    """The likelihood ratio of one response simulated from the small model (NaN where a refit
    fails or its log-likelihood is not the supremum: FitOutput.at_supremum)."""
    rng = np.random.default_rng(child)
    theta, beta = task.small_start
    successes = simulate_successes(task.small, theta, beta, rng)
    logliks = []
    for model, start in ((task.small, task.small_start), (task.large, task.large_start)):
        try:
            output = task.method.fit(with_response(model, successes), start=start)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            return math.nan
        if not (output.at_supremum and math.isfinite(output.loglik)):
            return math.nan
        logliks.append(output.loglik)
    return max(2.0 * (logliks[1] - logliks[0]), 0.0)
