"""Structured variational Bayes (method "vb") against the exact posterior, and its pieces.

The exact posteriors (PyMC NUTS under the same priors, tests/reference/posterior_*.json) are
what the family is judged by: every fixed effect's posterior SD within 10% of the exact one and
its mean within 0.1 exact SD; each random-effect SD's posterior mean within 10%; the correlation
of the slope model within 0.05. Measured: SD ratios 0.97-1.02, means within 0.04 SD, SDs'
posterior means within 4% and the correlation 0.006 away (bench/bench_vb.py prints them).
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE_DIR, load_reference

import glmm_binomial as g
from glmm_binomial.diagnostics import IdentifiabilityWarning, SeparationWarning
from glmm_binomial.methods.structured_vb import (
    StructuredObjective,
    StructuredVBControl,
    fit_structured_vb_detailed,
)
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.design import build_model

CASES = {
    "cbpp": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)"),
    "contraception": ("contraception", "use ~ age + urban + livch + (1 | district)"),
    "contraception_slope": (
        "contraception",
        "use ~ age + urban + livch + (1 + urban | district)",
    ),
}

SD_RATIO_TOL = 0.10  # posterior SD of each fixed effect within 10% of the exact one
MEAN_TOL = 0.10  # posterior mean within 0.1 exact posterior SD
VARIANCE_SD_TOL = 0.10  # posterior mean of each random-effect SD within 10%
CORRELATION_TOL = 0.05  # posterior mean of the correlation (absolute)


def r_name(patsy_name: str) -> str:
    """The reference's patsy names in R's spelling: Intercept -> (Intercept),
    urban[T.Y] -> urbanY, C(period)[T.2] -> period2."""
    if patsy_name == "Intercept":
        return "(Intercept)"
    name = re.sub(r"^C\((\w+)\)", r"\1", patsy_name)
    return re.sub(r"\[T\.(.*)\]$", r"\1", name)


@pytest.fixture(scope="module")
def fits() -> dict[str, g.GLMMResult]:
    out = {}
    for case, (dataset, formula) in CASES.items():
        out[case] = g.fit(formula, g.datasets.load(dataset), method="vb")
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixed_effects_match_the_exact_posterior(fits, case):
    result = fits[case]
    reference = load_reference(f"posterior_{case}")["fixed_effects"]
    assert result.converged and result.method == "vb"
    assert set(map(r_name, reference)) == set(result.params.index)
    for name, exact in reference.items():
        ours = r_name(name)
        ratio = result.bse[ours] / exact["sd"]
        shift = (result.params[ours] - exact["mean"]) / exact["sd"]
        assert abs(ratio - 1.0) <= SD_RATIO_TOL, (ours, ratio)
        assert abs(shift) <= MEAN_TOL, (ours, shift)
    # The full posterior covariance: symmetric, positive definite, not diagonal.
    vcov = result.vcov.to_numpy()
    np.testing.assert_allclose(vcov, vcov.T, rtol=0, atol=1e-15)
    assert np.all(np.linalg.eigvalsh(vcov) > 0)
    assert np.count_nonzero(np.abs(vcov - np.diag(np.diag(vcov))) > 1e-8) > 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_variance_components_match_the_exact_posterior(fits, case):
    result = fits[case]
    reference = load_reference(f"posterior_{case}")
    varcorr = result.varcorr
    for key, exact in reference["sds"].items():
        group, _, column = key.partition(":")
        term = r_name(column) if column else "(Intercept)"
        row = varcorr[(varcorr["group"] == group) & (varcorr["term"] == term)]
        assert len(row) == 1, key
        std_dev = float(row["std_dev"].iloc[0])
        assert abs(std_dev / exact["mean"] - 1.0) <= VARIANCE_SD_TOL, (key, std_dev)
    for key, exact in reference["correlations"].items():
        corr = float(varcorr["corr_1"].dropna().iloc[0])
        assert abs(corr - exact["mean"]) <= CORRELATION_TOL, (key, corr)


@pytest.mark.parametrize("case", sorted(CASES))
def test_result_reports_posterior_summaries(fits, case):
    result = fits[case]
    assert np.isfinite(result.elbo)
    # The ELBO bounds the log evidence, which (up to the prior's spread) sits below the
    # likelihood at its maximum: the reported Laplace log-likelihood at the posterior means.
    assert result.elbo < result.loglik
    for frame in result.ranef(condvar=True).values():
        sds = frame[[c for c in frame.columns if c.endswith("_sd")]].to_numpy()
        assert np.all(np.isfinite(sds)) and np.all(sds > 0)
    assert "structured variational Bayes" in str(result.summary())
    assert "ELBO" in str(result.summary())
    fields = {f.name for f in dataclasses.fields(StructuredVBControl)}
    assert set(result.opt_summary.tolerances) == fields


@pytest.mark.parametrize("case", ["cbpp", "contraception"])
def test_elbo_at_least_the_mean_field_one(fits, case):
    """The structured family contains the mean-field one (diagonal Gaussians, the same q of the
    log SDs), so its optimal ELBO is at least as high (both with all constants)."""
    dataset, formula = CASES[case]
    meanfield = g.fit(formula, g.datasets.load(dataset), method="vb_meanfield")
    assert fits[case].elbo >= meanfield.elbo - 1e-6
    # And its SDs are the larger, honest ones (the mean-field intercept's is far too small).
    assert fits[case].bse["(Intercept)"] > 1.5 * meanfield.bse["(Intercept)"]


def test_crossed_factors_elbo_at_least_the_mean_field_one():
    verbagg = g.datasets.load("verbagg")
    formula = "r2 ~ btype + mode + situ + (1 | id) + (1 | item)"
    structured = g.fit(formula, verbagg, method="vb")
    meanfield = g.fit(formula, verbagg, method="vb_meanfield")
    assert structured.converged
    assert structured.elbo >= meanfield.elbo - 1e-6
    np.testing.assert_allclose(structured.params, meanfield.params, atol=0.05)


def test_nested_factors_fit():
    frame = g.datasets.load("contraception")
    result = g.fit("use ~ age + urban + (1 | district/urban)", frame, method="vb")
    assert result.converged and np.isfinite(result.elbo)
    assert set(result.ranef()) == {"district", "urban:district"}


# --- properties ----------------------------------------------------------------------------
def cbpp_model() -> ModelData:
    return build_model(CASES["cbpp"][1], g.datasets.load("cbpp"))[0]


def test_same_input_same_output_bit_for_bit():
    first = fit_structured_vb_detailed(cbpp_model())
    second = fit_structured_vb_detailed(cbpp_model())
    assert first.elbo == second.elbo
    np.testing.assert_array_equal(first.output.beta, second.output.beta)
    np.testing.assert_array_equal(first.output.vcov_beta, second.output.vcov_beta)


def test_row_order_does_not_matter():
    data = cbpp_model()
    order = np.random.default_rng(7).permutation(data.n_obs)
    a = fit_structured_vb_detailed(data)
    b = fit_structured_vb_detailed(data.take(order))
    assert b.elbo == pytest.approx(a.elbo, rel=1e-10)
    np.testing.assert_allclose(b.output.beta, a.output.beta, atol=1e-6)
    np.testing.assert_allclose(b.output.vcov_beta, a.output.vcov_beta, rtol=1e-5)


def test_binomial_rows_equal_their_bernoulli_rows():
    """cbpp's binomial rows and the same data as Bernoulli rows have the same posterior; the
    ELBOs differ by the binomial coefficients only."""
    cbpp = g.datasets.load("cbpp")
    size = cbpp["size"].to_numpy()
    rows = cbpp.loc[cbpp.index.repeat(size)].reset_index(drop=True)
    position = np.arange(len(rows)) - np.repeat(np.cumsum(size) - size, size)
    rows["y"] = (position < rows["incidence"].to_numpy()).astype(int)
    bernoulli = g.fit("y ~ period + (1 | herd)", rows, method="vb")
    binomial = g.fit(CASES["cbpp"][1], cbpp, method="vb")
    np.testing.assert_allclose(bernoulli.params, binomial.params, atol=1e-5)
    np.testing.assert_allclose(bernoulli.bse, binomial.bse, rtol=1e-4)
    assert binomial.elbo - bernoulli.elbo == pytest.approx(
        binomial.model.log_binomial_constant, abs=1e-5
    )


def test_profiled_elbo_gradient_is_the_partial_one():
    """Envelope theorem: at the inner optimum the derivative of the profiled ELBO in phi is
    the partial derivative (checked against central differences of the profiled ELBO)."""
    objective = StructuredObjective(cbpp_model())
    objective.final = True  # tight inner tolerances
    phi = np.array([-0.3, -1.7])
    value, grad, _ = objective.evaluate(phi)
    step = 1e-5
    for j in range(2):
        up, down = phi.copy(), phi.copy()
        up[j] += step
        down[j] -= step
        numeric = (objective.evaluate(up)[0] - objective.evaluate(down)[0]) / (2 * step)
        assert grad[j] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def test_a_repelling_fixed_point_of_the_weights_is_damped():
    """vb_repelling_weights.csv (README there): near the optimum the inner loop's fixed point
    of the row weights repels. Undamped, the inner loop at the optimum's q(phi) with the final
    tolerances swings for its 200 iterations and stops unconverged; the weights' update halved
    once it converges in a few dozen. The fit (once 220 evaluations, 121 inner loops at their
    cap, unconverged at ELBO -26.66501) converges with every inner loop converged."""
    frame = pd.read_csv(REFERENCE_DIR / "vb_repelling_weights.csv")
    data = build_model("y ~ x + (1 + x | a/b)", frame)[0]
    fitted = fit_structured_vb_detailed(data)
    summary = fitted.output.opt_summary
    assert fitted.output.converged and summary.pirls_failures == 0
    assert fitted.objective.damping == 0.5
    assert fitted.elbo > -26.66501 + 5e-3
    assert summary.tolerances["damping_after"] == 3 and summary.tolerances["min_damping"] == 0.125
    ends = {}
    for min_damping in (1.0, 0.125):
        objective = StructuredObjective(data, control=StructuredVBControl(min_damping=min_damping))
        objective.final = True
        _, _, inner = objective.evaluate(fitted.phi)
        ends[min_damping] = inner
    assert not ends[1.0].converged and ends[1.0].iterations == 200
    assert ends[0.125].converged and ends[0.125].iterations < 50


# --- diagnostics ---------------------------------------------------------------------------
def test_separation_is_reported_and_means_stay_finite():
    """Spreadsheet example 1: y is 1 exactly when x >= 2."""
    frame = pd.DataFrame(
        {"y": [0, 1, 0, 1, 1, 0], "x": [1, 2, 1.5, 2.5, 3, 1.2], "grp": [1, 1, 2, 2, 3, 3]}
    )
    with pytest.warns(SeparationWarning, match="finite only because of the N\\(0, 2\\^2\\) prior"):
        result = g.fit("y ~ x + (1 | grp)", frame, method="vb")
    assert np.all(np.isfinite(result.params)) and np.all(np.abs(result.params) < 10)
    assert np.all(np.isfinite(result.bse))


def test_no_warning_on_ordinary_data(fits):
    assert fits["contraception"].warnings == ()


def test_single_grouping_level_warns():
    rng = np.random.default_rng(3)
    n = 40
    x = rng.normal(size=n)
    y = (rng.random(n) < 0.5).astype(float)
    block = RandomBlock(
        "g", ("(Intercept)",), np.zeros(n, dtype=np.intp), ("only",), np.ones((n, 1))
    )
    model = ModelData(
        y, np.ones(n), np.column_stack([np.ones(n), x]), np.zeros(n), ("(Intercept)", "x"), (block,)
    )
    with pytest.warns(IdentifiabilityWarning, match="single level"):
        result = g.fit_model(model, method="vb")
    assert np.all(np.isfinite(result.params))


def test_control_of_the_other_family_is_refused():
    from glmm_binomial.methods.variational import VariationalControl

    with pytest.raises(ValueError, match="StructuredVBControl"):
        g.fit(CASES["cbpp"][1], g.datasets.load("cbpp"), method="vb", control=VariationalControl())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = g.fit(
            CASES["cbpp"][1],
            g.datasets.load("cbpp"),
            method="vb",
            control=StructuredVBControl(gtol=1e-6),
        )
    assert result.opt_summary.tolerances["gtol"] == 1e-6


def test_priors_are_used():
    """A tighter prior on the fixed effects pulls the posterior means towards 0."""
    dataset, formula = CASES["cbpp"]
    wide = g.fit(formula, g.datasets.load(dataset), method="vb")
    tight = g.fit(formula, g.datasets.load(dataset), method="vb", prior_fe_sd=0.5)
    assert np.all(np.abs(tight.params) < np.abs(wide.params))


def test_three_correlated_effects():
    """k = 3: the LKJ prior through three partial correlations (a 3-d cubature)."""
    rng = np.random.default_rng(5)
    n, n_groups = 400, 20
    group = rng.integers(0, n_groups, n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    b = rng.normal(scale=0.5, size=(n_groups, 3))
    eta = -0.3 + 0.5 * x1 + b[group, 0] + b[group, 1] * x1 + b[group, 2] * x2
    frame = pd.DataFrame(
        {"y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int), "x1": x1, "x2": x2, "g": group}
    )
    result = g.fit("y ~ x1 + x2 + (1 + x1 + x2 | g)", frame, method="vb")
    assert result.converged and np.isfinite(result.elbo)
    (covariance,) = result.covariance_matrices()
    sd = np.sqrt(np.diag(covariance))
    correlation = covariance / np.outer(sd, sd)
    assert np.all(np.linalg.eigvalsh(correlation) > 0)
    assert np.all(np.abs(correlation[np.tril_indices(3, -1)]) < 1)


def test_spreadsheet_with_one_group_says_the_variance_rests_on_the_prior():
    y = [[0], [1], [0], [1], [1], [0], [1], [0]]
    x = [[1], [2], [1.5], [2.5], [3], [1.2], [0.3], [2.2]]
    table = g.GLMM_BINOMIAL(y, x, [[1]] * 8)
    assert not isinstance(table, str), table
    warnings_rows = [row[1] for row in table if row[0] == "warning"]
    assert any("single level" in text and "prior" in text for text in warnings_rows)
