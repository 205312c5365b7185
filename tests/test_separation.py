import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _simulate import (
    one_level_all_failures,
    one_level_one_outcome,
    rare_level_frame,
    separated_frame,
)
from conftest import REFERENCE_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.diagnostics import ConvergenceWarning
from glmm_binomial.family import make_family
from glmm_binomial.model.design import build_model
from glmm_binomial.model.separation import (
    NO_SEPARATION,
    Separation,
    detect_group_separation,
    detect_separation,
    looks_divergent,
    runaway_blocks,
    runaway_columns,
    saturated_rows,
    separation_found,
)

X = np.array([1, 2, 1.5, 2.5, 3, 1.2])
DESIGN = np.column_stack([np.ones(6), X])


def test_complete_separation():
    y = np.array([0, 1, 0, 1, 1, 0], dtype=float)  # y = 1 exactly when x >= 2
    found = detect_separation(DESIGN, y, np.ones(6))
    assert found.complete and found.coefficients == (0, 1)


def test_overlap_is_not_separated():
    y = np.array([0, 1, 1, 0, 1, 1], dtype=float)
    found = detect_separation(DESIGN, y, np.ones(6))
    assert not found.complete and found.coefficients == ()


def test_quasi_complete_separation_of_one_dummy():
    # All rows with the dummy set are successes; the others overlap.
    dummy = np.array([1, 1, 0, 0, 0, 0], dtype=float)
    design = np.column_stack([np.ones(6), dummy])
    y = np.array([1, 1, 0, 1, 0, 1], dtype=float)
    found = detect_separation(design, y, np.ones(6))
    assert not found.complete and found.coefficients == (1,)


def test_binomial_rows_with_both_outcomes_cannot_separate():
    successes = np.array([0, 1, 0, 2, 3, 0], dtype=float)
    trials = np.array([2, 2, 2, 3, 3, 2], dtype=float)  # row 2 has a success and a failure
    assert detect_separation(DESIGN, successes, trials).coefficients == ()
    assert detect_separation(DESIGN, successes, successes + (successes == 0)).complete


def test_divergence_screen():
    frame = pd.DataFrame({"y": [0, 1, 0, 1, 1, 0], "x": X, "grp": [1, 1, 2, 2, 3, 3]})
    model, _ = build_model("y ~ x + (1 | grp)", frame)
    assert looks_divergent(model, np.array([0.1, 25.0]), limit=30.0)
    assert not looks_divergent(model, np.array([0.1, 2.0]), limit=30.0)
    probit = dataclasses.replace(model, family=make_family("binomial", "probit"))
    assert looks_divergent(probit, np.array([0.1, 3.0]), limit=30.0)  # a probit eta of 9


def test_fit_warns_of_separation():
    frame = pd.DataFrame(
        {
            "y": [0, 1, 0, 1, 1, 0, 0, 1],
            "x": [1, 2, 1.5, 2.5, 3, 1.2, 0.5, 4],
            "grp": [1, 1, 2, 2, 3, 3, 4, 4],
        }
    )
    result = g.fit("y ~ x + (1 | grp)", frame)
    assert any("separation" in w for w in result.warnings)
    assert not result.converged
    assert "separation" in result.summary()


def test_no_warning_on_ordinary_data():
    result = g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
    )
    assert result.warnings == () and result.converged


@pytest.mark.parametrize("method", ["vb"])
def test_vb_is_finite_under_separation(method):
    frame = pd.DataFrame(
        {
            "y": [0, 1, 0, 1, 1, 0, 0, 1],
            "x": [1, 2, 1.5, 2.5, 3, 1.2, 0.5, 4],
            "grp": [1, 1, 2, 2, 3, 3, 4, 4],
        }
    )
    result = g.fit("y ~ x + (1 | grp)", frame, method=method)
    assert np.all(np.isfinite(result.params)) and np.all(np.abs(result.params) < 20)


def _all_ones(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {"y": np.ones(n, dtype=int), "x": rng.normal(size=n), "g": rng.integers(0, 10, n)}
    )


def test_all_ones_response_separates_by_the_intercept_alone():
    frame = _all_ones()
    design = np.column_stack([np.ones(len(frame)), frame["x"]])
    found = detect_separation(design, frame["y"].to_numpy(float), np.ones(len(frame)))
    assert found.complete and found.coefficients == (0,)


@pytest.mark.parametrize(("method", "n_agq"), [("laplace", 1), ("agq", 5)])
def test_all_ones_response_names_only_the_intercept_and_leaks_no_runtime_warning(method, n_agq):
    # Item 8: a numpy RuntimeWarning leaked, SE nan, and x was named as separated.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = g.fit("y ~ x + (1 | g)", _all_ones(), method=method, n_agq=n_agq)
        result.summary(), result.bse, result.fixed_effects, result.conf_int(), result.predict()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    separation = [w for w in result.warnings if w.category is g.SeparationWarning]
    assert len(separation) == 1
    assert "for (Intercept);" in separation[0] and " x" not in separation[0]
    assert [w.category for w in caught if issubclass(w.category, g.GLMMWarning)] == [
        w.category for w in result.warnings
    ]
    assert not result.converged
    # The diverging intercept has no standard error, rather than a NaN from sqrt(-v).
    assert np.isnan(result.bse["(Intercept)"])
    assert np.isnan(result.vcov.loc["(Intercept)"]).all()


