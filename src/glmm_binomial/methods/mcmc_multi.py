"""Polya-Gamma Gibbs sampling of binomial GLMMs (logit) with several random-effect terms.

The model and priors are those of methods/mcmc.py, for terms on any number of grouping factors,
nested ((1 | a/b), (1 | a) + (1 | a:b)) or crossed ((1 | id) + (1 | item), (1 + x | id) +
(1 | item)), and for a correlated term beside another term of its own factor; independent
one-column terms of one factor and a single term are methods/mcmc.py's. Term t (k_t columns
z_t, G_t levels):

    eta = X beta + sum_t z_t' b_t[g_t(i)] + offset,   b_tj = Lambda_t u_tj,   u_tj ~ N(0, I),
    Lambda_t = diag(s_t) L_Rt,   beta_j ~ N(0, prior_fe_sd^2),
    log s_tc ~ N(0, prior_log_sd_sd^2),   R_t ~ LKJ(lkj_eta) (k_t >= 2), independently;

phi_t: the log SDs and the atanh of R_t's canonical partial correlations (mcmc_steps.
covariance_parameters: Stan's transform, LKJ density and Jacobian).

One sweep (per chain; the chains' Polya-Gamma draws and variance updates are vectorized):

1. omega | beta, b: exact PG(m_i, eta_i) draws (polya_gamma.py).
2. (beta, u) | omega, phi: one exact joint Gaussian draw. Its precision in u is
   H = Lambda' Z' Omega Z Lambda + I, factored H = L L' by the blocked sparse Cholesky of
   numerics/factor.py (the largest factor block diagonal, nested factors as a chain, crossed ones
   through a dense Schur complement: no dense n x q matrix, no loop over rows or levels). With
   W = L^{-1} (Z Lambda)' Omega X and w = L^{-1} (Z Lambda)' r, r = kappa - omega offset, kappa =
   successes - m / 2, beta is drawn through its Schur complement (a p x p Cholesky)

       S = X' Omega X + I / prior_fe_sd^2 - W' W,   beta = S^{-1} (X' r - W' w) + L_S^{-T} e_1,

   and then u | beta = L^{-T} (w - W beta + e_2), the back substitution of the factor.
3. phi | b (centred parametrization; b fixed, u = Lambda^{-1} b moves): a slice-sampling update
   of sum_t log prior(phi_t) - G_t / 2 log |Sigma_t| - tr(Sigma_t^{-1} sum_j b_tj b_tj') / 2.
4. Non-centred parametrization (u fixed, b moves): each log SD s_tc given u, R_t, omega, beta
   and the rest of eta: column c of term t adds s_tc v_i to eta_i (v_i = z_tic (L_Rt u_t)_c at
   row i's level), so the augmented log-likelihood is s sum v_i (kappa_i - omega_i o_i) -
   s^2 sum omega_i v_i^2 / 2 (o_i: the rest of eta_i); then, for k_t >= 2, R_t's atanh CPCs
   given u and the SDs: term t's part of eta is linear in the entries of L_Rt, so the augmented
   log-likelihood is a quadratic in them (sums over rows computed once per update). Slice
   sampling throughout. Steps 3 and 4 together are an interweaving of the two
   parametrizations (Yu & Meng 2011): the centred step mixes well when the data pin the
   effects down, the non-centred one when they do not.
5. beta | b, phi (McmcControl.fixed_effects_mh): the independence Metropolis-Hastings update on
   the exact binomial likelihood of methods/mcmc.py; omega is drawn afresh at the next sweep.

The posterior means and variances of the random effects are averages over the kept draws of b
(not Rao-Blackwellized as in the one-factor sampler). Chain c draws every random number from its
own generator, and its linear algebra runs on its own arrays, so the draws are the same bit for
bit whatever the number of chains beside it or of worker processes (McmcControl.n_jobs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import scipy.sparse
from numpy.typing import NDArray

from glmm_binomial.methods.mcmc_steps import (
    McmcRun,
    covariance_parameters,
    per_chain_product,
    phi_size,
    run_chains_split,
    slice_update,
    update_fixed_effects,
)
from glmm_binomial.methods.polya_gamma import ChainStreams, compiled_sampler, draw_polya_gamma
from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics.factor import Structure
from glmm_binomial.numerics.seeds import seed_sequence
from glmm_binomial.progress import progress_bar

if TYPE_CHECKING:
    from glmm_binomial.methods.mcmc import McmcControl

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

MAX_OUTER_ENTRIES = 10_000_000
"""Rows' outer products x_i x_i' are kept for the fixed-effects update's Hessian while they take
at most this many numbers (80 MB)."""


def independent_terms_of_one_factor(model: ModelData) -> bool:
    """Whether the model's random effects are one-column terms of one grouping factor (the same
    levels and codes), each with its own variance and no correlations, under distinct names."""
    blocks = model.blocks
    if len(blocks) < 2 or any(b.k != 1 for b in blocks):
        return False
    first = blocks[0]
    terms = [b.terms[0] for b in blocks]
    return len(set(terms)) == len(terms) and all(
        b.group == first.group
        and b.levels == first.levels
        and (b.codes is first.codes or np.array_equal(b.codes, first.codes))
        for b in blocks[1:]
    )


def several_factor_terms(model: ModelData) -> bool:
    """Whether this module samples the model: two or more random-effect terms, other than
    independent one-column terms of one factor (methods/mcmc.py samples those, and one term,
    with its collapsed variance update): terms on nested or crossed factors, or a correlated
    term beside another term."""
    return len(model.blocks) >= 2 and not independent_terms_of_one_factor(model)


@dataclass(frozen=True)
class MultiRows:
    """The rows sorted by the grouping factor that leads the factor's layout (its level sums are
    then contiguous), with what every sweep reuses."""

    model: ModelData  # the model with its rows in this order
    structure: Structure
    x: FloatArray  # (n, p)
    x_t: FloatArray  # (p, n)
    successes: FloatArray
    trials_float: FloatArray
    trials: IntArray | None  # None when every row has one trial
    kappa: FloatArray
    offset: FloatArray | None  # None when all zero
    x_outer: FloatArray | None
    z: tuple[FloatArray, ...]  # per term: its columns (n, k_t)
    codes: tuple[IntArray, ...]  # per term: level of each row
    n_levels: tuple[int, ...]
    first_column: tuple[int, ...]  # per term: its first column of u1, or -1 when it is in u2
    rest_offset: tuple[int, ...]  # per term: its first position in u2, or -1
    # Z Lambda as a sparse n x (q1 + q2) matrix in the factor's u layout: each row's entries
    # are its values of a1 then a2 (factor.Structure.z_lambda), at these columns.
    z_indices: IntArray  # (n (k1 + r2),)
    z_indptr: IntArray  # (n + 1,)

    @property
    def p(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_terms(self) -> int:
        return len(self.z)

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(int(z.shape[1]) for z in self.z)


def multi_rows(model: ModelData) -> MultiRows:
    """Arrange a model that several_factor_terms accepts for the sweeps."""
    layout = Structure(model)
    order = np.argsort(model.blocks[layout.first].codes, kind="stable")
    sorted_model = model.take(order)
    structure = Structure(sorted_model)
    x = np.ascontiguousarray(sorted_model.x, dtype=np.float64)
    n, p = x.shape
    trials_float = np.asarray(sorted_model.trials, dtype=np.float64)
    trials_int = np.rint(trials_float).astype(np.intp)
    offset = np.asarray(sorted_model.offset, dtype=np.float64)
    first_column: list[int] = []
    rest_offset: list[int] = []
    for t in range(len(sorted_model.blocks)):
        if t in structure.first_blocks:
            index = structure.first_blocks.index(t)
            first_column.append(structure.first_columns[index].start)
            rest_offset.append(-1)
        else:
            first_column.append(-1)
            rest_offset.append(structure.rest_offsets[structure.rest.index(t)])
    successes = np.ascontiguousarray(sorted_model.successes, dtype=np.float64)
    columns = np.hstack(
        [
            structure.g1[:, None] * structure.k1 + np.arange(structure.k1),
            structure.q1 + structure.cols2,
        ]
    ).astype(np.intp)
    return MultiRows(
        model=sorted_model,
        structure=structure,
        x=x,
        x_t=np.ascontiguousarray(x.T),
        successes=successes,
        trials_float=trials_float,
        trials=None if bool(np.all(trials_int == 1)) else trials_int,
        kappa=successes - 0.5 * trials_float,
        offset=offset if bool(np.any(offset != 0.0)) else None,
        x_outer=(
            np.ascontiguousarray((x[:, :, None] * x[:, None, :]).reshape(n, p * p))
            if n * p * p <= MAX_OUTER_ENTRIES
            else None
        ),
        z=tuple(np.ascontiguousarray(b.z, dtype=np.float64) for b in sorted_model.blocks),
        codes=tuple(np.asarray(b.codes, dtype=np.intp) for b in sorted_model.blocks),
        n_levels=tuple(b.n_levels for b in sorted_model.blocks),
        first_column=tuple(first_column),
        rest_offset=tuple(rest_offset),
        z_indices=np.ascontiguousarray(columns.ravel()),
        z_indptr=np.arange(0, columns.size + 1, columns.shape[1], dtype=np.intp),
    )


def draw_effects_one_chain(
    rows: MultiRows,
    omega: FloatArray,
    lambdas: list[FloatArray],
    noise: FloatArray,
    prior_fe_sd: float,
) -> tuple[FloatArray, list[FloatArray]]:
    """(beta, u) | omega, Sigma for one chain (step 2 of the module docstring): omega (n,),
    lambdas: per term its k_t x k_t lower-triangular Lambda_t (Sigma_t = Lambda_t Lambda_t'),
    noise (p + q,) standard normal. Returns beta (p,) and u per term (G_t, k_t)."""
    st = rows.structure
    p = rows.p
    a1, a2 = st.z_lambda(rows.model, lambdas)
    factor = st.factorize(a1, a2, omega, st.first_lambda(lambdas))
    r = rows.kappa if rows.offset is None else rows.kappa - omega * rows.offset
    sizes = [level.n_groups * level.k for level in st.levels]

    n = rows.x.shape[0]
    z_lambda = scipy.sparse.csr_matrix(
        (np.hstack([a1, a2]).ravel(), rows.z_indices, rows.z_indptr), shape=(n, st.q1 + st.q2)
    )
    weighted_x = omega[:, None] * rows.x
    # (Z Lambda)' [Omega X, r]: one sparse product for all right-hand sides.
    products = np.asarray(z_lambda.T @ np.column_stack([weighted_x, r]))

    def whiten(column: int) -> FloatArray:
        """L^{-1} (Z Lambda)' of products' column, the chain's part then R's, as one vector
        (q,)."""
        t1 = products[: st.q1, column].reshape(st.n1, st.k1)
        y, rr = factor.forward(t1, products[st.q1 :, column])
        pieces = [yd.ravel() for yd in y]
        if factor.l_rr is not None:
            pieces.append(
                scipy.linalg.solve_triangular(factor.l_rr, rr, lower=True, check_finite=False)
            )
        return np.concatenate(pieces)

    w_x = np.column_stack([whiten(j) for j in range(p)])  # (q, p)
    w_r = whiten(p)
    s = rows.x_t @ weighted_x - w_x.T @ w_x
    s[np.arange(p), np.arange(p)] += 1.0 / prior_fe_sd**2
    c = rows.x_t @ r - w_x.T @ w_r
    chol_s = np.linalg.cholesky(s)
    whitened_beta = scipy.linalg.solve_triangular(chol_s, c, lower=True, check_finite=False)
    beta = scipy.linalg.solve_triangular(
        chol_s, whitened_beta + noise[:p], lower=True, trans="T", check_finite=False
    )
    v = w_r - w_x @ beta + noise[p:]
    bounds = np.cumsum([0, *sizes])
    y = [
        v[bounds[d] : bounds[d + 1]].reshape(level.n_groups, level.k)
        for d, level in enumerate(st.levels)
    ]
    xr = np.zeros(0)
    if factor.l_rr is not None:
        xr = scipy.linalg.solve_triangular(
            factor.l_rr, v[bounds[-1] :], lower=True, trans="T", check_finite=False
        )
    x1, x2 = factor.backward(y, xr)
    u = []
    for t, k in enumerate(rows.ks):
        if rows.first_column[t] >= 0:
            start = rows.first_column[t]
            u.append(np.ascontiguousarray(x1[:, start : start + k]))
        else:
            start = rows.rest_offset[t]
            u.append(x2[start : start + rows.n_levels[t] * k].reshape(-1, k))
    return beta, u


@dataclass(frozen=True)
class MultiChainsOutput:
    """What a group of chains hands back (combined in chain order)."""

    beta: FloatArray  # (c, D, p)
    sd: FloatArray  # (c, D, sum k_t): the terms' SDs side by side
    corr: FloatArray  # (c, D, sum k_t (k_t - 1) / 2): their correlations (lower triangle)
    sum_b: list[FloatArray]  # per term (c, G_t, k_t): sums over kept draws of b_t
    sum_outer: list[FloatArray]  # per term (c, G_t, k_t, k_t): sums of b_j b_j'
    accepted: IntArray  # (c,)
    evaluations: int


@dataclass(frozen=True)
class MultiTask:
    rows: MultiRows
    control: McmcControl
    prior_fe_sd: float
    prior_log_sd_sd: float
    compiled: bool


def run_multi_chains(
    task: MultiTask, seeds: list[np.random.SeedSequence], progress: bool | None
) -> MultiChainsOutput:
    """The sweeps of the chains whose seeds are given (the module docstring); chain c uses
    only the generator of seeds[c]."""
    rows, control = task.rows, task.control
    prior_fe_sd, prior_sd = task.prior_fe_sd, task.prior_log_sd_sd
    eta_lkj = control.lkj_eta
    compiled = compiled_sampler() if task.compiled else None
    p, n_terms, ks = rows.p, rows.n_terms, rows.ks
    # phi: per term its k log SDs and k (k - 1) / 2 atanh CPCs, terms side by side.
    sizes = [phi_size(k, True) for k in ks]
    phi_bounds = np.cumsum([0, *sizes])
    n_phi = int(phi_bounds[-1])
    q = int(sum(g * k for g, k in zip(rows.n_levels, ks, strict=True)))
    n_chains = len(seeds)
    streams = ChainStreams([np.random.default_rng(s) for s in seeds])

    beta = np.zeros((n_chains, p))
    # Starts: the log SDs spread over (-1, 1), each chain from its own stream; correlations 0.
    phi = np.zeros((n_chains, n_phi))
    log_sd_columns = np.concatenate(
        [phi_bounds[t] + np.arange(k) for t, k in enumerate(ks)]
    ).astype(np.intp)
    starts = streams.random(np.full(n_chains, log_sd_columns.size))
    phi[:, log_sd_columns] = 2.0 * starts.reshape(n_chains, -1) - 1.0
    u = [np.zeros((n_chains, g, k)) for g, k in zip(rows.n_levels, ks, strict=True)]
    width = control.slice_width
    directions = np.broadcast_to(width * np.eye(n_phi), (n_chains, n_phi, n_phi)).copy()
    one_direction = np.full((n_chains, 1, 1), width)
    lower = [np.tril_indices(k, -1) for k in ks]

    kept = control.draws
    total = control.warmup + kept * control.thin
    beta_draws = np.empty((n_chains, kept, p))
    sd_draws = np.empty((n_chains, kept, sum(ks)))
    corr_draws = np.empty((n_chains, kept, n_phi - sum(ks)))
    sum_b = [np.zeros_like(ut) for ut in u]
    sum_outer = [np.zeros((*ut.shape, ut.shape[2])) for ut in u]
    accepted = np.zeros(n_chains, dtype=np.intp)
    mh_start = np.zeros((n_chains, p))
    warm_betas: list[FloatArray] = []
    evaluations = 0
    bar = progress_bar(total, progress, "mcmc", "sweep")

    def term_phi(values: FloatArray, t: int) -> FloatArray:
        return values[..., phi_bounds[t] : phi_bounds[t + 1]]

    def factors(values: FloatArray) -> tuple[list[FloatArray], list[FloatArray]]:
        """Per term Lambda_t = diag(s) L_R (C, k, k) and L_R, at phi (C, n_phi)."""
        lambdas, chol_r = [], []
        for t, k in enumerate(ks):  # a few terms
            if k == 1:
                lambdas.append(np.exp(term_phi(values, t))[:, :, None])
                chol_r.append(np.ones((values.shape[0], 1, 1)))
                continue
            cov = covariance_parameters(term_phi(values, t), k, prior_sd, eta_lkj)
            chol_r.append(cov.corr_cholesky)
            lambdas.append(cov.sd[:, :, None] * cov.corr_cholesky)
        return lambdas, chol_r

    def effects(lambdas: list[FloatArray]) -> list[FloatArray]:
        """b_t = u_t Lambda_t' per term (C, G_t, k_t)."""
        return [np.matmul(u[t], lambdas[t].transpose(0, 2, 1)) for t in range(n_terms)]

    def column_values(t: int, c: int, w: FloatArray) -> FloatArray:
        """z_tc w[g_t(i), c] per row (C, n)."""
        return w[:, rows.codes[t], c] * rows.z[t][:, c]

    def random_eta(b: list[FloatArray]) -> FloatArray:
        """Z b per row (C, n)."""
        out = np.zeros((n_chains, rows.x.shape[0]))
        for t, k in enumerate(ks):  # a few terms and columns
            for c in range(k):
                out += column_values(t, c, b[t])
        return out

    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        lambdas, chol_r = factors(phi)
        part = random_eta(effects(lambdas))
        for sweep in range(total):
            fixed = per_chain_product(beta, rows.x_t)
            if rows.offset is not None:
                fixed = fixed + rows.offset
            omega = draw_polya_gamma(streams, fixed + part, rows.trials, compiled)

            # 2. (beta, u) | omega, Sigma, chain by chain (each its own factorization).
            noise = streams.standard_normal(np.full(n_chains, p + q)).reshape(n_chains, -1)
            for c in range(n_chains):  # a few chains
                beta[c], u_chain = draw_effects_one_chain(
                    rows, omega[c], [lam[c] for lam in lambdas], noise[c], prior_fe_sd
                )
                for t in range(n_terms):
                    u[t][c] = u_chain[t]

            # 3. phi | b (centred): sum_t log prior - G_t / 2 log |Sigma_t| - tr(Sigma_t^-1
            # B_t' B_t) / 2; the terms' densities are independent of one another.
            b = effects(lambdas)
            scatter = [np.matmul(bt.transpose(0, 2, 1), bt) for bt in b]  # (C, k, k)

            def centred(values: FloatArray, scatter: list[FloatArray] = scatter) -> FloatArray:
                out = np.zeros(values.shape[:2])
                for t, k in enumerate(ks):  # a few terms
                    if k == 1:
                        # Closed form: -G tau - S e^{-2 tau} / 2 - tau^2 / (2 prior_sd^2).
                        tau = values[..., phi_bounds[t]]
                        out += (
                            -rows.n_levels[t] * tau
                            - 0.5 * scatter[t][:, None, 0, 0] * np.exp(-2.0 * tau)
                            - 0.5 * tau * tau / prior_sd**2
                        )
                        continue
                    cov = covariance_parameters(term_phi(values, t), k, prior_sd, eta_lkj)
                    out += (
                        cov.log_prior
                        - 0.5 * rows.n_levels[t] * cov.log_det
                        - 0.5 * np.sum(cov.precision * scatter[t][:, None], axis=(2, 3))
                    )
                return np.where(np.isfinite(out), out, -np.inf)

            phi, calls = slice_update(
                centred,
                phi,
                directions,
                streams,
                control.slice_max_steps,
                control.slice_max_shrink,
                control.slice_batch_steps,
            )
            evaluations += calls
            # b stays: u_t = Lambda_t^{-1} b_t at the new phi.
            lambdas, chol_r = factors(phi)
            for t in range(n_terms):
                inverse = np.linalg.inv(lambdas[t])
                u[t] = np.matmul(b[t], inverse.transpose(0, 2, 1))

            # 4. each log s_tc | u_t, R_t, omega, beta, the rest (non-centred): b_t's column c
            # is s_tc w_tc with w_t = u_t L_R' fixed, so eta is linear in s_tc.
            fixed = per_chain_product(beta, rows.x_t)
            if rows.offset is not None:
                fixed = fixed + rows.offset
            part = random_eta(effects(lambdas))
            for t, k in enumerate(ks):  # a few terms and columns
                w = np.matmul(u[t], chol_r[t].transpose(0, 2, 1))
                for c in range(k):
                    column = phi_bounds[t] + c
                    sd = np.exp(phi[:, column])
                    v = column_values(t, c, w)
                    other = fixed + part - sd[:, None] * v
                    quad = np.sum(omega * v * v, axis=1)
                    lin = np.sum(v * (rows.kappa - omega * other), axis=1)

                    def non_centred(
                        values: FloatArray, quad: FloatArray = quad, lin: FloatArray = lin
                    ) -> FloatArray:
                        s = np.exp(values[..., 0])
                        value = (
                            lin[:, None] * s
                            - 0.5 * quad[:, None] * s * s
                            - 0.5 * values[..., 0] ** 2 / prior_sd**2
                        )
                        return np.where(np.isfinite(value), value, -np.inf)

                    new, calls = slice_update(
                        non_centred,
                        phi[:, column : column + 1],
                        one_direction,
                        streams,
                        control.slice_max_steps,
                        control.slice_max_shrink,
                        control.slice_batch_steps,
                    )
                    evaluations += calls
                    phi[:, column] = new[:, 0]
                    part = other - fixed + np.exp(new) * v
                if k > 1:
                    phi, part, calls = _non_centred_correlations(
                        rows,
                        t,
                        phi,
                        phi_bounds,
                        u[t],
                        omega,
                        fixed,
                        part,
                        streams,
                        control,
                        prior_sd,
                    )
                    evaluations += calls
            lambdas, chol_r = factors(phi)

            # 5. beta | b on the exact likelihood.
            if control.fixed_effects_mh:
                random_part = part if rows.offset is None else part + rows.offset
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
                if 2 * sweep >= control.warmup:
                    warm_betas.append(beta.copy())
                if sweep + 1 == control.warmup and warm_betas:
                    # The proposal's Newton start: the chain's mean beta in warm-up's second half.
                    mh_start = np.mean(warm_betas, axis=0)
            elif (sweep - control.warmup + 1) % control.thin == 0:
                i = (sweep - control.warmup) // control.thin
                beta_draws[:, i] = beta
                sd_draws[:, i] = np.exp(phi[:, log_sd_columns])
                correlations = []
                for t in range(n_terms):
                    if ks[t] > 1:
                        corr = np.matmul(chol_r[t], chol_r[t].transpose(0, 2, 1))
                        correlations.append(corr[:, lower[t][0], lower[t][1]])
                if correlations:
                    corr_draws[:, i] = np.concatenate(correlations, axis=1)
                for t, bt in enumerate(effects(lambdas)):
                    sum_b[t] += bt
                    sum_outer[t] += bt[:, :, :, None] * bt[:, :, None, :]
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return MultiChainsOutput(
        beta=beta_draws,
        sd=sd_draws,
        corr=corr_draws,
        sum_b=sum_b,
        sum_outer=sum_outer,
        accepted=accepted,
        evaluations=evaluations,
    )


def _non_centred_correlations(
    rows: MultiRows,
    t: int,
    phi: FloatArray,
    phi_bounds: IntArray,
    u: FloatArray,
    omega: FloatArray,
    fixed: FloatArray,
    part: FloatArray,
    streams: ChainStreams,
    control: McmcControl,
    prior_sd: float,
) -> tuple[FloatArray, FloatArray, int]:
    """Slice update of term t's atanh CPCs given u_t, its SDs, omega and the rest of eta
    (non-centred: b_j = diag(s) L_R u_j moves with L_R). Term t's part of eta is
    sum_{c >= d} L_cd V_cd with V_cd,i = z_ic s_c u_{g(i), d}, linear in the entries l of
    L_R, so the augmented log-likelihood is l' a - l' M l / 2 with a and M sums over rows
    computed once; the density adds the LKJ prior and Jacobian of the CPCs. Returns phi,
    the new Z b (C, n) and the number of density calls."""
    k = rows.ks[t]
    start, stop = int(phi_bounds[t]), int(phi_bounds[t + 1])
    sd = np.exp(phi[:, start : start + k])
    lower_r, lower_c = np.tril_indices(k)
    codes, z = rows.codes[t], rows.z[t]
    # V (C, m, n), m = k (k + 1) / 2 entries of L_R on and below the diagonal.
    values = np.stack(
        [
            (sd[:, c : c + 1] * z[:, c]) * u[:, codes, d]
            for c, d in zip(lower_r, lower_c, strict=True)
        ],
        axis=1,
    )
    chol = covariance_parameters(
        phi[:, None, start:stop], k, prior_sd, control.lkj_eta
    ).corr_cholesky[:, 0]
    entries = chol[:, lower_r, lower_c]  # (C, m)
    other = fixed + part - np.einsum("cm,cmn->cn", entries, values)
    linear = np.einsum("cmn,cn->cm", values, rows.kappa - omega * other)
    quadratic = np.einsum("cmn,cln->cml", values * omega[:, None, :], values)

    def density(points: FloatArray) -> FloatArray:
        full = np.broadcast_to(phi[:, None, start:stop], (*points.shape[:2], stop - start)).copy()
        full[..., k:] = points
        cov = covariance_parameters(full, k, prior_sd, control.lkj_eta)
        ell = cov.corr_cholesky[..., lower_r, lower_c]  # (C, P, m)
        value = (
            cov.log_prior
            + np.einsum("cpm,cm->cp", ell, linear)
            - 0.5 * np.einsum("cpm,cml,cpl->cp", ell, quadratic, ell)
        )
        return np.where(np.isfinite(value), value, -np.inf)

    n_chains, m = phi.shape[0], stop - start - k
    directions = np.broadcast_to(control.slice_width * np.eye(m), (n_chains, m, m)).copy()
    new, calls = slice_update(
        density,
        phi[:, start + k : stop],
        directions,
        streams,
        control.slice_max_steps,
        control.slice_max_shrink,
        control.slice_batch_steps,
    )
    phi = phi.copy()
    phi[:, start + k : stop] = new
    chol = covariance_parameters(
        phi[:, None, start:stop], k, prior_sd, control.lkj_eta
    ).corr_cholesky[:, 0]
    part = other - fixed + np.einsum("cm,cmn->cn", chol[:, lower_r, lower_c], values)
    return phi, part, calls


def sample_multi(
    model: ModelData,
    prior_fe_sd: float,
    prior_log_sd_sd: float,
    control: McmcControl,
) -> McmcRun:
    """Run the chains of a model that several_factor_terms accepts. McmcRun's sd holds the
    terms' SDs side by side (formula order), corr their correlations (each term's lower
    triangle, row by row); ranef_mean and ranef_cov are flat: the terms' posterior means of b
    (G_t, k_t) and covariances (G_t, k_t, k_t) from the draws, raveled and concatenated in
    formula order (unpack_ranef undoes it)."""
    started = time.perf_counter()
    rows = multi_rows(model)
    seed = control.seed
    sequence = seed_sequence(seed)
    children = sequence.spawn(control.chains)
    compiled = compiled_sampler() if control.use_compiled is not False else None
    if control.use_compiled and compiled is None:
        raise ValueError(
            "use_compiled=True needs the polyagamma package: pip install 'glmm-binomial[mcmc]'"
        )
    task = MultiTask(rows, control, prior_fe_sd, prior_log_sd_sd, compiled is not None)
    n_jobs = min(control.n_jobs, control.chains)
    outputs = run_chains_split(task, children, n_jobs, run_multi_chains, control.progress)
    beta = np.concatenate([o.beta for o in outputs])
    count = beta.shape[0] * beta.shape[1]
    means, covs = [], []
    for t in range(rows.n_terms):
        mean = np.concatenate([o.sum_b[t] for o in outputs]).sum(axis=0) / count
        outer = np.concatenate([o.sum_outer[t] for o in outputs]).sum(axis=0) / count
        means.append(mean.ravel())
        covs.append((outer - mean[:, :, None] * mean[:, None, :]).ravel())
    accepted = np.concatenate([o.accepted for o in outputs])
    sd = np.concatenate([o.sd for o in outputs])
    return McmcRun(
        beta=beta,
        sd=sd,
        corr=np.concatenate([o.corr for o in outputs]),
        ranef_mean=np.concatenate(means),
        ranef_cov=np.concatenate(covs),
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


def unpack_ranef(
    model: ModelData, flat_mean: FloatArray, flat_cov: FloatArray
) -> tuple[tuple[FloatArray, ...], tuple[FloatArray, ...]]:
    """sample_multi's flat ranef_mean and ranef_cov as per-term arrays (G_t, k_t) and
    (G_t, k_t, k_t)."""
    means, covs = [], []
    at_mean = at_cov = 0
    for block in model.blocks:
        g, k = block.n_levels, block.k
        means.append(flat_mean[at_mean : at_mean + g * k].reshape(g, k).copy())
        covs.append(flat_cov[at_cov : at_cov + g * k * k].reshape(g, k, k).copy())
        at_mean += g * k
        at_cov += g * k * k
    return tuple(means), tuple(covs)
