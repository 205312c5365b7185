"""Exact posterior sampling of the binomial GLMM (logit link) by Polya-Gamma Gibbs.

The Bayesian model (statsmodels' BinomialBayesMixedGLM priors, the same as method "vb"):

    successes_i ~ Binomial(m_i, expit(eta_i)),   eta_i = x_i' beta + z_i' b[g(i)] + offset_i,
    beta_j ~ N(0, prior_fe_sd^2) (intercept included),   b_j ~ N(0, Sigma) per level j,
    Sigma = diag(s) R diag(s),   log s_c ~ N(0, prior_log_sd_sd^2),   R ~ LKJ(lkj_eta) (k >= 2).

Polya-Gamma augmentation (Polson, Scott & Windle 2013): given omega_i ~ PG(m_i, eta_i) the
likelihood of row i is exp(kappa_i eta_i - omega_i eta_i^2 / 2), kappa_i = successes_i - m_i / 2,
Gaussian in (beta, b). One sweep, vectorized over chains (arrays with a leading chain axis):

1. omega | beta, b: exact PG draws (polya_gamma.py).
2. phi | omega, beta with b integrated out (phi: the log SDs, and for k >= 2 the unconstrained
   canonical partial correlations of R, y = atanh(CPC)): slice sampling (Neal 2003, stepping out
   and shrinkage) along directions tuned in warm-up to the spread of phi. Given omega and beta
   the levels are independent, so the density is a sum of closed forms per level:

       log p(phi | omega, beta) = log prior(phi) - 1/2 sum_j log |I + Sigma D0_j|
                                  + 1/2 sum_j r_j' (D0_j + Sigma^{-1})^{-1} r_j,

   D0_j = sum over level j's rows of omega_i z_i z_i', r_j = sum z_i (kappa_i - omega_i (x_i'
   beta + offset_i)).
3. (beta, b) | omega, phi: one joint Gaussian draw. With H = X' W X + I / prior_fe_sd^2, B_j
   the level sums of omega_i x_i z_i', D_j = D0_j + Sigma^{-1} and the kappa sums r (without
   beta), the b block of the precision is block diagonal, so beta is drawn through its Schur
   complement (a p x p Cholesky, never a dense joint one) and then each b_j given beta:

       S = H - sum_j B_j D_j^{-1} B_j',   c = r_beta - sum_j B_j D_j^{-1} r_j,
       beta = S^{-1} c + L_S^{-T} e,   b_j = D_j^{-1} (r_j - B_j' beta) + chol(D_j^{-1}) e_j.
4. beta | b, phi (McmcControl.fixed_effects_mh): independence Metropolis-Hastings with the
   exact binomial likelihood (omega not used) and a Gaussian proposal from Newton steps on
   log p(beta | b, y) started at a point fixed after warm-up. Steps 1-3 leave the posterior of
   (beta, b, phi) invariant (data augmentation) and so does step 4; omega is drawn afresh at
   the next sweep. Step 4 removes most of the autocorrelation that the augmentation leaves in
   fixed effects (PG Gibbs mixes slowly where |eta| is large, e.g. cbpp's period effects).

Rows are sorted by level once, so every level sum is one np.add.reduceat; the D_j are k x k and
inverted in closed form (k <= 2) or in one batched operation; no loop runs over rows or levels.
The LKJ density and the Jacobian of the CPC transform are Stan's (lkj_corr_cholesky,
cholesky_corr_constrain). ``conditional`` also gives log p(phi | omega) with beta integrated
out as well (the tests check both densities against dense linear algebra).

Chains are independent: chain c draws every random number from its own generator (a child of
the SeedSequence), so its draws do not depend on how many chains run beside it. Posterior means
and covariances of the random effects are Rao-Blackwellized (averages of the conditional means
and covariances of step 3).

One grouping factor is supported: one random-effect term ((1 | g), (1 + x | g), (0 + x | g),
any k), or independent one-column terms of that factor ((1 + x || g) with numeric x, the
spreadsheet's variance components), sampled as one block with Sigma = diag(s^2) (phi = the log
SDs only, each with its N(0, prior_log_sd_sd^2) prior). Every other layout of several terms
(terms on nested or crossed factors, (1 | a/b), (1 | id) + (1 | item), (1 + x | id) +
(1 | item); a correlated term beside another term of its factor) is sampled by
methods/mcmc_multi.py (the joint draw through the blocked factor of numerics/factor.py);
``sample`` and ``fit_mcmc`` hand it over.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.arguments import positive, positive_int
from glmm_binomial.diagnostics import ConvergenceWarning, FitWarning
from glmm_binomial.methods import mcmc_diagnostics
from glmm_binomial.methods.base import Method, Start, checked_control, refuse_arguments
from glmm_binomial.methods.estimates import FitOutput, PosteriorDraws, require_finite
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.methods.mcmc_multi import (
    sample_multi,
    several_factor_terms,
    unpack_ranef,
)
from glmm_binomial.methods.mcmc_steps import (
    CovarianceParameters,
    McmcRun,
    cholesky_stack,
    covariance_parameters,
    per_chain_product,
    phi_size,
    run_chains_split,
    slice_update,
    update_fixed_effects,
)
from glmm_binomial.methods.polya_gamma import ChainStreams, compiled_sampler, draw_polya_gamma
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.validation import check_unstructured, term_texts
from glmm_binomial.numerics.optimize import OptSummary
from glmm_binomial.numerics.seeds import seed_sequence
from glmm_binomial.progress import progress_bar

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

LOGLIK_LABEL = "Laplace approximation at the posterior means"

MAX_OUTER_ENTRIES = 10_000_000
"""Rows' outer products x_i x_i' are kept (one matrix product gives X' W X of every chain) while
they take at most this many numbers (80 MB)."""
METHOD_LABEL = "Polya-Gamma Gibbs sampler"


@dataclass(frozen=True)
class McmcControl:
    """Settings of the sampler (all recorded in OptSummary.tolerances and on the draws).

    draws: kept draws per chain (after thinning); warmup: sweeps per chain discarded first
        (the slice directions are tuned during them); chains: independent chains, run together
        as arrays; thin: keep every thin-th sweep after warm-up.
    seed: int or numpy SeedSequence (None: fresh entropy, recorded as seed_entropy on the
        result so the run can be repeated).
    lkj_eta: shape of the LKJ prior of the correlation matrix of a term with k >= 2 columns.
    rhat_threshold: the fit is reported converged when every fixed effect's, SD's and
        correlation's rank-normalized split R-hat is at most this (and every draw is finite).
    min_ess: a warning names the parameters whose bulk or tail ESS is below this.
    slice_width: initial width of the slice sampler's steps (log-SD and atanh-CPC units);
        slice_width_scale: after each tuning window the directions are this times the Cholesky
        factor of the spread of the variance parameters in the window.
    slice_max_steps: cap on the stepping-out steps of one slice update (split at random
        between the two sides, which keeps the update exact).
    slice_batch_steps: stepping-out steps per side evaluated together in one batched call
        (the outcome is that of stepping out one at a time; this only saves calls).
    slice_max_shrink: cap on shrinkage steps of one slice update (a safeguard; reaching it
        raises an error rather than returning a draw that is not exact).
    tuning_windows: number of windows into which warm-up is split for tuning the slice
        directions (each window's draws give the next directions).
    fixed_effects_mh: after each Gibbs sweep, one more update of the fixed effects given the
        random effects: independence Metropolis-Hastings on the exact (not augmented)
        likelihood, proposing from the Gaussian at mh_newton_steps Newton steps from a start
        fixed after warm-up (the chain's warm-up mean of beta); acceptance is recorded.
        mh_proposals: proposals per update (independence Metropolis-Hastings steps with the same
        proposal distribution, evaluated in one pass over the rows). It leaves the posterior
        invariant and removes most of the autocorrelation the augmentation leaves in effects
        that the random effects do not confound (cbpp's period effects).
    use_compiled: draw the Polya-Gamma variables with the optional `polyagamma` package
        (extra "mcmc"; exact Devroye method) when installed (None: when installed).
    n_jobs: worker processes the chains are split between (the draws are the same bit for
        bit whatever n_jobs: each chain has its own random stream and tuning).
    progress: a progress bar (tqdm, extra "progress"); None: only when stderr is a terminal.
        Shown with n_jobs = 1 only.
    """

    draws: int = 1000
    warmup: int = 1000
    chains: int = 4
    thin: int = 1
    seed: Any = None
    lkj_eta: float = 2.0
    rhat_threshold: float = 1.01
    min_ess: float = 400.0
    slice_width: float = 1.0
    slice_width_scale: float = 1.0
    slice_max_steps: int = 50
    slice_batch_steps: int = 3
    slice_max_shrink: int = 200
    tuning_windows: int = 3
    fixed_effects_mh: bool = True
    mh_newton_steps: int = 1
    mh_proposals: int = 2
    use_compiled: bool | None = None
    n_jobs: int = 1
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name in (
            "draws",
            "chains",
            "thin",
            "slice_max_steps",
            "slice_max_shrink",
            "slice_batch_steps",
            "n_jobs",
            "mh_proposals",
        ):
            # numpy's integers (read from an array) as Python's, as the seed below.
            object.__setattr__(self, name, positive_int(getattr(self, name), name))
        for name in ("warmup", "tuning_windows", "mh_newton_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("lkj_eta", "rhat_threshold", "slice_width", "slice_width_scale"):
            positive(getattr(self, name), name)
        if not isinstance(self.min_ess, (int, float)) or not self.min_ess >= 0:
            raise ValueError(f"min_ess must be a non-negative number, got {self.min_ess!r}")
        if isinstance(self.seed, np.integer):
            # numpy's integers (a seed read from an array) as Python's.
            object.__setattr__(self, "seed", int(self.seed))
        if self.seed is not None and not isinstance(self.seed, (int, np.random.SeedSequence)):
            raise ValueError(
                f"seed must be an int, a numpy SeedSequence or None, got {self.seed!r}"
            )
        if isinstance(self.seed, bool) or (isinstance(self.seed, int) and self.seed < 0):
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")

    def recorded(self) -> dict[str, float | str]:
        """The numeric settings as OptSummary.tolerances records them (seed as text)."""
        out: dict[str, float | str] = {}
        for key, value in asdict(self).items():
            if isinstance(value, bool) or value is None or key == "seed":
                out[key] = str(value)
            else:
                out[key] = float(value)
        return out


# --- the data, arranged once ------------------------------------------------------------------


@dataclass(frozen=True)
class SortedRows:
    """The model's rows sorted by the level of its one grouping factor, with what every sweep
    reuses: per-row products whose level sums (weighted by omega) give B_j and D0_j, and the
    sums of kappa that do not change."""

    x: FloatArray  # (n, p)
    x_t: FloatArray  # (p, n), contiguous
    offset: FloatArray | None  # (n,), None when all zero
    kappa: FloatArray  # (n,)
    successes: FloatArray  # (n,)
    trials_float: FloatArray  # (n,)
    trials: IntArray | None  # (n,), None when every row has one trial
    z: FloatArray  # (n, k)
    codes: IntArray  # (n,) sorted
    starts: IntArray  # first row of each level that has rows
    present: IntArray  # those levels
    counts: IntArray  # rows per level (n_levels,)
    features_t: FloatArray  # (F, n): x [, x (x) z], z (x) z [, z offset] (see sorted_rows)
    cross_start: int  # the first row of x (x) z in features_t (0 when z is 1: then it is x)
    x_kappa: FloatArray  # (p,)
    x_outer: FloatArray | None  # (n, p p): x_i x_i' flattened (None when too large to keep)
    z_kappa: FloatArray  # (n_levels, k)
    n_levels: int
    intercept_only: bool  # z is one column of ones: features are x and 1
    correlated: bool  # Sigma = diag(s) R diag(s) (one term); False: diag(s^2) (independent terms)

    @property
    def p(self) -> int:
        return int(self.x.shape[1])

    @property
    def k(self) -> int:
        return int(self.z.shape[1])


def sampled_block(model: ModelData) -> tuple[RandomBlock, bool]:
    """The random effects as the sampler sees them: the model's one term, or its independent
    one-column terms on one grouping factor ((1 | g) + (0 + x | g), (1 + x || g), the
    spreadsheet's variance components) as one block with their columns side by side; and
    whether their covariance is a full one (diag(s) R diag(s)) rather than diagonal."""
    if len(model.blocks) == 1:
        return model.blocks[0], True
    first = model.blocks[0]
    z = np.column_stack([b.z for b in model.blocks])
    terms = tuple(term for b in model.blocks for term in b.terms)
    return RandomBlock(first.group, terms, first.codes, first.levels, z), False


def sorted_rows(model: ModelData) -> SortedRows:
    """Arrange the rows of a model the sampler supports (check_supported) for the sweeps."""
    block, correlated = sampled_block(model)
    order = np.argsort(block.codes, kind="stable")
    x = np.ascontiguousarray(model.x[order], dtype=np.float64)
    z = np.ascontiguousarray(block.z[order], dtype=np.float64)
    codes = np.ascontiguousarray(block.codes[order])
    successes = model.successes[order]
    trials_float = model.trials[order]
    offset = model.offset[order]
    has_offset = bool(np.any(offset != 0.0))
    kappa = successes - 0.5 * trials_float
    counts = np.bincount(codes, minlength=block.n_levels).astype(np.intp)
    present = np.flatnonzero(counts > 0).astype(np.intp)
    starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]]).astype(np.intp)
    n, p = x.shape
    k = z.shape[1]
    intercept_only = k == 1 and bool(np.all(z == 1.0))
    # Rows of features_t: x (for X' W X), then the products whose level sums give B_j (x (x) z;
    # x itself when z is 1), D0_j (z (x) z) and with an offset the sums of z omega offset.
    pieces = [x.T]
    if not intercept_only:
        pieces.append((x[:, :, None] * z[:, None, :]).reshape(n, p * k).T)
    pieces.append((z[:, :, None] * z[:, None, :]).reshape(n, k * k).T)
    if has_offset:
        pieces.append((z * offset[:, None]).T)
    features_t = np.ascontiguousarray(np.concatenate(pieces, axis=0))
    z_kappa = np.zeros((block.n_levels, k))
    z_kappa[present] = np.add.reduceat(z * kappa[:, None], starts, axis=0)
    trials_int = np.rint(trials_float).astype(np.intp)
    return SortedRows(
        x=x,
        x_t=np.ascontiguousarray(x.T),
        offset=offset if has_offset else None,
        kappa=kappa,
        successes=np.ascontiguousarray(successes, dtype=np.float64),
        trials_float=np.ascontiguousarray(trials_float, dtype=np.float64),
        trials=None if bool(np.all(trials_int == 1)) else trials_int,
        z=z,
        codes=codes,
        starts=starts,
        present=present,
        counts=counts,
        features_t=features_t,
        cross_start=0 if intercept_only else p,
        x_kappa=x.T @ kappa,
        x_outer=(
            np.ascontiguousarray((x[:, :, None] * x[:, None, :]).reshape(n, p * p))
            if n * p * p <= MAX_OUTER_ENTRIES
            else None
        ),
        z_kappa=z_kappa,
        n_levels=block.n_levels,
        intercept_only=intercept_only,
        correlated=correlated or k == 1,
    )


# --- per-sweep sums and the collapsed log density of phi --------------------------------------


@dataclass(frozen=True)
class SweepSums:
    """Sums over rows given omega, for every chain (leading axis C)."""

    h: FloatArray  # (C, p, p): X' W X + I / prior_fe_sd^2
    r_beta: FloatArray  # (C, p)
    b_cross: FloatArray  # (C, G, p, k): B_j
    d0: FloatArray  # (C, G, k, k)
    r_b: FloatArray  # (C, G, k)
    bb: FloatArray  # (C, G k k, p p): B_j[:, a] B_j[:, c]' flattened, for S = H - sum B E B'
    b_t: FloatArray  # (C, G k, p): B_j' flattened, for c = r_beta - sum B E r


def sweep_sums(rows: SortedRows, omega: FloatArray, prior_fe_sd: float) -> SweepSums:
    """The sums over rows that steps 2 and 3 need, given omega (C, n).

    The products omega_i f_i are laid out (C, features, n), so that X' W X of every chain is
    one stacked matrix product and every level sum one np.add.reduceat over contiguous rows."""
    n_chains = omega.shape[0]
    p, k, n_levels = rows.p, rows.k, rows.n_levels
    prod = omega[:, None, :] * rows.features_t[None, :, :]  # (C, F, n)
    h = np.matmul(prod[:, :p, :], rows.x)
    h[:, np.arange(p), np.arange(p)] += 1.0 / prior_fe_sd**2
    r_beta = np.broadcast_to(rows.x_kappa, (n_chains, p)).copy()
    if rows.offset is not None:
        r_beta -= per_chain_product(omega * rows.offset, rows.x)
    start = rows.cross_start
    sums = np.add.reduceat(prod[:, start:, :], rows.starts, axis=2)  # (C, F', G)
    if rows.present.shape[0] != n_levels:
        full = np.zeros((n_chains, sums.shape[1], n_levels))
        full[:, :, rows.present] = sums
        sums = full
    # B_j' as (C, G, k, p); features x (x) z are ordered (p, k).
    b_t = np.ascontiguousarray(
        sums[:, : p * k, :].reshape(n_chains, p, k, n_levels).transpose(0, 3, 2, 1)
    )
    d0 = np.ascontiguousarray(sums[:, p * k : p * k + k * k, :].transpose(0, 2, 1)).reshape(
        n_chains, n_levels, k, k
    )
    r_b = np.broadcast_to(rows.z_kappa, (n_chains, n_levels, k))
    if rows.offset is not None:
        r_b = r_b - sums[:, p * k + k * k :, :].transpose(0, 2, 1)
    bb = (b_t[:, :, :, None, :, None] * b_t[:, :, None, :, None, :]).reshape(
        n_chains, n_levels * k * k, p * p
    )
    return SweepSums(
        h=h,
        r_beta=r_beta,
        b_cross=b_t.transpose(0, 1, 3, 2),
        d0=d0,
        r_b=np.ascontiguousarray(r_b),
        bb=bb,
        b_t=b_t.reshape(n_chains, n_levels * k, p),
    )


@dataclass(frozen=True)
class Conditional:
    """(beta, b) | omega, phi at P points per chain: what the log density of phi computed and
    the joint draw reuses."""

    log_density: FloatArray  # (C, P)
    chol_s: FloatArray  # (C, P, p, p): Cholesky factor of S
    whitened_c: FloatArray  # (C, P, p): L_S^{-1} c
    level_cov: FloatArray  # (C, P, G, k, k): D_j^{-1}
    covariance: CovarianceParameters


def conditional(
    sums: SweepSums,
    phi: FloatArray,
    k: int,
    prior_log_sd_sd: float,
    lkj_eta: float,
    correlated: bool = True,
) -> Conditional:
    """log p(phi | omega) up to a constant (beta and b integrated out) at phi (C, P, d), and
    the pieces of the joint draw of (beta, b); -inf where phi is outside the parameter space
    numerically. correlated: as covariance_parameters."""
    n_chains, n_points = phi.shape[:2]
    n_levels = sums.r_b.shape[1]
    p = sums.h.shape[1]
    cov = covariance_parameters(phi, k, prior_log_sd_sd, lkj_eta, correlated)
    if k == 1:
        d11 = sums.d0[:, None, :, 0, 0] + cov.precision[:, :, :, 0]  # (C, P, G)
        inverse = 1.0 / d11
        level_cov = inverse[..., None, None]
        log_det_d = np.sum(np.log(d11), axis=2)
        e_r = inverse * sums.r_b[:, None, :, 0]
        r_e_r = np.sum(e_r * sums.r_b[:, None, :, 0], axis=2)
        flat_cov = inverse
    else:
        d = sums.d0[:, None] + cov.precision[:, :, None]  # (C, P, G, k, k)
        level_cov, log_det_blocks = _inverse_and_log_det(d)
        log_det_d = np.sum(log_det_blocks, axis=2)
        e_r = np.einsum("cpgab,cgb->cpga", level_cov, sums.r_b)
        r_e_r = np.einsum("cpga,cga->cp", e_r, sums.r_b)
        flat_cov = level_cov.reshape(n_chains, n_points, -1)
    # sum_j log |I + Sigma D0_j| = sum_j (log |Sigma| + log |D_j|)
    log_det_levels = log_det_d + n_levels * cov.log_det
    s = sums.h[:, None] - np.matmul(flat_cov, sums.bb).reshape(n_chains, n_points, p, p)
    c = sums.r_beta[:, None] - np.matmul(e_r.reshape(n_chains, n_points, -1), sums.b_t)
    chol_s, ok = cholesky_stack(s)
    whitened = np.linalg.solve(chol_s, c[..., None])[..., 0]
    log_det_s = 2.0 * np.sum(np.log(np.diagonal(chol_s, axis1=-2, axis2=-1)), axis=-1)
    value = (
        cov.log_prior
        - 0.5 * log_det_levels
        - 0.5 * log_det_s
        + 0.5 * r_e_r
        + 0.5 * np.sum(whitened * whitened, axis=-1)
    )
    value = np.where(ok & np.isfinite(value), value, -np.inf)
    return Conditional(value, chol_s, whitened, level_cov, cov)


def phi_log_density(
    sums: SweepSums,
    residual: FloatArray,
    phi: FloatArray,
    k: int,
    prior_log_sd_sd: float,
    lkj_eta: float,
    correlated: bool = True,
) -> FloatArray:
    """log p(phi | omega, beta) up to a constant, b integrated out: with r_j = the level sums
    of z (kappa - omega (x' beta + offset)) (residual, (C, G, k)),

        log prior(phi) - 1/2 sum_j log |I + Sigma D0_j| + 1/2 sum_j r_j' D_j^{-1} r_j,

    at phi (C, P, d); O(G k^3) per point, no p x p algebra. -inf where phi is outside the
    parameter space numerically. correlated: as covariance_parameters."""
    n_levels = residual.shape[1]
    if k == 1:
        tau = phi[..., 0]
        d = sums.d0[:, None, :, 0, 0] + np.exp(-2.0 * tau)[..., None]  # (C, P, G)
        r = residual[:, None, :, 0]
        value = (
            -0.5 * tau * tau / prior_log_sd_sd**2
            - n_levels * tau
            - 0.5 * np.sum(np.log(d), axis=2)
            + 0.5 * np.sum(r * r / d, axis=2)
        )
    elif k == 2:
        # Closed forms: Sigma^{-1} = [[1/s1^2, -r/(s1 s2)], [., 1/s2^2]] / (1 - r^2), and the
        # prior of (log s1, log s2, y = atanh r): normal terms and (eta - 1 + 1) log(1 - r^2);
        # independent components: r = 0 and no prior term for it.
        tau1, tau2 = phi[..., 0], phi[..., 1]
        r = np.tanh(phi[..., 2]) if correlated else np.zeros_like(tau1)
        one_minus = 1.0 - r * r
        log_one_minus = np.log(one_minus)
        inv1 = np.exp(-2.0 * tau1) / one_minus
        inv2 = np.exp(-2.0 * tau2) / one_minus
        inv12 = -r * np.exp(-tau1 - tau2) / one_minus
        a = sums.d0[:, None, :, 0, 0] + inv1[..., None]
        b = sums.d0[:, None, :, 0, 1] + inv12[..., None]
        c = sums.d0[:, None, :, 1, 1] + inv2[..., None]
        det = a * c - b * b
        r0, r1 = residual[:, None, :, 0], residual[:, None, :, 1]
        quad = (c * r0 * r0 - 2.0 * b * r0 * r1 + a * r1 * r1) / det
        log_det_sigma = 2.0 * (tau1 + tau2) + log_one_minus
        value = (
            -0.5 * (tau1 * tau1 + tau2 * tau2) / prior_log_sd_sd**2
            + (lkj_eta * log_one_minus if correlated else 0.0)
            - 0.5 * (n_levels * log_det_sigma + np.sum(np.log(det), axis=2))
            + 0.5 * np.sum(quad, axis=2)
        )
    else:
        cov = covariance_parameters(phi, k, prior_log_sd_sd, lkj_eta, correlated)
        d = sums.d0[:, None] + cov.precision[:, :, None]  # (C, P, G, k, k)
        inverse, log_det_blocks = _inverse_and_log_det(d)
        e_r = np.matmul(inverse, residual[:, None, :, :, None])[..., 0]
        value = (
            cov.log_prior
            - 0.5 * (n_levels * cov.log_det + np.sum(log_det_blocks, axis=2))
            + 0.5 * np.sum(e_r * residual[:, None], axis=(2, 3))
        )
    return np.where(np.isfinite(value), value, -np.inf)


def _inverse_and_log_det(d: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Inverses and log determinants of positive definite k x k blocks d (..., k, k); a block
    that is not positive definite (numerically) gets a NaN log determinant."""
    if d.shape[-1] == 2:
        a, b, c = d[..., 0, 0], d[..., 0, 1], d[..., 1, 1]
        det = a * c - b * b
        inverse = (
            np.stack([np.stack([c, -b], -1), np.stack([-b, a], -1)], -2) / det[..., None, None]
        )
        log_det = np.where(det > 0, np.log(np.abs(det)), np.nan)
        return np.asarray(inverse, dtype=np.float64), np.asarray(log_det, dtype=np.float64)
    sign, log_abs_det = np.linalg.slogdet(d)
    return np.asarray(np.linalg.inv(d), dtype=np.float64), np.where(sign > 0, log_abs_det, np.nan)


def draw_effects(
    sums: SweepSums, cond: Conditional, streams: ChainStreams
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(beta, b) | omega, phi at the conditional's one point per chain: beta (C, p), b (C, G,
    k), and b's conditional means (C, G, k)."""
    n_chains, n_levels, k = sums.r_b.shape
    p = sums.h.shape[1]
    noise = streams.standard_normal(np.full(n_chains, p + n_levels * k)).reshape(n_chains, -1)
    # beta = S^{-1} c + L_S^{-T} e = L_S^{-T} (L_S^{-1} c + e)
    chol_s = cond.chol_s[:, 0]
    beta = np.linalg.solve(
        chol_s.transpose(0, 2, 1), (cond.whitened_c[:, 0] + noise[:, :p])[:, :, None]
    )[:, :, 0]
    residual = (
        sums.r_b
        - np.matmul(sums.b_t.reshape(n_chains, n_levels, k, p), beta[:, None, :, None])[..., 0]
    )
    e_level = noise[:, p:].reshape(n_chains, n_levels, k)
    level_cov = cond.level_cov[:, 0]
    if k == 1:
        variance = level_cov[:, :, 0, 0]
        mean = residual * variance[:, :, None]
        b = mean + np.sqrt(variance)[:, :, None] * e_level
    else:
        mean = np.matmul(level_cov, residual[..., None])[..., 0]
        b = mean + np.matmul(np.linalg.cholesky(level_cov), e_level[..., None])[..., 0]
    return beta, b, mean


# --- the sampler ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainsOutput:
    """What a group of chains hands back: draws and per-chain sums (combined in chain order,
    so the result does not depend on how chains were grouped into processes)."""

    beta: FloatArray  # (c, D, p)
    sd: FloatArray  # (c, D, k)
    corr: FloatArray  # (c, D, m)
    sum_mean: FloatArray  # (c, G, k): sums over kept sweeps of E(b | omega, phi, beta)
    sum_outer: FloatArray  # (c, G, k, k)
    sum_cov: FloatArray  # (c, G, k, k)
    accepted: IntArray  # (c,): accepted fixed-effects updates after warm-up
    evaluations: int


def sample(
    model: ModelData,
    prior_fe_sd: float = 2.0,
    prior_log_sd_sd: float = 1.0,
    control: McmcControl | None = None,
) -> McmcRun:
    """Run the chains (see the module docstring) and return the kept draws. With n_jobs > 1
    the chains are split into that many groups run in worker processes; chain c always uses
    the c-th child of the seed, so the draws are the same bit for bit."""
    control = control or McmcControl()
    started = time.perf_counter()
    check_supported(model)
    if several_factor_terms(model):
        return sample_multi(model, prior_fe_sd, prior_log_sd_sd, control)
    rows = sorted_rows(model)
    seed = control.seed
    sequence = seed_sequence(seed)
    children = sequence.spawn(control.chains)
    use_compiled = control.use_compiled
    compiled = compiled_sampler() if use_compiled is not False else None
    if use_compiled and compiled is None:
        raise ValueError(
            "use_compiled=True needs the polyagamma package: pip install 'glmm-binomial[mcmc]'"
        )
    n_jobs = min(control.n_jobs, control.chains)
    task = _ChainsTask(rows, control, prior_fe_sd, prior_log_sd_sd, compiled is not None)
    outputs = run_chains_split(task, children, n_jobs, run_chains, control.progress)
    beta = np.concatenate([o.beta for o in outputs])
    count = beta.shape[0] * beta.shape[1]
    mean = np.concatenate([o.sum_mean for o in outputs]).sum(axis=0) / count
    outer = np.concatenate([o.sum_outer for o in outputs]).sum(axis=0) / count
    cov = np.concatenate([o.sum_cov for o in outputs]).sum(axis=0) / count
    accepted = np.concatenate([o.accepted for o in outputs])
    # Rao-Blackwellized: E[b] = E[E(b | omega, phi, beta)], Cov = E[Cov(b | .)] + Cov(E(b | .)).
    return McmcRun(
        beta=beta,
        sd=np.concatenate([o.sd for o in outputs]),
        corr=np.concatenate([o.corr for o in outputs]),
        ranef_mean=mean,
        ranef_cov=cov + outer - mean[:, :, None] * mean[:, None, :],
        evaluations=sum(o.evaluations for o in outputs),
        sweeps=control.warmup + control.draws * control.thin,
        seconds=time.perf_counter() - started,
        seed_entropy=sequence.entropy,
        compiled=compiled is not None,
        mh_acceptance=(
            float(np.sum(accepted)) / (control.draws * control.thin * control.chains)
            if control.fixed_effects_mh
            else float("nan")
        ),
    )


@dataclass(frozen=True)
class _ChainsTask:
    rows: SortedRows
    control: McmcControl
    prior_fe_sd: float
    prior_log_sd_sd: float
    compiled: bool


def run_chains(
    task: _ChainsTask, seeds: list[np.random.SeedSequence], progress: bool | None
) -> ChainsOutput:
    """The sweeps of the chains whose seeds are given, all chains at once (see the module
    docstring); chain c uses only the generator of seeds[c]."""
    rows, control = task.rows, task.control
    prior_fe_sd, prior_log_sd_sd = task.prior_fe_sd, task.prior_log_sd_sd
    compiled = compiled_sampler() if task.compiled else None
    p, k, n_levels = rows.p, rows.k, rows.n_levels
    correlated = rows.correlated
    d = phi_size(k, correlated)
    n_chains = len(seeds)
    streams = ChainStreams([np.random.default_rng(s) for s in seeds])

    beta = np.zeros((n_chains, p))
    b = np.zeros((n_chains, n_levels, k))
    # Starts: the log SDs spread over (-1, 1) (each chain from its own stream), correlations 0.
    phi = np.zeros((n_chains, d))
    phi[:, :k] = 2.0 * streams.random(np.full(n_chains, k)).reshape(n_chains, k) - 1.0
    directions = np.broadcast_to(control.slice_width * np.eye(d), (n_chains, d, d)).copy()

    kept = control.draws
    total = control.warmup + kept * control.thin
    beta_draws = np.empty((n_chains, kept, p))
    sd_draws = np.empty((n_chains, kept, k))
    corr_draws = np.empty((n_chains, kept, d - k))
    sum_mean = np.zeros((n_chains, n_levels, k))
    sum_outer = np.zeros((n_chains, n_levels, k, k))
    sum_cov = np.zeros((n_chains, n_levels, k, k))
    windows = _tuning_points(control.warmup, control.tuning_windows)
    window_phi: list[FloatArray] = []
    window_beta: list[FloatArray] = []
    lower_rows = np.tril_indices(k, -1)
    evaluations = 0
    accepted = np.zeros(n_chains, dtype=np.intp)
    mh_start = np.zeros((n_chains, p))
    x_t = rows.x_t
    bar = progress_bar(total, progress, "mcmc", "sweep")

    def random_part_of(b: FloatArray) -> FloatArray:
        """Z b + offset per row (C, n); rows are sorted by level."""
        per_row = np.repeat(b, rows.counts, axis=1)
        part = per_row[:, :, 0] if rows.intercept_only else np.einsum("cnk,nk->cn", per_row, rows.z)
        return part if rows.offset is None else part + rows.offset

    random_part = random_part_of(b)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        for sweep in range(total):
            eta = per_chain_product(beta, x_t) + random_part
            omega = draw_polya_gamma(streams, eta, rows.trials, compiled)
            sums = sweep_sums(rows, omega, prior_fe_sd)

            # r_j - B_j' beta: the level sums of z (kappa - omega (x' beta + offset)).
            residual = (
                sums.r_b
                - np.matmul(sums.b_t.reshape(n_chains, n_levels, k, p), beta[:, None, :, None])[
                    ..., 0
                ]
            )

            def log_density(
                values: FloatArray, sums: SweepSums = sums, residual: FloatArray = residual
            ) -> FloatArray:
                return phi_log_density(
                    sums, residual, values, k, prior_log_sd_sd, control.lkj_eta, correlated
                )

            phi, calls = slice_update(
                log_density,
                phi,
                directions,
                streams,
                control.slice_max_steps,
                control.slice_max_shrink,
                control.slice_batch_steps,
            )
            evaluations += calls + 1
            cond = conditional(
                sums, phi[:, None, :], k, prior_log_sd_sd, control.lkj_eta, correlated
            )
            beta, b, b_mean = draw_effects(sums, cond, streams)
            random_part = random_part_of(b)
            if control.fixed_effects_mh:
                beta, moved = update_fixed_effects(
                    rows,
                    beta,
                    random_part,
                    mh_start if sweep >= control.warmup else beta,
                    prior_fe_sd,
                    control.mh_newton_steps,
                    streams,
                    control.mh_proposals,
                )
                if sweep >= control.warmup:
                    accepted += moved

            if sweep < control.warmup:
                window_phi.append(phi.copy())
                window_beta.append(beta.copy())
                if sweep + 1 in windows and len(window_phi) >= 2:
                    directions = _tuned_directions(
                        np.stack(window_phi, axis=1), directions, control.slice_width_scale
                    )
                    mh_start = np.mean(window_beta, axis=0)
                    window_phi = []
                    window_beta = []
            elif (sweep - control.warmup + 1) % control.thin == 0:
                i = (sweep - control.warmup) // control.thin
                beta_draws[:, i] = beta
                sd_draws[:, i] = cond.covariance.sd[:, 0]
                if d > k:
                    chol_r = cond.covariance.corr_cholesky[:, 0]
                    corr = np.matmul(chol_r, chol_r.transpose(0, 2, 1))
                    corr_draws[:, i] = corr[:, lower_rows[0], lower_rows[1]]
                sum_mean += b_mean
                sum_outer += b_mean[:, :, :, None] * b_mean[:, :, None, :]
                sum_cov += cond.level_cov[:, 0]
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return ChainsOutput(
        beta=beta_draws,
        sd=sd_draws,
        corr=corr_draws,
        sum_mean=sum_mean,
        sum_outer=sum_outer,
        sum_cov=sum_cov,
        accepted=accepted,
        evaluations=evaluations,
    )


def _tuning_points(warmup: int, windows: int) -> set[int]:
    """Sweeps (1-based) after which the slice directions are re-tuned: the ends of `windows`
    equal windows over the first 90% of warm-up (the rest runs with the final directions)."""
    if windows == 0 or warmup < 20:
        return set()
    span = int(0.9 * warmup)
    return {max(1, (span * (w + 1)) // windows) for w in range(windows)}


def _tuned_directions(values: FloatArray, previous: FloatArray, scale: float) -> FloatArray:
    """Per chain, scale times the Cholesky factor of the covariance of its window's draws of
    phi (values: (C, draws, d)); a chain keeps its previous directions (C, d, d) when that
    covariance is not positive definite. Each chain is tuned on its own draws only, so that
    chains stay independent of one another."""
    out = previous.copy()
    for c in range(values.shape[0]):  # a few chains, a d x d matrix each
        cov = np.atleast_2d(np.cov(values[c], rowvar=False))
        try:
            out[c] = scale * np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            continue
    return out


def check_supported(model: ModelData, terms: Sequence[str] | None = None) -> None:
    """Raise ValueError for what this sampler cannot do: another family or link than the
    binomial logit, a structured covariance (ar1, cs, diag), no random-effect term, non-integer
    trials. terms: the random-effect terms as the user wrote them (for the message; None: as
    lme4 prints the blocks)."""
    family = model.family
    if family.name != "binomial" or family.link != "logit":
        raise ValueError(
            f"family {family.name!r} with link {family.link!r}: method 'mcmc' supports the "
            "binomial family with the logit link only (its Polya-Gamma augmentation is "
            "specific to the logistic likelihood)"
        )
    check_unstructured(model, "mcmc")
    if not model.blocks:
        listed = ", ".join(terms if terms is not None else term_texts(model, None)) or "none"
        raise ValueError(
            f"method 'mcmc' needs at least one random-effect term such as (1 | g) (terms: "
            f"{listed}); use glm-style fitting elsewhere for a model without random effects"
        )
    trials = model.trials
    if not np.all(np.abs(trials - np.rint(trials)) <= 1e-9 * np.maximum(trials, 1.0)):
        raise ValueError(
            "method 'mcmc' needs whole numbers of trials (its Polya-Gamma draws are sums over "
            "trials); the weights given are not integers"
        )


# --- the fit ----------------------------------------------------------------------------------


def parameter_names(model: ModelData) -> tuple[list[str], list[str], list[str]]:
    """Names of the fixed effects, SDs (sd_<term>|<group>) and correlations
    (cor_<term2>.<term1>|<group>; none for independent terms), as the profile intervals name
    them."""
    if several_factor_terms(model):
        sds = [f"sd_{term}|{b.group}" for b in model.blocks for term in b.terms]
        corrs = []
        for b in model.blocks:
            rows, cols = np.tril_indices(b.k, -1)
            corrs += [
                f"cor_{b.terms[r]}.{b.terms[c]}|{b.group}" for r, c in zip(rows, cols, strict=True)
            ]
        return list(model.fixed_names), sds, corrs
    block, correlated = sampled_block(model)
    sds = [f"sd_{term}|{block.group}" for term in block.terms]
    rows, cols = np.tril_indices(block.k if correlated else 1, -1)
    corrs = [
        f"cor_{block.terms[r]}.{block.terms[c]}|{block.group}"
        for r, c in zip(rows, cols, strict=True)
    ]
    return list(model.fixed_names), sds, corrs


def fit_mcmc(
    model: ModelData,
    prior_fe_sd: float = 2.0,
    prior_log_sd_sd: float = 1.0,
    control: McmcControl | None = None,
) -> FitOutput:
    """Posterior by Polya-Gamma Gibbs sampling, as a FitOutput.

    beta: posterior means; vcov_beta: posterior covariance (of the draws); theta: lme4's
    layout of Lambda = diag(posterior mean SDs) chol(posterior mean correlation matrix), so
    that varcorr's std_dev column shows the posterior mean of each SD and corr the posterior
    mean correlation; ranef / ranef_cov: posterior means and covariances of b (Rao-
    Blackwellized); loglik: the Laplace log-likelihood at those means; posterior: the draws with
    their diagnostics. converged: every draw finite and every R-hat at most
    control.rhat_threshold."""
    control = control or McmcControl()
    check_supported(model)
    multi = several_factor_terms(model)
    run = sample(model, prior_fe_sd, prior_log_sd_sd, control)
    fixed, sds, corrs = parameter_names(model)
    draws: dict[str, FloatArray] = {}
    kinds: dict[str, str] = {}
    for j, name in enumerate(fixed):
        draws[name] = run.beta[:, :, j]
        kinds[name] = "fixed"
    for j, name in enumerate(sds):
        draws[name] = run.sd[:, :, j]
        kinds[name] = "sd"
    for j, name in enumerate(corrs):
        draws[name] = run.corr[:, :, j]
        kinds[name] = "corr"
    summary = {name: mcmc_diagnostics.summarize(values) for name, values in draws.items()}

    chains, n_draws, p = run.beta.shape
    flat_beta = run.beta.reshape(chains * n_draws, p)
    beta = flat_beta.mean(axis=0)
    # np.cov of no columns is not a 0 x 0 matrix (a model with no fixed effect).
    vcov = np.atleast_2d(np.cov(flat_beta, rowvar=False)) if p else np.zeros((0, 0))
    block, correlated = sampled_block(model)
    k = run.sd.shape[2]
    sd_mean = run.sd.reshape(-1, k).mean(axis=0)
    ranef_mean: tuple[FloatArray, ...] = (run.ranef_mean,)
    ranef_cov: tuple[FloatArray, ...] = (run.ranef_cov,)
    if multi:
        # Terms on several factors: each term's Lambda from its posterior mean SDs and mean
        # correlation matrix, as for one term below.
        ranef_mean, ranef_cov = unpack_ranef(model, run.ranef_mean, run.ranef_cov)
        corr_flat = run.corr.mean(axis=(0, 1))
        pieces = []
        at_sd = at_corr = 0
        for b in model.blocks:
            corr_mean = np.eye(b.k)
            rows, cols = np.tril_indices(b.k, -1)
            corr_mean[rows, cols] = corr_flat[at_corr : at_corr + rows.shape[0]]
            corr_mean[cols, rows] = corr_mean[rows, cols]
            lam = sd_mean[at_sd : at_sd + b.k, None] * _correlation_factor(corr_mean)
            lower_r, lower_c = b.lower_indices()
            pieces.append(lam[lower_r, lower_c])
            at_sd += b.k
            at_corr += rows.shape[0]
        theta = np.concatenate(pieces)
    elif correlated:
        corr_mean = np.eye(k)
        if k > 1:
            rows, cols = np.tril_indices(k, -1)
            corr_mean[rows, cols] = run.corr.reshape(-1, rows.shape[0]).mean(axis=0)
            corr_mean[cols, rows] = corr_mean[rows, cols]
        lam = sd_mean[:, None] * _correlation_factor(corr_mean)
        lower_r, lower_c = block.lower_indices()
        theta = lam[lower_r, lower_c]
    else:
        # One-column terms: theta_t is the posterior mean SD of term t; each term's effects
        # are the sampled block's column t.
        theta = sd_mean.copy()
        ranef_mean = tuple(run.ranef_mean[:, t : t + 1].copy() for t in range(k))
        ranef_cov = tuple(run.ranef_cov[:, t : t + 1, t : t + 1].copy() for t in range(k))

    finite = bool(
        np.all(np.isfinite(run.beta))
        and np.all(np.isfinite(run.sd))
        and np.all(np.isfinite(run.corr))
    )
    r_hats = np.array([s["r_hat"] for s in summary.values()])
    max_rhat = float(np.nanmax(r_hats)) if np.any(np.isfinite(r_hats)) else float("nan")
    warnings: list[FitWarning] = []
    if not finite:
        warnings.append(FitWarning("the sampler produced non-finite draws", ConvergenceWarning))
    high = [n for n, s in summary.items() if not s["r_hat"] <= control.rhat_threshold]
    if control.chains > 1 and high:
        warnings.append(
            FitWarning(
                f"R-hat above {control.rhat_threshold:g} for {', '.join(high)} (largest "
                f"{max_rhat:.4g}): the chains have not converged to one distribution; run more "
                "warmup and draws",
                ConvergenceWarning,
            )
        )
    low = [
        n
        for n, s in summary.items()
        if not (s["ess_bulk"] >= control.min_ess and s["ess_tail"] >= control.min_ess)
    ]
    if low:
        warnings.append(
            FitWarning(
                f"bulk or tail effective sample size below {control.min_ess:g} for "
                f"{', '.join(low)}: posterior summaries are imprecise; run more draws",
                ConvergenceWarning,
            )
        )
    converged = finite and (control.chains == 1 or not high)
    loglik = float("nan")
    if np.all(np.isfinite(theta)) and np.all(np.isfinite(beta)):
        loglik = -0.5 * LaplaceObjective(model).deviance(theta, beta)
    settings: dict[str, Any] = {
        "chains": control.chains,
        "draws": control.draws,
        "warmup": control.warmup,
        "thin": control.thin,
        "seed_entropy": run.seed_entropy,
        "sweeps": run.sweeps,
        "log_density_evaluations": run.evaluations,
        "polya_gamma": "polyagamma package (Devroye)" if run.compiled else "numpy (Devroye)",
        "seconds": run.seconds,
        "fixed_effects_mh_acceptance": run.mh_acceptance,
        "prior_fe_sd": float(prior_fe_sd),
        "prior_log_sd_sd": float(prior_log_sd_sd),
        "lkj_eta": float(control.lkj_eta),
    }
    opt = OptSummary(
        optimizer=METHOD_LABEL,
        objective=(
            f"posterior draws: {control.chains} chains x {control.draws} draws (thin "
            f"{control.thin}) after {control.warmup} warm-up sweeps; max R-hat {max_rhat:.4g}"
        ),
        converged=converged,
        message="; ".join(warnings) if warnings else "R-hat and ESS within their thresholds",
        iterations=run.sweeps,
        evaluations=run.evaluations,
        gradient_evaluations=0,
        pirls_iterations=0,
        pirls_failures=0,
        final_gradient_norm=float("nan"),
        newton_polish=False,
        tolerances={
            **control.recorded(),
            "prior_fe_sd": float(prior_fe_sd),
            "prior_log_sd_sd": float(prior_log_sd_sd),
        },
        seconds=run.seconds,
    )
    return FitOutput(
        method="mcmc",
        theta=theta,
        beta=beta,
        vcov_beta=vcov,
        loglik=loglik,
        loglik_label=LOGLIK_LABEL,
        ranef=ranef_mean,
        ranef_cov=ranef_cov,
        opt_summary=opt,
        converged=converged,
        singular=False,
        warnings=tuple(warnings),
        posterior=PosteriorDraws(draws=draws, kinds=kinds, summary=summary, settings=settings),
    )


def _correlation_factor(corr: FloatArray) -> FloatArray:
    """Lower Cholesky factor of a correlation matrix (NaN when it is not positive definite)."""
    try:
        return np.asarray(np.linalg.cholesky(corr), dtype=np.float64)
    except np.linalg.LinAlgError:
        return np.full_like(corr, np.nan)


@dataclass(frozen=True)
class Mcmc(Method):
    """Exact posterior sampling (the module docstring: Polya-Gamma Gibbs) under the priors of
    method "vb": N(0, prior_fe_sd^2) on each fixed effect, N(0, prior_log_sd_sd^2) on each log
    random-effect SD and LKJ(control.lkj_eta) on the correlation matrix of a correlated term.
    Any lme4 random-effect terms (one factor or several, nested or crossed); binomial logit.
    Fitted on the user's columns as they are (the priors are stated in those units).
    control: the sampler's settings (draws, warm-up, chains, seed, thinning, diagnostics
    thresholds; McmcControl)."""

    prior_fe_sd: float = 2.0
    prior_log_sd_sd: float = 1.0
    control: McmcControl = field(default_factory=McmcControl)

    name: ClassVar[str] = "mcmc"
    posterior: ClassVar[bool] = True
    control_type: ClassVar[type] = McmcControl

    def __post_init__(self) -> None:
        for name in ("prior_fe_sd", "prior_log_sd_sd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
            object.__setattr__(self, name, float(value))
        checked_control(self.name, self.control, McmcControl)

    @classmethod
    def from_arguments(
        cls,
        *,
        draws: int | None = None,
        warmup: int | None = None,
        chains: int | None = None,
        seed: Any = None,
        control: Any = None,
        prior_fe_sd: float | None = None,
        prior_log_sd_sd: float | None = None,
        n_agq: int | None = None,
        **others: Any,
    ) -> Mcmc:
        """The sampler from fit()'s keywords: draws, warmup, chains and seed set those fields of
        control (an McmcControl; None: the defaults)."""
        if n_agq not in (None, 1):
            raise ValueError("n_agq applies only to method='agq'")
        refuse_arguments(cls.name, **others)
        settings = checked_control(cls.name, control, McmcControl)
        given = {
            key: value
            for key, value in (
                ("draws", draws),
                ("warmup", warmup),
                ("chains", chains),
                ("seed", seed),
            )
            if value is not None
        }
        return cls(
            2.0 if prior_fe_sd is None else prior_fe_sd,
            1.0 if prior_log_sd_sd is None else prior_log_sd_sd,
            replace(settings, **given) if given else settings,
        )

    @property
    def title(self) -> str:
        return "MCMC, Polya-Gamma Gibbs sampler (posterior means)"

    @property
    def tolerances(self) -> dict[str, float | str]:
        return {
            **self.control.recorded(),
            "prior_fe_sd": self.prior_fe_sd,
            "prior_log_sd_sd": self.prior_log_sd_sd,
        }

    def check(self, model: ModelData, design: Any = None) -> None:
        super().check(model, design)
        check_supported(model, term_texts(model, design))

    def fit(self, model: ModelData, start: Start | None = None) -> FitOutput:
        if start is not None:
            raise ValueError(f"method {self.name!r} starts from its own random starts (seed)")
        return require_finite(fit_mcmc(model, self.prior_fe_sd, self.prior_log_sd_sd, self.control))
