import numpy as np
import pandas as pd
import pytest
from _simulate import (
    all_successes_group_frame,
    one_level_all_failures,
    pure_groups_frame,
    separated_frame,
)
from conftest import CBPP, REFERENCE_DIR, load_reference
from scipy import stats

import glmm_binomial as g
from glmm_binomial.results.profile import profile, profile_confint

SLOPE = "use ~ age + urban + livch + (1 + urban | district)"


@pytest.fixture(scope="module")
def cbpp_fit():
    ref = load_reference("cbpp_inference")
    return g.fit(ref["formula"], g.datasets.load("cbpp"))


@pytest.fixture(scope="module")
def cbpp_profile(cbpp_fit):
    return profile(cbpp_fit)


def test_cbpp_profile_intervals_match_lme4(cbpp_profile):
    ref = load_reference("cbpp_inference")
    table = cbpp_profile.confint()
    assert list(table.index) == [row["parameter"] for row in ref["profile"]]
    for row in ref["profile"]:
        # lme4 interpolates its profile with splines from its own (slightly lower) optimum.
        assert table.loc[row["parameter"], "lower"] == pytest.approx(row["lower"], abs=1e-4)
        assert table.loc[row["parameter"], "upper"] == pytest.approx(row["upper"], abs=1e-4)
    assert (table["upper"] > table["lower"]).all()


def test_profile_traces_are_monotone_zeta(cbpp_profile):
    for trace in cbpp_profile:
        assert np.all(np.diff(trace.values) > 0)
        assert np.all(np.diff(trace.zeta) >= -1e-6)
        at_estimate = np.argmin(np.abs(trace.values - trace.estimate))
        assert trace.zeta[at_estimate] == 0.0


def test_wider_level_gives_wider_intervals(cbpp_fit, cbpp_profile):
    wide = profile_confint(cbpp_fit, conf_level=0.99, which=["sd_(Intercept)|herd"])
    table = cbpp_profile.confint().loc[wide.index]
    assert (wide["lower"] < table["lower"]).all() and (wide["upper"] > table["upper"]).all()


def test_correlated_slope_profile_matches_lme4_and_glmmtmb():
    ref = load_reference("contraception_slope_profile")
    result = g.fit(SLOPE, g.datasets.load("contraception"))
    table = profile_confint(result, which="theta_")
    assert list(table.index) == [row["parameter"] for row in ref["profile_95"]["lme4"]]
    for engine in ("lme4", "glmmTMB"):
        for row in ref["profile_95"][engine]:
            # lme4 interpolates the correlation's profile linearly (its spline fails there).
            tol = 2e-2 if row["parameter"].startswith("cor_") else 5e-3
            assert table.loc[row["parameter"], "lower"] == pytest.approx(row["lower"], abs=tol)
            assert table.loc[row["parameter"], "upper"] == pytest.approx(row["upper"], abs=tol)
    # Against glmmTMB, whose profile is exact on its own scale, all agree much closer.
    for row in ref["profile_95"]["glmmTMB"]:
        assert table.loc[row["parameter"], "lower"] == pytest.approx(row["lower"], abs=1e-4)
        assert table.loc[row["parameter"], "upper"] == pytest.approx(row["upper"], abs=1e-4)


def test_sd_profile_reaching_zero_gives_lower_end_zero():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {"y": rng.integers(0, 2, 300), "x": rng.normal(size=300), "g": rng.integers(0, 10, 300)}
    )
    result = g.fit("y ~ x + (1 | g)", frame)
    table = profile_confint(result, which="theta_")
    assert table.loc["sd_(Intercept)|g", "lower"] == 0.0
    assert table.loc["sd_(Intercept)|g", "upper"] > 0.0


def test_correlation_profile_reaching_one_gives_the_boundary():
    # Intercept and slope SDs tied exactly (correlation 1 in the simulation), few groups: the
    # profile of the correlation stays below the cut-off up to 1.
    rng = np.random.default_rng(4)
    n_groups, per = 12, 40
    groups = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=n_groups * per)
    b = rng.normal(size=n_groups)
    eta = -0.2 + 0.5 * x + b[groups] + 0.8 * b[groups] * x
    y = (rng.uniform(size=len(x)) < 1 / (1 + np.exp(-eta))).astype(int)
    result = g.fit("y ~ x + (1 + x | g)", pd.DataFrame({"y": y, "x": x, "g": groups}))
    table = profile_confint(result, which=["cor_x.(Intercept)|g"])
    assert table.loc["cor_x.(Intercept)|g", "upper"] == 1.0
    assert -1.0 <= table.loc["cor_x.(Intercept)|g", "lower"] < 1.0


