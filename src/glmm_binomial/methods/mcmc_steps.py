"""Pieces of the Polya-Gamma Gibbs samplers shared by methods/mcmc.py (one grouping factor) and
methods/mcmc_multi.py (several): per-chain products, the independence Metropolis-Hastings update
of the fixed effects, the batched slice sampler, worker start-up and the progress bar."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.methods.polya_gamma import ChainStreams
from glmm_binomial.numerics.blas import blas_threads
from glmm_binomial.parallel import map_pieces

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class McmcRun:
    """Raw output of the sampler."""

    beta: FloatArray  # (C, D, p)
    sd: FloatArray  # (C, D, k)
    corr: FloatArray  # (C, D, k (k - 1) / 2)
    ranef_mean: FloatArray  # (G, k)
    ranef_cov: FloatArray  # (G, k, k)
    evaluations: int
    sweeps: int
    seconds: float
    seed_entropy: Any
    compiled: bool
    mh_acceptance: float  # of the fixed-effects update after warm-up (NaN when off)


@dataclass(frozen=True)
class CovarianceParameters:
    """Sigma and what the sampler needs of it, from phi (C, P, d): P points per chain."""

    sd: FloatArray  # (C, P, k)
    corr_cholesky: FloatArray  # (C, P, k, k): L_R
    precision: FloatArray  # (C, P, k, k): Sigma^{-1}
    log_det: FloatArray  # (C, P): log |Sigma|
    log_prior: FloatArray  # (C, P): log prior density of phi (Jacobians included)


def phi_size(k: int, correlated: bool) -> int:
    """Number of variance parameters phi: k log SDs, and k (k - 1) / 2 correlations when the
    covariance is a full one."""
    return k + k * (k - 1) // 2 if correlated else k


def covariance_parameters(
    phi: FloatArray, k: int, prior_log_sd_sd: float, lkj_eta: float, correlated: bool = True
) -> CovarianceParameters:
    """Sigma = diag(s) L_R L_R' diag(s) from phi = (log s_1..k, y_1..m), m = k (k - 1) / 2,
    with y the atanh of R's canonical partial correlations (row by row: (1,0), (2,0), (2,1),
    ...), and the log prior density of phi: N(0, prior_log_sd_sd^2) for each log s, the LKJ
    density of R in Stan's Cholesky form (lkj_corr_cholesky) with the Jacobian of y -> L_R
    (Stan's cholesky_corr_constrain). phi: (..., d). correlated=False: independent components,
    phi = log s only, R = I and Sigma = diag(s^2)."""
    lead = phi.shape[:-1]
    log_sd = phi[..., :k]
    sd = np.exp(log_sd)
    log_prior = -0.5 * np.sum(log_sd * log_sd, axis=-1) / prior_log_sd_sd**2
    chol = np.zeros((*lead, k, k))
    chol[..., 0, 0] = 1.0
    if k > 1 and not correlated:
        chol[..., np.arange(k), np.arange(k)] = 1.0
    elif k > 1:
        cpc = np.tanh(phi[..., k:])
        log_prior = log_prior + np.sum(np.log1p(-cpc * cpc), axis=-1)
        index = 0
        for i in range(1, k):
            sum_sq = np.zeros(lead)
            for j in range(i):
                if j == 0:
                    chol[..., i, 0] = cpc[..., index]
                else:
                    log_prior = log_prior + 0.5 * np.log1p(-sum_sq)
                    chol[..., i, j] = cpc[..., index] * np.sqrt(1.0 - sum_sq)
                sum_sq = sum_sq + chol[..., i, j] ** 2
                index += 1
            chol[..., i, i] = np.sqrt(np.maximum(1.0 - sum_sq, 0.0))
            log_prior = log_prior + (k - i - 1 + 2.0 * lkj_eta - 2.0) * np.log(chol[..., i, i])
    diagonal = np.diagonal(chol, axis1=-2, axis2=-1)
    log_det = 2.0 * np.sum(log_sd, axis=-1) + 2.0 * np.sum(np.log(diagonal), axis=-1)
    if k == 1:
        precision = (1.0 / (sd * sd))[..., None]
    elif not correlated:
        precision = np.zeros((*lead, k, k))
        precision[..., np.arange(k), np.arange(k)] = 1.0 / (sd * sd)
    else:
        scaled = np.linalg.inv(chol) / sd[..., None, :]  # L_R^{-1} diag(1 / s)
        precision = np.matmul(np.swapaxes(scaled, -1, -2), scaled)
    return CovarianceParameters(sd, chol, precision, log_det, log_prior)


class FixedEffectRows(Protocol):
    """What update_fixed_effects reads of the rows (mcmc.SortedRows, mcmc_multi.MultiRows)."""

    @property
    def x(self) -> FloatArray: ...
    @property
    def x_t(self) -> FloatArray: ...
    @property
    def successes(self) -> FloatArray: ...
    @property
    def trials_float(self) -> FloatArray: ...
    @property
    def x_outer(self) -> FloatArray | None: ...


def per_chain_product(rows_by_chain: FloatArray, matrix: FloatArray) -> FloatArray:
    """(C, a) @ (a, b) as C separate (1, a) @ (a, b) products: each chain's result is then the
    same bit for bit however many chains are stacked (a 2-d product may switch BLAS kernels
    with the number of rows)."""
    return np.matmul(rows_by_chain[:, None, :], matrix)[:, 0, :]


def cholesky_stack(s: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Cholesky factors of a stack of matrices (..., p, p); a matrix that is not positive
    definite (numerically) gets the identity and False."""
    try:
        return np.asarray(np.linalg.cholesky(s), dtype=np.float64), np.ones(
            s.shape[:-2], dtype=bool
        )
    except np.linalg.LinAlgError:
        flat = s.reshape(-1, *s.shape[-2:])
        out = np.empty_like(flat)
        ok = np.ones(flat.shape[0], dtype=bool)
        for i in range(flat.shape[0]):  # rare: only when some point's S failed
            try:
                out[i] = np.linalg.cholesky(flat[i])
            except np.linalg.LinAlgError:
                out[i] = np.eye(s.shape[-1])
                ok[i] = False
        return out.reshape(s.shape), ok.reshape(s.shape[:-2])


def update_fixed_effects(
    rows: FixedEffectRows,
    beta: FloatArray,
    random_part: FloatArray,
    start: FloatArray,
    prior_fe_sd: float,
    newton_steps: int,
    streams: ChainStreams,
    proposals: int = 1,
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """One independence Metropolis-Hastings update of beta (C, p) given the random effects
    (random_part: Z b + offset per row, (C, n)), targeting p(beta | b, y) with the exact
    binomial likelihood and the N(0, prior_fe_sd^2) prior. The proposal is N(m, H^{-1}), m after
    newton_steps Newton steps from `start`, H the Hessian where the last step started (both
    functions of b only, so the proposal does not depend on the current beta); `proposals`
    draws from it are tried one after another (each an MH step). Returns the new beta and which
    chains moved."""
    n_chains, p = beta.shape
    precision = 1.0 / prior_fe_sd**2
    x, x_t, y, m = rows.x, rows.x_t, rows.successes, rows.trials_float
    mode = start.copy()
    # Newton steps; the proposal's precision is the Hessian where the last step started (one
    # Hessian per step: at the step's end it would cost another pass for no better acceptance).
    for step in range(max(newton_steps, 1)):
        mu = 1.0 / (1.0 + np.exp(-(per_chain_product(mode, x_t) + random_part)))
        weight = m * mu * (1.0 - mu)
        if rows.x_outer is not None:
            hessian = per_chain_product(weight, rows.x_outer).reshape(n_chains, p, p)
        else:
            hessian = np.matmul(weight[:, None, :] * x_t, x)
        hessian[:, np.arange(p), np.arange(p)] += precision
        if step < newton_steps:
            gradient = per_chain_product(y - m * mu, x) - precision * mode
            mode = mode + np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
    chol, ok = cholesky_stack(hessian)
    noise = streams.standard_normal(np.full(n_chains, p * proposals)).reshape(
        n_chains, proposals, p
    )
    # Proposals m + L^{-T} e (H = L L'), and the current point, evaluated together.
    steps = np.linalg.solve(chol.transpose(0, 2, 1)[:, None], noise[..., None])[..., 0]
    points = np.concatenate([beta[:, None, :], mode[:, None, :] + steps], axis=1)
    eta = points @ x_t + random_part[:, None, :]  # (C, 1 + proposals, n)
    # log(1 + e^eta) = max(eta, 0) + log1p(e^-|eta|): several times faster than logaddexp.
    softplus = np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))
    log_target = np.sum(y * eta - m * softplus, axis=2) - 0.5 * precision * np.sum(
        points * points, axis=2
    )
    whitened = np.matmul(points - mode[:, None, :], chol)  # (beta - m)' L
    # log p(beta | b, y) - log q(beta): the independence sampler's weight of each point.
    weight = log_target + 0.5 * np.sum(whitened * whitened, axis=2)
    # No move where the proposal's factor failed; NaN counts as impossible.
    usable = np.isfinite(weight) & (ok[:, None] | (np.arange(proposals + 1) == 0))
    weight = np.where(usable, weight, -np.inf)
    u = streams.random(np.full(n_chains, proposals, dtype=np.intp)).reshape(n_chains, proposals)
    chains = np.arange(n_chains)
    current = np.zeros(n_chains, dtype=np.intp)
    moved = np.zeros(n_chains, dtype=bool)
    for t in range(1, proposals + 1):  # independence Metropolis-Hastings, one proposal a step
        accept = np.log(u[:, t - 1]) < weight[:, t] - weight[chains, current]
        current = np.where(accept, t, current)
        moved |= accept
    return points[chains, current], moved


