"""Blocked sparse Cholesky factor of H = Lambda' Z' W Z Lambda + I, the PIRLS Hessian in u.

Layout, decided once from the grouping codes (Structure): the grouping factor with the most
columns (levels x k, summed over the blocks on it, e.g. the two blocks of (1 + x || g)) comes
first. Then, as long as the last one chosen is nested in another factor (each of its levels
inside exactly one level of that factor), the finest such factor follows: a *chain*
leaf -> parent -> grandparent, eliminated leaf first. Every other factor (crossed with some
chain factor) is gathered into a dense *rest* R of dimension qR.

    H = L L',  column blocks of L in elimination order: chain level 0 (n_0 blocks of k_0),
    level 1, ..., then R.

A level-d group's diagonal block of H is k_d x k_d, its coupling to level e > d is one k_d x k_e
block (to its ancestor), and its coupling to R is sparse: the R columns its rows touch (its
*pattern*). Eliminating a level-d group updates only its ancestors' blocks (which carry every
descendant's pattern) and R, so there is no fill in the chain: every chain array is linear in
the number of groups, and no dense block is larger than k_d x k_d. The R x R block
S = H_RR - sum_d C_dR C_dR' is dense (C_dR, the factor's block between level d and R, kept
on the pattern only), formed from triples of pattern entries that share a group.

The gradient needs the entries of H^{-1} on the pattern of Z'Z only: they come from the
Takahashi recurrences (selected inversion) over the same blocks, R first, then the chain from
the root down (SelectedInverse).

u is held split as before: u1 of shape (n_0, k_0) for level 0 and u2 of shape (q2,) for every
other block in ``Structure.rest`` order (chain levels, then R), each block's levels x k at
``Structure.rest_offsets``. Rows enter through ``a1`` (n x k_0), the values of Z Lambda in
level 0, and ``a2`` (n x r2), the values of Z Lambda at the u2 positions ``Structure.cols2``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.model.data import ModelData

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


DENSE_COUPLING_MAX_SIZE = 1_000_000
"""Largest dense coupling block (entries) between a chain level and the rest."""
DENSE_COUPLING_FLOPS_PER_TRIPLE = 100
"""A dense coupling's products (q_rest^2 q_level multiply-adds through BLAS) are preferred to
the sparse ones (one gather-multiply-scatter per pair of pattern entries in a group) while
they take at most this many times as many operations."""


def row_dot(a: FloatArray, b: FloatArray) -> FloatArray:
    """sum_c a[i, c] b[i, c] for each row i; an explicit loop over the few columns is several
    times faster than einsum on tall arrays."""
    out = a[:, 0] * b[:, 0]
    for c in range(1, a.shape[1]):
        out += a[:, c] * b[:, c]
    return out


def row_matvec(m: FloatArray, v: FloatArray) -> FloatArray:
    """m[i] @ v[i] for each row i: (n, c, d) with (n, d) -> (n, c), looping over c and d."""
    if m.shape[2] == 1:
        # One inner column (a scalar random effect's 1 x 1 blocks): one product, the same
        # numbers as the loop.
        return m[:, :, 0] * v
    out = np.empty((m.shape[0], m.shape[1]))
    for c in range(m.shape[1]):
        out[:, c] = row_dot(m[:, c, :], v)
    return out


def row_rmatvec(m: FloatArray, v: FloatArray) -> FloatArray:
    """m[i]' @ v[i] for each row i: (n, c, d) with (n, c) -> (n, d)."""
    if m.shape[1] == 1:
        return m[:, 0, :] * v
    out = np.empty((m.shape[0], m.shape[2]))
    for d in range(m.shape[2]):
        out[:, d] = row_dot(m[:, :, d], v)
    return out


def _t(m: FloatArray) -> FloatArray:
    """Transpose of each k x k block of an (n, a, b) array."""
    return m.transpose(0, 2, 1)


def _segment_sum(index: IntArray, values: FloatArray, size: int) -> FloatArray:
    """Sums of values (N, ...) over equal index (N,): (size, ...), one bincount per entry."""
    flat = values.reshape(values.shape[0], -1)
    out = np.empty((size, flat.shape[1]))
    for c in range(flat.shape[1]):
        out[:, c] = np.bincount(index, weights=flat[:, c], minlength=size)
    return out.reshape((size, *values.shape[1:]))


def _cholesky_inverse(h: FloatArray) -> tuple[FloatArray, float]:
    """Inverses of the lower Cholesky factors of the blocks h (n, k, k), and sum log det."""
    k = h.shape[1]
    if k == 1:
        l1 = np.sqrt(h)
        return 1.0 / l1, 2.0 * float(np.log(l1).sum())
    if k == 2:
        # Closed form for 2 x 2 blocks (intercept and slope): cheaper than LAPACK per block.
        l00 = np.sqrt(h[:, 0, 0])
        l10 = h[:, 1, 0] / l00
        l11 = np.sqrt(h[:, 1, 1] - l10**2)
        linv = np.zeros_like(h)
        linv[:, 0, 0] = 1.0 / l00
        linv[:, 1, 1] = 1.0 / l11
        linv[:, 1, 0] = -l10 * linv[:, 0, 0] * linv[:, 1, 1]
        return linv, 2.0 * float(np.log(l00).sum() + np.log(l11).sum())
    low = np.linalg.cholesky(h)
    logdet = 2.0 * float(np.log(np.diagonal(low, axis1=1, axis2=2)).sum())
    return np.linalg.inv(low), logdet