def test_profile_rejects_bad_input(cbpp_fit):
    vb = g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        g.datasets.load("cbpp"),
        method="vb",
    )
    with pytest.raises(ValueError, match="laplace"):
        profile_confint(vb)
    with pytest.raises(ValueError, match="which: unknown parameter"):
        profile_confint(cbpp_fit, which=["sd_x|herd"])
    with pytest.raises(ValueError, match="conf_level"):
        profile_confint(cbpp_fit, conf_level=1.5)
    # Found by bench/fuzz_workflow.py: these raised TypeError from inside.
    with pytest.raises(ValueError, match="conf_level"):
        profile_confint(cbpp_fit, conf_level=None)
    with pytest.raises(ValueError, match="which: unknown parameter.*7"):
        profile_confint(cbpp_fit, which=("period2", 7))
    with pytest.raises(ValueError, match="which must be a parameter name"):
        profile_confint(cbpp_fit, which=3)
    with pytest.raises(ValueError, match="which names no parameter"):
        profile_confint(cbpp_fit, which=[])


def test_fit_stopped_short_is_profiled_around_the_better_optimum(cbpp_fit, cbpp_profile):
    # lme4 stops with "profiling detected new, lower deviance"; we move to the better optimum.
    short = g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        g.datasets.load("cbpp"),
        control=g.OptimizerControl(max_iter=1, polish_max_steps=0, moment_start=False),
    )
    assert short.loglik < cbpp_fit.loglik - 1e-3
    table = profile_confint(short, which=["period2"])
    assert "not at the minimum" in table.attrs["warnings"][0]
    expected = cbpp_profile.confint().loc["period2"]
    assert table.loc["period2", "lower"] == pytest.approx(expected["lower"], abs=1e-5)
    assert table.loc["period2", "upper"] == pytest.approx(expected["upper"], abs=1e-5)


