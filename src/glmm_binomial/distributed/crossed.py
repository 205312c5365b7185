"""Grouping factors crossed with the partitioning factor of a Dask fit (method="laplace").

The rows are shuffled on one grouping factor g so that each partition holds whole levels of g
and of the factors nested in it (their random effects u_p are *local*). A factor crossed with g
(an item seen in many levels of g) has random effects u_c shared by all partitions: with
q_c = sum over the crossed blocks of levels x k columns (a few thousand at most,
DASK_CROSSED_LIMIT), H = Lambda' Z' W Z Lambda + I is, in the order (u_1, ..., u_P, u_c),

    H = [ H_pp (block diagonal over partitions)   H_pc ]
        [ H_cp                                    H_cc ],

and everything is done with the Schur complement

    S = I + sum_p (H_cc,p - H_cp,p H_pp^{-1} H_pc,p)      (dense q_c x q_c, on the client).

Each partition is a CrossedPartition: its rows as ModelData with the crossed blocks coded by
the levels of the whole data set, and a factor.Structure whose dense *rest* is exactly the
crossed blocks (``Structure(..., crossed=...)``). Its ``eliminate_chain`` gives the partition's
factor of H_pp and its term of S; ``Factor.forward``/``backward`` are the two halves of a solve
with H around the client's solve with S; ``selected_inverse(zrr=S^{-1})`` gives the partition's
entries of H^{-1} (the Takahashi recurrences need only the partition's chain and S^{-1}), so
laplace.row_leverages / gradient_from_solve compute the exact gradient as in memory, and
log det H = sum_p log det H_pp + log det S.

The conditional mode is the in-memory PIRLS (pirls.find_mode) on the joint u: a Newton step
H d = g solved by the Schur complement, pirls.halving_step on the total penalized deviance, the
same PirlsControl tolerances. For a family that is not log-concave (the cauchit link), where
some observed weights are negative each partition also factors its chain with the weights
clipped at zero, and the client steps with those where H with the observed weights is not
positive definite, as find_mode does; the mode's deviance takes the observed. One round trip
per Newton step: the partitions evaluate the trial point and, speculatively, everything the
next step needs there (the client accepts or halves). For the log link, find_mode's steps up to
the bound (bounded_step) and its projection holding the rows on it (face_step) take a round
trip more per Newton step (direction), and two more where rows are held (face, project; again
while the projection pushes further rows): the projection's solves with H are split as the
Newton step's.
A search starts from the last mode moved to first order to the new (theta, beta), by
pirls.WarmStart's rule (largest_move, prediction_accepted) over all partitions: the change is
one solve with the last H, split between the partitions and S (two round trips: the reduced
right-hand side, then the start); without it the gradients at the optimizer's nearby points
differ from the in-memory ones by the mode tolerance, enough to move finite-difference standard
errors by 1e-4. The gradient takes two more round trips (S^{-1} out, the reduced right-hand side
of v = H^{-1} (Z Lambda)' r back, its solution out), the fixed-effects information two.
Between evaluations a partition keeps its last mode (about 60 bytes per row for
(1 + x | g) + (1 | item)), during a search two points.

CrossedObjective (the client) asks the partitions through a runner (runner.Runner: local_runner
in one process, PinnedRunner on a cluster) and sums in partition order, so the same input gives
the same output bit for bit. On a cluster the partitions' state between calls lives in working
copies pinned to workers, with serial numbers (PinnedRunner, below; runner.py says why the
versions of the nested partitions cannot serve here).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.distributed.partition import Partition, PartitionPlan, place_effects
from glmm_binomial.distributed.runner import Partitions, Runner, release
from glmm_binomial.distributed.runner import local_runner as local_runner
from glmm_binomial.methods.laplace import (
    Counters,
    block_effects,
    family_parameter_gradient,
    gradient_from_solve,
    row_leverages,
    rows_at_link_bound,
)
from glmm_binomial.methods.maximum_likelihood import LikelihoodMethod
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import RandomSpec
from glmm_binomial.model.formula import ParsedFormula
from glmm_binomial.numerics import blas
from glmm_binomial.numerics.factor import (
    Factor,
    Structure,
    rest_cholesky,
    rest_inverse,
    rest_solve,
)
from glmm_binomial.numerics.pirls import (
    MAX_HELD_ROWS,
    Mode,
    PirlsControl,
    barrier_rows,
    bounded_step,
    halving_step,
    largest_move,
    lowered_start,
    penalized_deviance,
    prediction_accepted,
    pushed_rows,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
LOG = logging.getLogger(__name__)

DASK_CROSSED_LIMIT = 5000
"""Largest q_c (random effects of the factors crossed with the partitioning factor, levels x
columns summed over their blocks) a Dask fit takes: S is a dense q_c x q_c matrix summed over
the partitions at every Newton step."""
SCATTER_BYTES = 50_000
"""Arrays sent to every partition larger than this are scattered to the workers once per call.
(distributed's Client.map puts keyword arguments above 100 kB into the graph under the
argument's name, a key that collides between successive calls.)"""
MAX_RESTARTS = 3
"""A partition that lost its state (rebuilt after a worker failure) makes the client restart
the evaluation, at most this many times in a row."""
WATCH_SECONDS = 2.0
"""While waiting for the partitions, how often the client checks that the worker each one is
pinned to still holds it."""
LOST = "glmm-binomial: partition state lost"


class PartitionLost(RuntimeError):
    """A partition no longer holds the state of the evaluation in progress."""


@dataclass
class _Point:
    """The partition at one (u1, u2): PIRLS's Mode there (penalized_deviance without |u_c|^2,
    factor of the chain only) and, for each weighting of H the client may step with, the
    chain's factor and the forward substitution y of the Newton right-hand side: newton[True]
    with the observed weights (absent where that chain is not positive definite),
    newton[False] with the weights clipped at zero (only where some observed weight is
    negative, as pirls.find_mode steps for a family that is not log-concave). The Mode
    carries the observed factor where there is one: the Laplace approximation's."""

    mode: Mode
    newton: dict[bool, tuple[Factor, list[FloatArray]]]

    def step_factor(self, observed: bool) -> tuple[Factor, list[FloatArray]]:
        """The factor and y of the weighting the client chose (the observed one where the
        weights are the same)."""
        return self.newton.get(observed) or self.newton[True]


class CrossedPartition(Partition):
    """One partition's share of the crossed model, kept on its worker between calls.

    data: the partition's rows, every block coded by the partition's own levels (as
    partition.partition_rows makes them); keys[t][j]: the position of its level j of block
    t among the levels of the whole data set; crossed: the blocks crossed with the partitioning
    factor, whose levels are those of the whole data set (crossed_levels).

    Each method takes `serial`, the client's count of calls in the current evaluation; a
    partition that missed the previous one (rebuilt after a failure, or a copy of it on another
    worker) answers LOST, and the client restarts the evaluation."""

    def __init__(
        self,
        data: ModelData,
        keys: Sequence[IntArray],
        crossed: tuple[int, ...],
        crossed_levels: Sequence[tuple[object, ...]],
        pirls_control: PirlsControl,
    ) -> None:
        self.pirls_control = pirls_control
        self.keys = tuple(keys)
        self.crossed = crossed
        self.counters = Counters()
        blocks = list(data.blocks)
        for t, levels in zip(crossed, crossed_levels, strict=True):
            b = blocks[t]
            blocks[t] = dataclasses.replace(
                b, codes=np.asarray(self.keys[t][b.codes], dtype=np.intp), levels=tuple(levels)
            )
        model = dataclasses.replace(data, blocks=tuple(blocks))
        try:
            structure = Structure(model, crossed=crossed)
        except ValueError as exc:
            raise _in_memory_hint(
                f"{exc} (the factors that are not crossed with the partitioning factor must "
                "be nested one in the next)"
            ) from None
        order = None
        g1 = structure.g1
        if np.any(g1[1:] < g1[:-1]):
            # As LaplaceObjective: rows sorted by the first level make its sums contiguous.
            keys1 = g1.astype(np.uint16) if structure.n1 <= np.iinfo(np.uint16).max else g1
            order = np.argsort(keys1, kind="stable")
            model = model.take(order)
            structure = Structure(model, crossed=crossed)
        self.model = model
        self.structure = structure
        # The same rows with the partition's own codes (what the client reads: the rows
        # for the separation check, the GLM start), sharing every other array.
        local = list(model.blocks)
        for t in crossed:
            codes = data.blocks[t].codes
            local[t] = dataclasses.replace(
                local[t],
                codes=codes if order is None else np.take(codes, order),
                levels=data.blocks[t].levels,
            )
        self.data = dataclasses.replace(model, blocks=tuple(local))
        # The rows with the family at the current theta's family parameters (begin).
        self._at_theta = model
        self.user_data: ModelData | None = None
        self.output = None
        self._serial = -1
        self._base: _Point | None = None
        self._pending: _Point | None = None
        self._anchor: _Point | None = None  # the last mode, the next search's warm start
        self._work: Any = None
        # The Newton direction at the base where the client keeps the steps inside the
        # link's bound (direction, project), and the held rows' columns (face).
        self._direction: tuple[FloatArray, FloatArray] | None = None
        self._newton: tuple[FloatArray, FloatArray, FloatArray] = (np.zeros(0),) * 3
        self._face: tuple[IntArray, list[Any], list[FloatArray]] = (np.zeros(0, np.intp), [], [])
        self._columns: list[tuple[FloatArray, FloatArray]] = []
        # The factor of H the client stepped with at the base (direction's weighting).
        self._face_factor: Factor | None = None
        self._eta_fixed = np.zeros(0)
        self._lambdas: list[FloatArray] = []
        self._a: tuple[FloatArray, FloatArray] = (np.zeros((0, 0)), np.zeros((0, 0)))
        self._lambda1 = np.zeros((0, 0))
        self._scratch = (np.zeros(0), np.zeros(0))

    @classmethod
    def from_rows(
        cls, data: ModelData, keys: tuple[IntArray, ...], plan: PartitionPlan
    ) -> CrossedPartition:
        method = plan.options.method
        assert isinstance(method, LikelihoodMethod)
        levels = [plan.design.random_specs[t].levels for t in plan.crossed]
        return cls(data, keys, plan.crossed, levels, method.pirls_control)

    def on_rows(self, data: ModelData) -> CrossedPartition:
        """The same partition on other columns of its rows (as the user's columns of a fit on
        internally scaled ones), coded as `data` is (the partition's own levels)."""
        levels = [self.model.blocks[t].levels for t in self.crossed]
        return CrossedPartition(data, self.keys, self.crossed, levels, self.pirls_control)

    def _held_arrays(self) -> list[NDArray[Any]]:
        return [*super()._held_arrays(), *(self.model.blocks[t].codes for t in self.crossed)]

    # --- bookkeeping -----------------------------------------------------------------------
    def _sync(self, serial: int, commit: bool) -> bool:
        """Whether this call follows the previous one; commit: the client accepted the last
        trial point (it becomes the base)."""
        in_step = self._serial == serial - 1 and self._base is not None
        self._serial = serial
        # Only a begin(retry=True) right after begin needs the last mode.
        self._anchor = None
        if not in_step:
            return False
        if commit and self._pending is not None:
            self._base = self._pending
        self._pending = None
        return True

    def _evaluate(self, u1: FloatArray, u2: FloatArray) -> tuple[_Point, tuple[Any, ...]]:
        """Everything at (u1, u2) and its summary for the client: penalized deviance (local
        u only), the binomial constant, and for the observed weights and (where some are
        negative) the clipped ones (_Point.newton) S's term, the reduced Newton right-hand
        side for u_c (without -u_c), |y|^2 and log det of the chain; None for the observed
        where that chain is not positive definite, None for the clipped where no weight is
        negative (the same as the observed); both None where the point has no likelihood."""
        model, st = self._at_theta, self.structure
        a1, a2 = self._a
        q_chain = st.q_chain
        eta = self._eta_fixed + st.times(a1, a2, u1, u2)
        pdev, mu = penalized_deviance(eta, model, u1, u2[:q_chain], self._scratch)
        if not np.isfinite(pdev):
            # No likelihood here (a row past the log link's bound): the client rejects the
            # trial or starts elsewhere, so no system is computed (H = I stands in).
            zero = np.zeros(st.n)
            factor = st.eliminate_chain(a1, a2, zero, self._lambda1)[0]
            mode = Mode(u1, u2, a1, a2, eta, mu, zero, zero, factor, pdev, 0, False, self._lambdas)
            return _Point(mode, {}), (pdev, model.log_binomial_constant, None, None)
        w, residual = model.family.weights_and_residual(
            eta, mu, model.successes, model.trials, st.unit_trials
        )
        g1, g2 = st.transpose_times(a1, a2, residual)
        g1 = g1 - u1
        g2[:q_chain] -= u2[:q_chain]
        negative = not model.family.log_concave and bool((w < 0.0).any())
        newton: dict[bool, tuple[Factor, list[FloatArray]]] = {}
        systems: list[tuple[FloatArray, FloatArray, float, float] | None] = []
        for observed in (True, False) if negative else (True,):
            weights = w if observed else np.maximum(w, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                factor, schur = st.eliminate_chain(a1, a2, weights, self._lambda1)
            assert schur is not None  # the crossed blocks are the rest
            if negative and observed and not np.isfinite(factor.logdet):
                # Weights of both signs: the chain may not be positive definite.
                systems.append(None)
                continue
            y, rr = factor.forward(g1, g2)
            newton[observed] = (factor, y)
            systems.append((schur, rr, float(sum(np.sum(yd * yd) for yd in y)), factor.logdet))
        if not negative:
            systems.append(None)
        factor = (newton.get(True) or newton[False])[0]
        mode = Mode(u1, u2, a1, a2, eta, mu, w, residual, factor, pdev, 0, False, self._lambdas)
        summary = (pdev, model.log_binomial_constant, *systems)
        return _Point(mode, newton), summary

    # --- the mode search -------------------------------------------------------------------
    def predict(
        self,
        serial: int,
        commit: bool,
        theta: FloatArray,
        beta: FloatArray,
        last_theta: FloatArray,
        last_beta: FloatArray,
    ) -> Any:
        """The reduced right-hand side for u_c of LaplaceObjective.mode_change's solve
        H du = dA' (k - m mu) - A' W (X dbeta + dA u) at the last mode (at last_theta,
        last_beta); begin(du_c=...) finishes it."""
        if not self._sync(serial, commit):
            return LOST
        assert self._base is not None
        mode, model, st = self._base.mode, self.model, self.structure
        da1, da2 = st.z_lambda(model, model.lambda_change(theta, last_theta))
        deta = model.x @ (beta - last_beta) + st.times(da1, da2, mode.u1, mode.u2)
        r1, r2 = st.transpose_times(da1, da2, mode.residual)
        s1, s2 = st.transpose_times(mode.a1, mode.a2, mode.weights * deta)
        y, rr = mode.factor.forward(r1 - s1, r2 - s2)
        self._work = y
        return rr

    def begin(
        self,
        serial: int,
        commit: bool,
        theta: FloatArray,
        beta: FloatArray,
        u_c: FloatArray,
        reset: bool,
        du_c: FloatArray | None = None,
        retry: bool = False,
        lowered: bool = False,
    ) -> Any:
        """Start a mode search at (theta, beta): from the last mode moved by predict's step
        (du_c: its u_c part), else from the last mode's local u (zero after a reset) and the
        client's u_c. retry: start again from the last mode (the prediction went too far).
        lowered (with reset): u = 0 but the first factor's effects lowered below the link's
        bound along its random intercept (pirls.lowered_start, as find_mode's start
        where u = 0 has no likelihood). The summary (as trial's) ends with the largest |du| of
        the prediction here."""
        if du_c is not None and (self._serial != serial - 1 or self._base is None):
            self._serial = serial
            return LOST
        model, st = self.model, self.structure
        if commit and self._pending is not None and self._serial == serial - 1:
            self._base = self._pending
        if not retry:
            self._anchor = None if reset else self._base
        anchor = self._anchor
        y = self._work
        self._serial = serial
        self._pending = None
        self._work = None
        self._direction = None
        if model.family.n_parameters:
            family = model.family_at(theta)
            if family != self._at_theta.family:
                self._at_theta = dataclasses.replace(model, family=family)
        self._lambdas = model.lambdas(theta)
        self._a = st.z_lambda(model, self._lambdas)
        self._lambda1 = st.first_lambda(self._lambdas)
        self._eta_fixed = model.x @ beta + model.offset
        self._scratch = (np.empty(st.n), np.empty(st.n))
        largest = 0.0
        if anchor is None:
            u1, u2 = np.zeros((st.n1, st.k1)), np.concatenate([np.zeros(st.q_chain), u_c])
            upper = model.family.eta_upper
            if lowered and np.isfinite(upper):
                u1 = lowered_start(st, self._eta_fixed, self._a[0], self._lambda1, upper)
        elif du_c is not None:
            du1, du2 = anchor.mode.factor.backward(y, du_c)
            largest = largest_move(du1, du2)
            u1, u2 = anchor.mode.u1 + du1, anchor.mode.u2 + du2
        else:
            u1, u2 = anchor.mode.u1, np.concatenate([anchor.mode.u2[: st.q_chain], u_c])
        self._base, summary = self._evaluate(u1, u2)
        return (*summary, largest)

    def trial(
        self,
        serial: int,
        commit: bool,
        d_c: FloatArray | None,
        step: float,
        observed: bool = True,
    ) -> Any:
        """The point base + step d, d the Newton direction whose u_c part d_c the client
        solved for (the local part by back substitution) with H's observed weights or the
        clipped ones (observed False; _Point.newton); d_c None: the direction kept by
        direction (and project)."""
        if not self._sync(serial, commit):
            return LOST
        assert self._base is not None
        base = self._base
        if d_c is None:
            assert self._direction is not None
            d1, d2 = self._direction
        else:
            factor, y = base.step_factor(observed)
            d1, d2 = factor.backward(y, d_c)
        self._pending, summary = self._evaluate(base.mode.u1 + step * d1, base.mode.u2 + step * d2)
        return summary

    # --- the link's bound (pirls.bounded_step, pushed_rows, face_step) ---------------------
    def direction(self, serial: int, commit: bool, d_c: FloatArray, observed: bool = True) -> Any:
        """Newton's direction at the base given its u_c part (kept for trial), solved with H's
        observed weights or the clipped ones (observed False, as trial's; the face's solves
        then take the same H), and what the client needs to keep the step at or below the
        link's bound: the rows here within pirls.BOUND_GAP of it that the direction pushes
        further (pushed_rows: they are held, _held), and the step to the bound
        (pirls.bounded_step) where none is held."""
        if not self._sync(serial, commit):
            return LOST
        assert self._base is not None
        mode, st = self._base.mode, self.structure
        factor, y = self._base.step_factor(observed)
        self._face_factor = factor
        d1, d2 = factor.backward(y, d_c)
        deta = st.times(mode.a1, mode.a2, d1, d2)
        # Newton's own direction, which each projection starts from (face_step's).
        self._newton = (d1, d2, deta)
        self._direction = (d1, d2)
        upper = self._at_theta.family.eta_upper
        self._face = (np.zeros(0, dtype=np.intp), [], [])
        return self._held(
            pushed_rows(mode.eta, deta, upper), bounded_step(mode.eta, deta, upper, self._barrier)
        )

    def _held(self, more: IntArray, first: float) -> tuple[int, FloatArray, FloatArray, float]:
        """Rows `more` added to the held ones (up to MAX_HELD_ROWS here), and for the client
        their number, for each the reduced right-hand side for u_c of H^{-1} a_i (q_c x more;
        a_i the row of Z Lambda), their change of eta along Newton's direction, and `first`."""
        assert self._base is not None and self._face_factor is not None
        mode, st = self._base.mode, self.structure
        held, ys, rrs = self._face
        empty = np.zeros((st.q_rest, 0))
        if more.size == 0 or held.size + more.size > MAX_HELD_ROWS:
            return more.size, empty, self._newton[2][more], first
        added = []
        for i in more:
            y_i, rr_i = self._face_factor.forward(*st.row_transpose(mode.a1, mode.a2, int(i)))
            ys.append(y_i)
            added.append(rr_i)
        self._face = (np.concatenate([held, more]), ys, rrs + added)
        return more.size, np.column_stack(added), self._newton[2][more], first

    def face(self, first: int, serial: int, commit: bool, x_c: FloatArray) -> Any:
        """Given the u_c parts x_c (q_c x held, all partitions' held rows in partition order;
        this partition's from column `first`) of H^{-1} a_i for the held rows, the columns'
        local parts (kept for project) and this partition's rows of the held rows' Gram
        matrix A H^{-1} A' (pirls.face_step's)."""
        if not self._sync(serial, commit):
            return LOST
        assert self._base is not None and self._face_factor is not None
        mode, st = self._base.mode, self.structure
        factor = self._face_factor
        own_held, own_ys, _ = self._face
        # Columns of another partition's held rows: no right-hand side here.
        zero = factor.forward(np.zeros((st.n1, st.k1)), np.zeros(st.q2))[0]
        columns = []
        for i in range(x_c.shape[1]):
            own = i - first
            y = own_ys[own] if 0 <= own < len(own_ys) else zero
            columns.append(factor.backward(y, x_c[:, i]))
        self._columns = columns
        gram = np.zeros((own_held.size, len(columns)))
        for i, (c1, c2) in enumerate(columns):
            gram[:, i] = st.times_at(own_held, mode.a1, mode.a2, c1, c2)
        return gram

    def project(self, serial: int, commit: bool, weights: FloatArray) -> Any:
        """Newton's direction projected on the face where the held rows stay put (less the
        columns face kept, by the client's weights; kept for trial); the rows at the bound
        that the projection pushes further are held too (as _held adds them: the client
        projects again), else the step to the bound along it."""
        if not self._sync(serial, commit):
            return LOST
        assert self._base is not None
        mode, st = self._base.mode, self.structure
        d1, d2, _ = self._newton
        for weight, (c1, c2) in zip(weights, self._columns, strict=True):
            d1, d2 = d1 - weight * c1, d2 - weight * c2
        self._direction, self._columns = (d1, d2), []
        deta = st.times(mode.a1, mode.a2, d1, d2)
        upper = self._at_theta.family.eta_upper
        more = np.setdiff1d(pushed_rows(mode.eta, deta, upper), self._face[0])
        return self._held(more, bounded_step(mode.eta, deta, upper, self._barrier))

    @functools.cached_property
    def _barrier(self) -> NDArray[np.bool_]:
        """The rows with failures (pirls.barrier_rows), found once: the rows do not change."""
        return barrier_rows(self.model.successes, self.model.trials)

    # --- at the mode -----------------------------------------------------------------------
    def gradient_rhs(self, serial: int, commit: bool, zrr: FloatArray) -> Any:
        """First half of the gradient with S^{-1} = zrr: the reduced right-hand side of
        v = H^{-1} (Z Lambda)' r for u_c (r = w' s, as laplace.logdet_slope's)."""
        if not self._sync(serial, commit):
            return LOST
        assert self._base is not None
        mode, st, model = self._base.mode, self.structure, self._at_theta
        inverse = mode.factor.selected_inverse(zrr=zrr)
        s, h1, h2 = row_leverages(st, mode, inverse)
        slope = model.family.weight_slope(
            mode.eta, mode.mu, mode.weights, model.successes, model.trials
        )
        r = slope * s
        y, rr = mode.factor.forward(*st.transpose_times(mode.a1, mode.a2, r))
        self._work = (inverse, s, r, h1, h2, y)
        return rr

    def gradient_finish(self, serial: int, commit: bool, v_c: FloatArray) -> Any:
        """This partition's terms of the gradient in (theta, beta), given v's u_c part (the
        family parameters' too: laplace.family_parameter_gradient's sums over the rows)."""
        if not self._sync(serial, commit) or self._work is None:
            return LOST
        assert self._base is not None
        mode, st, model = self._base.mode, self.structure, self._at_theta
        inverse, s, r, h1, h2, y = self._work
        self._work = None
        v1, v2 = mode.factor.backward(y, v_c)
        grad_theta, grad_beta = gradient_from_solve(model, st, mode, inverse, r, h1, h2, v1, v2)
        if model.family.n_parameters:
            grad_theta[model.family_slice] = family_parameter_gradient(model, st, mode, s, v1, v2)
        return grad_theta, grad_beta

    def information_rhs(self, serial: int, commit: bool) -> Any:
        """First half of the fixed-effects information: for each column j of X, the reduced
        right-hand side of H^{-1} (Z Lambda)' W x_j for u_c (q_c x p)."""
        if not self._sync(serial, commit):
            return LOST
        assert self._base is not None
        mode, st, x = self._base.mode, self.structure, self.model.x
        wx = mode.weights[:, None] * x
        ys, rrs = [], []
        for j in range(x.shape[1]):
            y, rr = mode.factor.forward(*st.transpose_times(mode.a1, mode.a2, wx[:, j]))
            ys.append(y)
            rrs.append(rr)
        self._work = (wx, ys)
        return np.column_stack(rrs) if rrs else np.zeros((st.q_rest, 0))

    def information_finish(self, serial: int, commit: bool, s_c: FloatArray) -> Any:
        """This partition's X' W X - X' W Z Lambda H^{-1} Lambda' Z' W X, given the u_c parts
        of the solutions (q_c x p)."""
        if not self._sync(serial, commit) or self._work is None:
            return LOST
        assert self._base is not None
        mode, st, x = self._base.mode, self.structure, self.model.x
        wx, ys = self._work
        self._work = None
        info = x.T @ wx
        for j, y in enumerate(ys):
            s1, s2 = mode.factor.backward(y, s_c[:, j])
            info[:, j] -= wx.T @ st.times(mode.a1, mode.a2, s1, s2)
        return info

    def effects(self, serial: int, commit: bool, zrr: FloatArray, theta: FloatArray) -> Any:
        """Conditional modes and covariances of every block (laplace.block_effects), the
        partition's levels of its own blocks and all levels of the crossed ones, and how many
        of its rows lie at the link's bound (laplace.rows_at_link_bound)."""
        if not self._sync(serial, commit):
            return LOST
        assert self._base is not None
        mode = self._base.mode
        inverse = mode.factor.selected_inverse(zrr=zrr)
        modes, covs = block_effects(self.model, self.structure, mode, theta, inverse)
        return self.keys, modes, covs, rows_at_link_bound(self._at_theta.family, mode.eta)


@dataclass
class _System:
    """A Newton system summed over the partitions (one weighting of H; _Point.newton): S, the
    reduced right-hand side for u_c, |y|^2 of the chains' parts and their log det. `factor`
    caches S's Cholesky factor and log det (None before it is tried; False where S is not
    positive definite)."""

    schur: FloatArray
    rr: FloatArray
    y_squared: float
    logdet: float
    factor: tuple[FloatArray, float] | bool | None = None

    def cholesky(self) -> tuple[FloatArray, float] | None:
        """S's lower Cholesky factor and log det, None where S is not positive definite."""
        if self.factor is None:
            try:
                self.factor = rest_cholesky(self.schur)
            except np.linalg.LinAlgError:
                self.factor = False
        return None if isinstance(self.factor, bool) else self.factor


@dataclass
class _Summary:
    """The partitions' summaries of a point, summed (CrossedObjective._combine): the penalized
    deviance (with |u_c|^2), the binomial constant, the system with the observed weights (None
    where some partition's chain or S is not positive definite with them) and the one with
    the clipped weights (None where no weight is negative: the same)."""

    pdev: float
    constant: float
    observed: _System | None
    clipped: _System | None

    def newton(self) -> tuple[bool, _System, tuple[FloatArray, float]]:
        """The system Newton's step is taken on, as pirls.find_mode chooses it: the observed
        weights' where H is positive definite with them, else the clipped ones' (H >= I).
        Raises LinAlgError where neither factors (rounding)."""
        if self.observed is not None:
            factor = self.observed.cholesky()
            if factor is not None or self.clipped is None:
                if factor is None:
                    raise np.linalg.LinAlgError("S is not positive definite")
                return True, self.observed, factor
        assert self.clipped is not None
        factor = self.clipped.cholesky()
        if factor is None:
            raise np.linalg.LinAlgError("S is not positive definite")
        return False, self.clipped, factor


@dataclass
class _ClientMode:
    """The joint mode as the client knows it."""

    theta: FloatArray
    beta: FloatArray
    u_c: FloatArray
    l_s: FloatArray  # lower Cholesky factor of S
    deviance: float
    converged: bool


class CrossedObjective:
    """The Laplace deviance, its exact gradient and the fixed-effects information of a model
    with factors crossed with the partitioning factor, from CrossedPartitions through `run`
    (the client side: S, its factor and the outer optimizer's evaluations)."""

    def __init__(
        self,
        run: Runner,
        q_c: int,
        pirls_control: PirlsControl,
        blas_threads: int | None = None,
        upper: float | None = None,
    ) -> None:
        self.run = run
        # The bound on eta the mode search keeps its steps at or below (pirls.step_bound of
        # the family: the log link's 0), None without one.
        self.upper = upper
        # Rows whose eta lies at the link's bound at the last conditional_effects' modes.
        self.rows_at_link_bound = 0
        # The client's dense work on S (Cholesky, inverse, solves) under the fit's BLAS cap.
        self.blas_threads = blas_threads
        self.q_c = q_c
        self.pirls_control = pirls_control
        self.counters = Counters()
        self._u_c = np.zeros(q_c)
        self._reset = True
        self._commit = False
        self._serial = 0
        self._at: _ClientMode | None = None

    def reset(self) -> None:
        """The next mode search starts from u = 0 (u_c and every partition's local u), as the
        in-memory objective's reset before a search from another start."""
        self._reset, self._at = True, None

    def _call(self, method: str, *per_partition: Sequence[Any], **kwargs: Any) -> list[Any]:
        self._serial += 1
        commit, self._commit = self._commit, False
        parts = self.run(method, *per_partition, serial=self._serial, commit=commit, **kwargs)
        if any(isinstance(p, str) and p == LOST for p in parts):
            raise PartitionLost(method)
        if not parts:
            raise ValueError("data has no complete rows")
        return parts

    def _retrying(self, evaluate: Callable[[], Any]) -> Any:
        """evaluate(), restarted from a new mode search when a partition lost its state."""
        for attempt in range(MAX_RESTARTS + 1):
            try:
                with blas.blas_threads(self.blas_threads):
                    return evaluate()
            except PartitionLost:
                self._at = None
                if attempt == MAX_RESTARTS:
                    raise RuntimeError(
                        "Dask partitions keep losing their state during the evaluation"
                    ) from None
        raise AssertionError("unreachable")

    def _combine(self, parts: list[Any], u_c: FloatArray) -> _Summary:
        """Partition summaries summed in partition order (_Summary), with |u_c|^2, S's
        identity and the right-hand side's -u_c."""
        pdev = constant = 0.0
        for part in parts:
            pdev += part[0]
            constant += part[1]

        def summed(observed: bool) -> _System | None:
            schur = np.zeros((self.q_c, self.q_c))
            rr = np.zeros(self.q_c)
            y_squared = logdet = 0.0
            for part in parts:
                # A partition without negative weights has the one system for both.
                system = part[2] if observed or part[3] is None else part[3]
                if system is None:
                    return None
                p_schur, p_rr, p_y, p_logdet = system
                schur += p_schur
                rr += p_rr
                y_squared += p_y
                logdet += p_logdet
            schur[np.diag_indices(self.q_c)] += 1.0
            rr -= u_c
            return _System(schur, rr, y_squared, logdet)

        negative = any(part[3] is not None for part in parts)
        return _Summary(
            pdev + float(np.sum(u_c * u_c)),
            constant,
            summed(True),
            summed(False) if negative else None,
        )

    def _search(self, theta: FloatArray, beta: FloatArray) -> _ClientMode:
        """pirls.find_mode on the joint u, the Newton system solved through S (with H's
        observed weights, or the clipped ones where some are negative and H is not positive
        definite with them; the Laplace approximation needs the observed), the steps kept at
        or below the link's bound (_bounded)."""
        control = self.pirls_control
        from_zero = self._at is None and self._reset
        parts, u_c = self._begin(theta, beta)
        at = self._combine(parts, u_c)
        if not np.isfinite(at.pdev):
            # As find_mode: a start without likelihood is replaced by u = 0, then (a link
            # with a bound) by the first factor's effects lowered below it.
            u_c = np.zeros(self.q_c)
            if not from_zero:
                parts = self._call("begin", theta=theta, beta=beta, u_c=u_c, reset=True)
                at = self._combine(parts, u_c)
            if not np.isfinite(at.pdev) and self.upper is not None:
                parts = self._call(
                    "begin", theta=theta, beta=beta, u_c=u_c, reset=True, lowered=True
                )
                at = self._combine(parts, u_c)
            if not np.isfinite(at.pdev):
                return self._ended(theta, beta, u_c, np.eye(self.q_c), float("inf"), False, 0)
        iteration = 0
        while True:
            observed, system, (l_s, logdet_s) = at.newton()
            y_r = scipy.linalg.solve_triangular(l_s, system.rr, lower=True, check_finite=False)
            d_c = scipy.linalg.solve_triangular(l_s, y_r, lower=True, trans="T", check_finite=False)
            # g' H^{-1} g = |L^{-1} g|^2: the partitions' chain parts and S's.
            decrement = system.y_squared + float(y_r @ y_r)
            at_bound = too_many = False
            first = 1.0
            if self.upper is not None:
                d_c, decrement, first, at_bound, too_many = self._bounded(
                    l_s, d_c, decrement, observed
                )
            if too_many or decrement < control.tol or iteration >= control.max_iter:
                converged = decrement < control.tol and not at_bound
                break
            iteration += 1
            # With a bound the partitions keep the direction (direction, project).
            sent = d_c if self.upper is None else None

            def trial(
                step: float,
                u_c: FloatArray = u_c,
                d_c: FloatArray = d_c,
                sent: FloatArray | None = sent,
                observed: bool = observed,
            ) -> tuple[float, tuple[FloatArray, _Summary]]:
                # The partitions move by step times their part of d (and keep the point as
                # pending: the next call commits it when it was accepted).
                new_u_c = u_c + step * d_c
                parts = self._call("trial", d_c=sent, step=step, observed=observed)
                new = self._combine(parts, new_u_c)
                return new.pdev, (new_u_c, new)

            accepted = halving_step(at.pdev, decrement, trial, control, first)
            if accepted is None:
                converged = decrement < control.stall_tol
                break
            self._commit = True
            u_c, at = accepted
        deviance = at.pdev + system.logdet + logdet_s - 2.0 * at.constant
        if not observed:
            # A mode where H is not positive definite with the observed weights is no maximum
            # (as pirls.find_mode).
            deviance, converged = float("inf"), False
        return self._ended(theta, beta, u_c, l_s, deviance, converged, iteration)

    def _bounded(
        self, l_s: FloatArray, d_c: FloatArray, decrement: float, observed: bool
    ) -> tuple[FloatArray, float, float, bool, bool]:
        """find_mode's handling of the link's bound on the Newton direction with u_c part d_c
        (the partitions keep the whole direction): rows at the bound that it pushes further
        are held there (pirls.face_step: the direction projected on the face where they stay
        put, d - H^{-1} A' w with A the held rows of Z Lambda and A H^{-1} A' w = A d, least
        squares), and rows the projection pushes in turn too, unless more than MAX_HELD_ROWS;
        the first trial step stops the first row to reach the bound short of it
        (pirls.bounded_step). Returns the direction's u_c part, its decrement g'd
        (g' H^{-1} a_i = (A d)_i, so the projection lowers it by w'(A d)), the first step,
        whether rows are held and whether too many are. observed: the weighting of H that
        l_s and d_c took (_Summary.newton), which the partitions' solves take too."""
        parts = self._call("direction", d_c=d_c, observed=observed)
        # Per partition, its held rows' reduced right-hand sides and Newton's change of eta.
        rrs: list[list[FloatArray]] = [[] for _ in parts]
        pushed: list[list[FloatArray]] = [[] for _ in parts]
        held = 0
        projected, weights, newton_deta = d_c, np.zeros(0), np.zeros(0)
        while True:
            more = sum(int(p[0]) for p in parts)
            held += more
            if held > MAX_HELD_ROWS:
                return projected, decrement, 1.0, True, True
            if more == 0:
                first = min(float(p[3]) for p in parts)
                if held == 0:
                    return d_c, decrement, first, False, False
                return projected, decrement - float(weights @ newton_deta), first, True, False
            for j, p in enumerate(parts):
                rrs[j].append(p[1])
                pushed[j].append(p[2])
            x_c = rest_solve(l_s, np.hstack([m for part in rrs for m in part]))
            counts = [sum(m.shape[1] for m in part) for part in rrs]
            firsts = np.cumsum([0, *counts[:-1]]).tolist()
            gram = np.vstack(self._call("face", firsts, x_c=x_c))
            newton_deta = np.concatenate([v for part in pushed for v in part])
            weights = np.linalg.lstsq(gram, newton_deta, rcond=None)[0]
            projected = d_c - x_c @ weights
            parts = self._call("project", weights=weights)

    def _ended(
        self,
        theta: FloatArray,
        beta: FloatArray,
        u_c: FloatArray,
        l_s: FloatArray,
        deviance: float,
        converged: bool,
        iterations: int,
    ) -> _ClientMode:
        """The search's end, kept as the next one's warm start where it converged."""
        self.counters.evaluations += 1
        self.counters.pirls_iterations += iterations
        mode = _ClientMode(
            np.array(theta, dtype=np.float64),
            np.array(beta, dtype=np.float64),
            u_c,
            l_s,
            deviance,
            converged,
        )
        if converged:
            self._u_c, self._reset, self._at = u_c, False, mode
        else:
            # A failed search would poison the next warm start (as LaplaceObjective.mode).
            self.counters.pirls_failures += 1
            self._reset, self._at = True, None
        return mode

    def _begin(self, theta: FloatArray, beta: FloatArray) -> tuple[list[Any], FloatArray]:
        """The partitions at the start of a mode search, and its u_c: the last mode moved to
        first order to (theta, beta), as pirls.WarmStart moves it (one solve with the last H),
        unless that moves some u, in any partition, by more than max_predicted_step."""
        at = self._at
        if at is None:
            u_c = np.zeros(self.q_c) if self._reset else self._u_c
            return self._call("begin", theta=theta, beta=beta, u_c=u_c, reset=self._reset), u_c
        rr = self._sum(
            self._call("predict", theta=theta, beta=beta, last_theta=at.theta, last_beta=at.beta)
        )
        du_c = rest_solve(at.l_s, rr)
        u_c = at.u_c + du_c
        parts = self._call("begin", theta=theta, beta=beta, u_c=u_c, reset=False, du_c=du_c)
        if prediction_accepted(max(p[4] for p in parts), self.pirls_control):
            return parts, u_c
        parts = self._call("begin", theta=theta, beta=beta, u_c=at.u_c, reset=False, retry=True)
        return parts, at.u_c

    def mode(self, theta: FloatArray, beta: FloatArray) -> _ClientMode:
        """The joint conditional mode at (theta, beta) (the last one when it is the same
        point and the search converged)."""
        at = self._at
        if at is not None and np.array_equal(theta, at.theta) and np.array_equal(beta, at.beta):
            return at
        return self._search(theta, beta)

    def deviance(self, theta: FloatArray, beta: FloatArray) -> float:
        """Laplace deviance (-2 log-likelihood, binomial constants included)."""
        return float(self._retrying(lambda: self.mode(theta, beta).deviance))

    def deviance_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """Deviance and its exact gradient with respect to theta and beta."""

        def evaluate() -> tuple[float, FloatArray, FloatArray]:
            at = self.mode(theta, beta)
            if not np.isfinite(at.deviance):
                # No mode to differentiate at (the optimizer steps back from it).
                return at.deviance, np.full(len(theta), np.nan), np.full(len(beta), np.nan)
            rr = self._sum(self._call("gradient_rhs", zrr=rest_inverse(at.l_s)))
            parts = self._call("gradient_finish", v_c=rest_solve(at.l_s, rr))
            grad_theta = np.zeros(len(theta))
            grad_beta = np.zeros(len(beta))
            for g_theta, g_beta in parts:
                grad_theta += g_theta
                grad_beta += g_beta
            return at.deviance, grad_theta, grad_beta

        self.counters.gradients += 1
        result: tuple[float, FloatArray, FloatArray] = self._retrying(evaluate)
        return result

    def fixed_information(self, theta: FloatArray, beta: FloatArray) -> FloatArray:
        """X' W X - X' W Z Lambda H^{-1} Lambda' Z' W X at the mode (LaplaceObjective's)."""

        def evaluate() -> FloatArray:
            at = self.mode(theta, beta)
            rr = self._sum(self._call("information_rhs"))
            info = self._sum(self._call("information_finish", s_c=rest_solve(at.l_s, rr)))
            return 0.5 * (info + info.T)

        result: FloatArray = self._retrying(evaluate)
        return result

    def conditional_effects(
        self,
        theta: FloatArray,
        beta: FloatArray,
        n_levels: Sequence[int],
        ks: Sequence[int],
        crossed: tuple[int, ...],
    ) -> tuple[list[FloatArray], list[FloatArray]]:
        """Conditional modes (n_levels x k) and covariances (n_levels x k x k) of every block
        over the levels of the whole data set (laplace.conditional_effects's); the rows at the
        link's bound there are counted in rows_at_link_bound."""

        def evaluate() -> list[Any]:
            at = self.mode(theta, beta)
            return self._call("effects", zrr=rest_inverse(at.l_s), theta=theta)

        pieces = self._retrying(evaluate)
        self.rows_at_link_bound = sum(int(piece[3]) for piece in pieces)
        return place_effects([piece[:3] for piece in pieces], n_levels, ks, crossed)

    @staticmethod
    def _sum(parts: list[FloatArray]) -> FloatArray:
        total = np.zeros_like(parts[0])
        for part in parts:
            total += part
        return total


def crossed_size(n_levels: Sequence[int], ks: Sequence[int], crossed: Sequence[int]) -> int:
    """q_c: random effects of the crossed blocks."""
    return int(sum(n_levels[t] * ks[t] for t in crossed))


def _in_memory_hint(detail: str) -> ValueError:
    return ValueError(
        f"this model does not decompose over partitions of a Dask DataFrame: {detail}. "
        "Fit it in memory instead: glmm_binomial.fit(formula, ddf.compute())"
    )


def crossed_plan(
    candidates: Sequence[str], groups: Sequence[tuple[str, ...]], learned: dict[str, Any]
) -> tuple[str, list[tuple[str, ...]]]:
    """The partitioning variable when no candidate has every grouping factor nested in it,
    and the grouping factors crossed with it.

    candidates: single-variable grouping factors; groups: every grouping factor; learned:
    learning._combine's counts ("combos:<group>": the distinct levels,
    "nested:<c>:<group>": the most values of c within one level of group). Among the
    candidates not nested in a coarser candidate, the one with the most levels."""

    def nested(group: tuple[str, ...], c: str) -> bool:
        return c in group or learned[f"nested:{c}:{group}"] <= 1

    levels = {c: len(learned[f"combos:{(c,)}"]) for c in candidates}
    roots = [
        c
        for c in candidates
        if not any(d != c and levels[d] < levels[c] and nested((c,), d) for d in candidates)
    ]
    partition_var = max(roots, key=lambda c: levels[c])
    return partition_var, [g for g in groups if not nested(g, partition_var)]


def crossed_terms(
    parsed: ParsedFormula,
    random_specs: Sequence[RandomSpec],
    crossed_groups: Sequence[tuple[str, ...]],
) -> tuple[int, ...]:
    """The random terms on crossed grouping factors (indices in the formula's order),
    refused beyond DASK_CROSSED_LIMIT random effects. random_specs: the learned design's
    (DesignInfo.random_specs: the levels of the whole data set and the terms' model specs)."""
    terms = tuple(i for i, term in enumerate(parsed.random) if term.group in crossed_groups)
    size = 0
    for i in terms:
        spec = random_specs[i]
        k = 1 if spec.model_spec is None else len(spec.model_spec.column_names)
        size += len(spec.levels) * k
    if size > DASK_CROSSED_LIMIT:
        names = ", ".join(dict.fromkeys(":".join(parsed.random[i].group) for i in terms))
        raise _in_memory_hint(
            f"the grouping factors crossed with the partitioning one ({names}) have {size} "
            f"random effects, more than DASK_CROSSED_LIMIT = {DASK_CROSSED_LIMIT} (two large "
            "crossed factors make a dense block too large for one machine)"
        )
    return terms


# --- determinism by pinned working copies -----------------------------------------------------
_REGISTRY: dict[str, CrossedPartition] = {}
"""The partitions' working copies in this worker process, by the Dask key of their partition.
Dask may copy a partition to another worker, or drop the copy a worker holds (its active memory
manager), at any time: the partition Dask holds is never changed, and each worker keeps its own
working copy here, on which the client's calls (pinned to that worker) act."""
_REGISTRY_LOCK = threading.Lock()


def call_partition(
    state: CrossedPartition,
    token: str,
    *items: Any,
    method: str,
    blas_threads: int | None,
    user: bool = False,
    **shared: Any,
) -> Any:
    """Run a CrossedPartition method on this worker's working copy of the partition. user: a
    copy on the partition's user columns (Partition.user_columns, when the fit runs on
    internally scaled ones)."""
    with _REGISTRY_LOCK:
        working = _REGISTRY.get(token)
        if working is None:
            working = state.on_rows(state.user_columns) if user else copy.copy(state)
            _REGISTRY[token] = working
    with blas.blas_threads(blas_threads):
        return getattr(working, method)(*items, **shared)


def _forget(tokens: list[str]) -> None:
    with _REGISTRY_LOCK:
        for token in tokens:
            _REGISTRY.pop(token, None)


_TOKENS: dict[int, set[str]] = {}
"""Client side: the working copies made for each runner.Partitions (by id), to drop."""


def forget_partitions(client: Any, partitions: Partitions) -> None:
    """Drop the workers' working copies made for these partitions (at the end of a fit)."""
    tokens = _TOKENS.pop(id(partitions), set())
    if not tokens:
        return
    try:
        client.run(_forget, sorted(tokens))
    except Exception:  # noqa: BLE001 - a worker lost at the end of a fit holds nothing
        LOG.debug("could not reach every worker to drop the crossed partitions")


class PinnedRunner:
    """A Runner (runner.Runner) over persisted CrossedPartitions (runner.Partitions). Each
    partition's calls run on one worker (strict restrictions: a task that may run elsewhere can
    be stolen by an idle worker), chosen among those holding it and kept while that worker
    lives; they act on that worker's working copy (call_partition). Large arrays are scattered
    once to every worker. user: the calls act on copies on the partitions' user columns."""

    def __init__(self, partitions: Partitions, user: bool = False) -> None:
        self.partitions = partitions
        self.user = user
        self.client = partitions.client
        self.pins: dict[str, str] = {}

    def _alive(self) -> set[str]:
        return set(self.client.scheduler_info()["workers"])

    def _place(self, states: list[Any]) -> None:
        alive = self._alive()
        unpinned = [s for s in states if self.pins.get(s.key) not in alive]
        if not unpinned:
            return
        holders = self.client.who_has(unpinned)
        for state in unpinned:
            where = sorted(w for w in holders.get(state.key, ()) if w in alive)
            if where:
                self.pins[state.key] = where[0]
            else:
                # Being rebuilt: anywhere, pinned at the next begin.
                self.pins.pop(state.key, None)

    def __call__(self, method: str, *per_partition: Sequence[Any], **shared: Any) -> list[Any]:
        client = self.client
        states = list(self.partitions.states)
        if any(s.key not in self.pins for s in states):
            # A dead pinned worker is found by _watch (its tasks never start).
            self._place(states)
        for key, value in list(shared.items()):
            if isinstance(value, np.ndarray) and value.nbytes > SCATTER_BYTES:
                shared[key] = client.scatter(value, broadcast=True, hash=False)
        tokens = [f"{s.key}:user" if self.user else str(s.key) for s in states]
        _TOKENS.setdefault(id(self.partitions), set()).update(tokens)
        groups: dict[str | None, list[int]] = {}
        for i, state in enumerate(states):
            groups.setdefault(self.pins.get(state.key), []).append(i)
        futures: list[Any] = [None] * len(states)
        for worker, members in groups.items():
            mapped = client.map(
                call_partition,
                [states[i] for i in members],
                [tokens[i] for i in members],
                *([items[i] for i in members] for items in per_partition),
                pure=False,
                workers=None if worker is None else [worker],
                allow_other_workers=False,
                method=method,
                blas_threads=self.partitions.blas_threads,
                user=self.user,
                **shared,
            )
            for i, future in zip(members, mapped, strict=True):
                futures[i] = future
        from distributed.client import FutureCancelledError, FuturesCancelledError

        try:
            self._watch(states, futures)
            results: list[Any] = client.gather(futures)
        except (FutureCancelledError, FuturesCancelledError):
            # An argument scattered for this call was lost with a worker (Dask's memory
            # manager may have kept a single copy of it): the evaluation is restarted.
            self._place(states)
            raise PartitionLost("an argument of the call was lost with a worker") from None
        finally:
            del futures
        return results

    def _watch(self, states: list[Any], futures: list[Any]) -> None:
        """Wait for the tasks; one pinned to a worker that died would wait forever: then
        release them and restart the evaluation (PartitionLost)."""
        from distributed import wait

        while True:
            try:
                wait(futures, timeout=WATCH_SECONDS)
                return
            except TimeoutError:
                pass
            alive = self._alive()
            if any(s.key in self.pins and self.pins[s.key] not in alive for s in states):
                release(futures)
                self._place(states)
                raise PartitionLost("a worker holding a partition was lost")