def _fixed_columns(z: FloatArray) -> FloatArray:
    """z itself when it is float64 in row-major order or a broadcast (read-only use), else a
    row-major copy."""
    if z.dtype == np.float64 and (z.flags.c_contiguous or z.strides[0] == 0):
        return z
    return np.ascontiguousarray(z, dtype=np.float64)


def nested_in(inner: IntArray, outer: IntArray, n_inner: int) -> bool:
    """Whether every level of `inner` (codes) lies within exactly one level of `outer`."""
    parent = np.full(n_inner, -1, dtype=np.intp)
    parent[inner] = outer
    return bool(np.array_equal(parent[inner], outer))


@dataclass
class Level:
    """One level of the chain: a grouping factor with the blocks on it (k columns in all)."""

    codes: IntArray  # (n,) group of each row
    n_groups: int
    k: int
    blocks: list[int]  # block indices of ModelData, in column order
    block_columns: list[slice]  # columns of each block within the level's k
    a_columns: slice  # columns of a2 (levels >= 1; level 0 is a1)
    u_index: IntArray  # (n_groups, k) positions in u2 (levels >= 1)
    ancestors: dict[int, IntArray] = field(default_factory=dict)  # e > d -> (n_groups,)
    # Pattern of the coupling to R: pairs (group, R column), sorted; row slot -> pair.
    pair_group: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    pair_column: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    row_pair: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.intp))
    pair_map: dict[int, IntArray] = field(default_factory=dict)  # e > d -> pairs of level e
    # Pairs of pairs within one group (p, p'): the fill of R's Schur complement.
    triple_first: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    triple_second: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    triple_bins: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    triple_off: FloatArray = field(default_factory=lambda: np.zeros(0))  # 1 when p != p'
    # Small or dense couplings go through a dense q_rest x (n_groups k) block and BLAS instead.
    dense_coupling: bool = False

    dense_index: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))

    def dense(self, values: FloatArray, q_rest: int) -> FloatArray:
        """The coupling values on the pattern (P, k) as a dense q_rest x (n_groups k) block."""
        out = np.zeros((q_rest, self.n_groups * self.k))
        np.put(out, self.dense_index, values)
        return out

    def on_pattern(self, block: FloatArray) -> FloatArray:
        """Entries of a dense q_rest x (n_groups k) block on the pattern: (P, k)."""
        return np.take(block, self.dense_index)


class LevelOps(NamedTuple):
    """Sums over the rows of each level (of a vector, of each column) and per-row copies of
    per-level values: Structure.level_ops for all the rows, LevelChunk.ops for a run of whole
    levels."""

    level_sum: Callable[[FloatArray], FloatArray]
    level_sums: Callable[[FloatArray], FloatArray]
    level_values: Callable[[FloatArray], FloatArray]


class LevelChunk(NamedTuple):
    """A run of whole levels of the first part (Structure.level_chunks): its rows and levels,
    and the levels' first rows and row counts relative to the run."""

    rows: slice
    levels: slice
    starts: IntArray
    counts: IntArray

    def ops(self) -> LevelOps:
        """The level operations on the run's rows (Structure's own on sorted rows)."""
        starts, counts = self.starts, self.counts
        return LevelOps(
            lambda v: np.add.reduceat(v, starts),
            lambda v: np.add.reduceat(v, starts, axis=0),
            lambda v: np.repeat(v, counts, axis=0),
        )


