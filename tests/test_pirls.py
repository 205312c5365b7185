"""The shared pieces of the mode search (numerics/pirls.py): step halving, the warm start and
the log link's bound."""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pytest

from glmm_binomial.family import make_family
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.numerics.pirls import (
    BARRIER_FRACTION,
    BOUND_GAP,
    START_GAP,
    PirlsControl,
    WarmStart,
    below_bound_start,
    bounded_step,
    find_mode,
    find_scalar_mode,
    halving_step,
    intercept_direction,
    largest_move,
    prediction_accepted,
    pushed_rows,
    same_values,
    scalar_layout,
)


def test_halving_step_backtracks_to_the_quadratic_minimum() -> None:
    # f(s) = (s - 0.3)^2 - 0.09 along the direction: f(0) = 0, slope -0.6 = -2 decrement.
    def trial(step: float) -> tuple[float, float]:
        return (step - 0.3) ** 2 - 0.09, step

    steps: list[float] = []

    def recorded(step: float) -> tuple[float, float]:
        steps.append(step)
        return trial(step)

    accepted = halving_step(0.0, 0.3, recorded, PirlsControl())
    # Step 1 raises f; the quadratic through f(0), f'(0) and f(1) has its minimum at 0.3,
    # within [0.1, 0.5] of the step: accepted there.
    assert steps[0] == 1.0
    assert accepted is not None and abs(accepted - 0.3) < 1e-12


def test_halving_step_gives_up_after_max_halvings() -> None:
    calls: list[float] = []

    def uphill(step: float) -> tuple[float, None]:
        calls.append(step)
        return 1.0 + step, None

    assert halving_step(0.0, 1.0, uphill, PirlsControl(max_halvings=5)) is None
    assert len(calls) == 5


def test_prediction_rule() -> None:
    control = PirlsControl(max_predicted_step=1.0)
    assert largest_move(np.array([[0.5, -2.0]]), np.zeros(0)) == 2.0
    assert largest_move(np.zeros((0, 1)), np.zeros(0)) == 0.0
    assert prediction_accepted(1.0, control) and not prediction_accepted(1.5, control)


def small_model(seed: int = 4) -> ModelData:
    rng = np.random.default_rng(seed)
    n, n_g = 300, 15
    g = rng.integers(0, n_g, n)
    x = rng.normal(size=n)
    eta = -0.2 + 0.5 * x + rng.normal(scale=0.8, size=n_g)[g]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    block = RandomBlock("g", ("(Intercept)",), g, tuple(range(n_g)), np.ones((n, 1)))
    return ModelData(
        y, np.ones(n), np.column_stack([np.ones(n), x]), np.zeros(n), ("a", "x"), (block,)
    )


def test_warm_start_moves_the_last_mode_to_first_order() -> None:
    objective = LaplaceObjective(small_model())
    theta, beta = np.array([0.8]), np.array([-0.2, 0.5])
    mode = objective.mode(theta, beta)
    warm = objective.warm
    assert warm.at(theta, beta) is mode and warm.at(theta + 0.1, beta) is None
    new_theta, new_beta = theta + 0.01, beta + np.array([0.01, -0.01])
    target = LaplaceObjective(small_model()).mode(new_theta, new_beta)
    moved = warm.start(new_theta, new_beta, objective.mode_change, PirlsControl())
    unmoved = warm.start(new_theta, new_beta, None, PirlsControl())
    assert unmoved[0] is mode.u1
    error_moved = np.max(np.abs(moved[0] - target.u1))
    error_unmoved = np.max(np.abs(unmoved[0] - target.u1))
    assert error_moved < 0.05 * error_unmoved
    # A prediction beyond max_predicted_step is not used: the last mode itself.
    strict = PirlsControl(max_predicted_step=1e-9)
    assert warm.start(new_theta, new_beta, objective.mode_change, strict)[0] is mode.u1
    # Released: u only; after a failed search: u = 0 and nothing kept.
    assert warm.released().last is None and warm.released().u1 is mode.u1
    failed = WarmStart(mode.u1, mode.u2, warm.last).after(
        theta, beta, dataclasses.replace(mode, converged=False)
    )
    assert failed.last is None and not np.any(failed.u1)


def test_scalar_mode_equals_the_general_search() -> None:
    # The scalar layout's search (find_scalar_mode) takes the same steps as the general one,
    # bit for bit, with a random slope's column (z not ones) and from u = 0 and a warm start.
    base = small_model()
    rng = np.random.default_rng(9)
    z = rng.normal(size=(base.n_obs, 1))
    block = dataclasses.replace(base.blocks[0], z=z, terms=("x",))
    for data in (base, dataclasses.replace(base, blocks=(block,))):
        objective = LaplaceObjective(data)
        st = objective.structure
        assert scalar_layout(st)
        data = objective.data
        lambdas = data.lambdas(np.array([1.3]))
        eta_fixed = data.x @ np.array([-0.2, 0.5])
        for u1 in (np.zeros((st.n1, 1)), rng.normal(size=(st.n1, 1))):
            fast = find_scalar_mode(st, data, eta_fixed, lambdas, u1, np.zeros(0), PirlsControl())
            with mock.patch("glmm_binomial.numerics.pirls.scalar_layout", return_value=False):
                general = find_mode(st, data, eta_fixed, lambdas, u1, np.zeros(0), PirlsControl())
            assert fast.converged and general.converged
            assert fast.iterations == general.iterations
            assert fast.penalized_deviance == general.penalized_deviance
            assert fast.factor.logdet == general.factor.logdet
            for name in ("u1", "a1", "eta", "mu", "weights", "residual"):
                assert np.array_equal(getattr(fast, name), getattr(general, name)), name
            assert np.array_equal(fast.factor.linv[0], general.factor.linv[0])
            assert np.array_equal(fast.factor.cross, general.factor.cross)