def _separated_within_groups(groups: int = 30, size: int = 20) -> pd.DataFrame:
    # Item 12: in every group y = 1 exactly when x is above the group's own cut-off.
    rng = np.random.default_rng(0)
    grp = np.repeat(np.arange(groups), size)
    x = rng.normal(size=groups * size)
    cut = rng.normal(size=groups)
    return pd.DataFrame({"y": (x > cut[grp]).astype(int), "x": x, "g": grp.astype(str)})


def test_group_separation_by_the_augmented_design():
    model, _ = build_model("y ~ x + (1 | g)", _separated_within_groups())
    found = detect_group_separation(model)
    assert found.complete and found.blocks == (0,) and 1 in found.coefficients
    ordinary, _ = build_model(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
    )
    assert detect_group_separation(ordinary).blocks == ()


@pytest.mark.parametrize(
    ("formula", "method"),
    [
        ("y ~ x + (1 | g)", "laplace"),
        ("y ~ x + (1 | g)", "agq"),
        ("y ~ x + (1 + x | g)", "laplace"),
    ],
)
@pytest.mark.filterwarnings("ignore::glmm_binomial.BoundaryWarning")
def test_separation_within_every_group_is_reported(formula, method):
    with pytest.warns(g.SeparationWarning, match=r"within groups.*variance of \(1 .*\| g\)"):
        result = g.fit(formula, _separated_within_groups(15, 12), method=method)
    assert not result.converged
    assert any(w.category is g.SeparationWarning for w in result.warnings)
    assert np.isnan(result.bse["x"])  # the slope runs away with the variance


def test_runaway_screen():
    model, _ = build_model("y ~ x + (1 | g)", _separated_within_groups())
    assert runaway_blocks(model, np.array([30.0]), limit=20.0) == (0,)
    assert runaway_blocks(model, np.array([3.0]), limit=20.0) == ()


# cs(0 + tf | g)'s theta: the three occasions' log SDs and the correlation's parameter.
RUNAWAY_T2 = np.array([np.log(1.7), np.log(1.5), np.log(4.9e6), 0.3])
FINITE_T2 = np.array([np.log(1.7), np.log(1.5), np.log(2.0), 0.3])
LARGE_T2 = np.array([np.log(1.7), np.log(1.5), np.log(200.0), 0.3])


def test_one_separated_column_of_a_structured_covariance():
    """cs_overflow.csv: occasion t2 has one row per group, so its own random effects separate
    its rows (each group's t2 response all 0 or all 1) while t0 and t1 have groups with both:
    t2's SD has no finite estimate, the others do."""
    data = pd.read_csv(REFERENCE_DIR / "cs_overflow.csv")
    model, _ = build_model("y ~ x + cs(0 + tf | g)", data)
    found = detect_group_separation(model)
    assert found.columns == ((0, 2),) and found.blocks == (0,)
    # The screen: only a column whose own SD ran away counts.
    assert runaway_columns(model, RUNAWAY_T2, limit=20.0) == ((0, 2),)
    assert runaway_columns(model, FINITE_T2, limit=20.0) == ()
    warned, found = separation_found(model, np.zeros(2), RUNAWAY_T2, 20.0, 1e3)
    assert found.columns == ((0, 2),) and found.coefficients == ()
    assert len(warned) == 1 and warned[0].category is g.SeparationWarning
    assert "the SD of tft2 in (0 + tft0 + tft1 + tft2 | g) has no finite" in warned[0]
    # A finite SD on the same data is an estimate; so can a large one be (a profile of
    # metamorphic's cs:149 peaks at an SD of 200 on such rows): only a far larger SD counts,
    # and without a column limit (Dask) a single column is never reported.
    assert separation_found(model, np.zeros(2), FINITE_T2, 20.0, 1e3)[0] == ()
    assert separation_found(model, np.zeros(2), LARGE_T2, 20.0, 1e3)[0] == ()
    assert separation_found(model, np.zeros(2), RUNAWAY_T2, 20.0)[0] == ()


def test_a_fit_whose_single_sd_runs_away_says_so():
    data = pd.read_csv(REFERENCE_DIR / "cs_overflow.csv")
    with pytest.warns(g.SeparationWarning, match=r"the SD of tft2 in .* has no finite"):
        fitted = g.fit("y ~ x + cs(0 + tf | g)", data)
    assert not fitted.converged
    assert fitted.fit_output.separation.columns == ((0, 2),)
    # The other occasions' SDs and the fixed effects stay finite (the deviance's limit).
    sds = np.asarray(fitted.varcorr["std_dev"], dtype=float)
    assert sds[2] > 1e5 and (sds[:2] < 3.0).all()


def test_pure_groups_beside_mixed_ones_do_not_make_the_variance_run_away():
    frame = _separated_within_groups()
    groups = frame["g"].astype(int)
    # Most groups all 0 or all 1 (separable by their own effect), five groups overlapping.
    overlap = np.random.default_rng(5).integers(0, 2, len(frame))
    frame["y"] = np.where(groups < 25, groups % 2, overlap)
    model, _ = build_model("y ~ x + (1 | g)", frame)
    assert detect_group_separation(model).blocks == ()
    frame["y"] = groups % 2  # every group pure
    model, _ = build_model("y ~ x + (1 | g)", frame)
    assert detect_group_separation(model).blocks == (0,)


