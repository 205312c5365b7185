import numpy as np
import pytest
from _simulate import simulated_model

from glmm_binomial.laplace import LaplaceObjective

CASES = {
    "scalar": dict(levels=(15,), slopes=(False,)),
    "slope": dict(levels=(15,), slopes=(True,)),
    "crossed": dict(levels=(25, 6), slopes=(False, False)),
    "crossed_slopes": dict(levels=(12, 5), slopes=(True, True)),
    "three_blocks": dict(levels=(20, 7, 4), slopes=(False, True, False)),
    "binomial_trials": dict(levels=(10,), slopes=(True,), trials=5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_matches_central_differences(case):
    data = simulated_model(3, **CASES[case])
    objective = LaplaceObjective(data)
    rng = np.random.default_rng(1)
    theta = data.theta_start() * 0.7 + 0.1 * rng.normal(size=data.n_theta)
    beta = np.array([-0.2, 0.4, 0.3])
    _, g_theta, g_beta = objective.deviance_and_gradient(theta, beta)
    analytic = np.concatenate([g_theta, g_beta])
    step = 1e-6
    numeric = []
    for j in range(data.n_theta + 3):
        e = np.zeros(data.n_theta + 3)
        e[j] = step
        plus = objective.deviance(theta + e[: data.n_theta], beta + e[data.n_theta :])
        minus = objective.deviance(theta - e[: data.n_theta], beta - e[data.n_theta :])
        numeric.append((plus - minus) / (2 * step))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5)


def test_zero_theta_reduces_to_glm_deviance():
    data = simulated_model(4)
    objective = LaplaceObjective(data)
    beta = np.array([0.1, 0.2, -0.3])
    eta = data.x @ beta
    glm = -2 * np.sum(data.successes * eta - data.trials * np.logaddexp(0, eta))
    assert objective.deviance(np.zeros(1), beta) == pytest.approx(glm, abs=1e-9)