# --- slice sampling ---------------------------------------------------------------------------


def slice_update(
    log_density: Callable[[FloatArray], FloatArray],
    x: FloatArray,
    directions: FloatArray,
    streams: ChainStreams,
    max_steps: int,
    max_shrink: int,
    batch_steps: int,
) -> tuple[FloatArray, int]:
    """One slice-sampling update (Neal 2003: stepping out with a random split of the limit
    max_steps between the sides, then shrinkage) along each column of each chain's directions
    (C, d, d) in turn, for every chain at once. x (C, d); log_density maps points (C, P, d) to
    (C, P). The first
    batch_steps steps out on each side are evaluated in one call together (with the current
    point when its density is not known), as the ones beyond when needed; the outcome is that
    of the sequential procedure. Returns the new x and the number of log_density calls.
    Random numbers are drawn per chain, only for chains that use them."""
    n_chains = x.shape[0]
    ones = np.ones(n_chains, dtype=np.intp)
    calls = 0
    x = x.copy()
    f: FloatArray | None = None
    steps_ahead = np.arange(batch_steps, dtype=np.float64)
    sign = np.array([-1.0, 1.0])
    for m in range(directions.shape[2]):
        v = directions[:, None, :, m]  # (C, 1, d)
        u = streams.random(ones, 3)
        exponential = -np.log1p(-u[:, 2])
        # Neal's limit on stepping out, split at random between the sides.
        left_steps = np.floor(max_steps * u[:, 1]).astype(np.intp)
        limits = np.column_stack([left_steps, (max_steps - 1) - left_steps])  # (C, 2)
        base = np.column_stack([-u[:, 0], 1.0 - u[:, 0]])  # the first interval's ends
        # Both sides' first batch_steps ends (and the current point when f is not known).
        t = (base[:, :, None] + sign[:, None] * steps_ahead).reshape(n_chains, -1)
        if f is None:
            t = np.concatenate([np.zeros((n_chains, 1)), t], axis=1)
        values = log_density(x[:, None, :] + t[:, :, None] * v)
        calls += 1
        if f is None:
            f, values = values[:, 0], values[:, 1:]
        log_y = f - exponential
        inside = values.reshape(n_chains, 2, batch_steps) > log_y[:, None, None]
        # Steps taken on each side: up to the first end below the slice, or to the limit.
        first_out = np.where(inside.all(axis=2), batch_steps, np.argmin(inside, axis=2))
        taken = np.minimum(first_out, limits)
        ends = base + sign * taken
        # Beyond the batch: one step at a time (both sides in one call), as the sequential
        # procedure goes on.
        remaining = limits - taken
        more = (first_out == batch_steps) & (remaining > 0)
        while more.any():
            values_more = log_density(x[:, None, :] + ends[:, :, None] * v)
            calls += 1
            step = more & (values_more > log_y[:, None])
            ends = np.where(step, ends + sign, ends)
            remaining = np.where(step, remaining - 1, remaining)
            more = step & (remaining > 0)
        lower, upper = ends[:, 0], ends[:, 1]
        pending = np.ones(n_chains, dtype=bool)
        for _ in range(max_shrink):
            draw = np.zeros(n_chains)
            draw[pending] = streams.random(pending.astype(np.intp))
            t_new = lower + draw * (upper - lower)
            trial = x + t_new[:, None] * v[:, 0]
            values_new = log_density(trial[:, None, :])[:, 0]
            calls += 1
            accept = pending & (values_new > log_y)
            x[accept] = trial[accept]
            f = np.where(accept, values_new, f)
            pending &= ~accept
            if not pending.any():
                break
            lower = np.where(pending & (t_new < 0.0), t_new, lower)
            upper = np.where(pending & (t_new >= 0.0), t_new, upper)
        else:
            raise RuntimeError(
                f"slice sampler: no point accepted in {max_shrink} shrinkage steps "
                "(McmcControl.slice_max_shrink); the log density may be non-finite here"
            )
    return x, calls


def _chain_group(
    shared: tuple[Any, Callable[..., Any]], seeds: list[np.random.SeedSequence]
) -> Any:
    task, run = shared
    # One BLAS thread: the products are small, and the processes already share the cores.
    with blas_threads(1):
        return run(task, seeds, progress=False)


def run_chains_split(
    task: Any,
    children: list[np.random.SeedSequence],
    n_jobs: int,
    run: Callable[..., Any],
    progress: bool | None,
) -> list[Any]:
    """run(task, seeds, progress=) on the chains' seed sequences, in this process (n_jobs 1) or
    split between n_jobs worker processes in contiguous groups; the outputs in chain order.
    Each chain draws from its own stream, so the draws do not depend on n_jobs. `run` must be a
    module-level function (it is sent to the workers by reference)."""
    if n_jobs == 1:
        return [run(task, children, progress=progress)]
    bounds = np.linspace(0, len(children), n_jobs + 1).round().astype(int)
    groups = [children[bounds[j] : bounds[j + 1]] for j in range(n_jobs)]
    return list(map_pieces(_chain_group, (task, run), groups, n_jobs))