@pytest.mark.filterwarnings("ignore::glmm_binomial.SeparationWarning")
def test_quasi_complete_separation_keeps_the_other_standard_errors():
    rng = np.random.default_rng(4)
    n = 400
    dummy = (rng.random(n) < 0.2).astype(float)
    z = rng.normal(size=n)
    grp = rng.integers(0, 15, n)
    eta = 0.8 * z + 0.5 * rng.normal(size=15)[grp]
    y = np.where(dummy == 1, 1, (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int))
    result = g.fit("y ~ d + z + (1 | g)", pd.DataFrame({"y": y, "d": dummy, "z": z, "g": grp}))
    assert [w.category for w in result.warnings] == [g.SeparationWarning]
    assert "quasi-complete separation" in result.warnings[0] and "for d;" in result.warnings[0]
    se = result.bse
    assert np.isnan(se["d"]) and np.isfinite(se["(Intercept)"]) and np.isfinite(se["z"])
    assert 0.05 < se["z"] < 0.5


def _quasi_separated_by_a_dummy(n: int = 200, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    dummy = (rng.random(n) < 0.2).astype(float)
    y = np.where(dummy == 1, 1, (rng.random(n) < 0.5).astype(int))
    return pd.DataFrame({"y": y, "d": dummy + shift, "g": rng.integers(0, 10, n)})


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_the_fit_records_what_it_found_about_separation():
    # The summary, the command's JSON and the spreadsheet read this record instead of running
    # the linear programs again (which, on a Dask fit, would see no rows).
    complete = g.fit(
        "y ~ x + (1 | grp)",
        pd.DataFrame({"y": [0, 1, 0, 1, 1, 0, 0, 1], "x": [1, 2, 1.5, 2.5, 3, 1.2, 0.5, 4]}).assign(
            grp=[1, 1, 2, 2, 3, 3, 4, 4]
        ),
    )
    found = complete.fit_output.separation
    assert found.complete and found.coefficients == (0, 1) and found.blocks == ()
    assert complete.fit_output.diverging == (0, 1)
    assert complete.diverging == ["(Intercept)", "x"]
    quasi = g.fit("y ~ d + (1 | g)", _quasi_separated_by_a_dummy())
    assert quasi.fit_output.separation == Separation(False, (1,))
    grouped = g.fit("y ~ x + (1 | g)", _separated_within_groups(15, 12))
    found = grouped.fit_output.separation
    assert found.blocks == (0,) and not found.complete and 1 in found.coefficients
    for result in (complete, quasi, grouped):
        # The columns recorded are those whose estimates the warning calls no estimates, and
        # they have no standard error.
        names = [result.model.fixed_names[j] for j in result.fit_output.diverging]
        message = next(w for w in result.warnings if w.category is g.SeparationWarning)
        assert all(name in message for name in names)
        assert np.isnan(result.bse[names]).all()
    vb = g.fit("y ~ d + (1 | g)", _quasi_separated_by_a_dummy(), method="vb")
    ordinary = g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
    )
    assert vb.fit_output.separation == ordinary.fit_output.separation == NO_SEPARATION


def test_separation_found_names_the_diverging_dummy():
    model, _ = build_model("y ~ d + (1 | g)", _quasi_separated_by_a_dummy())
    beta, theta = np.array([0.0, 40.0]), np.array([0.5])
    warned, found = separation_found(model, beta, theta, 20.0)
    # The rows with d = 0 stay mixed and do not see d: the flat direction is d's own.
    assert found == Separation(False, (1,)) and len(warned) == 1
    assert found.directions == ((0.0, 1.0),)
    assert separation_found(model, np.zeros(2), theta, 20.0) == ((), NO_SEPARATION)


