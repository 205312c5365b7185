"""Internal centring and scaling (scaling.py): fits are equivariant under covariate units."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.methods.scaling import (
    _block_jacobian,
    block_theta_to_user,
    choose_scaling,
    to_internal,
    to_user,
)
from glmm_binomial.model.data import RandomBlock
from glmm_binomial.model.design import build_model
from glmm_binomial.model.separation import Separation
from glmm_binomial.numerics.optimize import OptimizerControl

SLOPE = "y ~ x + (1 + x | g)"
UNCORRELATED = "y ~ x + (1 + x || g)"
INTERCEPT = "y ~ x + (1 | g)"


@functools.lru_cache(maxsize=1)
def simulated() -> pd.DataFrame:
    """Issue 9 item 10's setting: 600 Bernoulli rows, 30 groups, correlated random slope."""
    rng = np.random.default_rng(1)
    n, n_groups = 600, 30
    groups = np.repeat(np.arange(n_groups), n // n_groups)
    x = rng.normal(size=n)
    b = rng.multivariate_normal([0.0, 0.0], [[0.8, 0.3], [0.3, 0.5]], size=n_groups)
    eta = -0.3 + 0.6 * x + b[groups, 0] + b[groups, 1] * x
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": groups})


@functools.lru_cache(maxsize=64)
def fitted(formula: str, method: str, factor: float, shift: float = 0.0) -> g.GLMMResult:
    data = simulated()
    data = data.assign(x=data["x"] * factor + shift)
    return g.fit(formula, data, method=method, n_agq=1 if method == "laplace" else 3)


def assert_mapped(base: g.GLMMResult, scaled: g.GLMMResult, factor: float) -> None:
    """scaled is base's fit with x multiplied by factor: the same logLik, slope / factor, the
    slope's SD / factor, the intercept's SD and the correlation unchanged."""
    assert scaled.converged
    assert not scaled.warnings
    assert scaled.loglik == pytest.approx(base.loglik, abs=1e-6)
    np.testing.assert_allclose(scaled.params["x"] * factor, base.params["x"], rtol=1e-5)
    np.testing.assert_allclose(scaled.params.iloc[0], base.params.iloc[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaled.bse["x"] * factor, base.bse["x"], rtol=1e-3)
    sd_base = base.varcorr["std_dev"].to_numpy()
    sd_scaled = scaled.varcorr["std_dev"].to_numpy()
    units = np.array([1.0 if "x" not in term else factor for term in base.varcorr["term"]])
    np.testing.assert_allclose(sd_scaled * units, sd_base, rtol=1e-4, atol=1e-6)
    if "corr_1" in base.varcorr:
        np.testing.assert_allclose(
            scaled.varcorr["corr_1"].to_numpy(dtype=float),
            base.varcorr["corr_1"].to_numpy(dtype=float),
            atol=1e-5,
        )


@pytest.mark.parametrize("factor", [1e6, 1e-6])
def test_issue_9_item_10_slope_fit_does_not_depend_on_units(factor):
    # Before: logLik -371.386 on x, -372.01 ("boundary") on x * 1e6, -377.92 on x * 1e-6.
    base = fitted(SLOPE, "laplace", 1.0)
    assert base.loglik == pytest.approx(-371.386373, abs=1e-5)
    scaled = fitted(SLOPE, "laplace", factor)
    assert_mapped(base, scaled, factor)
    # Conditional modes and their covariances map back too (b_x in units of 1 / x).
    units = np.array([1.0, factor])
    a, b = base.fit_output, scaled.fit_output
    np.testing.assert_allclose(b.ranef[0] * units, a.ranef[0], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(
        b.ranef_cov[0] * np.outer(units, units), a.ranef_cov[0], rtol=1e-4, atol=1e-9
    )
    assert a.theta_cov is not None and b.theta_cov is not None
    theta_units = np.array([1.0, factor, factor])  # Lambda[0,0], Lambda[1,0], Lambda[1,1]
    np.testing.assert_allclose(
        b.theta_cov * np.outer(theta_units, theta_units), a.theta_cov, rtol=2e-3, atol=1e-8
    )


@settings(max_examples=6, deadline=None)
@given(
    k=st.integers(min_value=-6, max_value=8),
    formula=st.sampled_from([SLOPE, UNCORRELATED, INTERCEPT]),
    method=st.sampled_from(["laplace", "agq"]),
)
def test_rescaling_a_covariate_maps_the_fit_exactly(k, formula, method):
    factor = 10.0**k
    assert_mapped(fitted(formula, method, 1.0), fitted(formula, method, factor), factor)


def test_centring_a_correlated_slope_changes_nothing_under_laplace():
    # (1 + x | g) is the same model for x and x + 50 (intercepts absorb the shift).
    base = fitted(SLOPE, "laplace", 1.0)
    shifted = fitted(SLOPE, "laplace", 1.0, 50.0)
    assert shifted.converged and not shifted.warnings
    assert shifted.loglik == pytest.approx(base.loglik, abs=1e-6)
    slope = base.params["x"]
    assert shifted.params["x"] == pytest.approx(slope, rel=1e-5)
    assert shifted.params.iloc[0] == pytest.approx(base.params.iloc[0] - 50.0 * slope, rel=1e-5)
    # The slope's SD is unchanged; the intercept's covariance is that of b0 - 50 b1.
    cov_base = base.covariance_matrices()[0]
    shift = np.array([[1.0, -50.0], [0.0, 1.0]])
    np.testing.assert_allclose(
        shifted.covariance_matrices()[0], shift @ cov_base @ shift.T, rtol=1e-4
    )


def test_mapped_covariances_equal_those_of_a_direct_fit():
    # x + 5 is well enough conditioned to fit directly: the mapped-back covariances of the
    # internally centred fit match those of the direct fit.
    data = simulated().assign(x=lambda d: d["x"] + 5.0)
    direct_control = OptimizerControl(
        random_center_limit=1e9, random_scale_limit=1e9, fixed_center_limit=1e9
    )
    direct = g.fit(SLOPE, data, control=direct_control)
    model, _ = build_model(SLOPE, data)
    assert choose_scaling(model, direct_control).is_identity
    assert not choose_scaling(model, OptimizerControl()).is_identity
    mapped = g.fit(SLOPE, data)
    a, b = direct.fit_output, mapped.fit_output
    assert b.loglik == pytest.approx(a.loglik, abs=1e-7)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-4)
    np.testing.assert_allclose(b.beta, a.beta, rtol=1e-4)
    np.testing.assert_allclose(b.vcov_beta, a.vcov_beta, rtol=2e-3, atol=1e-6)
    assert a.theta_cov is not None and b.theta_cov is not None
    np.testing.assert_allclose(b.theta_cov, a.theta_cov, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(b.ranef[0], a.ranef[0], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(b.ranef_cov[0], a.ranef_cov[0], rtol=1e-3, atol=1e-8)


def test_well_scaled_models_are_left_as_they_are():
    model, _ = build_model(INTERCEPT, simulated())
    scaling = choose_scaling(model, OptimizerControl())
    assert scaling.is_identity
    assert to_internal(model, scaling) is model


def test_scales_are_powers_of_two_and_centring_only_with_an_intercept():
    data = simulated().assign(x=lambda d: d["x"] * 1e6 + 3e7)
    control = OptimizerControl()
    for formula, centred in [(SLOPE, True), (UNCORRELATED, False), ("y ~ x + (0 + x | g)", False)]:
        model, _ = build_model(formula, data)
        scaling = choose_scaling(model, control)
        c = scaling.blocks[-1]
        assert np.log2(1.0 / c[-1, -1]) == np.round(np.log2(1.0 / c[-1, -1]))
        assert (np.count_nonzero(c - np.diag(np.diag(c))) > 0) == centred
        internal = to_internal(model, scaling)
        z = internal.blocks[-1].z[:, -1]
        assert 0.25 <= float(np.std(z) if centred else np.sqrt(np.mean(z * z))) <= 4.0
    # x is centred in X (the model has an intercept), and the intercept column kept.
    assert to_internal(model, scaling).x[:, 0].tolist() == [1.0] * model.n_obs
    assert abs(float(np.mean(to_internal(model, scaling).x[:, 1]))) < 1e-8


@settings(max_examples=10, deadline=None)
@given(
    raw=st.lists(st.floats(-2.0, 2.0), min_size=6, max_size=6),
    mean=st.floats(-1e3, 1e3),
    spread=st.floats(1e-3, 1e3),
)
def test_theta_map_preserves_the_covariance_and_its_jacobian_is_exact(raw, mean, spread):
    block = RandomBlock("g", ("(Intercept)", "x", "w"), np.zeros(1, np.intp), (0,), np.ones((1, 3)))
    theta = np.array(raw)
    theta[[0, 3, 5]] = np.abs(theta[[0, 3, 5]]) + 0.1  # diagonal of Lambda positive
    c = np.eye(3)
    c[1, 1], c[0, 1] = 1.0 / spread, -mean / spread
    user = block_theta_to_user(block, c, theta)
    lam, lam_user = block.lambda_matrix(theta), block.lambda_matrix(user)
    np.testing.assert_allclose(lam_user @ lam_user.T, c @ lam @ lam.T @ c.T, rtol=1e-9, atol=1e-9)
    assert np.all(np.diag(lam_user) >= 0.0)
    jac = _block_jacobian(block, c, theta)
    assert jac is not None
    step = 1e-6
    for e in range(len(theta)):
        up, down = theta.copy(), theta.copy()
        up[e] += step
        down[e] -= step
        column = (block_theta_to_user(block, c, up) - block_theta_to_user(block, c, down)) / (
            2 * step
        )
        np.testing.assert_allclose(jac[:, e], column, rtol=1e-5, atol=1e-5 * np.max(np.abs(c)))


def test_a_boundary_fit_maps_back_with_its_boundary():
    # No random slope in the data: the slope's variance sits on the boundary in any units,
    # its theta_cov rows stay unavailable (NaN), the others scale.
    rng = np.random.default_rng(100)
    n = 400
    groups = rng.integers(0, 20, n)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(0.5 - 0.5 * x))).astype(float)
    data = pd.DataFrame({"y": y, "x": x, "g": groups})
    base = g.fit(UNCORRELATED, data)
    scaled = g.fit(UNCORRELATED, data.assign(x=x * 1e6))
    assert base.singular and scaled.singular
    assert scaled.loglik == pytest.approx(base.loglik, abs=1e-6)
    a, b = base.fit_output.theta_cov, scaled.fit_output.theta_cov
    assert a is not None and b is not None
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    units = np.array([1.0, 1e6])
    np.testing.assert_allclose(
        np.nan_to_num(b * np.outer(units, units)), np.nan_to_num(a), rtol=1e-3, atol=1e-9
    )


@pytest.mark.parametrize("method", ["laplace", "agq"])
def test_fit_model_with_spreadsheet_blocks_does_not_depend_on_units(method):
    # The spreadsheet's x_random: (1 | g) and (0 + x | g) as separate blocks, via fit_model.
    data = simulated()
    codes = data["g"].to_numpy().astype(np.intp)
    levels = tuple(range(int(codes.max()) + 1))

    def model(factor: float) -> g.ModelData:
        x = data["x"].to_numpy() * factor
        blocks = (
            RandomBlock("g", ("intercept",), codes, levels, np.ones((len(x), 1))),
            RandomBlock("g", ("random_x1",), codes, levels, x[:, None].copy()),
        )
        y = data["y"].to_numpy()
        return g.ModelData(
            y,
            np.ones_like(y),
            np.column_stack([np.ones_like(x), x]),
            np.zeros_like(y),
            ("intercept", "x1"),
            blocks,
        )

    n_agq = 1 if method == "laplace" else 3
    base = g.fit_model(model(1.0), method=method, n_agq=n_agq)
    for factor in (1e-6, 1e8):
        scaled = g.fit_model(model(factor), method=method, n_agq=n_agq)
        assert scaled.converged and not scaled.warnings
        assert scaled.loglik == pytest.approx(base.loglik, abs=1e-6)
        np.testing.assert_allclose(scaled.theta * [1.0, factor], base.theta, rtol=1e-4)
        np.testing.assert_allclose(scaled.params.iloc[1] * factor, base.params.iloc[1], rtol=1e-5)


def test_a_diverging_column_centred_internally_makes_the_intercept_diverge_too():
    # x~ = x - m: beta_0 = beta~_0 - m beta~_x, so a diverging beta~_x leaves no finite beta_0
    # either (its covariance row is NaN alike).
    frame = simulated().assign(x=lambda d: d["x"] + 1000.0)
    model, _ = build_model(INTERCEPT, frame)
    scaling = choose_scaling(model, OptimizerControl())
    assert scaling.fixed[0, 1] != 0.0  # x is centred
    result = g.fit(INTERCEPT, simulated())
    internal = replace(result.fit_output, separation=Separation(False, (1,)))
    mapped = to_user(model, scaling, internal)
    assert mapped.diverging == (0, 1)
    assert to_user(model, scaling, result.fit_output).diverging == ()


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40),
    st.lists(st.floats(-1e4, 1e4), min_size=2, max_size=5),
    st.floats(1e-3, 1e3),
    st.integers(0, 2**31 - 1),
)
def test_the_column_statistics_do_not_depend_on_the_chunk(n, shifts, spread, seed):
    # The scaling decided from chunks of columns (one at a time, or all at once) is the same
    # map, bit for bit: each column's statistics are the same sums either way.
    import glmm_binomial.methods.scaling as scaling

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(shifts))) * spread + np.asarray(shifts)
    x[:, 0] = 1.0
    model, _ = build_model(INTERCEPT, simulated())
    model = replace(model, x=x, successes=np.zeros(n), trials=np.ones(n), offset=np.zeros(n))
    model = replace(model, blocks=(replace(model.blocks[0], z=x[:, :1], codes=np.zeros(n, int)),))
    control = OptimizerControl()
    whole = choose_scaling(model, control)
    original = scaling.COLUMN_STATS_CHUNK
    try:
        scaling.COLUMN_STATS_CHUNK = 1
        one_by_one = choose_scaling(model, control)
    finally:
        scaling.COLUMN_STATS_CHUNK = original
    np.testing.assert_array_equal(whole.fixed, one_by_one.fixed)
    # And the statistics are those of each column on its own.
    for j in range(1, x.shape[1]):
        column = x[:, j]
        if n >= 2 and whole.fixed[0, j] != 0.0:
            assert whole.fixed[0, j] == -float(np.mean(column)) * whole.fixed[j, j]


def test_the_check_in_user_units_is_not_fooled_by_collinear_columns():
    """ar1 fit (a metamorphic sweep's case, ar1:174) with x as 1000 x + 5e4: x and the
    intercept nearly collinear in the user's units. The per-coordinate check |g_j| SE_j
    (0.0136 for x's coefficient, the intercept's rounding-level gradient times x's mean)
    reported it not converged at the fit on x's optimum (5e-11 apart); sqrt(g' V g), the same
    whatever the units, passes it. A gradient that a move of one standard error would turn
    into a deviance change still fails it."""
    frame = pd.read_csv(REFERENCE_DIR / "ar1_extreme_units.csv")
    formula = "y ~ x + ar1(0 + tf | g)"
    base = g.fit(formula, frame)
    extreme = g.fit(formula, frame.assign(x=1000.0 * frame["x"] + 5e4))
    assert base.converged and extreme.converged
    assert extreme.llf == pytest.approx(base.llf, abs=1e-8)
    strict = OptimizerControl(user_gradient_tol=1e-12)
    refused = g.fit(formula, frame.assign(x=1000.0 * frame["x"] + 5e4), control=strict)
    assert not refused.converged
    assert "sqrt(g' V g)" in refused.opt_summary.message
