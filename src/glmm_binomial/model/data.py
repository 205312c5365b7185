"""ModelData: the frozen numerical description of one binomial GLMM.

    eta = X beta + sum_t Z_t[i, :] b_t[g_t(i), :] + offset,   b_t[j] = Lambda_t u_t[j],
    u ~ N(0, I),   successes_i ~ family(trials_i, mu_i = F(eta_i))

(the binomial with the logit link F = expit unless the model's family says otherwise; see
glmm_binomial.family).

Each random-effect block t has a grouping factor (integer codes 0..n_levels-1), a dense n x k_t
matrix of its columns (no dense n x q matrix is ever formed) and a lower-triangular relative
covariance factor Lambda_t whose k_t (k_t + 1) / 2 lower-triangle entries, taken column by
column as lme4 does, are the block's slice of theta. Nothing here knows about pandas or text:
the front ends build ModelData and the numerical modules consume it.

theta, the first part of the optimizer's parameters, is the covariance parameters of the blocks
(``theta_slices``, ``n_covariance`` of them) followed by the family's own parameters
(``family_slice``: log phi for the beta-binomial; none for the binomial), so ``n_theta`` counts
both; ``family_at(theta)`` is the family at those values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.family import BINOMIAL_LOGIT, Family, log_binomial_coefficient
from glmm_binomial.model.covariance import CovarianceStructure, Unstructured

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

LIMIT_TOL = 1e-6
"""A family parameter within this of its limit (Family.parameter_limits, optimizer's scale) is
at it: the search's whitened coordinates round a point put there."""

LARGEST_VALUE = 1e100
"""Design values beyond this in absolute value overflow the fit's products (x' W x); the front
ends refuse them with a message to rescale."""


SPAN_TOL = 1e-8
"""ModelData.fixed_spans_constant: X spans the constant when least squares of 1 on X leaves a
residual norm below this times sqrt(n) (the constant's own norm)."""


@dataclass(frozen=True)
class RandomBlock:
    """One random-effect term: (terms | group), with the structure of its covariance
    (model.covariance; None: lme4's unstructured one)."""

    group: str
    terms: tuple[str, ...]
    codes: IntArray
    levels: tuple[object, ...]
    z: FloatArray
    structure: CovarianceStructure | None = None

    def __post_init__(self) -> None:
        k = int(self.z.shape[1])
        if self.structure is None or (
            isinstance(self.structure, Unstructured) and self.structure.k != k
        ):
            # lme4's structure fits any number of columns (also after dataclasses.replace
            # with other columns).
            object.__setattr__(self, "structure", Unstructured(k))
        elif self.structure.k != k:
            raise ValueError(
                f"a {self.structure.name} covariance of dimension {self.structure.k} for "
                f"{k} columns of ({' + '.join(self.terms)} | {self.group})"
            )

    @property
    def covariance(self) -> CovarianceStructure:
        """The structure of this term's covariance (how theta gives Lambda_t)."""
        assert self.structure is not None
        return self.structure

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def k(self) -> int:
        return int(self.z.shape[1])

    @property
    def n_theta(self) -> int:
        return self.covariance.n_theta

    def lower_indices(self) -> tuple[IntArray, IntArray]:
        """Row and column indices of theta's entries in Lambda (lme4's unstructured layout:
        column-major lower triangle); ValueError for another structure."""
        if not isinstance(self.covariance, Unstructured):
            raise ValueError(
                f"the {self.covariance.name} covariance of ({' + '.join(self.terms)} | "
                f"{self.group}) has no lower-triangle layout of theta"
            )
        return self.covariance.lower_indices()

    def lambda_matrix(self, theta: FloatArray) -> FloatArray:
        """Lambda_t (k x k lower triangular) from this block's slice of theta."""
        return self.covariance.lambda_matrix(theta)

    def intercept_at_zero(self, theta: FloatArray, tol: float) -> bool:
        """Whether the structure restarts when singular (unstructured, diag) and the term's
        intercept has its SD (the norm of Lambda's row of that column; this block's slice of
        theta given) below `tol`."""
        if not self.covariance.restarts_when_singular or "(Intercept)" not in self.terms:
            return False
        row = self.lambda_matrix(theta)[self.terms.index("(Intercept)")]
        return bool(np.linalg.norm(row) < tol)


@dataclass(frozen=True)
class ModelData:
    """Response, fixed-effects design and random-effect blocks of one model, and its family
    (the distribution of a row given eta, and the link; glmm_binomial.family)."""

    successes: FloatArray
    trials: FloatArray
    x: FloatArray
    offset: FloatArray
    fixed_names: tuple[str, ...]
    blocks: tuple[RandomBlock, ...]
    log_binomial_constant: float = field(default=float("nan"))
    family: Family = BINOMIAL_LOGIT

    def __post_init__(self) -> None:
        if np.isnan(self.log_binomial_constant):
            object.__setattr__(
                self,
                "log_binomial_constant",
                log_binomial_coefficient(self.successes, self.trials),
            )

    @property
    def n_obs(self) -> int:
        return int(self.successes.shape[0])

    @property
    def n_fixed(self) -> int:
        return int(self.x.shape[1])

    # Cached (the fields are fixed): the optimizer asks for these at every evaluation.
    @cached_property
    def n_covariance(self) -> int:
        """Covariance parameters of the random-effect blocks (theta without the family's)."""
        return sum(b.n_theta for b in self.blocks)

    @cached_property
    def n_theta(self) -> int:
        """Covariance parameters, then the family's parameters (none for the binomial)."""
        return self.n_covariance + self.family.n_parameters

    @cached_property
    def block_slices(self) -> tuple[slice, ...]:
        """Where each block's parameters sit in theta (theta_slices as a tuple)."""
        out, start = [], 0
        for b in self.blocks:
            out.append(slice(start, start + b.n_theta))
            start += b.n_theta
        return tuple(out)

    @property
    def family_slice(self) -> slice:
        """Where the family's parameters sit in theta (after the covariance parameters)."""
        return slice(self.n_covariance, self.n_theta)

    def family_at(self, theta: FloatArray) -> Family:
        """The family at the parameters in theta's tail (the family itself when it has
        none)."""
        if not self.family.n_parameters:
            return self.family
        return self.family.with_parameters(np.asarray(theta)[self.family_slice])

    def theta_slices(self) -> list[slice]:
        """Where each block's parameters sit in theta."""
        return list(self.block_slices)

    def theta_scaled(self, theta: FloatArray, blocks: Sequence[int], factor: float) -> FloatArray:
        """theta with the covariance of each block in `blocks` scaled by factor^2 (its SDs
        times factor, its correlations kept: CovarianceStructure.scaled); the other blocks' and
        the family's parameters as they are."""
        out = np.array(theta, dtype=np.float64)
        for t in blocks:
            where = self.block_slices[t]
            out[where] = self.blocks[t].covariance.scaled(out[where], factor)
        return out

    def theta_lower_bounds(self) -> FloatArray:
        """Each structure's bounds (unstructured: 0 for diagonal entries of each Lambda_t,
        -inf for off-diagonal ones, as lme4)."""
        bounds = [b.covariance.lower_bounds() for b in self.blocks]
        bounds.append(self.family.parameter_lower_bounds())
        return np.concatenate(bounds).astype(np.float64)

    def theta_at_boundary(self, theta: FloatArray, tol: float) -> NDArray[np.bool_]:
        """Which entries of theta are on the boundary (a variance at zero): each structure's
        rule (unstructured: a diagonal entry of Lambda_t below tol, as lme4's isSingular); a
        family's parameter at or beyond its limit (Family.parameter_limits: the beta-binomial's
        log phi, where it is the binomial)."""
        parts = [
            b.covariance.at_boundary(np.asarray(theta[s]), tol)
            for b, s in zip(self.blocks, self.theta_slices(), strict=True)
        ]
        parts.append(self.family_at_limit(theta))
        return np.concatenate(parts)

    def family_at_limit(self, theta: FloatArray) -> NDArray[np.bool_]:
        """Which of the family's parameters in theta are at their limit (within LIMIT_TOL:
        the search's coordinates round it) or beyond."""
        values = np.asarray(theta, dtype=np.float64)[self.family_slice]
        return np.asarray(values >= self.family.parameter_limits() - LIMIT_TOL)

    def family_near_limit(self, theta: FloatArray, tol: float) -> NDArray[np.bool_]:
        """Which of the family's parameters in theta are within `tol` of their limit on the
        family's own scale (Family.parameter_near_limit)."""
        values = np.asarray(theta, dtype=np.float64)[self.family_slice]
        return self.family.parameter_near_limit(values, tol)

    def family_values(self, theta: FloatArray) -> FloatArray:
        """The family's parameters on their own scale (the beta-binomial's phi = exp(log phi)),
        inf at their limit (no overdispersion: the binomial)."""
        values = np.exp(np.asarray(theta, dtype=np.float64)[self.family_slice])
        return np.asarray(np.where(self.family_at_limit(theta), np.inf, values))

    def theta_at_limit(self, theta: FloatArray) -> FloatArray | None:
        """theta with each family parameter that has a limit put at it, or None when none
        has one."""
        limits = self.family.parameter_limits()
        if not np.isfinite(limits).any():
            return None
        out = np.array(theta, dtype=np.float64)
        values = out[self.family_slice]
        out[self.family_slice] = np.where(np.isfinite(limits), limits, values)
        return out

    def theta_off_limit(self, theta: FloatArray) -> FloatArray:
        """theta with each family parameter at its limit put at its restart
        (Family.parameter_restarts), where a search can leave it; the others as they are."""
        out = np.array(theta, dtype=np.float64)
        at = self.family_at_limit(out)
        if at.any():
            values = out[self.family_slice]
            out[self.family_slice] = np.where(at, self.family.parameter_restarts(), values)
        return out

    def theta_snaps(
        self, theta: FloatArray, near: float, tol: float
    ) -> list[tuple[int, float, float]]:
        """Each structure's snaps (CovarianceStructure.snaps) with indices into theta: the
        variances below `near` not yet at the boundary, as (index, value there, SD now)."""
        out = []
        for b, s in zip(self.blocks, self.theta_slices(), strict=True):
            for j, value, size in b.covariance.snaps(np.asarray(theta[s]), near, tol):
                out.append((s.start + j, value, size))
        return out

    def theta_log_sds(self) -> NDArray[np.bool_]:
        """Which entries of theta are a structured covariance's log SD
        (CovarianceStructure.log_sds: at the boundary as they go to -inf)."""
        parts = [b.covariance.log_sds() for b in self.blocks]
        parts.append(np.zeros(self.family.n_parameters, dtype=bool))
        return np.concatenate(parts)

    def column_spreads(self) -> list[FloatArray]:
        """The largest |z| of each block's columns."""
        return [np.max(np.abs(b.z), axis=0, initial=0.0) for b in self.blocks]

    def theta_sd_spreads(self) -> FloatArray:
        """For each structured covariance's log SD in theta (theta_log_sds), the largest |z|
        of the columns that SD scales (its random effect moves eta by the SD times z), NaN
        elsewhere (CovarianceStructure.log_sd_spreads)."""
        parts = [
            b.covariance.log_sd_spreads(spread)
            for b, spread in zip(self.blocks, self.column_spreads(), strict=True)
        ]
        parts.append(np.full(self.family.n_parameters, np.nan))
        return np.concatenate(parts)

    def theta_saturated(self, theta: FloatArray, tol: float) -> NDArray[np.bool_]:
        """Which entries of theta are a structured covariance's correlation parameter with the
        correlation within `tol` of an end of its range (CovarianceStructure.saturated)."""
        parts = [
            b.covariance.saturated(np.asarray(theta[s]), tol)
            for b, s in zip(self.blocks, self.theta_slices(), strict=True)
        ]
        parts.append(np.zeros(self.family.n_parameters, dtype=bool))
        return np.concatenate(parts)

    def theta_unsaturated(self, theta: FloatArray, tol: float, margin: float) -> FloatArray:
        """theta with each saturated structured correlation moved `margin` inside its range
        (CovarianceStructure.unsaturated); the other entries as they are."""
        out = self.blocks_replaced(theta, lambda c, part: c.unsaturated(part, tol, margin))
        return np.array(theta, dtype=np.float64) if out is None else out

    def theta_other_basin(self, theta: FloatArray, tol: float) -> FloatArray | None:
        """theta with each block that has a start in another basin
        (CovarianceStructure.other_basin) set to it, or None when no block has one."""
        return self.blocks_replaced(theta, lambda c, part: c.other_basin(part, tol))

    def theta_singular_restart(self, theta: FloatArray, tol: float) -> FloatArray | None:
        """Where some block is at a singular end of a vector term
        (CovarianceStructure.ends_singular), or a block with an SD at zero shares its
        grouping factor with another block (lme4's (1 + x || g) is (1 | g) + (0 + x | g),
        which gets the searches of diag(1 + x | g): fuzz_formula 5:109 ended with x's SD at
        zero 0.0084 below glmmTMB, where the diag fit's restart reaches glmmTMB's optimum),
        or, in a model whose fixed effects do not span the constant (fixed_spans_constant), a
        term's random intercept has its SD at zero (RandomBlock.intercept_at_zero), or, under a
        link with a bound (the log link), any unstructured or diag block has an SD at zero (a
        scalar term's too: with rates near 1 the profile over an SD can dip after zero and rise
        to a higher optimum; fuzz_dask_log 6 and 32, (1 | g/h), ended at zero 0.47 and 1.42
        below glmmTMB's): theta with every unstructured and diag block at lme4's start
        (restart_start; the other blocks and the family's entries as they are); else None."""
        theta = np.asarray(theta, dtype=np.float64)
        slices = list(zip(self.blocks, self.theta_slices(), strict=True))
        groups = Counter(b.group for b in self.blocks)
        if not (
            any(b.covariance.ends_singular(theta[s], tol) for b, s in slices)
            or any(
                groups[b.group] > 1 and b.covariance.restarts_at_zero(theta[s], tol)
                for b, s in slices
            )
            or (
                any(b.intercept_at_zero(theta[s], tol) for b, s in slices)
                and not self.fixed_spans_constant
            )
            or (
                bool(np.isfinite(self.family.eta_upper))
                and any(b.covariance.restarts_at_zero(theta[s], tol) for b, s in slices)
            )
        ):
            return None
        return self.blocks_replaced(theta, lambda c, part: c.restart_start())

    def with_fixed_columns(self, keep: Sequence[int] | IntArray) -> ModelData:
        """This model with the fixed-effects columns `keep` only, in that order: the smaller
        model of a likelihood-ratio test (drop1, power_sim's lrt)."""
        return replace(
            self,
            x=np.ascontiguousarray(self.x[:, keep]),
            fixed_names=tuple(self.fixed_names[j] for j in keep),
        )

    @cached_property
    def fixed_spans_constant(self) -> bool:
        """Whether some combination of X's columns is the constant 1 (an intercept, or a
        factor in full): least squares of 1 on X leaves a residual below SPAN_TOL of its
        norm. Without it the random intercepts carry the overall level, and which term
        carries it is a choice between basins of the deviance: fuzz_formula 11:49, y ~ exp(x1
        / 3) - 1 + (1 | g) + (1 | h), ended with h's SD at zero 1.33 below glmer's optimum,
        which a search from lme4's theta at that end's beta reaches. A model without rows (the
        Dask fit's, whose rows are in partitions) spans it only by its "(Intercept)" column:
        there `0 + f` makes a search more than in memory, which is taken only where lower."""
        if "(Intercept)" in self.fixed_names or (self.x == 1.0).all(axis=0).any():
            return True
        if not self.n_fixed or not self.x.shape[0]:
            return False
        ones = np.ones(self.x.shape[0])
        try:
            coef = np.linalg.lstsq(self.x, ones, rcond=None)[0]
        except np.linalg.LinAlgError:
            return True
        residual = float(np.linalg.norm(self.x @ coef - ones))
        return residual <= SPAN_TOL * float(np.sqrt(self.x.shape[0]))

    def theta_mirror_starts(self, theta: FloatArray, tol: float) -> list[FloatArray]:
        """theta with one block's slice replaced by one of its mirror starts
        (CovarianceStructure.mirror_starts: a singular unstructured end with one column's
        correlations negated), one per start over the blocks."""
        return self.blocks_varied(theta, lambda c, part: c.mirror_starts(part, tol))

    def theta_face_starts(self, theta: FloatArray, tol: float) -> list[FloatArray]:
        """theta with one block's slice replaced by one of its face starts
        (CovarianceStructure.face_starts), one per face start over the blocks."""
        return self.blocks_varied(theta, lambda c, part: c.face_starts(part, tol))

    def theta_correlation_trials(self, theta: FloatArray, tol: float) -> list[FloatArray]:
        """theta with one block's slice replaced by one of its correlation trials
        (CovarianceStructure.correlation_trials), one per trial over the blocks."""
        return self.blocks_varied(theta, lambda c, part: c.correlation_trials(part, tol))

    def blocks_varied(
        self,
        theta: FloatArray,
        variants: Callable[[CovarianceStructure, FloatArray], list[FloatArray]],
    ) -> list[FloatArray]:
        """theta with one block's slice replaced by one of variants(its structure, the slice),
        one copy per variant over the blocks (the other entries as they are)."""
        theta = np.asarray(theta, dtype=np.float64)
        out = []
        for b, s in zip(self.blocks, self.theta_slices(), strict=True):
            for part in variants(b.covariance, theta[s]):
                varied = theta.copy()
                varied[s] = part
                out.append(varied)
        return out

    def blocks_replaced(
        self,
        theta: FloatArray,
        replace: Callable[[CovarianceStructure, FloatArray], FloatArray | None],
    ) -> FloatArray | None:
        """theta with each block's slice replaced by replace(its structure, the slice) where
        that is not None (the family's entries as they are); None when no block's is."""
        out = np.array(theta, dtype=np.float64)
        replaced = False
        for b, s in zip(self.blocks, self.theta_slices(), strict=True):
            part = replace(b.covariance, out[s])
            if part is not None:
                out[s] = part
                replaced = True
        return out if replaced else None

    def theta_at_ends(self, theta: FloatArray, tol: float, near: float, gap: float) -> FloatArray:
        """theta with each saturated structured correlation (within `tol` of an end of its
        range) put `gap` from that end and each structured SD below `near` at `gap`
        (CovarianceStructure.at_end); the other entries as they are."""
        out = self.blocks_replaced(theta, lambda c, part: c.at_end(part, tol, near, gap))
        return np.array(theta, dtype=np.float64) if out is None else out

    def theta_start(self) -> FloatArray:
        """lme4's start: Lambda_t = I (each structure's start)."""
        starts = [b.covariance.start() for b in self.blocks]
        starts.append(np.zeros(self.family.n_parameters))
        return np.concatenate(starts).astype(np.float64)

    def theta_turned(self, theta: FloatArray, tol: float) -> FloatArray | None:
        """theta with each unstructured term's columns at the boundary but not zero below
        it folded into the later columns (CovarianceStructure.turned: the same covariances
        but for those diagonal entries, now 0), or None when no term has such a column."""
        return self.blocks_replaced(theta, lambda c, part: c.turned(part, tol))

    def theta_taken_over(self, theta: FloatArray, tol: float) -> list[tuple[FloatArray, int]]:
        """theta with a later column of an unstructured Lambda moved into a column whose
        diagonal entry is below `tol` (CovarianceStructure.taken_over: the same covariances
        but for that column's own entries), one point per such pair of columns, each with
        the index in theta of the first column's diagonal entry."""
        out = []
        for b, s in zip(self.blocks, self.theta_slices(), strict=True):
            for values, j in b.covariance.taken_over(theta[s], tol):
                point = np.array(theta, dtype=np.float64)
                point[s] = values
                out.append((point, int(s.start) + j))
        return out

    def canonical_theta(self, theta: FloatArray) -> FloatArray:
        """theta in each structure's canonical form (the same covariances)."""
        out = np.array(theta, dtype=np.float64)
        for b, s in zip(self.blocks, self.theta_slices(), strict=True):
            out[s] = b.covariance.canonical(out[s])
        return out

    def theta_gradient(
        self, lambdas: list[FloatArray], grad_lambdas: list[FloatArray]
    ) -> FloatArray:
        """The gradient in theta from the gradients in the entries of each Lambda_t (k x k),
        at the theta whose Lambdas are `lambdas` (each structure's chain rule)."""
        out = np.zeros(self.n_theta)
        for b, s, lam, grad in zip(
            self.blocks, self.theta_slices(), lambdas, grad_lambdas, strict=True
        ):
            out[s] = b.covariance.theta_gradient(lam, grad)
        return out

    def take(self, rows: IntArray) -> ModelData:
        """The same model with its rows in the order `rows` (a permutation)."""
        blocks = tuple(
            RandomBlock(
                b.group,
                b.terms,
                np.take(b.codes, rows),
                b.levels,
                np.take(b.z, rows, axis=0),
                b.structure,
            )
            for b in self.blocks
        )
        return ModelData(
            successes=np.take(self.successes, rows),
            trials=np.take(self.trials, rows),
            x=np.take(self.x, rows, axis=0),
            offset=np.take(self.offset, rows),
            fixed_names=self.fixed_names,
            blocks=blocks,
            log_binomial_constant=self.log_binomial_constant,
            family=self.family,
        )

    def subset(self, rows: IntArray) -> ModelData:
        """The same model on its rows `rows` (increasing positions): a grouping factor's levels
        left without rows are dropped (codes renumbered, as R's model frame drops unused
        levels), the binomial constant recomputed; influence()'s deletions."""
        rows = np.asarray(rows, dtype=np.intp)
        blocks = []
        for b in self.blocks:
            used, codes = np.unique(b.codes[rows], return_inverse=True)
            blocks.append(
                RandomBlock(
                    b.group,
                    b.terms,
                    codes.astype(b.codes.dtype, copy=False),
                    tuple(b.levels[i] for i in used),
                    np.ascontiguousarray(b.z[rows]),
                    b.structure,
                )
            )
        return ModelData(
            successes=self.successes[rows],
            trials=self.trials[rows],
            x=np.ascontiguousarray(self.x[rows]),
            offset=self.offset[rows],
            fixed_names=self.fixed_names,
            blocks=tuple(blocks),
            family=self.family,
        )

    def lambdas(self, theta: FloatArray) -> list[FloatArray]:
        return [
            b.lambda_matrix(theta[s]) for b, s in zip(self.blocks, self.theta_slices(), strict=True)
        ]

    def lambda_change(self, theta: FloatArray, last_theta: FloatArray) -> list[FloatArray]:
        """Lambda_t(theta) - Lambda_t(last_theta) per block (for a first-order move of the
        conditional mode); a structure linear in theta gives it as Lambda_t(theta - last)."""
        out = []
        for b, s in zip(self.blocks, self.theta_slices(), strict=True):
            if b.covariance.linear:
                out.append(b.lambda_matrix(theta[s] - last_theta[s]))
            else:
                out.append(b.lambda_matrix(theta[s]) - b.lambda_matrix(last_theta[s]))
        return out