def _quasi_separated(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    d = (rng.random(n) < 0.1).astype(float)
    grp = rng.integers(0, max(n // 200, 2), n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(0.3 - x))).astype(int)
    y[d == 1] = 1  # every row with d = 1 is a success: no finite ML estimate for d
    return pd.DataFrame({"y": y, "x": x, "d": d, "g": grp})


def test_quasi_separated_fit_on_30000_rows_in_bounded_memory():
    # Issue 18: the linear program held a dense n x n identity (6.7 GiB at 30,000 rows).
    import tracemalloc

    n = 30_000
    frame = _quasi_separated(n)
    tracemalloc.start()
    try:
        with pytest.warns(g.SeparationWarning, match="quasi-complete separation.*for d;"):
            result = g.fit("y ~ x + d + (1 | g)", frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.05 * 8 * n * n  # far below the identity's 7.2 GB: < 360 MB
    assert not result.converged and np.isnan(result.bse["d"]) and np.isfinite(result.bse["x"])


def test_separation_linear_programs_have_no_per_row_unknowns():
    # The programs see the p columns as unknowns only; constraint generation adds rows.
    import scipy.optimize

    frame = _quasi_separated(20_000)
    design = np.column_stack([np.ones(len(frame)), frame["x"], frame["d"]])
    y = frame["y"].to_numpy(float)
    shapes = []
    real = scipy.optimize.linprog

    def recording(c, **kwargs):
        shapes.append((len(c), kwargs["A_ub"].shape[0]))
        return real(c, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scipy.optimize, "linprog", recording)
        found = detect_separation(design, y, np.ones(len(y)))
    assert found.coefficients == (2,) and not found.complete
    assert max(unknowns for unknowns, _ in shapes) <= 2 * design.shape[1]


def test_a_separable_sample_is_the_cheap_necessary_condition():
    from glmm_binomial.model.separation import separation_possible

    frame = _quasi_separated(50_000)
    design = np.column_stack([np.ones(len(frame)), frame["x"], frame["d"]])
    trials = np.ones(len(frame))
    assert separation_possible(design, frame["y"].to_numpy(float), trials)
    overlapping = (np.random.default_rng(0).random(len(frame)) < 0.5).astype(float)
    assert not separation_possible(design, overlapping, trials)
    assert detect_separation(design, overlapping, trials).coefficients == ()


def test_the_certificate_proves_no_separation_and_never_claims_it_wrongly():
    from glmm_binomial.model.separation import no_separation_certificate

    rng = np.random.default_rng(7)
    x = np.column_stack([np.ones(60), rng.normal(size=60)])
    y = (rng.random(60) < 1.0 / (1.0 + np.exp(-(0.2 + 0.5 * x[:, 1])))).astype(float)
    ones = np.ones(60)
    assert no_separation_certificate(x, y, ones)
    assert not detect_separation(x, y, ones).coefficients
    # Complete separation (y = 1 exactly when x > 0) and quasi-complete (one tie at the cut).
    complete = (x[:, 1] > 0).astype(float)
    assert not no_separation_certificate(x, complete, ones)
    assert detect_separation(x, complete, ones).complete
    tied = x.copy()
    tied[0, 1], tied[1, 1] = 0.0, 0.0
    quasi = (tied[:, 1] > 0).astype(float)
    quasi[1] = 1.0
    assert not no_separation_certificate(tied, quasi, ones)
    assert detect_separation(tied, quasi, ones).coefficients
    # All successes: the intercept diverges.
    assert not no_separation_certificate(x, ones, ones)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 100_000))
def test_the_certificate_agrees_with_the_linear_programs(seed):
    from glmm_binomial.model.separation import SeparationControl, no_separation_certificate

    linear_programs_only = SeparationControl(certificate_max_iter=0)

    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(4, 25)), int(rng.integers(1, 4))
    x = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    trials = rng.integers(1, 3, n).astype(float)
    successes = rng.binomial(trials.astype(int), 1.0 / (1.0 + np.exp(-2.0 * x[:, -1]))).astype(
        float
    )
    found = detect_separation(x, successes, trials, control=linear_programs_only)
    if no_separation_certificate(x, successes, trials):
        assert not found.coefficients and not found.complete


REFERENCE = Path(__file__).parent / "reference"


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_a_probit_fit_stalled_on_a_separating_path_is_not_reported_converged():
    # Level a of f is all failures: the probit fit of the rows twice stops at an intercept of
    # -11.7 (a probability of 1e-31), where no coefficient moves the log-odds by 20; the
    # screen reads the rows' predictors on the probit scale (+-5.9 for log-odds +-20).
    frame = pd.read_csv(REFERENCE / "probit_doubled_separated.csv")
    doubled = pd.concat([frame, frame], ignore_index=True)
    result = g.fit("y ~ x + f + (1 | g)", doubled, link="probit")
    assert not result.converged
    assert "(Intercept)" in result.diverging
    assert any("separation" in w for w in result.warnings)
    assert np.isnan(result.bse[result.diverging]).all()


@pytest.mark.parametrize(("link", "value"), [("cloglog", 1), ("probit", 0)])
@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_a_category_of_one_outcome_is_separation_on_every_link(link, value):
    # cloglog's mean reaches 1 - 2e-9 at eta = 3: its fit stops with f's coefficient near 6.
    result = g.fit("y ~ x + f + (1 | g)", one_level_one_outcome(value), link=link)
    assert not result.converged
    assert "fb" in result.diverging


def test_the_saturation_screen_reads_the_link():
    model, _ = build_model(
        "y ~ x + f + (1 | g)", pd.read_csv(REFERENCE / "probit_doubled_separated.csv")
    )
    beta = np.array([-7.0, 0.3, 8.0, 6.0])  # the intercept alone: a probability of 1e-12
    assert not saturated_rows(model, beta, 20.0)  # log-odds -7: not saturated
    probit = dataclasses.replace(model, family=make_family("binomial", "probit"))
    assert saturated_rows(probit, beta, 20.0)
    assert not saturated_rows(probit, beta / 2.0, 20.0)


@pytest.mark.filterwarnings("ignore::glmm_binomial.BoundaryWarning")
def test_the_runaway_screen_does_not_change_with_a_shifted_column():
    """crossed_vector_affine.csv (metamorphic's crossed_vector:4198, 27 rows): g's SDs end near
    10.6 and 5.6 with the correlation at -1. Screened per column (SD x max |z| > 20), x -> 10 x
    + 3 moved the slope's SD past the screen, the linear programs found the groups separating
    y, and the same optimum (logLik equal to 1e-9) was reported converged for x and separated
    for 10 x + 3. On the rows, the random effects' SDs are the same for both."""
    data = pd.read_csv(REFERENCE_DIR / "crossed_vector_affine.csv")
    formula = "y ~ x + (1 + x | g) + (1 + x | h)"
    fits = [g.fit(formula, data), g.fit(formula, data.assign(x=10.0 * data["x"] + 3.0))]
    assert fits[0].llf == pytest.approx(fits[1].llf, abs=1e-7)
    assert fits[0].converged == fits[1].converged
    assert [w.category for w in fits[0].fit_output.warnings] == [
        w.category for w in fits[1].fit_output.warnings
    ]
    screens = [runaway_blocks(f.model, f.fit_output.theta, 20.0) for f in fits]
    assert screens[0] == screens[1]


def test_the_table_shows_no_estimate_where_there_is_none():
    # Found by bench/fuzz_workflow.py: the fixed-effects table showed the separated
    # coefficient's point on its diverging path (39) and its odds ratio (8.6e16) as estimates,
    # where the summary and the spreadsheet show NA.
    frame = separated_frame()
    with pytest.warns(g.SeparationWarning):
        fit = g.fit("y ~ x + f + (1 | g)", frame)
    assert fit.diverging == ["fc"]
    assert fit.fixed_effects.loc["fc"].isna().all()
    assert fit.params["fc"] > 10  # the point the search stopped at, for those who need it
    assert np.isfinite(fit.fixed_effects.loc[["(Intercept)", "x", "fb"]].to_numpy()).all()


def test_predictions_and_marginal_coefficients_of_a_separated_fit():
    # Found by bench/fuzz_workflow.py: se_fit was NaN on every row (0 x NaN in x V x'), and
    # marginal_coefs gave the separated coefficient an estimate, a standard error of 0.4 and
    # p = 0 (a pseudo-inverse of the flat Hessian there).
    frame = separated_frame()
    with pytest.warns(g.SeparationWarning):
        fit = g.fit("y ~ x + f + (1 | g)", frame)
    predicted = fit.predict(frame, se_fit=True, re="exclude", type="link")
    uses_fc = (frame["f"] == "c").to_numpy()
    assert np.isnan(predicted["se_fit"][uses_fc]).all()
    assert np.isfinite(predicted["se_fit"][~uses_fc]).all()
    # Rows without fc: x V x' over the other coefficients.
    kept = ["(Intercept)", "x", "fb"]
    x = np.column_stack([np.ones(len(frame)), frame["x"], frame["f"] == "b"])[~uses_fc]
    vcov = fit.vcov.loc[kept, kept].to_numpy()
    expected = np.sqrt(np.einsum("ij,jk,ik->i", x, vcov, x))
    np.testing.assert_allclose(predicted["se_fit"][~uses_fc], expected, rtol=1e-12)
    marginal = fit.marginal_coefs()
    assert marginal.loc["fc"].isna().all()
    assert np.isfinite(marginal.loc[kept].to_numpy()).all()


def test_the_flat_directions_keep_the_mixed_cells_predictors_finite():
    model, _ = build_model("y ~ f + z + (1 | g)", one_level_all_failures())
    found = detect_separation(model.x, model.successes, model.trials)
    assert found.coefficients == (0, 1, 2)
    # The intercept, fb and fc go to infinity together; intercept + fb and intercept + fc
    # (levels b and c) stay finite: one flat direction, (-1, 1, 1, 0) / sqrt(3).
    (direction,) = found.directions
    expected = np.array([-1.0, 1.0, 1.0, 0.0]) / np.sqrt(3.0)
    np.testing.assert_allclose(np.abs(np.dot(direction, expected)), 1.0, rtol=1e-12)


@pytest.mark.parametrize("link", ["logit", "probit"])
@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_a_separated_fit_has_the_covariance_of_the_limit(link):
    # As the path diverges the level-a rows' weights vanish: the likelihood tends to that of
    # the mixed rows alone, whose fit gives z and the variance their limiting covariance
    # (holding the intercept, fb and fc fixed would fix levels b and c too: z's SE 24% low).
    frame = one_level_all_failures()
    full = g.fit("y ~ f + z + (1 | g)", frame, link=link)
    mixed = g.fit("y ~ f + z + (1 | g)", frame[frame["f"] != "a"], link=link)
    assert full.diverging == ["(Intercept)", "fb", "fc"]
    assert abs(full.loglik - mixed.loglik) < 1e-8
    np.testing.assert_allclose(full.params["z"], mixed.params["z"], rtol=1e-6)
    np.testing.assert_allclose(full.bse["z"], mixed.bse["z"], rtol=1e-5)
    np.testing.assert_allclose(
        full.fit_output.theta_cov, mixed.fit_output.theta_cov, rtol=1e-4, atol=1e-10
    )
    assert np.isnan(full.bse[full.diverging]).all()


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_a_separated_probit_fit_has_glmmtmbs_standard_error():
    # probit_cells_separated.csv (bench/fuzz_formula.py --seed 49 --links, case 216): the
    # intercept and both indicators diverge together; glmmTMB stops far along the path with
    # I(x1/2) = 1.8854 and Wald chisq 4.6411 (glmer stops short, logLik -52.52 < -52.2009).
    frame = pd.read_csv(REFERENCE / "probit_cells_separated.csv")
    formula = "y ~ I(!(x1 > 0) & x2 < 2) + ifelse(x1 > 0, 1, 0) + I(x1/2) + (1 + x1 || g)"
    result = g.fit(formula, frame, link="probit")
    assert len(result.diverging) == 3
    np.testing.assert_allclose(result.loglik, -52.2008640191894, atol=1e-6)
    np.testing.assert_allclose(result.params["I(x1/2)"], 1.8854, atol=1e-4)
    chisq = (result.params["I(x1/2)"] / result.bse["I(x1/2)"]) ** 2
    np.testing.assert_allclose(chisq, 4.64112253210262, rtol=2e-3)


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_the_combinations_that_stay_finite_keep_their_standard_errors():
    # Levels b and c are mixed: their predictors (intercept + fb, intercept + fc) and the
    # contrast between them are finite in the limit, with the mixed rows' fit's covariance;
    # level a's predictor diverges (no standard error).
    frame = one_level_all_failures()
    full = g.fit("y ~ f + z + (1 | g)", frame)
    mixed = g.fit("y ~ f + z + (1 | g)", frame[frame["f"] != "a"])
    new = pd.DataFrame({"f": ["a", "b", "c"], "z": [0.5, 0.5, 0.5], "g": [0, 0, 0]})
    predicted = full.predict(new, type="link", se_fit=True, re="exclude")
    expected = mixed.predict(new.iloc[1:], type="link", se_fit=True, re="exclude")
    assert np.isnan(predicted["se_fit"].iloc[0])
    np.testing.assert_allclose(predicted.iloc[1:].to_numpy(), expected.to_numpy(), rtol=1e-5)
    # b - c is -fc of the mixed rows' fit (its reference level b).
    table = g.pairs(g.emmeans(full, "f"), adjust="none").set_index("contrast")
    np.testing.assert_allclose(table.loc["b - c", "estimate"], -mixed.params["fc"], rtol=1e-5)
    np.testing.assert_allclose(table.loc["b - c", "std_error"], mixed.bse["fc"], rtol=1e-5)
    # Level a's mean and its contrasts are points on the diverging path: no estimate.
    assert (
        table.loc[["a - b", "a - c"]].drop(columns="adjust", errors="ignore").isna().all(axis=None)
    )
    means = g.emmeans(full, "f").table.set_index("f")
    assert means.loc["a"].isna().all() and np.isfinite(means.loc[["b", "c"]].to_numpy()).all()
    # The intercept plus fb is the mixed fit's intercept (level b at z = 0).
    tested = g.hypotheses(full, "b1 + b2 = 0")
    np.testing.assert_allclose(tested["estimate"], mixed.params["(Intercept)"], rtol=1e-5)
    np.testing.assert_allclose(tested["std_error"], mixed.bse["(Intercept)"], rtol=1e-5)
    # A diverging coefficient has no estimate here either, as in the fixed-effects table.
    assert g.hypotheses(full, "b1 = 0")[["estimate", "std_error"]].isna().all(axis=None)
    # Averaged response-scale predictions by level: level a's rows are at probability 0.
    averaged = g.avg_predictions(full, by="f").set_index("f")
    expected_average = g.avg_predictions(mixed, by="f").set_index("f")
    np.testing.assert_allclose(
        averaged.loc[["b", "c"], "std_error"], expected_average["std_error"], rtol=1e-5
    )
    # Level a's probability is at its limit, 0 (an estimate; its variance is not finite).
    assert 0.0 <= averaged.loc["a", "estimate"] < 1e-12
    assert np.isnan(averaged.loc["a", "std_error"])


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_a_lone_separated_row_leaves_the_other_standard_errors_as_glmmtmbs():
    # probit_lone_row_separated.csv (bench/fuzz_formula.py --seed 57 --links, case 185): one
    # row alone in a cut level. The start's information for that column was near zero, so the
    # whitened search scaled it by 1e9 and a finite-difference step of the final Hessian
    # crossed the whole path: the other standard errors came out 5-12% low, fb's not at all,
    # and the variances were hidden. glmmTMB's (the fit without the row, to 1e-7).
    frame = pd.read_csv(REFERENCE / "probit_lone_row_separated.csv")
    formula = (
        "factor(y) ~ cut(x2, 2, include.lowest = TRUE) + I((i + 1) %in% c(2, 3)) + f/x1"
        " + (1 | g) + (1 | g:h)"
    )
    result = g.fit(formula, frame, link="probit")
    assert result.diverging == ["cut(x2, 2, include.lowest = TRUE)(3.7,7.15]"]
    assert not result.converged and result.limit_verified
    np.testing.assert_allclose(result.loglik, -101.6684, atol=1e-4)
    expected = [0.2507058102, 0.2245415252, 0.2798426921, 0.2630530810]
    expected += [0.1810964069, 0.2014151557, 0.2412555785]
    kept = [n for n in result.bse.index if n not in result.diverging]
    np.testing.assert_allclose(result.bse[kept], expected, rtol=2e-4)
    assert result.opt_summary.tolerances["whitening_floor"] == 1e-8
    # The variances are the limit's estimates: shown, as glmmTMB's SDs.
    random = result.summary().random_effects
    np.testing.assert_allclose(random["Std.Dev."], [0.30375, 0.35843], atol=1e-5)
    assert "points on a diverging path" in str(result.summary())


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
@pytest.mark.parametrize("link", ["probit", "logit"])
def test_a_separated_agq_fit_has_the_mixed_rows_standard_errors(link):
    # AGQ whitens beta by the GLM's information, near zero for the lone row's column as in
    # the Laplace case above: the probit fit's end was not verified (a Hessian not positive
    # definite) and its standard errors were 1.6e-4 off.
    frame = pd.read_csv(REFERENCE / "probit_lone_row_separated.csv")
    lone = pd.cut(frame["x2"], 2, include_lowest=True).cat.codes == 1
    rest = "I((i + 1) %in% c(2, 3)) + f/x1 + (1 | g)"
    full = g.fit(
        f"y ~ cut(x2, 2, include.lowest = TRUE) + {rest}", frame, link=link, method="agq", n_agq=7
    )
    mixed = g.fit(f"y ~ {rest}", frame[~lone], link=link, method="agq", n_agq=7)
    assert len(full.diverging) == 1 and full.limit_verified
    np.testing.assert_allclose(full.bse.drop(full.diverging), mixed.bse, rtol=1e-6)
    np.testing.assert_allclose(full.llf, mixed.llf, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_term_tests_of_a_separated_fit_test_what_stays_finite():
    # The lone row's cut level diverges; f, x1 and f:x1 do not. car's Type II Wald tests
    # and emmeans' joint test of f (at x1's mean over all 172 rows) on glmmTMB's fit without
    # the row (tests/reference/README.md): the limit's. wald_test_terms gave f and x1 no
    # test (a NaN of the diverging column's covariance times 0) and joint_tests raised.
    frame = pd.read_csv(REFERENCE / "probit_lone_row_separated.csv")
    formula = "y ~ cut(x2, 2, include.lowest = TRUE) + I((i + 1) %in% c(2, 3)) + f*x1 + (1 | g)"
    result = g.fit(formula, frame, link="probit")
    assert len(result.diverging) == 1 and result.limit_verified
    terms = g.wald_test_terms(result)
    expected = [0.2644165736, 1.2569064113, 14.7617259445, 4.1383495473]
    tested = ["I((i + 1) %in% c(2, 3))", "f", "x1", "f:x1"]
    np.testing.assert_allclose(terms.loc[tested, "Chisq"], expected, rtol=2e-5)
    assert np.isnan(terms.loc["cut(x2, 2, include.lowest = TRUE)", "Chisq"])
    joint = g.joint_tests(result).set_index("model term")
    np.testing.assert_allclose(joint.loc["f", "F.ratio"], 0.805, atol=5e-4)
    # x2 (its cut levels) moves along the diverging path: no test.
    assert np.isnan(joint.loc["x2", "F.ratio"])


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_wald_test_of_a_combination_that_stays_finite():
    # Level a is all failures: the intercept and fb diverge, their sum (level b's predictor
    # at z = 0) is the mixed rows' intercept. wald_test refused it ("no finite estimate")
    # where hypotheses tested it; a combination that still moves has no test.
    frame = one_level_all_failures()
    full = g.fit("y ~ f + z + (1 | g)", frame)
    mixed = g.fit("y ~ f + z + (1 | g)", frame[frame["f"] != "a"])
    test = g.wald_test(full, "(Intercept) + fb = 0")
    expected = (mixed.params["(Intercept)"] / mixed.bse["(Intercept)"]) ** 2
    np.testing.assert_allclose(test.statistic, expected, rtol=1e-4)
    moving = g.wald_test(full, "fb = 0")
    assert np.isnan(moving.statistic) and "no finite estimate" in moving.note


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_nested_agq_gradient_by_differences_on_a_separated_fit():
    # QuadratureControl(nested_gradient="differences") steps beta along the GLM information's
    # inverse factor, whose lone-row column was 1e9: the probit fit ended 0.083 below the
    # fit without the row, standard errors 2.5% off, its end not verified.
    from glmm_binomial.methods.agq import Agq, QuadratureControl

    frame = pd.read_csv(REFERENCE / "probit_lone_row_separated.csv")
    lone = pd.cut(frame["x2"], 2, include_lowest=True).cat.codes == 1
    rest = "I((i + 1) %in% c(2, 3)) + f/x1 + (1 | g) + (1 | g:h)"
    method = Agq(n_agq=3, quadrature_control=QuadratureControl(nested_gradient="differences"))
    full = g.fit(
        f"y ~ cut(x2, 2, include.lowest = TRUE) + {rest}", frame, link="probit", method=method
    )
    mixed = g.fit(f"y ~ {rest}", frame[~lone], link="probit", method=method)
    assert len(full.diverging) == 1 and full.limit_verified
    np.testing.assert_allclose(full.llf, mixed.llf, rtol=1e-10)
    np.testing.assert_allclose(full.bse.drop(full.diverging), mixed.bse, rtol=1e-4)


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
@pytest.mark.parametrize(
    ("link", "options"),
    [
        ("logit", {}),
        ("probit", {}),
        ("logit", {"method": "agq", "n_agq": 5}),
    ],
)
def test_a_search_from_inside_reports_the_separation_it_stops_on(link, options):
    # A start at the mixed rows' estimates (a refit in the bootstrap, power_sim or pb_test, a
    # given start) reaches the diverging path from inside and stops where its Newton decrement
    # falls below 1e-6, the separated rows' log-odds near -13 (logit) or -15 (probit): the
    # screen at 20 missed it, and the fit said converged with fc at that point, a number that
    # is not an estimate. fixed_separation_screen (10) sends it to the linear programs.
    frame = rare_level_frame(all_failures=True)
    lone = np.flatnonzero(frame["f"] == "c")[0]
    frame.loc[(frame["f"] == "c") & (frame.index != lone), "f"] = "a"  # one row: a failure
    mixed = g.fit("y ~ x + f + (1 | g)", frame[frame["f"] != "c"], link=link, **options)
    start = {"theta": mixed.theta, "fixef": np.append(mixed.params.to_numpy(), 0.0)}
    full = g.fit("y ~ x + f + (1 | g)", frame, link=link, start=start, **options)
    assert full.diverging == ["fc"]
    assert not full.converged and full.limit_verified
    assert full.opt_summary.tolerances["fixed_separation_screen"] == 10.0
    np.testing.assert_allclose(full.loglik, mixed.loglik, atol=1e-6)
    np.testing.assert_allclose(full.params.drop("fc"), mixed.params, atol=1e-4)
    np.testing.assert_allclose(full.bse.drop("fc"), mixed.bse, rtol=1e-3)
    np.testing.assert_allclose(full.theta, mixed.theta, atol=1e-4)


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_a_fixed_separation_does_not_hide_the_groups_separation():
    # bench/against_r.py slope:4031: fb separated by the fixed effects, and every group's
    # rows by its intercept and slope. Only fb was reported, so the fit's end counted as a
    # verified limit (limit_verified), its SDs of 5.3 and 34 shown as the limit's estimates.
    frame = pd.read_csv(REFERENCE / "slope_fixed_and_group_separated.csv")
    result = g.fit("y ~ x + f + (1 + x | g)", frame)
    assert result.diverging == ["fb"]
    assert result.fit_output.separation.columns == ((0, 0), (0, 1))
    assert not result.limit_verified and not result.fit_output.at_supremum
    assert "separation within groups" in result.warnings[0]
    assert "(1 + x | g) has none either" in result.warnings[0]
    with pytest.raises(ValueError, match="no profile"):
        result.confint()


def test_a_separated_fit_is_verified_off_its_diverging_path():
    """Level a of f all failures, y ~ f + (1 | g): along the diverging path the deviance is
    flat to rounding, and with numpy 2.4 the search's own check ended on an indefinite Hessian
    there (smallest eigenvalue -0.25 in its whitened coordinates), so the fit kept "optimizer
    did not converge" and drop1 had no supremum for the refit. Off that path (the diverging
    directions projected out, laplace.verified_off_path) the end is the limit: theta and the
    log-likelihood are the mixed rows' fit's."""
    frame = one_level_all_failures()
    mixed = frame[frame["f"] != "a"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = g.fit("y ~ f + (1 | g)", frame)
    assert not result.converged and result.fit_output.limit_verified
    assert not [w for w in caught if w.category is ConvergenceWarning]
    assert result.opt_summary.converged
    reference = g.fit("y ~ f + (1 | g)", mixed)
    assert result.loglik == pytest.approx(reference.loglik, abs=1e-8)
    np.testing.assert_allclose(result.theta, reference.theta, rtol=1e-5)


def test_a_warm_start_stalled_on_a_separating_path_is_reported():
    # bench/fuzz_separation.py --only 746 --warm: d = 1 on two rows, both successes, in a
    # group with a large effect. Started from the fit without d, the cloglog search stopped at
    # d = 2.8 (SE 212), "converged" without a warning: the two rows' mean was 1 - 1e-15 with
    # their group's effect added, the gradient gone in double precision, while the fixed-part
    # screens saw nothing large.
    data = pd.read_csv(REFERENCE_DIR / "cloglog_warm_stall.csv")
    structure = "(1 | g) + (1 | g:h)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reduced = g.fit(f"y ~ x + f + {structure}", data[data["d"] == 0], link="cloglog")
        start = {
            "theta": reduced.theta,
            "fixef": np.concatenate([reduced.params.to_numpy()[:1], [0.0], reduced.params[1:]]),
        }
        full = g.fit(f"y ~ d + x + f + {structure}", data, link="cloglog", start=start)
    assert full.diverging == ["d"]
    assert any("quasi-complete separation" in w and "for d;" in w for w in full.warnings)
    assert full.limit_verified
    assert full.loglik == pytest.approx(reduced.loglik, abs=1e-6)