def _singular_data(seed: int) -> pd.DataFrame:
    """60 rows in 6 groups with no group variance (issue 18): the fit is singular."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=60)
    y = (rng.random(60) < 1.0 / (1.0 + np.exp(-(0.3 + 0.8 * x)))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": np.repeat(np.arange(6), 10)})


def _brute_profile_deviance(result, intercept: float) -> float:
    """The Laplace deviance minimized over the SD (a grid, then Brent's method around its
    best point) and the slope (Brent's method) with the intercept held: no warm starts."""
    import scipy.optimize

    from glmm_binomial.methods.laplace import LaplaceObjective

    objective = LaplaceObjective(result.model)

    def over_slope(sd: float) -> float:
        def deviance(slope: float) -> float:
            return objective.deviance_and_gradient(np.array([sd]), np.array([intercept, slope]))[0]

        return float(scipy.optimize.minimize_scalar(deviance, bracket=(0.0, 1.0)).fun)

    grid = np.linspace(0.0, 3.0, 61)
    values = [over_slope(sd) for sd in grid]
    i = int(np.argmin(values))
    low, high = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    refined = scipy.optimize.minimize_scalar(
        over_slope, bounds=(low, high), method="bounded", options={"xatol": 1e-7}
    )
    return float(min(refined.fun, values[i]))


@pytest.mark.parametrize("seed", [7, 25])
def test_singular_fit_profiles_the_intercept_at_the_true_conditional_minimum(seed):
    # Issue 18: "f(a) and f(b) must have different signs" on these converged singular fits. A
    # re-fit started at SD = 0 stayed on that stationary point (the deviance is even in the
    # SD) although the SD's conditional minimum had moved off 0.
    result = g.fit("y ~ x + (1 | g)", _singular_data(seed))
    assert result.converged and result.singular
    table = profile_confint(result)
    assert np.all(np.isfinite(table[["lower", "upper"]].to_numpy()))
    cutoff = float(stats.chi2.ppf(0.95, 1))
    for end in ("lower", "upper"):
        value = table.loc["(Intercept)", end]
        excess = _brute_profile_deviance(result, value) - (-2.0 * result.loglik)
        assert excess == pytest.approx(cutoff, abs=2e-3)


def test_a_coefficient_with_no_finite_estimate_has_a_one_sided_interval():
    # Found by bench/fuzz_workflow.py: profiling a separated coefficient searched for 40 s
    # and raised RuntimeError ("no bracket found"). Level "c" of f is all successes.
    frame = separated_frame()
    with pytest.warns(g.SeparationWarning):
        fit = g.fit("y ~ x + f + (1 | g)", frame)
    assert fit.diverging == ["fc"]
    table = profile_confint(fit, conf_level=0.8, which=["fc", "fb"])
    lower, upper = table.loc["fc"]
    assert upper == np.inf and np.isfinite(lower)
    assert any("fc has no finite estimate" in w for w in table.attrs["warnings"])
    assert np.isfinite(table.loc["fb"]).all()
    # The lower end is where the deviance with fc held there (an offset) exceeds the
    # separated fit's by the chi-square cutoff.
    held = frame.assign(fb=(frame["f"] == "b").astype(float))
    offset = lower * (frame["f"] == "c").to_numpy(dtype=float)
    refit = g.fit("y ~ x + fb + (1 | g)", held, offset=offset)
    cutoff = 1.2815515655446004**2
    assert 2.0 * (fit.loglik - refit.loglik) == pytest.approx(cutoff, abs=1e-4)


def test_a_fit_on_the_log_links_bound_is_refused_at_once():
    """The log link's maximum on its bound (a group all successes, mu = 1 there): profiling
    kept finding lower deviances towards the bound and raised RuntimeError ("refit the model")
    after four searches; it is refused at once, saying why."""
    import warnings

    frame = all_successes_group_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = g.fit("y ~ x + (1 | g)", frame, link="log")
    rows = fit.fit_output.link_bound_rows
    assert not fit.converged and rows > 0
    with pytest.raises(ValueError, match=f"reaches the log link's bound .* at {rows} row"):
        profile_confint(fit)


def test_a_variance_with_no_finite_estimate_is_refused_at_once():
    # Found by bench/fuzz_workflow.py's kind of fit: every group all 0 or all 1, the SD on a
    # diverging path; profiling searched 66 s and raised "kept finding lower deviances".
    frame = pure_groups_frame()
    with pytest.warns(g.SeparationWarning):
        fit = g.fit("y ~ x + (1 | g)", frame)
    with pytest.raises(ValueError, match=r"variance of \(1 \| g\) has no finite"):
        profile_confint(fit)
    # The remedy the message names: a proper prior on the SD, whose posterior mode profiles.
    bounded = g.fit("y ~ x + (1 | g)", frame, priors={"cov": "gamma(shape = 2, rate = 0.5)"})
    table = profile_confint(bounded, which="sd_(Intercept)|g")
    assert np.isfinite(table.to_numpy()).all()


def test_phi_whose_binomial_limit_is_within_the_cutoff_is_unbounded_above():
    # Found by bench/fuzz_workflow.py: the search for phi's upper end went out to 3e7 (20 s),
    # where the beta-binomial deviance loses precision, and reported a crossing of noise.
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(12), 5)
    t = np.tile(np.arange(5.0), 12)
    eta = -0.5 + 0.1 * t + rng.normal(0.0, 0.6, 12)[groups]
    frame = pd.DataFrame(
        {"g": groups, "t": t, "k": rng.binomial(25, 1.0 / (1.0 + np.exp(-eta))), "n": 25}
    )
    formula = "cbind(k, n - k) ~ t + (1 | g)"
    fit = g.fit(formula, frame, family="betabinomial")
    binomial = g.fit(formula, frame)
    # The limit phi -> inf is the binomial fit, 1.15 below in deviance: within 3.84.
    assert np.isfinite(fit.phi)
    assert 2.0 * (fit.loglik - binomial.loglik) < stats.chi2.ppf(0.95, 1)
    lower, upper = profile_confint(fit, which="phi").loc["phi"]
    assert upper == np.inf and 0.0 < lower < fit.phi


def test_a_separated_fits_finite_coefficient_has_the_mixed_rows_profile():
    """Level a of f all failures (the intercept, fb and fc diverge together): the profile of z
    re-fits the others along the flat direction, where the limit's deviance is the mixed
    rows' fit's; its interval is theirs. (Re-fits warm-started on the singular Hessian sent
    the diverging coefficients back to finite values: the lower end 0.671, not 0.421.)"""
    frame = one_level_all_failures()
    with pytest.warns(g.SeparationWarning):
        fit = g.fit("y ~ f + z + (1 | g)", frame)
    mixed = g.fit("y ~ f + z + (1 | g)", frame[frame["f"] != "a"])
    ours = profile_confint(fit, which=["z", "sd_(Intercept)|g"])
    theirs = profile_confint(mixed, which=["z", "sd_(Intercept)|g"])
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-4)


@pytest.mark.parametrize("n_agq", [5, 25])
def test_an_agq_fit_is_profiled_on_its_own_deviance_as_lme4(n_agq):
    """lme4's confint(method = "profile") of an nAGQ > 1 fit profiles the AGQ deviance (they
    were refused here): agq_profile.json, to 3e-6 (lme4 1.1-31)."""
    reference = next(f for f in load_reference("agq_profile")["fits"] if f["nAGQ"] == n_agq)
    fit = g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        g.datasets.load("cbpp"),
        method="agq",
        n_agq=n_agq,
    )
    table = fit.confint()
    assert list(table.index[1:]) == reference["parameter"][1:]
    np.testing.assert_allclose(table["lower"], reference["lower"], atol=3e-6)
    np.testing.assert_allclose(table["upper"], reference["upper"], atol=3e-6)
    # Not the Laplace profile (its SD interval ends 0.346 and 1.100).
    laplace = g.fit_model(fit.model)
    assert abs(laplace.confint(which=["sd_(Intercept)|herd"])["upper"].iloc[0] - 1.1107) > 5e-3


