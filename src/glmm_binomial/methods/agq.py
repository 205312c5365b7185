"""Adaptive Gauss-Hermite quadrature (AGQ) for the deviance of a binomial GLMM.

Return the deviance -2 log L(theta, beta), binomial constants included, where the marginal
likelihood L = prod_groups int prod_i p(y_i | u) phi(u) du is evaluated by Gauss-Hermite rules
centred at the conditional mode u* and scaled by the conditional (Laplace) covariance H^{-1}:

    u = u* + R z,   R R' = H^{-1},
    int f(u) phi(u) du = |det R| int f(u* + R z) phi(u* + R z) / phi(z) phi(z) dz
                       ~ |det R| sum_q w_q f(u_q) exp(-|u_q|^2 / 2 + |z_q|^2 / 2).

With the 1-point rule (z = 0, w = 1) this is exactly the Laplace deviance of laplace.py. Which
rule applies follows from the grouping factors (blocks whose codes give the same partition of the
rows are one grouping factor with a block-diagonal Lambda, e.g. ``(1 + x || g)``):

* one grouping factor with a k-vector effect: a product rule over z in R^k with R = L_j^{-T}
  (L_j the Cholesky factor of the group's H block, from the PIRLS factor, no refactorization per
  node); a Smolyak sparse grid of Gauss-Hermite rules when n_agq^k exceeds
  ``QuadratureControl.max_product_nodes``. The gradient is exact (derived in
  ``_VectorRule.gradient``), including the dependence of the centre and scale on (theta, beta).
* nested grouping factors with a scalar effect at each level (``(1 | comm/mom)``): multilevel
  AGQ (Rabe-Hesketh, Skrondal and Pickles 2005). R is the factor of the leaf-first Cholesky
  elimination of H, which has no fill-in for nested factors: each level's effect is adapted at its
  conditional mode and SD given the effects of its ancestors (the Gaussian conditional of the
  Laplace approximation), and each inner group's integral sits inside its outer group's
  integral. Any depth D is handled; the cost per row is n_agq^D. The gradient is exact
  (derived in ``_NestedRule.gradient``: implicit differentiation through the mode, reverse mode
  through the elimination); ``QuadratureControl(nested_gradient="differences")`` keeps the
  central differences it replaced as a reference.
* crossed grouping factors: ValueError (the integral does not factorize by groups).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.special
from numpy.typing import NDArray

from glmm_binomial.arguments import positive_int
from glmm_binomial.diagnostics import BoundaryWarning, FitWarning
from glmm_binomial.family import Family
from glmm_binomial.methods.base import Start, checked_control, refuse_arguments
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.laplace import (
    Counters,
    LaplaceObjective,
    finish_fit,
    mode_at_end,
    rows_at_link_bound,
    with_prior_runaway_in_memory,
)
from glmm_binomial.methods.maximum_likelihood import LikelihoodMethod
from glmm_binomial.methods.penalty import (
    PenalizedObjective,
    Penalty,
    penalized_start,
    with_penalty,
)
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.priors import NO_PRIORS, Priors, parse_priors
from glmm_binomial.numerics.factor import Structure, nested_in
from glmm_binomial.numerics.optimize import (
    OptimizerControl,
    floored_factor,
    glm_start,
    search_with_basins,
    start_point,
)
from glmm_binomial.numerics.pirls import Mode, PirlsControl, WarmStart, find_mode

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class QuadratureControl:
    """Settings of the quadrature (recorded on the result's OptSummary.tolerances).

    max_product_nodes: largest product rule n_agq^k used unconditionally for a k-vector
        effect; above it a Smolyak sparse grid of level n_agq (exact for polynomials of total
        degree 2 n_agq - 1) is used when it has fewer nodes than the product rule.
    nested_gradient: gradient of the nested-factor deviance: "exact" (implicit differentiation
        through the mode and the leaf-first elimination, one evaluation's cost) or
        "differences" (central differences, 2 (n_theta + n_fixed) more evaluations; kept as a
        reference for the exact one).
    gradient_step: central-difference step of nested_gradient="differences", in units of theta
        and of whitened beta (beta = beta_glm + T delta, T T' the inverse GLM information).
    """

    max_product_nodes: int = 4096
    gradient_step: float = 1e-4
    nested_gradient: str = "exact"

    def __post_init__(self) -> None:
        if self.nested_gradient not in ("exact", "differences"):
            raise ValueError(
                f"nested_gradient must be 'exact' or 'differences', got {self.nested_gradient!r}"
            )


MAX_N_AGQ = 100
"""Largest n_agq the method accepts (lme4 refuses nAGQ > 100; beyond it the rule's outer weights
underflow and buy no accuracy)."""


def check_n_agq(n_agq: object, largest: int | None = None) -> int:
    """n_agq as an int, or ValueError: a positive integer, at most `largest` when given."""
    if isinstance(n_agq, int | np.integer) and not isinstance(n_agq, bool) and n_agq == 0:
        # lme4's nAGQ = 0 (beta inside PIRLS, a cruder approximation) is not one of ours.
        raise ValueError(
            "n_agq must be a positive integer, got 0: lme4's nAGQ = 0 (the fixed effects "
            "estimated inside PIRLS) is not available; method='laplace' is nAGQ = 1, and fast"
        )
    n = positive_int(n_agq, "n_agq")
    if largest is not None and n > largest:
        raise ValueError(
            f"n_agq must be at most {largest} (as lme4's nAGQ), got {n}; "
            "10 to 25 points are ample for one random effect per group"
        )
    return n


# --- Gauss-Hermite rules ---------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def gauss_hermite(n_agq: int) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights of the n_agq-point Gauss-Hermite rule for the N(0, 1) density.

    sum_q w_q f(z_q) = E f(Z), Z ~ N(0, 1), exactly for polynomials of degree <= 2 n_agq - 1.
    Nodes by Golub-Welsch (eigenvalues of the Jacobi matrix of the probabilists' Hermite
    polynomials), weights as Christoffel numbers 1 / sum_k p_k(z)^2 of the orthonormal
    polynomials (accurate also for the tiny outer weights), then symmetrized and normalized to
    sum to one. The arrays are read-only (cached)."""
    if n_agq < 1:
        raise ValueError(f"n_agq must be a positive integer, got {n_agq}")
    if n_agq == 1:
        nodes, weights = np.zeros(1), np.ones(1)
    else:
        off = np.sqrt(np.arange(1.0, n_agq))
        nodes = scipy.linalg.eigh_tridiagonal(np.zeros(n_agq), off, eigvals_only=True)
        nodes = 0.5 * (nodes - nodes[::-1])
        # Orthonormal Hermite polynomials p_k = He_k / sqrt(k!) by their three-term recurrence.
        p_prev, p = np.zeros(n_agq), np.ones(n_agq)
        total = p * p
        for k in range(1, n_agq):
            p_prev, p = p, (nodes * p - np.sqrt(k - 1.0) * p_prev) / np.sqrt(float(k))
            total = total + p * p
        weights = 1.0 / total
        weights = 0.5 * (weights + weights[::-1])
        weights = weights / np.sum(weights)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


@functools.lru_cache(maxsize=64)
def product_rule(n_agq: int, k: int) -> tuple[FloatArray, FloatArray]:
    """Tensor-product Gauss-Hermite rule for N(0, I_k): nodes (n_agq^k, k), weights."""
    x, w = gauss_hermite(n_agq)
    nodes = np.array(list(itertools.product(x, repeat=k)), dtype=np.float64).reshape(-1, k)
    weights = np.prod(np.array(list(itertools.product(w, repeat=k))).reshape(-1, k), axis=1)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


@functools.lru_cache(maxsize=64)
def sparse_grid(level: int, k: int) -> tuple[FloatArray, FloatArray]:
    """Smolyak sparse grid for N(0, I_k) built on i-point Gauss-Hermite rules (Heiss and
    Winschel 2008): sum over multi-indices i (i_j >= 1) with level <= |i| <= level + k - 1 of
    (-1)^(level + k - 1 - |i|) C(k - 1, level + k - 1 - |i|) times the tensor rule. Exact for
    polynomials of total degree <= 2 level - 1. Coincident nodes are merged; some weights are
    negative. Nodes (m, k), weights (m,)."""
    top = level + k - 1
    accumulated: dict[tuple[float, ...], float] = {}
    for index in itertools.product(range(1, level + 1), repeat=k):
        total = sum(index)
        if total < level or total > top:
            continue
        coefficient = (-1) ** (top - total) * math.comb(k - 1, top - total)
        rules = [gauss_hermite(i) for i in index]
        for combo in itertools.product(*[range(len(r[0])) for r in rules]):
            node = tuple(round(float(r[0][c]), 14) + 0.0 for r, c in zip(rules, combo, strict=True))
            weight = coefficient * math.prod(
                float(r[1][c]) for r, c in zip(rules, combo, strict=True)
            )
            accumulated[node] = accumulated.get(node, 0.0) + weight
    keys = sorted(accumulated)
    nodes = np.array(keys, dtype=np.float64).reshape(-1, k)
    weights = np.array([accumulated[key] for key in keys])
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


def multivariate_rule(
    n_agq: int, k: int, max_product_nodes: int
) -> tuple[FloatArray, FloatArray, str]:
    """The rule for a k-vector effect: the product rule up to max_product_nodes nodes; above
    it, the Smolyak grid if that has fewer nodes. Built on non-nested Gauss-Hermite rules the
    sparse grid is smaller only from k = 4 (low n_agq) or k = 5 on (e.g. k = 3, n_agq = 9:
    2097 sparse against 729 product nodes; k = 5, n_agq = 9: 28553 against 59049)."""
    if n_agq**k <= max_product_nodes or k == 1:
        nodes, weights = product_rule(n_agq, k)
        return nodes, weights, "product"
    nodes, weights = sparse_grid(n_agq, k)
    if nodes.shape[0] < n_agq**k:
        return nodes, weights, "sparse"
    nodes, weights = product_rule(n_agq, k)
    return nodes, weights, "product"


# --- grouping structure ----------------------------------------------------------------------


def _same_partition(a: IntArray, b: IntArray) -> bool:
    pairs = np.unique(np.stack([a, b]), axis=1).shape[1]
    return bool(pairs == np.unique(a).size == np.unique(b).size)


@dataclass(frozen=True)
class _Merged:
    """Blocks merged by grouping factor: one RandomBlock per distinct partition of the rows."""

    data: ModelData  # merged blocks, same response and fixed part
    members: tuple[tuple[int, ...], ...]  # original block indices per merged block
    column_offsets: tuple[tuple[int, ...], ...]  # their first column in the merged block

    def lambdas(self, original: ModelData, theta: FloatArray) -> list[FloatArray]:
        lams = original.lambdas(theta)
        return [scipy.linalg.block_diag(*[lams[t] for t in group]) for group in self.members]

    def lambda_change(
        self, original: ModelData, theta: FloatArray, last_theta: FloatArray
    ) -> list[FloatArray]:
        """Merged Lambda(theta) - Lambda(last_theta) (ModelData.lambda_change)."""
        changes = original.lambda_change(theta, last_theta)
        return [scipy.linalg.block_diag(*[changes[t] for t in group]) for group in self.members]


def _merge_blocks(data: ModelData) -> _Merged:
    groups: list[list[int]] = []
    for t, block in enumerate(data.blocks):
        for group in groups:
            if _same_partition(data.blocks[group[0]].codes, block.codes):
                group.append(t)
                break
        else:
            groups.append([t])
    blocks, offsets = [], []
    for group in groups:
        first = data.blocks[group[0]]
        sizes = [data.blocks[t].k for t in group]
        offsets.append(tuple(int(o) for o in np.cumsum([0, *sizes[:-1]])))
        blocks.append(
            RandomBlock(
                group=":".join(dict.fromkeys(data.blocks[t].group for t in group)),
                terms=tuple(term for t in group for term in data.blocks[t].terms),
                codes=first.codes,
                levels=first.levels,
                z=np.column_stack([data.blocks[t].z for t in group]),
            )
        )
    merged = ModelData(
        successes=data.successes,
        trials=data.trials,
        x=data.x,
        offset=data.offset,
        fixed_names=data.fixed_names,
        blocks=tuple(blocks),
        log_binomial_constant=data.log_binomial_constant,
        family=data.family,
    )
    return _Merged(merged, tuple(tuple(g) for g in groups), tuple(offsets))


def _block_modes(structure: Structure, data: ModelData, mode: Mode) -> list[FloatArray]:
    """Conditional modes u_t (n_levels x k) per block of `data`, from the factor's layout."""
    out: list[FloatArray] = [np.empty(0)] * len(data.blocks)
    out[structure.first] = mode.u1
    for t, offset in zip(structure.rest, structure.rest_offsets, strict=True):
        b = data.blocks[t]
        out[t] = mode.u2[offset : offset + b.n_levels * b.k].reshape(b.n_levels, b.k)
    return out


def _pack_block_modes(
    structure: Structure, data: ModelData, per_block: list[FloatArray]
) -> tuple[FloatArray, FloatArray]:
    """The inverse of _block_modes: per-block u_t (n_levels x k) into the factor's (u1, u2)."""
    u1 = per_block[structure.first]
    parts = [per_block[t].ravel() for t in structure.rest]
    u2 = np.concatenate(parts) if parts else np.zeros(0)
    return u1, u2


def _group_sum(codes: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Column sums of `values` (n x c) within groups: (n_groups x c), one bincount."""
    cols = values.shape[1]
    flat = (codes[:, None] * cols + np.arange(cols)[None, :]).ravel()
    sums = np.bincount(flat, weights=values.ravel(), minlength=n_groups * cols)
    return np.asarray(sums, dtype=np.float64).reshape(n_groups, cols)


def _indicator(codes: IntArray, n_groups: int) -> scipy.sparse.csr_matrix:
    """The n_groups x n 0/1 matrix of group membership (sums within groups as a product)."""
    n = codes.size
    return scipy.sparse.csr_matrix(
        (np.ones(n), (codes, np.arange(n))), shape=(n_groups, n), dtype=np.float64
    )


def _level_sums(codes: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Sums of an n-vector within groups: (n_groups,)."""
    return np.asarray(np.bincount(codes, weights=values, minlength=n_groups), dtype=np.float64)


def _logsumexp_rows(values: FloatArray, weights: FloatArray) -> FloatArray:
    """log sum_q weights_q exp(values[..., q]); weights may be negative (sparse grids)."""
    top = np.max(values, axis=-1, keepdims=True)
    total = np.sum(weights * np.exp(values - top), axis=-1)
    return np.asarray(np.log(total) + top[..., 0], dtype=np.float64)


# --- one grouping factor, k-vector effect ----------------------------------------------------


class _VectorRule:
    """AGQ over one grouping factor with a k-vector effect; nodes (m, k), weights (m,)."""

    def __init__(self, merged: _Merged, nodes: FloatArray, weights: FloatArray) -> None:
        self.merged = merged
        self.nodes = np.asarray(nodes)
        self.weights = np.asarray(weights)

    def _evaluate(self, mode: Mode, family: Family) -> dict[str, FloatArray]:
        data = self.merged.data
        g = data.blocks[0].codes
        n_levels = data.blocks[0].n_levels
        l1inv = mode.factor.l1inv  # L_j^{-1}; R_j = L_j^{-T}
        nodes = self.nodes
        # eta at node q: eta* + a_i' R_j z_q = eta* + (L_j^{-1} a_i)' z_q.
        c = np.einsum("icd,id->ic", l1inv[g], mode.a1)
        eta_q = mode.eta[:, None] + c @ nodes.T
        kernel = family.loglik_rows(eta_q, data.successes[:, None], data.trials[:, None])
        group_kernel = _group_sum(g, kernel, n_levels)
        u_q = mode.u1[:, None, :] + np.einsum("jba,mb->jma", l1inv, nodes)
        log_terms = (
            group_kernel
            - 0.5 * np.sum(u_q * u_q, axis=2)
            + 0.5 * np.sum(nodes * nodes, axis=1)[None, :]
        )
        log_sum = _logsumexp_rows(log_terms, self.weights)
        log_det_r = np.sum(np.log(np.diagonal(l1inv, axis1=1, axis2=2)), axis=1)
        return {
            "eta_q": eta_q,
            "u_q": u_q,
            "log_terms": log_terms,
            "log_sum": log_sum,
            "log_integral": log_sum + log_det_r,
        }

    def log_likelihood(self, mode: Mode, family: Family) -> float:
        """sum_j log L_j, without binomial constants (family: the data's family at the
        current parameters)."""
        return float(np.sum(self._evaluate(mode, family)["log_integral"]))

    def gradient(
        self, mode: Mode, family: Family
    ) -> tuple[float, FloatArray, FloatArray, FloatArray]:
        """log-likelihood A = sum_j log L_j and its exact gradient in Lambda (k x k) and beta.

        With pi_jq the normalized node weights, u_q = u* + R z_q, g_q = grad F(u_q) (F the
        penalized log-likelihood in u), and the mode and R moving with the parameters:
            dA = sum_q pi_q [dF|_u(u_q) + g_q'(du* + dR z_q)] - d log det L.
        du* = H^{-1} d(grad F)|_u (implicit differentiation of the mode equation) and, with
        M = sum_q pi_q g_q z_q', dR = -R dL' R, dL = L Phi(L^{-1} dH L^{-T}):
            sum_q pi_q g_q' dR z_q - d log det L = <P, dH>,
            P = -R sym(Phi(L' R M' R)) R' - H^{-1} / 2,
        and dH = sum_i dw_i a_i a_i' + w_i (da_i a_i' + a_i da_i') with dw_i = (dw_i / deta_i)
        deta_i (w_i (1 - 2 mu_i) deta_i for the logit link). Everything reduces to row sums and
        per-group k x k products. A family parameter p (log phi) adds
            dA/dp = sum_i [sum_q pi_q dl_i/dp(eta_iq) + (dw_i/dp) a_i' P a_i
                           + (a_i' v) dl_i'/dp],
        returned last (empty for a family without parameters)."""
        data = self.merged.data
        block = data.blocks[0]
        g, n_levels, k = block.codes, block.n_levels, block.k
        ev = self._evaluate(mode, family)
        l1inv, a, w, mu, rho = mode.factor.l1inv, mode.a1, mode.weights, mode.mu, mode.residual
        nodes = self.nodes
        # Normalized node weights per group.
        pi = self.weights[None, :] * np.exp(ev["log_terms"] - ev["log_sum"][:, None])
        r_q = family.residual(ev["eta_q"], data.successes[:, None], data.trials[:, None])
        pi_rows = pi[g]
        pr = pi_rows * r_q
        r_bar = np.sum(pr, axis=1)  # (n,)
        r_z = pr @ nodes  # (n, k): sum_q pi_q r_iq z_q
        u_q = ev["u_q"]

        def group_sum(values: FloatArray) -> FloatArray:
            flat = _group_sum(g, values.reshape(values.shape[0], -1), n_levels)
            return flat.reshape((n_levels, *values.shape[1:]))

        pi_u = np.einsum("jm,jmc->jc", pi, u_q)
        g_bar = group_sum(a * r_bar[:, None]) - pi_u
        big_m = group_sum(np.einsum("ia,ib->iab", a, r_z)) - np.einsum(
            "jm,jma,mb->jab", pi, u_q, nodes
        )
        r_mat = np.transpose(l1inv, (0, 2, 1))  # R_j = L_j^{-T}
        l_mat = np.linalg.inv(l1inv)
        y = np.einsum("jba,jbc->jac", l_mat, r_mat @ np.transpose(big_m, (0, 2, 1)) @ r_mat)
        phi_y = np.tril(y)
        phi_y[:, np.arange(k), np.arange(k)] *= 0.5
        sym = 0.5 * (phi_y + np.transpose(phi_y, (0, 2, 1)))
        hinv = r_mat @ l1inv
        p_mat = -np.einsum("jab,jbc,jdc->jad", r_mat, sym, r_mat) - 0.5 * hinv
        pa = np.einsum("iab,ib->ia", p_mat[g], a)
        slope = family.weight_slope(mode.eta, mu, w, data.successes, data.trials)
        apa = np.einsum("ia,ia->i", a, pa)
        s = slope * apa
        t = group_sum(a * s[:, None])
        v = np.einsum("jab,jb->ja", hinv, g_bar + t)
        av = np.einsum("ia,ia->i", a, v[g])
        e = r_bar + s - w * av
        grad_beta = data.x.T @ e
        u_star = mode.u1[g]
        # sum_q pi_q r_iq (R z_q) = R r_z_i.
        q = (
            e[:, None] * u_star
            + np.einsum("iab,ib->ia", r_mat[g], r_z)
            + rho[:, None] * v[g]
            + 2.0 * w[:, None] * pa
        )
        grad_lambda = block.z.T @ q
        grad_family = np.zeros(family.n_parameters)
        if family.n_parameters:
            loglik_p, residual_p, weights_p = family.parameter_rows(
                mode.eta, data.successes, data.trials
            )
            at_nodes = family.parameter_loglik_rows(
                ev["eta_q"], data.successes[:, None], data.trials[:, None]
            )
            grad_family[0] = (
                float(np.sum(pi_rows * at_nodes)) + float(weights_p @ apa) + float(residual_p @ av)
            )
        return float(np.sum(ev["log_integral"])), grad_lambda, grad_beta, grad_family


# --- nested grouping factors, scalar effect at each level ------------------------------------


@dataclass
class _NestedEvaluation:
    """The nested quadrature at one mode, with what its gradient reuses (see _NestedRule)."""

    loglik: float
    u_star: list[FloatArray]  # conditional modes per level (n_d,)
    lam: list[float]  # lambda_d, the scalar Lambda of each level
    a: list[FloatArray]  # Z Lambda per level, (n,) each
    diag: list[FloatArray]  # eliminated precision of each node given its ancestors (n_d,)
    off: list[list[FloatArray]]  # eliminated coupling to the level-e ancestor (n_d,)
    sd: list[FloatArray]  # diag^{-1/2}
    deltas: list[FloatArray]  # u - u* at each node combination (n_d, n_q^(d+1))
    residual_q: FloatArray  # l'(eta) at every row and leaf combination (n, n_q^depth)
    conditional: list[FloatArray]  # (n_d, n_q^d, n_q): pi(q_d | the ancestors' nodes)
    parameter_q: FloatArray | None = None  # dl/dp at every row and combination (family's p)
    # Rows with a combination at or past `bound` (_evaluate's; counted only when given).
    rows_past_bound: int = 0


class _NestedRule:
    """Multilevel AGQ over a chain of nested factors (levels ordered outermost first).

    Quantities of level d over node combinations are arrays (n_d, n_q^(d+1)) whose columns are
    the combinations (q_0, ..., q_d) of the node's ancestors' nodes and its own in C order
    (q_0 slowest): a deeper level's columns extend its parent's by its own node, fastest.
    Row arrays over combinations (n, n_q^depth) are the hot part; their sums within nodes are
    products with sparse 0/1 matrices, and with the rows sorted by the innermost level
    (AgqObjective sorts them) a node's values are copied to its rows by np.repeat."""

    def __init__(
        self, merged: _Merged, order: list[int], nodes: FloatArray, weights: FloatArray
    ) -> None:
        self.merged = merged
        self.order = order  # merged block indices, outermost first
        self.depth = len(order)
        self.nodes = np.asarray(nodes)
        self.log_weights = np.log(np.asarray(weights))
        blocks = [merged.data.blocks[t] for t in order]
        self.codes = [b.codes for b in blocks]
        self.n_levels = [b.n_levels for b in blocks]
        self.z = [b.z[:, 0] for b in blocks]
        # Random intercepts (z = 1 at every level): eta moves by one shift per leaf node.
        self.intercepts = all(bool(np.all(z == 1.0)) for z in self.z)
        # ancestors[d][e]: for each node at level d, its ancestor at level e < d.
        self.ancestors: list[list[IntArray]] = []
        for d, codes_d in enumerate(self.codes):
            row = []
            for e in range(d):
                anc = np.zeros(self.n_levels[d], dtype=np.intp)
                anc[codes_d] = self.codes[e]
                row.append(anc)
            self.ancestors.append(row)
        leaf = self.codes[-1]
        counts = np.bincount(leaf, minlength=self.n_levels[-1])
        contiguous = bool(np.all(leaf[1:] >= leaf[:-1])) and bool(np.all(counts > 0))
        self._leaf_counts: IntArray | None = counts if contiguous else None
        # Sums within groups of arrays over node combinations as products with sparse 0/1
        # matrices: one pass, far faster than np.add.reduceat over many short segments or
        # np.bincount on flattened indices.
        self._leaf_matrix = _indicator(leaf, self.n_levels[-1])
        self._up = [
            [_indicator(self.ancestors[d][e], self.n_levels[e]) for e in range(d)]
            for d in range(self.depth)
        ]
        # Work arrays (n, n_q^depth) reused from one evaluation to the next: fresh pages of
        # arrays this large cost as much as the arithmetic.
        self._scratch: tuple[FloatArray, FloatArray, FloatArray] | None = None

    def _work_arrays(self, shape: tuple[int, int]) -> tuple[FloatArray, FloatArray, FloatArray]:
        if self._scratch is None or self._scratch[0].shape != shape:
            self._scratch = (np.empty(shape), np.empty(shape), np.empty(shape))
        return self._scratch

    def _scatter(self, d: int, e: int, values: FloatArray) -> FloatArray:
        """Sums of per-node values of level d within their level-e ancestors: (n_e,)."""
        return _level_sums(self.ancestors[d][e], values, self.n_levels[e])

    def _sum_up(self, d: int, e: int, values: FloatArray) -> FloatArray:
        """Sums of per-node rows of level d (n_d, c) within their level-e ancestors: (n_e, c)."""
        return np.asarray(self._up[d][e] @ values, dtype=np.float64)

    def _leaf_sum(self, values: FloatArray) -> FloatArray:
        """Sums of row values (n, c) within the innermost level's nodes: (n_leaf, c)."""
        return np.asarray(self._leaf_matrix @ values, dtype=np.float64)

    def _leaf_rows(self, values: FloatArray, out: FloatArray | None = None) -> FloatArray:
        """Per-row copies of values of the innermost level's nodes: (n, ...)."""
        if self._leaf_counts is not None and out is None:
            return np.repeat(values, self._leaf_counts, axis=0)
        return np.take(values, self.codes[-1], axis=0, out=out)

    def _to_leaf(self, d: int, values: FloatArray) -> FloatArray:
        """Level-d node values (n_d, n_q^(d+1)) at each leaf node's combinations."""
        leaf = self.depth - 1
        n_q = self.nodes.size
        if d == leaf:
            return values
        return np.repeat(values[self.ancestors[leaf][d]], n_q ** (leaf - d), axis=1)

    def _from_leaf(self, d: int, values: FloatArray) -> FloatArray:
        """Leaf-node values over combinations (n_leaf, n_q^depth) summed over the deeper
        levels' nodes and within level d's nodes: (n_d, n_q^(d+1))."""
        leaf = self.depth - 1
        n_q = self.nodes.size
        if d == leaf:
            return values
        folded = np.sum(values.reshape(values.shape[0], n_q ** (d + 1), -1), axis=2)
        return self._sum_up(leaf, d, folded)

    # --- H = A' W A + I in the ancestor pattern, its leaf-first elimination and solves -------

    def _precision(
        self, w: FloatArray, a: list[FloatArray]
    ) -> tuple[list[FloatArray], list[list[FloatArray]]]:
        """H's entries: diag[d] (n_d,), and off[d][e] (n_d,) between each level-d node and its
        level-e ancestor (e < d); every other entry is zero (nested factors)."""
        diag = [
            _level_sums(self.codes[d], w * a[d] * a[d], self.n_levels[d]) + 1.0
            for d in range(self.depth)
        ]
        off = [
            [_level_sums(self.codes[d], w * a[d] * a[e], self.n_levels[d]) for e in range(d)]
            for d in range(self.depth)
        ]
        return diag, off

    def _eliminate(
        self, diag: list[FloatArray], off: list[list[FloatArray]]
    ) -> tuple[list[FloatArray], list[list[FloatArray]]]:
        """Leaf-first elimination, without fill-in: each level's entries after the Schur
        complements of all deeper levels, i.e. in the Gaussian of precision H, the precision of
        u_d given its ancestors (diag) and its coupling to them (off). Inputs are not changed."""
        diag = list(diag)
        off = [list(row) for row in off]
        for d in range(self.depth - 1, 0, -1):
            for e in range(d):
                for f in range(e + 1):
                    update = self._scatter(d, e, off[d][e] * off[d][f] / diag[d])
                    if f == e:
                        diag[e] = diag[e] - update
                    else:
                        # off[e][f] is indexed by level-e nodes.
                        off[e][f] = off[e][f] - update
        return diag, off

    def _solve(
        self, diag: list[FloatArray], off: list[list[FloatArray]], rhs: list[FloatArray]
    ) -> list[FloatArray]:
        """H^{-1} rhs, per level, from the eliminated entries: the right-hand side is
        eliminated leaf-first, then the levels are back-substituted root-first."""
        b = list(rhs)
        for d in range(self.depth - 1, 0, -1):
            ratio = b[d] / diag[d]
            for e in range(d):
                b[e] = b[e] - self._scatter(d, e, off[d][e] * ratio)
        x: list[FloatArray] = []
        for d in range(self.depth):
            value = b[d]
            for e in range(d):
                value = value - off[d][e] * x[e][self.ancestors[d][e]]
            x.append(value / diag[d])
        return x

    def mode_change(
        self,
        mode: Mode,
        structure: Structure,
        lambdas: list[FloatArray],
        d_lambdas: list[FloatArray],
        d_beta: FloatArray,
    ) -> list[FloatArray]:
        """First-order change of the conditional mode per level (n_d,) when (Lambda, beta) at
        `mode` move by (d_lambdas, d_beta): the implicit function theorem on the mode equation,
        H du = dA' (k - m mu) - A' W (X dbeta + dA u*), solved by the leaf-first elimination."""
        data = self.merged.data
        u_all = _block_modes(structure, data, mode)
        u_star = [u_all[t][:, 0] for t in self.order]
        lam = [float(lambdas[t][0, 0]) for t in self.order]
        d_lam = [float(d_lambdas[t][0, 0]) for t in self.order]
        a = [self.z[d] * lam[d] for d in range(self.depth)]
        w = mode.weights
        deta = data.x @ d_beta
        for d in range(self.depth):
            deta = deta + self.z[d] * d_lam[d] * u_star[d][self.codes[d]]
        rhs = [
            _level_sums(
                self.codes[d],
                self.z[d] * d_lam[d] * mode.residual - a[d] * w * deta,
                self.n_levels[d],
            )
            for d in range(self.depth)
        ]
        diag, off = self._eliminate(*self._precision(w, a))
        return self._solve(diag, off, rhs)

    # --- the nested quadrature ---------------------------------------------------------------

    def _evaluate(
        self,
        mode: Mode,
        structure: Structure,
        lambdas: list[FloatArray],
        family: Family,
        bound: float | None = None,
    ) -> _NestedEvaluation:
        data = self.merged.data
        depth = self.depth
        u_all = _block_modes(structure, data, mode)
        u_star = [u_all[t][:, 0] for t in self.order]
        lam = [float(lambdas[t][0, 0]) for t in self.order]
        a = [self.z[d] * lam[d] for d in range(depth)]
        diag, off = self._eliminate(*self._precision(mode.weights, a))
        sd = [1.0 / np.sqrt(s) for s in diag]
        x = self.nodes
        n_q = x.size
        # u = u* + R z level by level: delta_d = sd_d z_d + sum_e c_de delta_e with
        # c_de = -off[d][e] / diag[d] (u_d's conditional mean given its ancestors moves so).
        deltas: list[FloatArray] = []
        for d in range(depth):
            delta = np.tile(x, n_q**d)[None, :] * sd[d][:, None]
            for e in range(d):
                coefficient = -off[d][e] / diag[d]
                parent = np.repeat(deltas[e][self.ancestors[d][e]], n_q ** (d - e), axis=1)
                parent *= coefficient[:, None]
                delta += parent
            deltas.append(delta)
        eta_q, *scratch = self._work_arrays((data.n_obs, n_q**depth))
        if self.intercepts:
            shift = lam[depth - 1] * deltas[depth - 1]
            for d in range(depth - 1):
                shift += lam[d] * self._to_leaf(d, deltas[d])
            self._leaf_rows(shift, out=eta_q)
            eta_q += mode.eta[:, None]
        else:
            eta_q[:] = mode.eta[:, None]
            for d in range(depth):
                eta_q += a[d][:, None] * self._leaf_rows(self._to_leaf(d, deltas[d]))
        parameter_q = None
        if family.n_parameters:
            parameter_q = family.parameter_loglik_rows(
                eta_q, data.successes[:, None], data.trials[:, None]
            )
        # eta_q is a work array: the rows at the bound are counted here, when asked
        # (AgqObjective.rows_past_bound at the estimates), not in every evaluation.
        past = 0 if bound is None else rows_at_link_bound(family, np.max(eta_q, axis=1))
        # Row log-likelihood (in eta_q's place) and its derivative l' for the gradient.
        loglik_q, residual_q = family.loglik_and_residual_rows(
            eta_q, data.successes[:, None], data.trials[:, None], (scratch[0], scratch[1])
        )
        total = self._leaf_sum(loglik_q)
        # log w_q + z_q^2 / 2: the node weight and the N(0, 1) density the rule divides out.
        node_terms = 0.5 * x * x + self.log_weights
        conditional: list[FloatArray] = [np.empty(0)] * depth
        integral = np.empty(0)
        for d in range(depth - 1, -1, -1):
            # total - u_d^2 / 2 + node terms, in place in one array.
            terms = u_star[d][:, None] + deltas[d]
            terms *= terms
            terms *= -0.5
            terms += total
            terms += np.tile(node_terms, n_q**d)[None, :]
            terms = terms.reshape(self.n_levels[d], n_q**d, n_q)
            top = np.max(terms, axis=2, keepdims=True)
            terms -= top
            np.exp(terms, out=terms)
            sums = np.sum(terms, axis=2, keepdims=True)
            terms /= sums
            conditional[d] = terms
            integral = (np.log(sums) + top)[:, :, 0] + np.log(sd[d])[:, None]
            if d > 0:
                total = self._sum_up(d, d - 1, integral)
        return _NestedEvaluation(
            float(np.sum(integral)),
            u_star,
            lam,
            a,
            diag,
            off,
            sd,
            deltas,
            residual_q,
            conditional,
            parameter_q,
            past,
        )

    def log_likelihood(
        self, mode: Mode, structure: Structure, lambdas: list[FloatArray], family: Family
    ) -> float:
        """sum over outermost groups of log L_c, without binomial constants."""
        return self._evaluate(mode, structure, lambdas, family).loglik

    def gradient(
        self, mode: Mode, structure: Structure, lambdas: list[FloatArray], family: Family
    ) -> tuple[float, FloatArray, FloatArray, FloatArray]:
        """log-likelihood A = sum_c log L_c and its exact gradient in (lambda_d) and beta.

        The nested sums are a product rule over each outer group's whole subtree (by
        distributivity), u = u* + R z with R from the leaf-first elimination, so as in
        _VectorRule.gradient
            dA = E_pi[dF|_u(u_q)] + E_pi[g_q]' du* + (the change through R: sd and c).
        E_pi over the normalized node weights needs each node combination's marginal weight
        (prob[d]: the product of the conditional weights along the path). The change through
        R is taken in reverse mode: the adjoints of delta (leaf to root through the c's), of
        (sd, c), of the eliminated entries of H and, back through the Schur updates, of H's
        own entries, which give a symmetric P_i per row with dA = <P, dH>; dH = sum_i dw_i
        a_i a_i' + w_i (da_i a_i' + a_i da_i'), dw_i = w_i (1 - 2 mu_i) deta_i, and du* comes
        from the mode equation (one more solve with H). Loops over levels only. A family
        parameter p adds dA/dp as _VectorRule.gradient's, returned last (empty without)."""
        data = self.merged.data
        depth, x = self.depth, self.nodes
        n_q = x.size
        ev = self._evaluate(mode, structure, lambdas, family)
        u_star, lam, a, diag, off, sd, deltas = (
            ev.u_star,
            ev.lam,
            ev.a,
            ev.diag,
            ev.off,
            ev.sd,
            ev.deltas,
        )
        w, mu, rho = mode.weights, mode.mu, mode.residual
        # Marginal weight of each node combination of each level.
        prob: list[FloatArray] = []
        for d in range(depth):
            conditional = ev.conditional[d]
            if d > 0:
                conditional = prob[d - 1][self.ancestors[d][d - 1]][:, :, None] * conditional
            prob.append(conditional.reshape(self.n_levels[d], n_q ** (d + 1)))
        leaf = depth - 1
        # r_q = l'(eta_q) (k - m mu_q), then pr = pi r_q; r_bar its sum over the combinations.
        r_q = ev.residual_q
        prob_rows = self._leaf_rows(prob[leaf], out=self._work_arrays(r_q.shape)[0])
        r_bar = np.einsum("ic,ic->i", prob_rows, r_q)
        # zp[d] = sum over level d's rows i and the deeper levels' nodes of z_di pi r_q.
        leaf_r = self._leaf_sum(r_q) if self.intercepts else None
        zp = []
        for d in range(depth):
            summed = leaf_r if leaf_r is not None else self._leaf_sum(self.z[d][:, None] * r_q)
            zp.append(self._from_leaf(d, prob[leaf] * summed))
        u_q = [u_star[d][:, None] + deltas[d] for d in range(depth)]
        # Adjoint of delta_d: directly through eta_q and -u_d^2 / 2, then (below, leaf first)
        # through the deeper levels' delta_f = ... + c_fd delta_d.
        adjoint = [lam[d] * zp[d] - prob[d] * u_q[d] for d in range(depth)]
        sd_bar: list[FloatArray] = [np.empty(0)] * depth
        c_bar: list[list[FloatArray]] = [[np.empty(0)] * d for d in range(depth)]
        for d in range(depth - 1, -1, -1):
            n_d = self.n_levels[d]
            for e in range(d):
                folded = np.sum(adjoint[d].reshape(n_d, n_q ** (e + 1), n_q ** (d - e)), axis=2)
                anc = self.ancestors[d][e]
                c_bar[d][e] = np.sum(folded * deltas[e][anc], axis=1)
                coefficient = -off[d][e] / diag[d]
                adjoint[e] = adjoint[e] + self._sum_up(d, e, coefficient[:, None] * folded)
            # log sd_d adds 1 / sd_d (the marginal weights of the parent's combinations sum
            # to one).
            sd_bar[d] = np.sum(adjoint[d].reshape(n_d, n_q**d, n_q), axis=1) @ x + 1.0 / sd[d]
        # To the eliminated entries: sd = diag^{-1/2}, c = -off / diag.
        diag_bar = [-0.5 * sd_bar[d] * sd[d] ** 3 for d in range(depth)]
        off_bar = [[-c_bar[d][e] / diag[d] for e in range(d)] for d in range(depth)]
        for d in range(depth):
            for e in range(d):
                diag_bar[d] = diag_bar[d] + c_bar[d][e] * off[d][e] / diag[d] ** 2
        # Back through the Schur updates (eliminated leaf first, so reversed root first); an
        # update subtracts off[d][e] off[d][f] / diag[d] with the level-d values final.
        for d in range(1, depth):
            for e in range(d):
                for f in range(e + 1):
                    target = (diag_bar[e] if f == e else off_bar[e][f])[self.ancestors[d][e]]
                    ratio_e = off[d][e] / diag[d]
                    ratio_f = off[d][f] / diag[d]
                    off_bar[d][e] = off_bar[d][e] - target * ratio_f
                    off_bar[d][f] = off_bar[d][f] - target * ratio_e
                    diag_bar[d] = diag_bar[d] + target * ratio_e * ratio_f
        # Per row: P_i a_i with P_i[d, d] = diag_bar, P_i[d, e] = P_i[e, d] = off_bar[d][e] / 2.
        rows_off = [[off_bar[d][e][self.codes[d]] for e in range(d)] for d in range(depth)]
        p_a = []
        for d in range(depth):
            value = diag_bar[d][self.codes[d]] * a[d]
            for e in range(depth):
                if e != d:
                    value = value + 0.5 * rows_off[max(d, e)][min(d, e)] * a[e]
            p_a.append(value)
        quadratic = sum(a[d] * p_a[d] for d in range(depth))
        s = family.weight_slope(mode.eta, mu, w, data.successes, data.trials) * quadratic
        # v = H^{-1} (the total derivative of A in u*, with the scale held).
        g_u = [
            _level_sums(self.codes[d], a[d] * (r_bar + s), self.n_levels[d])
            - np.sum(prob[d] * u_q[d], axis=1)
            for d in range(depth)
        ]
        v = self._solve(diag, off, g_u)
        v_rows = [v[d][self.codes[d]] for d in range(depth)]
        e_row = r_bar + s - w * sum(a[d] * v_rows[d] for d in range(depth))
        grad_beta = data.x.T @ e_row
        grad_lambda = np.empty(depth)
        for d in range(depth):
            q = e_row * u_star[d][self.codes[d]] + rho * v_rows[d] + 2.0 * w * p_a[d]
            # sum_i z_di sum_q pi r_iq delta_d: zp[d] already holds the row sums.
            grad_lambda[d] = float(self.z[d] @ q) + float(np.sum(zp[d] * deltas[d]))
        grad_family = np.zeros(family.n_parameters)
        if family.n_parameters:
            assert ev.parameter_q is not None
            loglik_p, residual_p, weights_p = family.parameter_rows(
                mode.eta, data.successes, data.trials
            )
            av = sum(a[d] * v_rows[d] for d in range(depth))
            grad_family[0] = (
                float(np.einsum("ic,ic->", prob_rows, ev.parameter_q))
                + float(weights_p @ quadratic)
                + float(residual_p @ av)
            )
        return ev.loglik, grad_lambda, grad_beta, grad_family


# --- the objective ---------------------------------------------------------------------------


@dataclass
class AgqObjective:
    """Deviance by n_agq-point adaptive Gauss-Hermite quadrature, PIRLS warm-started.

    deviance(theta, beta) = -2 log L(theta, beta), binomial constants included (the same scale
    as LaplaceObjective; with n_agq = 1 the two agree). ``mode`` returns the conditional mode in
    the layout of ``self.merged.data`` (blocks on the same grouping factor merged; with nested
    factors, rows sorted by the innermost level's codes)."""

    data: ModelData
    n_agq: int
    pirls_control: PirlsControl = field(default_factory=PirlsControl)
    quadrature_control: QuadratureControl = field(default_factory=QuadratureControl)
    optimizer_control: OptimizerControl = field(default_factory=OptimizerControl)

    def __post_init__(self) -> None:
        self.n_agq = check_n_agq(self.n_agq)
        if not self.data.blocks:
            raise ValueError("method='agq' needs at least one random-effect term")
        self.merged = _merge_blocks(self.data)
        self.counters = Counters()
        self._vector: _VectorRule | None = None
        self._nested: _NestedRule | None = None
        if len(self.merged.data.blocks) == 1:
            k = self.merged.data.blocks[0].k
            nodes, weights, self.rule_kind = multivariate_rule(
                self.n_agq, k, self.quadrature_control.max_product_nodes
            )
            self._vector = _VectorRule(self.merged, nodes, weights)
            self.n_nodes = int(nodes.shape[0])
        else:
            order = self._nesting_order()
            # Rows sorted by the innermost level make its sums over rows contiguous segments
            # (the deviance does not depend on the order of the rows).
            leaf = self.merged.data.blocks[order[-1]].codes
            if np.any(leaf[1:] < leaf[:-1]):
                rows = np.argsort(leaf, kind="stable")
                self.merged = dataclasses.replace(self.merged, data=self.merged.data.take(rows))
            x, w = gauss_hermite(self.n_agq)
            self._nested = _NestedRule(self.merged, order, x, w)
            self.rule_kind = f"nested depth {len(order)}"
            self.n_nodes = self.n_agq ** len(order)
            if self.quadrature_control.nested_gradient == "differences":
                # Floored as the search's whitening: a separated column's near-zero
                # information would send a difference step across its diverging path.
                _, info_factor = glm_start(self.data, self.optimizer_control)
                info_factor = floored_factor(info_factor, self.optimizer_control)
                self._info_factor = info_factor
                self._transform = scipy.linalg.solve_triangular(
                    info_factor, np.eye(self.data.n_fixed), lower=False
                )
        self.structure = Structure(self.merged.data)
        st = self.structure
        # The last converged mode; with its parameters for nested factors and the exact
        # gradient, whose first-order move (mode_change) starts the next search.
        self.warm = WarmStart.zeros(st.n1, st.k1, st.q2)

    def _nesting_order(self) -> list[int]:
        merged = self.merged.data
        names = [f"(... | {b.group})" for b in merged.blocks]
        for t, b in enumerate(merged.blocks):
            if b.k != 1:
                raise ValueError(
                    "method='agq' with several grouping factors needs a scalar effect at each "
                    f"level; {names[t]} has {b.k} columns {b.terms}. Use method='laplace'."
                )
        counts = [np.unique(b.codes).size for b in merged.blocks]
        order = sorted(range(len(merged.blocks)), key=lambda t: counts[t])
        for outer, inner in itertools.pairwise(order):
            inner_block = merged.blocks[inner]
            if not nested_in(inner_block.codes, merged.blocks[outer].codes, inner_block.n_levels):
                raise ValueError(
                    "method='agq' needs a single grouping factor or grouping factors nested in "
                    f"one another; {names[inner]} and {names[outer]} are crossed (not nested), "
                    "so the likelihood does not factorize by groups. Use method='laplace'."
                )
        return order

    def reset(self) -> None:
        """Forget the warm start."""
        self.warm = self.warm.reset()

    def release(self) -> None:
        """Keep only the last mode's u as the warm start (as LaplaceObjective.release)."""
        self.warm = self.warm.released()

    @property
    def _last(self) -> tuple[FloatArray, FloatArray, Mode] | None:
        return self.warm.last

    def mode_change(
        self, mode: Mode, theta: FloatArray, last_theta: FloatArray, d_beta: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Nested factors: the first-order change (du1, du2) of the mode at `mode` (found at
        last_theta) when theta moves to `theta` and beta by d_beta (_NestedRule.mode_change:
        the leaf-first elimination), in the factor's layout (pirls.WarmStart uses it)."""
        assert self._nested is not None
        d_lambdas = self.merged.lambda_change(self.data, theta, last_theta)
        change = self._nested.mode_change(mode, self.structure, mode.lambdas, d_lambdas, d_beta)
        data = self.merged.data
        per_block: list[FloatArray] = [np.empty(0)] * len(data.blocks)
        for t, c in zip(self._nested.order, change, strict=True):
            per_block[t] = c[:, None]
        return _pack_block_modes(self.structure, data, per_block)

    def _predicted_start(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Nested factors with the exact gradient: the last mode moved to first order to the
        new parameters (as LaplaceObjective's warm start; it saves about one Newton step per
        evaluation). Otherwise, and when that moves some u by more than
        PirlsControl.max_predicted_step, the last mode itself."""
        change = self.mode_change if self._nested is not None else None
        return self.warm.start(theta, beta, change, self.pirls_control)

    def family_at(self, theta: FloatArray) -> Family:
        """The data's family at theta's family parameters."""
        return self.data.family_at(theta)

    def _data_at(self, theta: FloatArray) -> ModelData:
        """The merged rows with the family at theta's family parameters."""
        data = self.merged.data
        if not data.family.n_parameters:
            return data
        return dataclasses.replace(data, family=self.family_at(theta))

    def mode(self, theta: FloatArray, beta: FloatArray) -> Mode:
        """Conditional mode at (theta, beta) in the merged layout, from the previous mode."""
        data = self.merged.data
        eta_fixed = data.x @ beta + data.offset
        u1, u2 = self._predicted_start(theta, beta)
        mode = find_mode(
            self.structure,
            self._data_at(theta),
            eta_fixed,
            self.merged.lambdas(self.data, theta),
            u1,
            u2,
            self.pirls_control,
        )
        self.counters.record(mode)
        keep = self._nested is not None and self.quadrature_control.nested_gradient == "exact"
        self.warm = self.warm.after(theta, beta, mode, keep_mode=keep)
        return mode

    def _log_likelihood(self, mode: Mode, theta: FloatArray) -> float:
        family = self.family_at(theta)
        if self._vector is not None:
            return self._vector.log_likelihood(mode, family)
        assert self._nested is not None
        return self._nested.log_likelihood(
            mode, self.structure, self.merged.lambdas(self.data, theta), family
        )

    def rows_past_bound(self, theta: FloatArray, beta: FloatArray) -> int:
        """How many rows some node of the quadrature at (theta, beta) takes to the link's
        bound (family.eta_upper: the log link's eta = 0, mu = 1; within LINK_BOUND_TOL, by
        laplace.rows_at_link_bound on each row's largest node) or past it, where the row's
        likelihood is taken as 0 (family.loglik_rows: -inf); 0 for a link without a bound.
        A search can end on the bound itself: at a row of all successes the
        likelihood rises as a node nears it and drops to 0 beyond (fuzz_dask_log 37: a node
        at eta = -1.2e-9)."""
        family = self.family_at(np.asarray(theta, dtype=np.float64))
        if not np.isfinite(family.eta_upper):
            return 0
        mode = mode_at_end(self, theta, beta)
        # At an end on the bound the quadrature's sums meet -inf - -inf: only eta is read.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self._vector is not None:
                eta_q = self._vector._evaluate(mode, family)["eta_q"]
                return rows_at_link_bound(family, np.max(eta_q, axis=1))
            assert self._nested is not None
            lambdas = self.merged.lambdas(self.data, theta)
            evaluation = self._nested._evaluate(
                mode, self.structure, lambdas, family, family.eta_upper
            )
            return evaluation.rows_past_bound

    def deviance(self, theta: FloatArray, beta: FloatArray) -> float:
        """AGQ deviance -2 log L (binomial constants included)."""
        theta = np.asarray(theta, dtype=np.float64)
        mode = self.mode(theta, beta)
        loglik = self._log_likelihood(mode, theta) + self.data.log_binomial_constant
        return -2.0 * loglik

    def deviance_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """Deviance and its gradient in theta and beta: exact, or for nested factors with
        QuadratureControl.nested_gradient = "differences", central differences."""
        theta = np.asarray(theta, dtype=np.float64)
        beta = np.asarray(beta, dtype=np.float64)
        self.counters.gradients += 1
        if self._vector is not None:
            return self._exact(theta, beta)
        if self.quadrature_control.nested_gradient == "exact":
            return self._exact_nested(theta, beta)
        return self._differences(theta, beta)

    def _exact(self, theta: FloatArray, beta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        assert self._vector is not None
        mode = self.mode(theta, beta)
        loglik, grad_lambda, grad_beta, grad_family = self._vector.gradient(
            mode, self.family_at(theta)
        )
        deviance = -2.0 * (loglik + self.data.log_binomial_constant)
        grad_theta = np.zeros(self.data.n_theta)
        grad_theta[self.data.family_slice] = -2.0 * grad_family
        slices = self.data.theta_slices()
        lambdas = self.data.lambdas(theta)
        for t, offset in zip(self.merged.members[0], self.merged.column_offsets[0], strict=True):
            block = self.data.blocks[t]
            own = grad_lambda[offset : offset + block.k, offset : offset + block.k]
            grad_theta[slices[t]] = -2.0 * block.covariance.theta_gradient(lambdas[t], own)
        return deviance, grad_theta, -2.0 * grad_beta

    def _exact_nested(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        assert self._nested is not None
        mode = self.mode(theta, beta)
        loglik, grad_lambda, grad_beta, grad_family = self._nested.gradient(
            mode, self.structure, self.merged.lambdas(self.data, theta), self.family_at(theta)
        )
        deviance = -2.0 * (loglik + self.data.log_binomial_constant)
        grad_theta = np.zeros(self.data.n_theta)
        grad_theta[self.data.family_slice] = -2.0 * grad_family
        slices = self.data.theta_slices()
        # Each level is one original block with a scalar effect (Lambda_t 1 x 1).
        lambdas = self.data.lambdas(theta)
        for d, merged_index in enumerate(self._nested.order):
            (t,) = self.merged.members[merged_index]
            block_gradient = np.array([[grad_lambda[d]]])
            structure = self.data.blocks[t].covariance
            grad_theta[slices[t]] = -2.0 * structure.theta_gradient(lambdas[t], block_gradient)
        return deviance, grad_theta, -2.0 * grad_beta

    def _differences(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        step = self.quadrature_control.gradient_step
        value = self.deviance(theta, beta)
        start = self.warm
        n_theta = self.data.n_theta
        # Central differences along theta's axes and the whitened beta directions; every
        # evaluation starts PIRLS from the centre's mode so the differences are smooth.
        grad = np.zeros(n_theta + self.data.n_fixed)
        for j in range(len(grad)):
            values = []
            for sign in (1.0, -1.0):
                if j < n_theta:
                    th = theta.copy()
                    th[j] += sign * step
                    be = beta
                else:
                    th = theta
                    be = beta + sign * step * self._transform[:, j - n_theta]
                self.warm = start
                values.append(self.deviance(th, be))
            grad[j] = (values[0] - values[1]) / (2.0 * step)
        self.warm = start
        grad_beta = self._info_factor.T @ grad[n_theta:]
        return value, grad[:n_theta], grad_beta


def loglik_label(n_agq: int, rule_kind: str) -> str:
    """How an AGQ fit's log-likelihood was computed (the result and the summary say so)."""
    return f"adaptive Gauss-Hermite quadrature, n_agq={n_agq} ({rule_kind} rule)"


def quadrature_tolerances(
    n_agq: int, n_nodes: int, quadrature_control: QuadratureControl
) -> dict[str, float | str]:
    """The quadrature's settings as OptSummary.tolerances records them."""
    return {
        "n_agq": float(n_agq),
        "quadrature_nodes": float(n_nodes),
        "max_product_nodes": float(quadrature_control.max_product_nodes),
        "gradient_step": quadrature_control.gradient_step,
        "nested_gradient": quadrature_control.nested_gradient,
    }


def fit_agq(
    data: ModelData,
    n_agq: int,
    control: OptimizerControl | None = None,
    pirls_control: PirlsControl | None = None,
    quadrature_control: QuadratureControl | None = None,
    start: tuple[FloatArray, FloatArray] | None = None,
    penalty: Penalty | None = None,
) -> FitOutput:
    """Maximum-likelihood fit with the deviance by n_agq-point adaptive Gauss-Hermite quadrature,
    on data's columns as they are; `start`: (theta, beta) to start from; with a penalty
    (methods.penalty), the posterior mode (deviance plus prior deviance minimized).

    loglik is the full marginal log-likelihood (binomial constants included), on the scale of
    fit_laplace's; ranef are the conditional modes at the estimates (as lme4)."""
    control = control or OptimizerControl()
    quadrature_control = quadrature_control or QuadratureControl()
    objective = AgqObjective(
        data, n_agq, pirls_control or PirlsControl(), quadrature_control, control
    )
    target: AgqObjective | PenalizedObjective = objective
    begin = start_point(data, control, *(start or (None, None)))
    if penalty is not None:
        target = PenalizedObjective(objective, penalty)
        if start is None:
            begin = penalized_start(data, control, penalty, begin)

    estimates = search_with_basins(
        data,
        target.deviance_and_gradient,
        control,
        objective.counters,
        "agq" if penalty is None else "agq + prior deviance",
        begin,
        objective.reset,
        other_starts=start is None,
    )
    summary = dataclasses.replace(
        estimates.summary,
        tolerances={
            **estimates.summary.tolerances,
            **quadrature_tolerances(n_agq, objective.n_nodes, quadrature_control),
        },
    )
    estimates = dataclasses.replace(estimates, summary=summary)
    modes = LaplaceObjective(data, pirls_control or PirlsControl())
    label = loglik_label(n_agq, objective.rule_kind)
    under_prior = None if penalty is None else penalty.covered()
    output = finish_fit(
        data,
        modes,
        estimates,
        control,
        "agq",
        label,
        n_agq=n_agq,
        under_prior=under_prior,
        deviance_and_gradient=target.deviance_and_gradient,
    )
    past = objective.rows_past_bound(estimates.theta, estimates.beta)
    output = with_prior_runaway_in_memory(
        output, data, penalty, target.deviance_and_gradient, control
    )
    return with_penalty(with_quadrature_bound(output, data.family, past), penalty)


def with_quadrature_bound(output: FitOutput, family: Family, rows: int) -> FitOutput:
    """output with a BoundaryWarning when the quadrature's nodes at the estimates take `rows`
    rows past the link's bound (AgqObjective.rows_past_bound; the log link's mu = e^eta <= 1):
    normal random effects give such rates positive probability, the quadrature counts the
    likelihood there as 0, and the deviance is not smooth where a node crosses the bound (at
    a row whose trials are all successes it drops from its largest value to 0), so the
    log-likelihood rests on that convention, not on the model alone (fuzz_dask_log 25: the
    search ended unconverged on such a kink, with no word of the bound)."""
    if not rows:
        return output
    cut = FitWarning(
        f"the {family.link} link's constraint mu = exp(eta) <= 1 cuts the quadrature: at the "
        f"estimates its nodes reach mu = 1 or beyond at {rows} row(s) (past it the likelihood "
        "is taken as 0; normal random effects give such rates positive probability); the "
        "log-likelihood rests on that, and the deviance is not smooth where a node crosses "
        "the bound; consider method='laplace', or the cloglog or logit link",
        BoundaryWarning,
    )
    return dataclasses.replace(output, warnings=(*output.warnings, cut))


@dataclass(frozen=True)
class Agq(LikelihoodMethod):
    """Maximum likelihood with the deviance by n_agq-point adaptive Gauss-Hermite quadrature
    (glmer's nAGQ): a scalar or vector effect on one grouping factor, or scalar effects on
    nested factors (see AgqObjective). n_agq = 1 is the Laplace approximation."""

    n_agq: int = 1
    control: OptimizerControl = field(default_factory=OptimizerControl)
    pirls_control: PirlsControl = field(default_factory=PirlsControl)
    quadrature_control: QuadratureControl = field(default_factory=QuadratureControl)
    priors: Priors = NO_PRIORS

    name: ClassVar[str] = "agq"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_agq", check_n_agq(self.n_agq, MAX_N_AGQ))
        object.__setattr__(self, "priors", parse_priors(self.priors))

    @classmethod
    def from_arguments(
        cls,
        *,
        n_agq: int | None = None,
        control: Any = None,
        pirls_control: Any = None,
        priors: Any = None,
        **others: Any,
    ) -> Agq:
        refuse_arguments(cls.name, **others)
        return cls(
            1 if n_agq is None else n_agq,
            checked_control(cls.name, control, OptimizerControl),
            checked_control(cls.name, pirls_control, PirlsControl, "pirls_control"),
            priors=parse_priors(priors),
        )

    @property
    def title(self) -> str:
        quadrature = f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.n_agq}"
        if not self.priors.empty:
            return f"maximum a posteriori (penalized likelihood, {quadrature})"
        return f"maximum likelihood ({quadrature})"

    @property
    def tolerances(self) -> dict[str, float | str]:
        return self.control.tolerances()

    @property
    def centres_random(self) -> bool:
        # A product rule is not rotation invariant: centring a vector effect's columns would
        # change the approximation (n_agq = 1 is the Laplace approximation, which is).
        return self.n_agq == 1

    def likelihood_objective(self, model: ModelData) -> Any:
        return AgqObjective(
            model, self.n_agq, self.pirls_control, self.quadrature_control, self.control
        )

    def fit_columns(
        self, model: ModelData, start: Start | None = None, penalty: Penalty | None = None
    ) -> FitOutput:
        return fit_agq(
            model,
            self.n_agq,
            self.control,
            self.pirls_control,
            self.quadrature_control,
            start,
            penalty,
        )
