"""Blocked Cholesky factor of H = Lambda' Z' W Z Lambda + I, the PIRLS Hessian in u.

Layout (as MixedModels.jl): the grouping factor with the most columns (levels x k, summed over
the blocks on it, e.g. the two blocks of (1 + x || g)) comes first. Its part of H is block
diagonal (one k1 x k1 block per level), so its Cholesky factor is computed elementwise over all
levels at once (closed form for k1 <= 2). When the rows are sorted by its levels (the Laplace
objective sorts them), its group sums are contiguous segments. Every other block is gathered
into a dense "rest" of dimension q2, whose Schur complement S = H22 - H21 H11^{-1} H12 is small
and dense.

    H = [[H11, H12], [H21, H22]] = L L',  L = [[L1, 0], [C, L2]],
    C = H21 L1^{-T},  L2 L2' = S.

u is held in the same split: u1 of shape (n1, k1) and u2 of shape (q2,). Rows enter through
``a1`` (n x k1), the values of Z Lambda in the first block, and ``a2`` (n x r2), the values of
Z Lambda in the rest at the columns ``Structure.cols2`` (n x r2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.model import ModelData

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


def row_dot(a: FloatArray, b: FloatArray) -> FloatArray:
    """sum_c a[i, c] b[i, c] for each row i; an explicit loop over the few columns is several
    times faster than einsum on tall arrays."""
    out = a[:, 0] * b[:, 0]
    for c in range(1, a.shape[1]):
        out += a[:, c] * b[:, c]
    return out


def row_matvec(m: FloatArray, v: FloatArray) -> FloatArray:
    """m[i] @ v[i] for each row i: (n, c, d) with (n, d) -> (n, c), looping over c and d."""
    return np.column_stack([row_dot(m[:, c, :], v) for c in range(m.shape[1])])


def row_rmatvec(m: FloatArray, v: FloatArray) -> FloatArray:
    """m[i]' @ v[i] for each row i: (n, c, d) with (n, c) -> (n, d)."""
    return np.column_stack([row_dot(m[:, :, d], v) for d in range(m.shape[2])])