def test_same_values_is_equality_bit_for_bit():
    a = np.array([0.5, 1.0, -2.0])
    assert same_values(a, a.copy())
    assert not same_values(a, a + 1e-16 * np.array([0.0, 0.0, 1.0]) * 8)
    assert not same_values(a, a[:2])
    assert not same_values(a, a.reshape(3, 1))
    # -0.0 is not 0.0 bit for bit: only a search more (the kept mode is not reused).
    assert not same_values(np.array([0.0]), np.array([-0.0]))
    assert same_values(np.zeros(0), np.zeros(0))
    assert same_values([0.5, 1.0, -2.0], a)  # a list is read as an array


def log_link_model(all_successes: bool) -> ModelData:
    """Low rates under the log link (eta < 0); with all_successes, group 0's every trial a
    success, whose conditional mode lies on the bound eta = 0."""
    rng = np.random.default_rng(5)
    n, n_g = 240, 12
    g = np.repeat(np.arange(n_g), n // n_g)
    x = rng.normal(size=n)
    eta = np.minimum(-1.5 + 0.3 * x + rng.normal(scale=0.5, size=n_g)[g], -0.05)
    y = (rng.random(n) < np.exp(eta)).astype(float)
    if all_successes:
        y[g == 0] = 1.0
    block = RandomBlock("g", ("(Intercept)",), g, tuple(range(n_g)), np.ones((n, 1)))
    data = ModelData(
        y, np.ones(n), np.column_stack([np.ones(n), x]), np.zeros(n), ("a", "x"), (block,)
    )
    return dataclasses.replace(data, family=make_family("binomial", "log"))


def test_bounded_step_cuts_a_step_past_the_bound_and_rows_on_it_are_held() -> None:
    eta = np.array([-1.0, -0.5, -2.0])
    assert bounded_step(eta, np.array([0.5, 0.25, -3.0]), 0.0) == 1.0
    # Row 2 reaches 0 first, at step 0.25: the step leaves it half BOUND_GAP below.
    step = bounded_step(eta, np.array([0.5, 2.0, 1.0]), 0.0)
    assert step == (0.5 - 0.5 * BOUND_GAP) / 2.0
    # A row within BOUND_GAP (held) does not cut the step.
    assert bounded_step(np.array([-1.0, -0.5 * BOUND_GAP]), np.array([0.5, 1e-17]), 0.0) == 1.0
    assert bounded_step(eta, np.zeros(3), 0.0) == 1.0
    # A row with failures (a barrier) goes BARRIER_FRACTION of its way to the bound at most.
    barrier = np.array([False, True, False])
    step = bounded_step(eta, np.array([0.5, 2.0, 1.0]), 0.0, barrier)
    assert step == BARRIER_FRACTION * 0.5 / 2.0
    # Where another row is stopped first, the barrier changes nothing.
    step = bounded_step(eta, np.array([0.5, 0.25, 4.0]), 0.0, barrier)
    assert step == (2.0 - 0.5 * BOUND_GAP) / 4.0
    at_bound = np.array([-1.0, -0.5 * BOUND_GAP, -2.0])
    assert pushed_rows(at_bound, np.array([0.1, 1e-3, 0.1]), 0.0).tolist() == [1]
    # A row at the bound that the step moves away from is not held.
    assert not pushed_rows(at_bound, np.array([0.1, -1.0, 0.1]), 0.0).any()


def test_a_mode_on_the_log_links_bound_is_found_on_its_face() -> None:
    """Group 0 (every trial a success) pulls its eta to 0, where the penalized likelihood is
    largest with no stationary point: its row nearest the bound is held there and the other
    groups' modes converge (Newton's step on the face), then the search stops, not converged.
    It took all 100 steps of about ten trials each, with the other groups left unconverged by
    the ever shorter steps. Both layouts take the same steps. Without that group the mode is
    inside and converges as before."""
    control = PirlsControl()
    for all_successes in (True, False):
        objective = LaplaceObjective(log_link_model(all_successes))
        st, data = objective.structure, objective.data
        lambdas = data.lambdas(np.array([1.0]))
        eta_fixed = data.x @ np.array([-1.5, 0.3])
        u1 = np.zeros((st.n1, 1))
        fast = find_scalar_mode(st, data, eta_fixed, lambdas, u1, np.zeros(0), control)
        with mock.patch("glmm_binomial.numerics.pirls.scalar_layout", return_value=False):
            general = find_mode(st, data, eta_fixed, lambdas, u1, np.zeros(0), control)
        for mode in (fast, general):
            assert np.isfinite(mode.penalized_deviance) and mode.eta.max() <= 0.0
            if all_successes:
                assert not mode.converged and mode.iterations < 30
                assert mode.eta.max() >= -BOUND_GAP
                # The other groups' Newton decrement (H diagonal: H_jj = sum_i w_i a_i^2 + 1
                # over group j) is negligible.
                a = mode.a1[:, 0]
                g_level = st.level_sum(a * mode.residual) - mode.u1[:, 0]
                h_level = st.level_sum(mode.weights * a * a) + 1.0
                assert float(np.sum(g_level[1:] ** 2 / h_level[1:])) < 1e-12
            else:
                assert mode.converged and mode.eta.max() < -0.01
        assert fast.iterations == general.iterations
        assert fast.penalized_deviance == pytest.approx(general.penalized_deviance, abs=1e-9)
        np.testing.assert_allclose(fast.u1, general.u1, atol=1e-7)


def test_a_fixed_part_past_the_log_links_bound_starts_its_groups_below_it() -> None:
    """Where u = 0 leaves a row's rate above 1 (its fixed part past eta = 0: the warm start
    and u = 0 both infeasible), a negative effect of its group brings it back: the search
    starts those groups below the bound (below_bound_start) and finds the mode inside, the
    same in both layouts. Before, the penalized deviance was infinite there."""
    control = PirlsControl()
    objective = LaplaceObjective(log_link_model(False))
    st, data = objective.structure, objective.data
    lambdas = data.lambdas(np.array([1.0]))
    eta_fixed = data.x @ np.array([-1.5, 0.3])
    eta_fixed[st.g1 == 3] += 2.0  # group 3's fixed part past the bound on some rows
    assert eta_fixed.max() > 0.0
    u1 = np.zeros((st.n1, 1))
    start = below_bound_start(st, eta_fixed, np.ones(st.n), 0.0)
    assert start[3, 0] < 0.0 and not np.delete(start, 3).any()
    assert (eta_fixed + start[st.g1, 0]).max() == pytest.approx(-START_GAP)
    fast = find_scalar_mode(st, data, eta_fixed, lambdas, u1, np.zeros(0), control)
    with mock.patch("glmm_binomial.numerics.pirls.scalar_layout", return_value=False):
        general = find_mode(st, data, eta_fixed, lambdas, u1, np.zeros(0), control)
    for mode in (fast, general):
        assert mode.converged and np.isfinite(mode.penalized_deviance)
        assert mode.eta.max() < 0.0 and mode.u1[3, 0] < -1.0
    assert fast.penalized_deviance == pytest.approx(general.penalized_deviance, abs=1e-9)
    np.testing.assert_allclose(fast.u1, general.u1, atol=1e-7)


def test_intercept_direction_moves_every_row_of_a_level_alike() -> None:
    """Along intercept_direction, Z Lambda v = 1 on every row (the random intercept alone
    moves); with the slope's SD at zero (Lambda singular) or no intercept, e_0."""
    rng = np.random.default_rng(3)
    n, n_g = 40, 5
    g = np.repeat(np.arange(n_g), n // n_g)
    x = rng.normal(size=n)
    for z, lam, moves_alike in (
        (np.column_stack([np.ones(n), x]), np.array([[0.7, 0.0], [-0.4, 0.3]]), True),
        (np.column_stack([np.ones(n), x]), np.array([[0.7, 0.0], [-0.4, 0.0]]), False),
        (np.column_stack([x, x * x]), np.array([[0.7, 0.0], [-0.4, 0.3]]), False),
    ):
        block = RandomBlock("g", ("a", "b"), g, tuple(range(n_g)), z)
        data = ModelData(
            np.zeros(n), np.ones(n), np.ones((n, 1)), np.zeros(n), ("(Intercept)",), (block,)
        )
        structure = LaplaceObjective(data).structure
        v = intercept_direction(structure, lam)
        if moves_alike:
            np.testing.assert_allclose(z @ lam @ v, 1.0, rtol=1e-14)
        else:
            np.testing.assert_array_equal(v, [1.0, 0.0])


def test_too_many_rows_on_the_bound_end_the_search_there() -> None:
    """More held rows than MAX_HELD_ROWS (each costs a solve with H) end the search at once,
    not converged, with a finite penalized deviance."""
    objective = LaplaceObjective(log_link_model(True))
    st, data = objective.structure, objective.data
    lambdas = data.lambdas(np.array([1.0]))
    eta_fixed = data.x @ np.array([-1.5, 0.3])
    u1 = np.zeros((st.n1, 1))
    with (
        mock.patch("glmm_binomial.numerics.pirls.scalar_layout", return_value=False),
        mock.patch("glmm_binomial.numerics.pirls.MAX_HELD_ROWS", 0),
    ):
        mode = find_mode(st, data, eta_fixed, lambdas, u1, np.zeros(0), PirlsControl())
    assert not mode.converged and np.isfinite(mode.penalized_deviance)
    assert mode.eta.max() >= -BOUND_GAP