class Structure:
    """Index arrays fixed by the model's grouping factors; built once per ModelData.

    nested=False keeps the chain to the first factor alone (every other factor in the dense
    rest): the plain blocked layout, a reference for the chain's sparse elimination.

    crossed: blocks put in the dense rest whatever their size, in this order (a Dask partition's
    factors crossed with the partitioning one, distributed_crossed.py). The chain is then
    built from the finest of the other factors (most levels) and must hold all of them."""

    def __init__(self, data: ModelData, nested: bool = True, crossed: tuple[int, ...] = ()) -> None:
        blocks = data.blocks
        n = data.n_obs
        # Blocks on the same grouping factor (as (1 + x || g) makes) share one level of the
        # layout: their Lambda is then block diagonal.
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
        fixed_rest = [i for i, f in enumerate(families) if f[0] in crossed]
        if crossed:
            fixed_rest.sort(key=lambda i: crossed.index(families[i][0]))
            ranked = sorted(
                (i for i in ranked if i not in fixed_rest),
                key=lambda i: -blocks[families[i][0]].n_levels,
            )
        chain = [ranked[0]]
        remaining = ranked[1:]
        while nested:
            # The finest factor the last chain level is nested in (ties: the larger family,
            # then formula order, as ranked).
            tail = blocks[families[chain[-1]][0]]
            candidates = [
                i
                for i in remaining
                if nested_in(tail.codes, blocks[families[i][0]].codes, tail.n_levels)
            ]
            if not candidates:
                break
            best = max(candidates, key=lambda i: blocks[families[i][0]].n_levels)
            chain.append(best)
            remaining.remove(best)
        if crossed:
            if remaining:
                names = ", ".join(blocks[families[i][0]].group for i in remaining)
                raise ValueError(
                    f"the grouping factors {names} are not in the chain of nested factors "
                    f"from {blocks[families[chain[0]][0]].group}"
                )
            remaining = fixed_rest
        self.first_blocks: list[int] = families[chain[0]]
        self.first = self.first_blocks[0]
        self.rest: list[int] = [t for i in chain[1:] + remaining for t in families[i]]
        self.order: list[int] = self.first_blocks + self.rest
        first = blocks[self.first]
        self.n = n
        # Bernoulli rows (all trials 1) skip multiplications by the trials in PIRLS.
        self.unit_trials = bool((data.trials == 1.0).all())
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
        contiguous = bool((self.g1[1:] >= self.g1[:-1]).all()) and bool((counts > 0).all())
        self._counts: IntArray | None = counts if contiguous else None
        self._starts: IntArray | None = (
            np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp) if contiguous else None
        )
        # Raw columns of the first part (Z without Lambda), n x k1, and their pairwise products
        # (None for two columns of ones, the random intercept's), fixed for the whole fit.
        # One block: its own columns, not a copy (a Dask partition keeps nothing twice).
        self.z1: FloatArray = (
            _fixed_columns(blocks[self.first].z)
            if len(self.first_blocks) == 1
            else np.column_stack([blocks[t].z for t in self.first_blocks])
        )
        ones = [bool((self.z1[:, c] == 1.0).all()) for c in range(self.k1)]
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
        self._build_levels(data, [families[i] for i in chain])

    def _build_levels(self, data: ModelData, chain: list[list[int]]) -> None:
        blocks = data.blocks
        offsets = dict(zip(self.rest, self.rest_offsets, strict=True))
        self.levels: list[Level] = []
        a_start = 0
        for d, family in enumerate(chain):
            head = blocks[family[0]]
            ks = [blocks[t].k for t in family]
            k = sum(ks)
            starts = np.cumsum([0, *ks])
            block_columns = [slice(int(s), int(s) + kt) for s, kt in zip(starts, ks, strict=False)]
            u_index = np.zeros((head.n_levels, k), dtype=np.intp)
            if d > 0:
                for t, sl in zip(family, block_columns, strict=True):
                    kt = blocks[t].k
                    u_index[:, sl] = (
                        offsets[t] + np.arange(head.n_levels)[:, None] * kt + np.arange(kt)
                    )
            self.levels.append(
                Level(
                    codes=head.codes,
                    n_groups=head.n_levels,
                    k=k,
                    blocks=list(family),
                    block_columns=block_columns,
                    a_columns=slice(a_start, a_start + k) if d > 0 else slice(0, 0),
                    u_index=u_index,
                )
            )
            if d > 0:
                a_start += k
        for d, level in enumerate(self.levels):
            for e in range(d + 1, len(self.levels)):
                parent = np.zeros(level.n_groups, dtype=np.intp)
                parent[level.codes] = self.levels[e].codes
                level.ancestors[e] = parent
        # The dense rest R: a2's columns after the chain's, u2's positions after the chain's.
        self.r_columns = slice(a_start, self.r2)
        self.q_chain = sum(lv.n_groups * lv.k for lv in self.levels[1:])
        self.q_rest = self.q2 - self.q_chain
        self.cols_rest: IntArray = self.cols2[:, self.r_columns] - self.q_chain
        n_slots = self.cols_rest.shape[1]
        if not n_slots:
            return
        q_rest = self.q_rest
        keys_by_level = []
        for level in self.levels:
            keys = level.codes[:, None] * q_rest + self.cols_rest
            unique, inverse = np.unique(keys, return_inverse=True)
            keys_by_level.append(unique)
            level.pair_group = (unique // q_rest).astype(np.intp)
            level.pair_column = (unique % q_rest).astype(np.intp)
            level.row_pair = inverse.reshape(self.n, n_slots).astype(np.intp)
            # Pairs of pairs in one group, pairs sorted by group: for each pair p, every
            # pair p' of its group.
            n_pairs = unique.size
            per_group = np.bincount(level.pair_group, minlength=level.n_groups)
            n_triples = int((per_group.astype(np.int64) ** 2).sum())
            q_level = level.n_groups * level.k
            level.dense_coupling = (
                q_rest * q_level <= DENSE_COUPLING_MAX_SIZE
                and q_rest * q_rest * q_level <= DENSE_COUPLING_FLOPS_PER_TRIPLE * n_triples
            )
            if level.dense_coupling:
                # Flat positions of the pattern's (P, k) entries in the dense block.
                columns = level.pair_group[:, None] * level.k + np.arange(level.k)
                level.dense_index = (level.pair_column[:, None] * q_level + columns).astype(np.intp)
                continue
            group_start = np.concatenate([[0], np.cumsum(per_group)[:-1]])
            reps = per_group[level.pair_group]
            first = np.repeat(np.arange(n_pairs), reps)
            within = np.arange(first.size) - np.repeat(np.cumsum(reps) - reps, reps)
            second = group_start[level.pair_group[first]] + within
            # Half of them, p <= p' (so column(p) <= column(p'): pairs are sorted by group,
            # then column), ordered by their entry of R's upper triangle, which the Schur
            # update and the inverse then walk in memory order.
            keep = first <= second
            first, second = first[keep], second[keep]
            bins = level.pair_column[first] * q_rest + level.pair_column[second]
            order = np.argsort(bins, kind="stable")
            level.triple_first = first[order].astype(np.intp)
            level.triple_second = second[order].astype(np.intp)
            level.triple_bins = bins[order].astype(np.intp)
            level.triple_off = (level.triple_first != level.triple_second).astype(np.float64)
        for d, level in enumerate(self.levels):
            for e in range(d + 1, len(self.levels)):
                keys = level.ancestors[e][level.pair_group] * q_rest + level.pair_column
                level.pair_map[e] = np.searchsorted(keys_by_level[e], keys).astype(np.intp)
        # Flattened bins of the dense H_RR assembly.
        self._bins_rr = [
            [self.cols_rest[:, s] * q_rest + self.cols_rest[:, t] for t in range(n_slots)]
            for s in range(n_slots)
        ]

    # --- sums over and values of the first part's levels ----------------------------------
    def level_sum(self, values: FloatArray) -> FloatArray:
        """Sum of an n-vector within each level of the first part (n1,)."""
        if self._starts is not None:
            # Rows sorted by level, every level present: contiguous segments.
            return np.add.reduceat(values, self._starts)
        return np.bincount(self.g1, weights=values, minlength=self.n1).astype(np.float64)

    def level_sums(self, values: FloatArray) -> FloatArray:
        """level_sum of each column of an n x c array (n1, c): the same sums, bit for bit."""
        if self._starts is not None:
            return np.add.reduceat(values, self._starts, axis=0)
        return np.column_stack([self.level_sum(values[:, c]) for c in range(values.shape[1])])

    def level_ops(self) -> LevelOps:
        """level_sum, level_sums and level_values of all the rows."""
        return LevelOps(self.level_sum, self.level_sums, self.level_values)

    def level_chunks(self, max_rows: int) -> list[LevelChunk] | None:
        """The rows as runs of whole levels of the first part, about max_rows rows each (a run
        ends at the first level starting at or past each multiple of max_rows), with each
        run's level starts and counts relative to it; None when the rows are not sorted by
        level (the sums are then not contiguous). A pass over a run's rows at a time keeps
        the work arrays of a large fit small (fresh pages of large arrays cost more than the
        arithmetic on them)."""
        if self._starts is None or self._counts is None:
            return None
        starts, counts = self._starts, self._counts
        cuts = np.unique(np.searchsorted(starts, np.arange(max_rows, self.n, max_rows)))
        bounds = [0, *(int(c) for c in cuts if 0 < c < self.n1), self.n1]
        chunks = []
        for first, last in zip(bounds[:-1], bounds[1:], strict=True):
            row_start = int(starts[first])
            row_end = int(starts[last]) if last < self.n1 else self.n
            chunks.append(
                LevelChunk(
                    slice(row_start, row_end),
                    slice(first, last),
                    starts[first:last] - row_start,
                    counts[first:last],
                )
            )
        return chunks

    def level_values(self, values: FloatArray) -> FloatArray:
        """Per-row copy of per-level values (n1, ...) -> (n, ...)."""
        if self._counts is not None:
            return values.repeat(self._counts, axis=0)
        return values[self.g1]

    def group_sum(self, d: int, values: FloatArray) -> FloatArray:
        """Sum of an n-vector within each group of chain level d."""
        if d == 0:
            return self.level_sum(values)
        level = self.levels[d]
        sums = np.bincount(level.codes, weights=values, minlength=level.n_groups)
        return np.asarray(sums, dtype=np.float64)

    def group_values(self, d: int, values: FloatArray) -> FloatArray:
        """Per-row copy of per-group values of chain level d."""
        if d == 0:
            return self.level_values(values)
        return values[self.levels[d].codes]

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

    def weighted_cross_products(self, w: FloatArray) -> FloatArray:
        """S_j = sum over rows of level j of w_i z_i z_i' for the first part's raw columns:
        n1 x k1 x k1. H's first part is Lambda' S_j Lambda + I."""
        k1 = self.k1
        if k1 == 1:
            # One column (a scalar random effect): the level sums themselves.
            product = self._z1_products[(0, 0)]
            return self.level_sum(w if product is None else w * product).reshape(self.n1, 1, 1)
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

    def times_at(
        self, rows: IntArray, a1: FloatArray, a2: FloatArray, u1: FloatArray, u2: FloatArray
    ) -> FloatArray:
        """(Z Lambda) u at the given rows only: times(...)[rows], the same numbers."""
        at = self.g1[rows]
        if self.k1 == 1:
            out = a1[rows, 0] * u1[at, 0]
        else:
            out = row_dot(a1[rows], u1[at])
        if self.r2:
            out += row_dot(a2[rows], u2[self.cols2[rows]])
        return out

    def row_transpose(
        self, a1: FloatArray, a2: FloatArray, i: int
    ) -> tuple[FloatArray, FloatArray]:
        """(Z Lambda)' e_i, row i of Z Lambda as (n1 x k1, q2): transpose_times of the unit
        vector e_i without its pass over every row."""
        t1 = np.zeros((self.n1, self.k1))
        t1[self.g1[i]] = a1[i]
        t2 = np.zeros(self.q2)
        if self.r2:
            np.add.at(t2, self.cols2[i], a2[i])
        return t1, t2

    def transpose_times(
        self, a1: FloatArray, a2: FloatArray, r: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """(Z Lambda)' r split as (n1 x k1, q2)."""
        # Column by column: contiguous products sum faster than level_sums on an n x k1 array.
        t1 = np.empty((self.n1, self.k1))
        for c in range(self.k1):
            t1[:, c] = self.level_sum(a1[:, c] * r)
        if not self.r2:
            return t1, np.zeros(0)
        t2 = np.bincount(
            self.cols2.ravel(), weights=(a2 * r[:, None]).ravel(), minlength=self.q2
        ).astype(np.float64)
        return t1, t2

    def level_columns(self, d: int, a1: FloatArray, a2: FloatArray) -> FloatArray:
        """Values of Z Lambda in chain level d's columns (n x k_d)."""
        return a1 if d == 0 else a2[:, self.levels[d].a_columns]

    # --- factorization ---------------------------------------------------------------------
    def factorize(
        self, a1: FloatArray, a2: FloatArray, w: FloatArray, lambda1: FloatArray
    ) -> Factor:
        """Cholesky factor of H = (Z Lambda)' W (Z Lambda) + I.

        Level 0's blocks are lambda1' S_j lambda1 + I, from the weighted cross products S_j of
        its raw columns (kept on the factor for the gradient); every other block of H comes
        from a1 and a2, the values of Z Lambda. The chain is eliminated leaf first, each
        level's groups all at once; then R's dense Schur complement."""
        factor, schur = self.eliminate_chain(a1, a2, w, lambda1)
        if schur is not None:
            schur[np.diag_indices(self.q_rest)] += 1.0
            factor.l_rr, part = rest_cholesky(schur)
            factor.logdet += part
        return factor

    def eliminate_chain(
        self, a1: FloatArray, a2: FloatArray, w: FloatArray, lambda1: FloatArray
    ) -> tuple[Factor, FloatArray | None]:
        """The chain's part of factorize: a Factor without R's factor (l_rr None, logdet of
        the chain only) and R's Schur complement H_RR - sum_d C_dR C_dR' without the identity
        (q_rest x q_rest, valid on and above the diagonal), None without a rest."""
        levels = self.levels
        m = len(levels)
        k1 = self.k1
        cross = self.weighted_cross_products(w)
        h11 = np.matmul(np.matmul(lambda1.T, cross), lambda1)
        h11[:, np.arange(k1), np.arange(k1)] += 1.0
        if m == 1 and not self.r2:
            linv, logdet = _cholesky_inverse(h11)
            return Factor(self, [linv], {}, [], None, logdet, cross), None
        a = [self.level_columns(d, a1, a2) for d in range(m)]
        a_r = a2[:, self.r_columns]
        n_slots = a_r.shape[1]
        # Blocks of H: diagonal (n_d, k_d, k_d), to ancestors (n_d, k_d, k_e), to R on the
        # pattern (P_d, k_d), and R's own (q_rest, q_rest).
        diag = [h11]
        off: dict[tuple[int, int], FloatArray] = {}
        coupling: list[FloatArray] = []
        for d, level in enumerate(levels):
            wa = w[:, None] * a[d]
            if d > 0:
                h = np.empty((level.n_groups, level.k, level.k))
                for c in range(level.k):
                    for c2 in range(c + 1):
                        v = self.group_sum(d, wa[:, c] * a[d][:, c2])
                        h[:, c, c2] = v
                        h[:, c2, c] = v
                h[:, np.arange(level.k), np.arange(level.k)] += 1.0
                diag.append(h)
            for e in range(d + 1, m):
                o = np.empty((level.n_groups, level.k, levels[e].k))
                for c in range(level.k):
                    for c2 in range(levels[e].k):
                        o[:, c, c2] = self.group_sum(d, wa[:, c] * a[e][:, c2])
                off[(d, e)] = o
            if n_slots:
                n_pairs = level.pair_group.size
                hr = np.zeros((n_pairs, level.k))
                for s in range(n_slots):
                    for c in range(level.k):
                        hr[:, c] += np.bincount(
                            level.row_pair[:, s], weights=wa[:, c] * a_r[:, s], minlength=n_pairs
                        )
                coupling.append(hr)
        q_rest = self.q_rest
        hrr = np.zeros(q_rest * q_rest)
        for s in range(n_slots):
            ws = w * a_r[:, s]
            for t in range(n_slots):
                hrr += np.bincount(self._bins_rr[s][t], weights=ws * a_r[:, t], minlength=hrr.size)
        logdet = 0.0
        blocks: dict[int, FloatArray] = {}  # dense couplings to R, kept for the solves
        linvs: list[FloatArray] = []
        lanc: dict[tuple[int, int], FloatArray] = {}
        lr: list[FloatArray] = []
        for d, level in enumerate(levels):
            linv, part = _cholesky_inverse(diag[d])
            logdet += part
            linvs.append(linv)
            for e in range(d + 1, m):
                # L's block from level d to its ancestor at e: H_ed L_d^{-T}, (n_d, k_e, k_d).
                lanc[(d, e)] = _bmm(_t(off[(d, e)]), _t(linv))
            if n_slots:
                lr.append(row_matvec(linv[level.pair_group], coupling[d]))
            # Schur complement onto the ancestors (no fill: one ancestor per level) and R.
            for e in range(d + 1, m):
                anc = level.ancestors[e]
                le = lanc[(d, e)]
                diag[e] = diag[e] - _segment_sum(anc, _bmm(le, _t(le)), levels[e].n_groups)
                for f in range(e + 1, m):
                    off[(e, f)] = off[(e, f)] - _segment_sum(
                        anc, _bmm(le, _t(lanc[(d, f)])), levels[e].n_groups
                    )
                if n_slots:
                    update = row_matvec(le[level.pair_group], lr[d])
                    coupling[e] = coupling[e] - _segment_sum(
                        level.pair_map[e], update, levels[e].pair_group.size
                    )
            if n_slots and level.dense_coupling:
                block = level.dense(lr[d], q_rest)
                blocks[d] = block
                hrr -= (block @ block.T).ravel()
            elif n_slots:
                # Upper triangle only (all that dpotrf reads below).
                first, second = level.triple_first, level.triple_second
                hrr -= np.bincount(
                    level.triple_bins,
                    weights=row_dot(lr[d][first], lr[d][second]),
                    minlength=hrr.size,
                )
        schur = hrr.reshape(q_rest, q_rest) if n_slots else None
        return Factor(self, linvs, lanc, lr, None, logdet, cross, blocks), schur


def rest_cholesky(schur: FloatArray) -> tuple[FloatArray, float]:
    """Lower Cholesky factor of R's Schur complement (C-ordered, read on and above the
    diagonal, overwritten) and its log determinant."""
    # LAPACK reads the upper triangle of the C-ordered schur as the lower triangle of
    # its transpose, the same matrix in Fortran order, factored in place (no copy).
    l_rr, info = scipy.linalg.lapack.dpotrf(schur.T, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"the rest's Schur complement is not positive definite (dpotrf info {info})"
        )
    return l_rr, 2.0 * float(np.log(np.diag(l_rr)).sum())


def rest_solve(l_rr: FloatArray, rr: FloatArray) -> FloatArray:
    """x with L L' x = rr for R's factor L (rr a vector or a matrix of columns)."""
    yr = scipy.linalg.solve_triangular(l_rr, rr, lower=True, check_finite=False)
    return np.asarray(
        scipy.linalg.solve_triangular(l_rr, yr, lower=True, trans="T", check_finite=False)
    )


def rest_inverse(l_rr: FloatArray) -> FloatArray:
    """R's block of H^{-1} from its factor, valid on and above the diagonal (C order)."""
    # LAPACK's inverse from the Cholesky factor (lower triangle; a third of the work
    # of a triangular solve with I and a product).
    inverse, info = scipy.linalg.lapack.dpotri(l_rr, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dpotri failed with info {info}")
    # Its lower triangle in Fortran order is the upper triangle of the C-ordered
    # transpose: entries (r, s) are read there at (min, max), with no symmetrized copy.
    return np.ascontiguousarray(inverse.T)


def _bmm(a: FloatArray, b: FloatArray) -> FloatArray:
    """a[j] @ b[j] for stacks of small blocks (n, p, r) and (n, r, s), as sums of broadcast
    products over the few inner columns (batched matmul is slow on tiny blocks)."""
    out = a[:, :, 0:1] * b[:, 0:1, :]
    for r in range(1, a.shape[2]):
        out = out + a[:, :, r : r + 1] * b[:, r : r + 1, :]
    return out


@dataclass
class Factor:
    """L with L L' = H in the chain + rest layout of Structure; the chain's diagonal blocks are
    stored by their per-group inverses."""

    structure: Structure
    linv: list[FloatArray]  # per chain level (n_d, k_d, k_d): inverses of the diagonal factors
    lanc: dict[tuple[int, int], FloatArray]  # (d, e): L's block to the ancestor (n_d, k_e, k_d)
    lr: list[FloatArray]  # per chain level (P_d, k_d): L's block to R on the pattern
    l_rr: FloatArray | None  # (q_rest, q_rest) lower triangular, R's Schur factor
    logdet: float  # log det H
    cross: FloatArray  # S_j of the first part (n1, k1, k1): sum of w_i z_i z_i' per level
    dense_lr: dict[int, FloatArray] = field(default_factory=dict)  # level -> lr as a dense block

    @property
    def l1inv(self) -> FloatArray:
        """(n1, k1, k1) lower-triangular inverses of the first level's diagonal factors."""
        return self.linv[0]

    @property
    def has_rest(self) -> bool:
        """Whether the layout has a dense rest R (l_rr may still be held elsewhere)."""
        return bool(self.structure.cols_rest.shape[1])

    @property
    def block_diagonal(self) -> bool:
        """Whether H is block diagonal: one grouping factor and no other random effects."""
        return len(self.structure.levels) == 1 and not self.structure.r2

    @functools.cached_property
    def block_inverse(self) -> FloatArray:
        """(n1, k1, k1) H_j^{-1} = L_j^{-T} L_j^{-1} of the first level's blocks (formed on first
        use and shared by solve, selected_inverse and the exact Hessian; the whole of H^{-1}
        when block_diagonal)."""
        linv = self.linv[0]
        return _bmm(_t(linv), linv)

    @functools.cached_property
    def inverse(self) -> SelectedInverse:
        """selected_inverse() of this factor, formed on first use and kept: a mode's error, its
        exact gradient and its conditional covariances all need it."""
        return self.selected_inverse()

    def solve(self, r1: FloatArray, r2: FloatArray) -> tuple[FloatArray, FloatArray]:
        """x = H^{-1} r with r split as (n1 x k1, q2)."""
        if self.block_diagonal:
            # One batched product with the blocks' inverses instead of the chain's forward and
            # back substitutions (the mode search and the gradient solve many times per factor);
            # 1 x 1 blocks: the substitutions' own products (the scalar paths' numbers).
            if self.structure.k1 == 1:
                linv = self.linv[0][:, :, 0]
                return linv * (linv * r1), np.zeros(0)
            return np.matmul(self.block_inverse, r1[:, :, None])[:, :, 0], np.zeros(0)
        y, rr = self.forward(r1, r2)
        xr = np.zeros(0)
        if self.l_rr is not None:
            xr = rest_solve(self.l_rr, rr)
        return self.backward(y, xr)

    def forward(self, r1: FloatArray, r2: FloatArray) -> tuple[list[FloatArray], FloatArray]:
        """The chain's forward substitution: y_d = L_dd^{-1} (r_d - ...) per chain level and
        R's reduced right-hand side r_R - sum_d L_Rd y_d (q_rest,), linear in r."""
        st = self.structure
        levels = st.levels
        m = len(levels)
        r = [r1] + [r2[lv.u_index] for lv in levels[1:]]
        has_rest = self.has_rest
        rr = r2[st.q_chain :].copy() if has_rest else np.zeros(0)
        y: list[FloatArray] = []
        for d, level in enumerate(levels):
            yd = row_matvec(self.linv[d], r[d])
            y.append(yd)
            for e in range(d + 1, m):
                r[e] = r[e] - _segment_sum(
                    level.ancestors[e], row_matvec(self.lanc[(d, e)], yd), levels[e].n_groups
                )
            if d in self.dense_lr:
                rr -= self.dense_lr[d] @ yd.ravel()
            elif has_rest:
                rr -= np.bincount(
                    level.pair_column,
                    weights=row_dot(self.lr[d], yd[level.pair_group]),
                    minlength=st.q_rest,
                )
        return y, rr

    def backward(self, y: list[FloatArray], xr: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The chain's back substitution from forward's y and R's solution xr: x = H^{-1} r
        split as (n1 x k1, q2)."""
        st = self.structure
        levels = st.levels
        m = len(levels)
        has_rest = self.has_rest
        x: list[FloatArray] = [np.empty(0)] * m
        for d in range(m - 1, -1, -1):
            level = levels[d]
            t = y[d]
            for e in range(d + 1, m):
                t = t - row_rmatvec(self.lanc[(d, e)], x[e][level.ancestors[e]])
            if d in self.dense_lr:
                t = t - (self.dense_lr[d].T @ xr).reshape(t.shape)
            elif has_rest:
                t = t - _segment_sum(
                    level.pair_group, self.lr[d] * xr[level.pair_column][:, None], level.n_groups
                )
            x[d] = row_rmatvec(self.linv[d], t)
        if not st.r2:
            return x[0], np.zeros(0)
        x2 = np.empty(st.q2)
        for d in range(1, m):
            x2[levels[d].u_index] = x[d]
        x2[st.q_chain :] = xr
        return x[0], x2

    def selected_inverse(self, zrr: FloatArray | None = None) -> SelectedInverse:
        """Entries of H^{-1} on the pattern of L (Takahashi recurrences): with X = L_Nj L_jj^{-1}
        for a group j and N the blocks below it (its ancestors and its R pattern),
            Z_Nj = -Z_NN X,   Z_jj = L_jj^{-T} (L_jj^{-1} - L_Nj' Z_Nj),
        from R (dense) down the chain; Z_NN is always on the pattern already computed.
        zrr: R's block of H^{-1} (rest_inverse's layout) when it is at hand, as for a Dask
        partition whose R is shared with others (then l_rr is not needed)."""
        st = self.structure
        if self.block_diagonal:
            # H^{-1} is its diagonal blocks (what the recurrences below give for one level).
            return SelectedInverse(st, [self.block_inverse], {}, [np.empty(0)], None)
        levels = st.levels
        m = len(levels)
        has_rest = self.has_rest
        if zrr is None and self.l_rr is not None:
            zrr = rest_inverse(self.l_rr)
        # The dense couplings need the whole symmetric block: formed once for all levels.
        zrr_full = None
        if zrr is not None and any(level.dense_coupling for level in levels):
            zrr_full = np.triu(zrr) + np.triu(zrr, 1).T
        zdiag: list[FloatArray] = [np.empty(0)] * m
        zanc: dict[tuple[int, int], FloatArray] = {}
        zr: list[FloatArray] = [np.empty(0)] * m
        for d in range(m - 1, -1, -1):
            level = levels[d]
            linv = self.linv[d]
            x = {e: _bmm(self.lanc[(d, e)], linv) for e in range(d + 1, m)}
            xr = row_rmatvec(linv[level.pair_group], self.lr[d]) if has_rest else np.zeros(0)
            for e in range(d + 1, m):
                ge = level.ancestors[e]
                acc = np.zeros((level.n_groups, levels[e].k, level.k))
                for f in range(d + 1, m):
                    if f == e:
                        z = zdiag[e][ge]
                    elif f > e:
                        z = _t(zanc[(e, f)][ge])
                    else:
                        z = zanc[(f, e)][level.ancestors[f]]
                    acc += _bmm(z, x[f])
                if has_rest:
                    outer = zr[e][level.pair_map[e]][:, :, None] * xr[:, None, :]
                    acc += _segment_sum(level.pair_group, outer, level.n_groups)
                zanc[(d, e)] = -acc
            inner = linv.copy()
            for e in range(d + 1, m):
                inner -= _bmm(_t(self.lanc[(d, e)]), zanc[(d, e)])
            if zrr is not None:
                n_pairs = level.pair_group.size
                acc = np.zeros((n_pairs, level.k))
                for f in range(d + 1, m):
                    acc += row_rmatvec(x[f][level.pair_group], zr[f][level.pair_map[f]])
                if zrr_full is not None and level.dense_coupling:
                    acc += level.on_pattern(zrr_full @ level.dense(xr, st.q_rest))
                else:
                    first, second = level.triple_first, level.triple_second
                    values = np.take(zrr, level.triple_bins)
                    mirrored = values * level.triple_off
                    for c in range(level.k):
                        acc[:, c] += np.bincount(
                            first, weights=values * xr[second, c], minlength=n_pairs
                        )
                        acc[:, c] += np.bincount(
                            second, weights=mirrored * xr[first, c], minlength=n_pairs
                        )
                zr[d] = -acc
                outer = self.lr[d][:, :, None] * zr[d][:, None, :]
                inner -= _segment_sum(level.pair_group, outer, level.n_groups)
            zdiag[d] = _bmm(_t(linv), inner)
        return SelectedInverse(st, zdiag, zanc, zr, zrr)

    def row_inverse_products(
        self, a1: FloatArray, a2: FloatArray, inverse: SelectedInverse | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """For each row i, h_i = (H^{-1} a_i) restricted to row i's nonzero columns:
        h1 (n x k1) and h2 (n x r2), where a_i is row i of Z Lambda. `inverse`: the result of
        selected_inverse(), when already at hand."""
        st = self.structure
        z = self.selected_inverse() if inverse is None else inverse
        levels = st.levels
        m = len(levels)
        a = [st.level_columns(d, a1, a2) for d in range(m)]
        a_r = a2[:, st.r_columns]
        n_slots = a_r.shape[1]
        h: list[FloatArray] = []
        for d, level in enumerate(levels):
            hd = row_matvec(st.group_values(d, z.diag[d]), a[d])
            for e in range(m):
                if e > d:
                    hd += row_rmatvec(st.group_values(d, z.anc[(d, e)]), a[e])
                elif e < d:
                    hd += row_matvec(st.group_values(e, z.anc[(e, d)]), a[e])
            for s in range(n_slots):
                hd += z.rest[d][level.row_pair[:, s]] * a_r[:, s : s + 1]
            h.append(hd)
        if not st.r2:
            return h[0], np.zeros((st.n, 0))
        h2 = np.empty((st.n, st.r2))
        for d in range(1, m):
            h2[:, levels[d].a_columns] = h[d]
        if z.zrr is not None:
            hr = np.zeros((st.n, n_slots))
            for s in range(n_slots):
                for d, level in enumerate(levels):
                    hr[:, s] += row_dot(z.rest[d][level.row_pair[:, s]], a[d])
                for t in range(n_slots):
                    hr[:, s] += z.rest_entries(st.cols_rest[:, s], st.cols_rest[:, t]) * a_r[:, t]
            h2[:, st.r_columns] = hr
        return h[0], h2


@dataclass
class SelectedInverse:
    """Entries of Z = H^{-1} on the pattern of Z'Z in the Structure's layout."""

    structure: Structure
    diag: list[FloatArray]  # per chain level (n_d, k_d, k_d): diagonal blocks
    anc: dict[tuple[int, int], FloatArray]  # (d, e): (n_d, k_e, k_d), Z(ancestor, group)
    rest: list[FloatArray]  # per chain level (P_d, k_d): Z between R's column and the group
    zrr: FloatArray | None  # (q_rest, q_rest): R's block, valid on and above the diagonal

    def rest_entries(self, rows: IntArray, cols: IntArray) -> FloatArray:
        """Entries (rows, cols) of H^{-1}'s R block (broadcast index arrays)."""
        assert self.zrr is not None
        return self.zrr[np.minimum(rows, cols), np.maximum(rows, cols)]

    def block_covariances(self, data: ModelData, t: int) -> FloatArray:
        """Diagonal blocks of H^{-1} of ModelData block t, one per level: (n_levels, k_t, k_t)."""
        st = self.structure
        for d, level in enumerate(st.levels):
            if t in level.blocks:
                cols = level.block_columns[level.blocks.index(t)]
                return self.diag[d][:, cols, cols]
        assert self.zrr is not None
        b = data.blocks[t]
        offset = st.rest_offsets[st.rest.index(t)] - st.q_chain
        idx = offset + np.arange(b.n_levels)[:, None] * b.k + np.arange(b.k)[None, :]
        return self.rest_entries(idx[:, :, None], idx[:, None, :])