class Structure:
    """Index arrays fixed by the model's grouping factors; built once per ModelData."""

    def __init__(self, data: ModelData) -> None:
        blocks = data.blocks
        n = data.n_obs
        # Blocks on the same grouping factor (as (1 + x || g) makes) share the first, block-
        # diagonal part when they are the largest: their Lambda is then block diagonal.
        families: list[list[int]] = []
        for t, b in enumerate(blocks):
            for family in families:
                head = blocks[family[0]]
                if head.group == b.group and np.array_equal(head.codes, b.codes):
                    family.append(t)
                    break
            else:
                families.append([t])
        sizes = [blocks[f[0]].n_levels * sum(blocks[t].k for t in f) for f in families]
        # Largest family first; ties keep formula order so the layout is deterministic.
        ranked = sorted(range(len(families)), key=lambda i: -sizes[i])
        self.first_blocks: list[int] = families[ranked[0]]
        self.first = self.first_blocks[0]
        self.rest: list[int] = [t for i in ranked[1:] for t in families[i]]
        self.order: list[int] = self.first_blocks + self.rest
        first = blocks[self.first]
        self.n = n
        # Bernoulli rows (all trials 1) skip multiplications by the trials in PIRLS.
        self.unit_trials = bool(np.all(data.trials == 1.0))
        self.g1: IntArray = first.codes
        self.n1 = first.n_levels
        # Columns of each first-family block within the first part's k1 columns.
        self.first_columns: list[slice] = []
        start = 0
        for t in self.first_blocks:
            self.first_columns.append(slice(start, start + blocks[t].k))
            start += blocks[t].k
        self.k1 = start
        self.q1 = self.n1 * self.k1
        # Rows sorted by the first part's levels (LaplaceObjective sorts them) make its group
        # sums contiguous: np.add.reduceat and np.repeat instead of bincount and gathers.
        counts = np.bincount(self.g1, minlength=self.n1)
        contiguous = bool(np.all(self.g1[1:] >= self.g1[:-1])) and bool(np.all(counts > 0))
        self._counts: IntArray | None = counts if contiguous else None
        self._starts: IntArray | None = (
            np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp) if contiguous else None
        )
        # Raw columns of the first part (Z without Lambda), n x k1, and their pairwise products
        # (None for two columns of ones, the random intercept's), fixed for the whole fit.
        self.z1: FloatArray = np.column_stack([blocks[t].z for t in self.first_blocks])
        ones = [bool(np.all(self.z1[:, c] == 1.0)) for c in range(self.k1)]
        self._z1_products: dict[tuple[int, int], FloatArray | None] = {}
        for r in range(self.k1):
            for d in range(r + 1):
                if ones[r] and ones[d]:
                    product = None
                elif ones[r] or ones[d]:
                    product = self.z1[:, d if ones[r] else r]
                else:
                    product = self.z1[:, r] * self.z1[:, d]
                self._z1_products[(r, d)] = product
        cols = []
        self.rest_offsets: list[int] = []
        offset = 0
        for t in self.rest:
            b = blocks[t]
            self.rest_offsets.append(offset)
            base = offset + b.codes * b.k
            for c in range(b.k):
                cols.append(base + c)
            offset += b.n_levels * b.k
        self.q2 = offset
        self.r2 = len(cols)
        self.cols2: IntArray = (
            np.column_stack(cols).astype(np.intp) if cols else np.zeros((n, 0), dtype=np.intp)
        )
        # Flattened bins for the dense H21 (q2 x q1) and H22 (q2 x q2) assemblies.
        if self.r2:
            col1 = self.g1 * self.k1
            self._bins21 = [
                [self.cols2[:, s] * self.q1 + col1 + c for c in range(self.k1)]
                for s in range(self.r2)
            ]
            self._bins22 = [
                [self.cols2[:, s] * self.q2 + self.cols2[:, t] for t in range(self.r2)]
                for s in range(self.r2)
            ]

    # --- sums over and values of the first part's levels ----------------------------------
    def level_sum(self, values: FloatArray) -> FloatArray:
        """Sum of an n-vector within each level of the first part (n1,)."""
        if self._starts is not None:
            # Rows sorted by level, every level present: contiguous segments.
            return np.add.reduceat(values, self._starts)
        return np.bincount(self.g1, weights=values, minlength=self.n1).astype(np.float64)

    def level_values(self, values: FloatArray) -> FloatArray:
        """Per-row copy of per-level values (n1, ...) -> (n, ...)."""
        if self._counts is not None:
            return np.repeat(values, self._counts, axis=0)
        return values[self.g1]

    # --- Z Lambda values -------------------------------------------------------------------
    def z_lambda(self, data: ModelData, lambdas: list[FloatArray]) -> tuple[FloatArray, FloatArray]:
        """Values of Z Lambda: a1 (n x k1) for the first part and a2 (n x r2) for the rest."""
        if len(self.first_blocks) == 1:
            a1 = data.blocks[self.first].z @ lambdas[self.first]
        else:
            a1 = np.column_stack([data.blocks[t].z @ lambdas[t] for t in self.first_blocks])
        if not self.rest:
            return a1, np.zeros((self.n, 0))
        a2 = np.column_stack([data.blocks[t].z @ lambdas[t] for t in self.rest])
        return a1, a2

    def group_sums(self, values: FloatArray) -> FloatArray:
        """Sums of the columns of values (n x c) within the first part's levels: n1 x c."""
        return np.column_stack([self.level_sum(values[:, c]) for c in range(values.shape[1])])

    def weighted_cross_products(self, w: FloatArray) -> FloatArray:
        """S_j = sum over rows of level j of w_i z_i z_i' for the first part's raw columns:
        n1 x k1 x k1. H's first part is Lambda' S_j Lambda + I."""
        k1 = self.k1
        out = np.empty((self.n1, k1, k1))
        for (r, d), product in self._z1_products.items():
            v = self.level_sum(w if product is None else w * product)
            out[:, r, d] = v
            out[:, d, r] = v
        return out

    def first_lambda(self, lambdas: list[FloatArray]) -> FloatArray:
        """Lambda of the first part: block diagonal over its blocks (k1 x k1)."""
        if len(self.first_blocks) == 1:
            return lambdas[self.first]
        return np.asarray(scipy.linalg.block_diag(*[lambdas[t] for t in self.first_blocks]))

    # --- products with Z Lambda ------------------------------------------------------------
    def times(self, a1: FloatArray, a2: FloatArray, u1: FloatArray, u2: FloatArray) -> FloatArray:
        """(Z Lambda) u, an n-vector."""
        if self.k1 == 1:
            out = a1[:, 0] * self.level_values(u1[:, 0])
        else:
            out = row_dot(a1, self.level_values(u1))
        if self.r2:
            out += row_dot(a2, u2[self.cols2])
        return out

    def transpose_times(
        self, a1: FloatArray, a2: FloatArray, r: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """(Z Lambda)' r split as (n1 x k1, q2)."""
        # Column by column: contiguous products sum faster than group_sums on an n x k1 array.
        t1 = np.column_stack([self.level_sum(a1[:, c] * r) for c in range(self.k1)])
        if not self.r2:
            return t1, np.zeros(0)
        t2 = np.bincount(
            self.cols2.ravel(), weights=(a2 * r[:, None]).ravel(), minlength=self.q2
        ).astype(np.float64)
        return t1, t2

    # --- factorization ---------------------------------------------------------------------
    def factorize(
        self, a1: FloatArray, a2: FloatArray, w: FloatArray, lambda1: FloatArray
    ) -> Factor:
        """Cholesky factor of H = (Z Lambda)' W (Z Lambda) + I.

        The first part's blocks are lambda1' S_j lambda1 + I, from the weighted cross products
        S_j of its raw columns (kept on the factor for the gradient); the rest's blocks come
        from a1 and a2, the values of Z Lambda."""
        n1, k1 = self.n1, self.k1
        cross = self.weighted_cross_products(w)
        h11 = np.matmul(np.matmul(lambda1.T, cross), lambda1)
        h11[:, np.arange(k1), np.arange(k1)] += 1.0
        if k1 == 1:
            l1 = np.sqrt(h11)
            l1inv = 1.0 / l1
        elif k1 == 2:
            # Closed form for 2 x 2 blocks (intercept and slope): cheaper than LAPACK per block.
            l1 = np.zeros_like(h11)
            l1[:, 0, 0] = np.sqrt(h11[:, 0, 0])
            l1[:, 1, 0] = h11[:, 1, 0] / l1[:, 0, 0]
            l1[:, 1, 1] = np.sqrt(h11[:, 1, 1] - l1[:, 1, 0] ** 2)
            l1inv = np.zeros_like(h11)
            l1inv[:, 0, 0] = 1.0 / l1[:, 0, 0]
            l1inv[:, 1, 1] = 1.0 / l1[:, 1, 1]
            l1inv[:, 1, 0] = -l1[:, 1, 0] * l1inv[:, 0, 0] * l1inv[:, 1, 1]
        else:
            l1 = np.linalg.cholesky(h11)
            l1inv = np.linalg.inv(l1)
        logdet = 2.0 * float(np.sum(np.log(np.diagonal(l1, axis1=1, axis2=2))))
        if not self.r2:
            return Factor(self, l1inv, None, None, logdet, cross)
        q1, q2 = self.q1, self.q2
        h21 = np.zeros(q2 * q1)
        h22 = np.zeros(q2 * q2)
        for s in range(self.r2):
            ws = w * a2[:, s]
            for c in range(k1):
                h21 += np.bincount(self._bins21[s][c], weights=ws * a1[:, c], minlength=q2 * q1)
            for t in range(self.r2):
                h22 += np.bincount(self._bins22[s][t], weights=ws * a2[:, t], minlength=q2 * q2)
        h21m = h21.reshape(q2, n1, k1)
        # C_j = H21_j L1_j^{-T}: (L1_j^{-T})[c, d] = l1inv[j, d, c].
        # (a batched matmul: einsum would not use BLAS on these large blocks)
        c_mat = np.matmul(h21m.transpose(1, 0, 2), l1inv.transpose(0, 2, 1))
        c_mat = c_mat.transpose(1, 0, 2).reshape(q2, q1)
        schur = h22.reshape(q2, q2) - c_mat @ c_mat.T
        schur[np.diag_indices(q2)] += 1.0
        l2 = scipy.linalg.cholesky(schur, lower=True)
        logdet += 2.0 * float(np.sum(np.log(np.diag(l2))))
        return Factor(self, l1inv, c_mat, l2, logdet, cross)


@dataclass
class Factor:
    """L = [[L1, 0], [C, L2]] with L L' = H; L1 is stored by its per-level inverses."""

    structure: Structure
    l1inv: FloatArray  # (n1, k1, k1) lower-triangular inverses of the first block's factors
    c_mat: FloatArray | None  # (q2, q1)
    l2: FloatArray | None  # (q2, q2) lower triangular
    logdet: float  # log det H
    cross: FloatArray  # S_j of the first part (n1, k1, k1): sum of w_i z_i z_i' per level

    def solve(self, r1: FloatArray, r2: FloatArray) -> tuple[FloatArray, FloatArray]:
        """x = H^{-1} r with r split as (n1 x k1, q2)."""
        y1 = np.einsum("jcd,jd->jc", self.l1inv, r1)
        if self.l2 is None or self.c_mat is None:
            return np.einsum("jdc,jd->jc", self.l1inv, y1), np.zeros(0)
        y2 = scipy.linalg.solve_triangular(self.l2, r2 - self.c_mat @ y1.ravel(), lower=True)
        x2 = scipy.linalg.solve_triangular(self.l2, y2, lower=True, trans="T")
        y1 = y1 - (self.c_mat.T @ x2).reshape(y1.shape)
        return np.einsum("jdc,jd->jc", self.l1inv, y1), x2

    def inverse_blocks(self) -> tuple[FloatArray, FloatArray | None, FloatArray | None]:
        """Entries of H^{-1} needed row by row: the first block's diagonal blocks (n1, k1, k1),
        its cross block with the rest (n1, k1, q2) and the rest's block (q2, q2)."""
        l1inv = self.l1inv
        hinv11 = np.einsum("jdc,jde->jce", l1inv, l1inv)
        if self.l2 is None or self.c_mat is None:
            return hinv11, None, None
        st = self.structure
        l2inv = scipy.linalg.solve_triangular(self.l2, np.eye(st.q2), lower=True)
        # G = L1^{-T} C' L2^{-T}, block j: L1_j^{-T} (C' L2^{-T})_j.
        # Matrix products through BLAS (matmul); einsum loops are far slower on these blocks.
        m = (self.c_mat.T @ l2inv.T).reshape(st.n1, st.k1, st.q2)
        g = np.matmul(l1inv.transpose(0, 2, 1), m)
        hinv11 = hinv11 + np.matmul(g, g.transpose(0, 2, 1))
        hinv12 = -(g.reshape(st.q1, st.q2) @ l2inv).reshape(st.n1, st.k1, st.q2)
        hinv22 = l2inv.T @ l2inv
        return hinv11, hinv12, hinv22

    def row_inverse_products(
        self,
        a1: FloatArray,
        a2: FloatArray,
        blocks: tuple[FloatArray, FloatArray | None, FloatArray | None] | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """For each row i, h_i = (H^{-1} a_i) restricted to row i's nonzero columns:
        h1 (n x k1) and h2 (n x r2), where a_i is row i of Z Lambda. `blocks`: the result of
        inverse_blocks(), when already at hand."""
        st = self.structure
        hinv11, hinv12, hinv22 = self.inverse_blocks() if blocks is None else blocks
        h1 = row_matvec(st.level_values(hinv11), a1)
        if hinv12 is None or hinv22 is None:
            return h1, np.zeros((st.n, 0))
        cross = hinv12[st.g1[:, None, None], np.arange(st.k1)[None, :, None], st.cols2[:, None, :]]
        rest = hinv22[st.cols2[:, :, None], st.cols2[:, None, :]]
        h1 += row_matvec(cross, a2)
        h2 = row_rmatvec(cross, a1) + row_matvec(rest, a2)
        return h1, h2
