"""Marginal probabilities and coefficients (random effects integrated out)."""

import numpy as np
import pytest
from scipy.special import expit

import glmm_binomial as g
from glmm_binomial.results.marginal import marginal_mean

SLOPE = "use ~ age + urban + livch + (1 + urban | district)"


@pytest.fixture(scope="module")
def contraception():
    return g.datasets.load("contraception")


@pytest.fixture(scope="module")
def slope_fit(contraception):
    return g.fit(SLOPE, contraception)


def test_marginal_probabilities_match_brute_force_2d_integration(slope_fit, contraception):
    new = contraception.iloc[[0, 1, 2, 500, 1500]]
    marginal = slope_fit.marginal_predict(new)
    chol = np.linalg.cholesky(slope_fit.covariance_matrices()[0])
    eta = new_eta = np.asarray(slope_fit.predict(new, re="exclude", type="link"))
    z = np.column_stack([np.ones(len(new)), (new["urban"] == "Y").to_numpy(float)])
    # Brute force: the 2-d integral over (u1, u2) ~ N(0, I), b = L u, on a fine grid (the
    # trapezoid rule is spectrally accurate for this smooth, rapidly decaying integrand).
    grid = np.linspace(-9, 9, 721)
    u1, u2 = np.meshgrid(grid, grid, indexing="ij")
    weight = np.exp(-(u1**2 + u2**2) / 2) / (2 * np.pi) * (grid[1] - grid[0]) ** 2
    b1 = chol[0, 0] * u1
    b2 = chol[1, 0] * u1 + chol[1, 1] * u2
    for i in range(len(new)):
        value = np.sum(expit(eta[i] + z[i, 0] * b1 + z[i, 1] * b2) * weight)
        assert marginal[i] == pytest.approx(value, abs=1e-6)
    # Integrating out pulls probabilities towards 1/2 compared with setting b = 0.
    assert np.all(np.abs(marginal - 0.5) < np.abs(expit(new_eta) - 0.5))
    np.testing.assert_allclose(slope_fit.marginal_predict()[[0, 1, 2, 500, 1500]], marginal)


def test_marginal_mean_reduces_to_expit_without_random_effects():
    eta = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(marginal_mean(eta, np.zeros(11)), expit(eta), rtol=1e-14)
    # Symmetry: E expit(-eta + sZ) = 1 - E expit(eta + sZ).
    sd = np.full(11, 2.5)
    np.testing.assert_allclose(marginal_mean(-eta, sd), 1 - marginal_mean(eta, sd), atol=1e-14)


def test_marginal_coefficients_match_a_marginal_model_on_a_large_simulated_sample(slope_fit):
    table = slope_fit.marginal_coefs()
    assert list(table.columns) == ["estimate", "std_error", "z", "p"]
    assert np.all(table["std_error"] > 0) and np.all(np.isfinite(table["std_error"]))
    # Attenuated towards zero relative to the conditional coefficients, as expected for logit.
    assert np.all(np.abs(table["estimate"]) < np.abs(slope_fit.params))
    # A logistic GLM fitted to 100 data sets simulated from the fit (new random effects each
    # time: 6,000 districts) estimates the population-averaged coefficients directly.
    reps = 100
    y = slope_fit.simulate(reps, seed=11).T.ravel()
    x = np.tile(slope_fit.model.x, (reps, 1))
    beta = table["estimate"].to_numpy().copy()
    for _ in range(8):
        mu = expit(x @ beta)
        beta += np.linalg.solve(x.T @ ((mu * (1 - mu))[:, None] * x), x.T @ (y - mu))
    # Sampling error of the big GLM (clustered within districts) is about 0.01-0.02.
    np.testing.assert_allclose(beta, table["estimate"], atol=0.05)
    assert np.max(np.abs(beta - table["estimate"])) < 0.5 * np.max(table["std_error"])


def test_marginal_rejects_bad_input(slope_fit):
    vb = g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        g.datasets.load("cbpp"),
        method="vb",
    )
    with pytest.raises(ValueError, match="laplace"):
        vb.marginal_coefs()
    assert np.all(np.isnan(vb.marginal_coefs(std_errors=False)["std_error"]))
    with pytest.raises(ValueError, match="offset"):
        slope_fit.marginal_predict(offset=np.zeros(3))
    assert vb.marginal_predict().shape == (vb.nobs,)