def test_an_agq_fit_is_not_profiled_over_a_reordered_correlation():
    """A correlation other than that of a block's first two terms is profiled on a copy with
    the terms reordered; AGQ's product rule depends on that order, so for an AGQ fit it is
    refused (the others are profiled)."""
    rng = np.random.default_rng(3)
    n_groups, per = 30, 12
    groups = np.repeat(np.arange(n_groups), per)
    a, b = rng.normal(size=(2, groups.size))
    u = rng.normal(scale=[0.8, 0.5, 0.4], size=(n_groups, 3))[groups]
    eta = -0.2 + 0.5 * a + u[:, 0] + u[:, 1] * a + u[:, 2] * b
    frame = pd.DataFrame(
        {"y": rng.random(groups.size) < 1 / (1 + np.exp(-eta)), "a": a, "b": b, "g": groups}
    )
    fit = g.fit("y ~ a + (1 + a + b | g)", frame, method="agq", n_agq=2)
    with pytest.raises(ValueError, match=r"no profile of cor_b.\(Intercept\)\|g.*AGQ"):
        profile_confint(fit, which=["cor_b.(Intercept)|g"])
    with pytest.raises(ValueError, match="reordered"):
        fit.confint()
    first = profile_confint(fit, which=["cor_a.(Intercept)|g"])
    assert first.shape == (1, 2)


def test_profile_control_as_a_mapping_or_named_in_its_error():
    """control= of a profile: a ProfileControl or a dict of its settings (as fit's control=);
    another value, or a setting out of range, is a ValueError naming it."""
    fitted = g.fit(CBPP, g.datasets.load("cbpp"))
    as_dict = profile_confint(fitted, which="period2", control={"xtol": 1e-7})
    as_control = profile_confint(fitted, which="period2", control=g.ProfileControl(xtol=1e-7))
    pd.testing.assert_frame_equal(as_dict, as_control)
    # The settings used are recorded on the profile.
    recorded = profile(fitted, which="period2", control={"xtol": 1e-7}).control
    assert recorded == g.ProfileControl(xtol=1e-7)
    assert (recorded.ftol, recorded.restart_ftol, recorded.restart_max_iter) == (1e-14, 1e-15, 5000)
    with pytest.raises(ValueError, match="^control must be a ProfileControl"):
        profile(fitted, which="period2", control="tight")
    with pytest.raises(ValueError, match="^control: ProfileControl.hessian_step must be a number"):
        profile(fitted, which="period2", control={"hessian_step": 0.0})
    with pytest.raises(ValueError, match="^control: ProfileControl.max_iter must be a whole"):
        profile(fitted, which="period2", control={"max_iter": -1})


def test_a_profile_the_refits_cannot_bracket_has_no_end_and_says_so():
    """metamorphic slope3_probit:5100: `(1 + x + x2 | g)` on 25 rows in 5 groups, singular
    (rank one) with several optima. Profiling the correlation of x with the intercept raised
    numpy's LinAlgError from the mode search's factor on a far trial step (H not positive
    definite in rounding), and with that caught, RuntimeError ("no bracket found"): the
    re-fits land in different optima and the profile crosses the critical value back and
    forth. The trial step now counts as no deviance (as in the fit's own search), and the end
    is NaN with a warning (the other end is 1). With numpy 2.4.6 / scipy 1.17.1 the refits
    all land in one optimum (zeta -0.94 from -1 to 0.8): the lower end is then the range's."""
    import warnings

    frame = pd.read_csv(REFERENCE_DIR / "profile_singular_probit.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = g.fit("y ~ x + x2 + (1 + x + x2 | g)", frame, link="probit")
    assert fit.singular
    name = "cor_x.(Intercept)|g"
    found = fit.profile(which=[name], control={"max_doublings": 6})
    table = found.confint()
    assert table.loc[name, "upper"] == 1.0
    lower = table.loc[name, "lower"]
    if np.isnan(lower):
        assert any(w.startswith(f"no lower end for {name}") for w in found.warnings)
    else:
        # Every refit below the estimate within the critical value: no crossing to find.
        profile = found.parameters[name]
        below = profile.values < profile.estimate
        assert lower == -1.0 and below.any()
        assert np.all(np.abs(profile.zeta[below]) < stats.norm.ppf(0.975))
