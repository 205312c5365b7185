"""The shared pieces of the mode search (numerics/pirls.py): step halving and the warm start."""

from __future__ import annotations

import dataclasses

import numpy as np

from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.numerics.pirls import (
    PirlsControl,
    WarmStart,
    halving_step,
    largest_move,
    prediction_accepted,
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
