import re
import warnings

import numpy as np
import pandas as pd
import pytest
from _simulate import simulated_model
from conftest import REFERENCE_DIR

import glmm_binomial as g
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.design import build_model


def differenced_hessian(objective, theta, beta):
    """Central differences of the objective's exact gradient in (theta, beta): what each
    exact Hessian is checked against."""
    from glmm_binomial.numerics.hessian import gradient_hessian

    n_theta = len(theta)

    def gradient(x):
        _, g_theta, g_beta = objective.deviance_and_gradient(x[:n_theta], x[n_theta:])
        return np.concatenate([g_theta, g_beta])

    x0 = np.concatenate([theta, beta])
    return gradient_hessian(gradient, x0, 1e-4, scheme="central", relative=True)


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


def test_blocks_on_one_factor_share_the_block_diagonal_part():
    """(1 + x || g): merged into the first, block-diagonal part, or kept apart in the dense
    Schur part (different group names), the deviance and its gradient are the same."""
    import dataclasses

    from glmm_binomial.numerics.factor import Structure

    data = simulated_model(6, levels=(15, 5), slopes=(True, False))
    first = data.blocks[0]
    intercept = dataclasses.replace(first, terms=("(Intercept)",), z=first.z[:, :1])
    slope = dataclasses.replace(first, terms=("x1",), z=first.z[:, 1:])
    merged = dataclasses.replace(data, blocks=(intercept, slope, data.blocks[1]))
    apart = dataclasses.replace(
        merged, blocks=(intercept, dataclasses.replace(slope, group="copy"), data.blocks[1])
    )
    assert Structure(merged).first_blocks == [0, 1]
    assert Structure(apart).first_blocks == [0]
    theta = np.array([0.8, 0.5, 0.3])
    beta = np.array([-0.2, 0.4, 0.3])
    a = LaplaceObjective(merged).deviance_and_gradient(theta, beta)
    b = LaplaceObjective(apart).deviance_and_gradient(theta, beta)
    assert a[0] == pytest.approx(b[0], abs=1e-9)
    np.testing.assert_allclose(a[1], b[1], atol=1e-8)
    np.testing.assert_allclose(a[2], b[2], atol=1e-8)


def test_fast_paths_reach_the_same_optimum_as_the_plain_ones():
    """Sorted rows (reduceat), the predicted warm start and whitened, unconstrained theta give
    the optimum of the plain computation: unsorted rows through bincount, plain warm starts."""
    from glmm_binomial.methods.laplace import fit_laplace
    from glmm_binomial.numerics.pirls import PirlsControl

    data = simulated_model(8, n=600, levels=(30, 6), slopes=(True, False))
    fast = fit_laplace(data)
    plain = fit_laplace(data, pirls_control=PirlsControl(max_predicted_step=0.0))
    # The reported values are the deviance at each search's last mode, found to PIRLS's
    # tolerance (about 1e-8 in the log-likelihood here); at the two end points with the modes
    # found afresh to a tight tolerance, the same to 1e-10.
    assert fast.loglik == pytest.approx(plain.loglik, abs=5e-8)
    tight = LaplaceObjective(data, PirlsControl(tol=1e-20))
    at_fast = tight.deviance(fast.theta, fast.beta)
    tight = LaplaceObjective(data, PirlsControl(tol=1e-20))
    assert tight.deviance(plain.theta, plain.beta) == pytest.approx(at_fast, abs=1e-10)
    np.testing.assert_allclose(fast.beta, plain.beta, atol=1e-5)
    np.testing.assert_allclose(fast.theta, plain.theta, atol=1e-5)

    # The objective sorts rows by the largest factor; the deviance of unsorted rows, summed
    # by bincount (a Structure built directly), is the same.
    from glmm_binomial.numerics.factor import Structure
    from glmm_binomial.numerics.pirls import find_mode

    objective = LaplaceObjective(data)
    assert objective.structure._starts is not None
    assert Structure(data)._starts is None
    theta, beta = fast.theta, fast.beta
    direct = find_mode(
        Structure(data),
        data,
        data.x @ beta + data.offset,
        data.lambdas(theta),
        np.zeros((30, 2)),
        np.zeros(6),
        PirlsControl(),
    )
    unsorted = direct.penalized_deviance + direct.factor.logdet
    assert objective.deviance(theta, beta) == pytest.approx(unsorted, abs=1e-8)


def test_scalar_gradient_and_mode_change_equal_the_general_path() -> None:
    # One scalar random effect: LaplaceObjective's short path (scalar_gradient,
    # scalar_mode_change) gives the general path's numbers bit for bit, for a random
    # intercept and for a scalar random slope (z not ones).
    rng = np.random.default_rng(21)
    n, n_g = 240, 12
    g_codes = rng.integers(0, n_g, n)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(0.3 * x + rng.normal(size=n_g)[g_codes])))) * 1.0
    for z in (np.ones((n, 1)), rng.normal(size=(n, 1))):
        block = RandomBlock("g", ("(Intercept)",), g_codes, tuple(range(n_g)), z)
        data = ModelData(
            y, np.ones(n), np.column_stack([np.ones(n), x]), np.zeros(n), ("a", "x"), (block,)
        )
        fast, general = LaplaceObjective(data), LaplaceObjective(data)
        general.scalar = False
        assert fast.scalar
        theta, beta = np.array([0.9]), np.array([0.1, 0.3])
        mode_fast, mode_general = fast.mode(theta, beta), general.mode(theta, beta)
        pairs = zip(fast.gradient_at(mode_fast), general.gradient_at(mode_general), strict=True)
        for got, want in pairs:
            assert np.array_equal(got, want)
        step = (np.array([1.1]), theta, np.array([0.02, -0.01]))
        got = fast.mode_change(mode_fast, *step)
        want = general.mode_change(mode_general, *step)
        assert np.array_equal(got[0], want[0]) and got[1].size == want[1].size == 0
        info_fast = fast.fixed_information(theta, beta)
        assert np.array_equal(info_fast, general.fixed_information(theta, beta))


@pytest.mark.parametrize(
    ("formula", "frame"),
    [
        ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp"),
        ("use ~ age + livch + offset(0.1 * age) + (0 + u | district)", "contraception"),
    ],
)
def test_the_exact_scalar_hessian_is_the_derivative_of_the_exact_gradient(formula, frame):
    from glmm_binomial import datasets
    from glmm_binomial.methods.laplace import scalar_hessian
    from glmm_binomial.model.design import build_model

    data = datasets.load(frame)
    if frame == "contraception":
        data = data.assign(u=(data["urban"] == "Y") + 0.5)
    model, _ = build_model(formula, data)
    objective = LaplaceObjective(model)
    assert objective.has_exact_hessian
    # Away from the optimum (the gradient is not zero there), a negative theta included.
    for theta0 in (0.7, -0.4):
        theta, beta = np.array([theta0]), np.linspace(-0.5, 0.3, model.n_fixed)
        numeric = differenced_hessian(objective, theta, beta)
        exact = scalar_hessian(objective.data, objective.structure, objective.mode(theta, beta))
        np.testing.assert_allclose(exact, numeric, rtol=0, atol=1e-4 * np.max(np.abs(numeric)))


def test_fits_with_the_exact_hessian_match_finite_differences():
    import glmm_binomial as g

    data = g.datasets.load("contraception")
    formula = "use ~ age + urban + livch + (1 | district)"
    exact = g.fit(formula, data)
    numeric = g.fit(formula, data, control=g.OptimizerControl(exact_hessian=False))
    assert exact.opt_summary.evaluations < numeric.opt_summary.evaluations
    assert exact.loglik == pytest.approx(numeric.loglik, abs=1e-7)
    np.testing.assert_allclose(exact.params, numeric.params, atol=1e-6)
    np.testing.assert_allclose(exact.bse, numeric.bse, rtol=1e-3)
    # Probit has no exact Hessian: finite differences, the same fit as before.
    probit = g.fit(formula, data, link="probit")
    model = probit.model
    assert not LaplaceObjective(model).has_exact_hessian


@pytest.mark.parametrize("terms", ["1 + urban", "1 + age + urban"])
def test_the_exact_block_hessian_is_the_derivative_of_the_exact_gradient(terms):
    from glmm_binomial import datasets
    from glmm_binomial.methods.laplace import block_hessian, scalar_hessian
    from glmm_binomial.model.design import build_model

    data = datasets.load("contraception")
    model, _ = build_model(f"use ~ age + livch + ({terms} | district)", data)
    objective = LaplaceObjective(model)
    assert objective.has_exact_hessian and not objective.scalar
    n_theta = model.n_theta
    # Away from the optimum, with a negative correlation and a negative diagonal entry.
    theta = np.linspace(0.6, -0.3, n_theta)
    beta = np.linspace(-0.5, 0.3, model.n_fixed)
    numeric = differenced_hessian(objective, theta, beta)
    exact = block_hessian(objective.data, objective.structure, objective.mode(theta, beta))
    np.testing.assert_allclose(exact, numeric, rtol=0, atol=1e-4 * np.max(np.abs(numeric)))

    # With one column it is scalar_hessian's.
    model, _ = build_model("use ~ age + livch + (1 | district)", data)
    one = LaplaceObjective(model)
    mode = one.mode(np.array([0.5]), np.linspace(-0.5, 0.3, model.n_fixed))
    np.testing.assert_allclose(
        block_hessian(one.data, one.structure, mode),
        scalar_hessian(one.data, one.structure, mode),
        rtol=1e-10,
        atol=1e-10,
    )


@pytest.mark.parametrize(
    ("formula", "theta"),
    [
        ("use ~ age + livch + diag(1 + urban | district)", [np.log(0.6), np.log(0.3)]),
        ("use ~ age + ar1(0 + livch | district)", [np.log(0.6), 0.7]),
        ("use ~ age + cs(0 + livch | district)", [*np.log([0.6, 0.3, 0.5, 0.4]), 0.3]),
    ],
)
def test_the_exact_hessian_of_a_structured_covariance_by_the_chain_rule(formula, theta):
    """diag, ar1 and cs: theta holds log SDs and glmmTMB's phi; LaplaceObjective.exact_hessian
    takes block_hessian in Lambda's entries through the chain rule (the entries' first and
    second derivatives in theta, CovarianceStructure.entry_derivatives, and the gradient in
    the entries), equal to central differences of the exact gradient; a fit with it matches
    one by finite differences in fewer evaluations."""
    import glmm_binomial as g
    from glmm_binomial.model.design import build_model

    data = g.datasets.load("contraception")
    model, _ = build_model(formula, data)
    objective = LaplaceObjective(model)
    assert objective.has_exact_hessian and not objective.scalar
    theta = np.asarray(theta)
    beta = np.linspace(-0.5, 0.3, model.n_fixed)
    numeric = differenced_hessian(objective, theta, beta)
    exact = objective.exact_hessian(theta, beta)
    np.testing.assert_allclose(exact, numeric, rtol=0, atol=1e-5 * np.max(np.abs(numeric)))

    control = g.OptimizerControl(basin_starts=False)
    fitted = g.fit(formula, data, control=control)
    by_differences = g.fit(
        formula, data, control=g.OptimizerControl(basin_starts=False, exact_hessian=False)
    )
    assert fitted.opt_summary.evaluations < by_differences.opt_summary.evaluations
    assert fitted.loglik == pytest.approx(by_differences.loglik, abs=1e-7)
    np.testing.assert_allclose(fitted.bse, by_differences.bse, rtol=1e-3)


def test_layouts_without_an_exact_hessian_keep_finite_differences():
    import glmm_binomial as g
    from glmm_binomial.model.design import build_model

    data = g.datasets.load("contraception")
    crossed, _ = build_model("use ~ age + (1 | district) + (1 | livch)", data)
    assert not LaplaceObjective(crossed).has_exact_hessian
    slope = g.fit("use ~ age + urban + (1 + urban | district)", data)
    numeric = g.fit(
        "use ~ age + urban + (1 + urban | district)",
        data,
        control=g.OptimizerControl(exact_hessian=False),
    )
    assert slope.opt_summary.evaluations < numeric.opt_summary.evaluations
    np.testing.assert_allclose(slope.bse, numeric.bse, rtol=1e-3)
    assert slope.loglik == pytest.approx(numeric.loglik, abs=1e-7)


def test_newton_search_only_on_small_scalar_fits():
    """Newton's method from the start for one scalar random effect up to NEWTON_MAX_VALUES
    values n (p + 1); the quasi-Newton search beyond (and for vector random effects), both at
    the same optimum."""
    import pandas as pd

    import glmm_binomial
    from glmm_binomial.methods.laplace import NEWTON_MAX_VALUES

    rng = np.random.default_rng(3)
    rows = NEWTON_MAX_VALUES // 4 + 500  # 3 fixed effects: just beyond the limit
    groups = rng.integers(0, 100, rows)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    eta = -0.5 + 0.5 * x1 - 0.3 * x2 + 0.8 * rng.normal(size=100)[groups]
    frame = pd.DataFrame(
        {"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x1": x1, "x2": x2, "g": groups}
    )
    formula = "y ~ x1 + x2 + (1 | g)"
    large = glmm_binomial.fit(formula, frame)
    small = glmm_binomial.fit(formula, frame.iloc[: NEWTON_MAX_VALUES // 4 - 500])
    assert large.opt_summary.optimizer == "BFGS, whitened, + Newton polish"
    assert small.opt_summary.optimizer == "Newton, whitened, exact Hessian"
    assert large.converged and small.converged
    slope = glmm_binomial.fit("y ~ x1 + x2 + (1 + x1 | g)", frame.iloc[:2000])
    assert slope.opt_summary.optimizer == "BFGS, whitened, + Newton polish"
    # The same optimum either way.
    control = glmm_binomial.OptimizerControl(newton_max_steps=0)
    quasi = glmm_binomial.fit(formula, frame.iloc[: NEWTON_MAX_VALUES // 4 - 500], control=control)
    assert small.llf == pytest.approx(quasi.llf, abs=1e-7)
    assert np.allclose(small.params, quasi.params, atol=1e-5)


@pytest.mark.parametrize(
    ("hessian", "formula", "theta"),
    [
        ("scalar", "use ~ age + urban + livch + (1 | district)", [0.6]),
        ("block", "use ~ age + urban + livch + (1 + urban | district)", [0.6, -0.5, 0.3]),
        ("block", "use ~ age + urban + (1 + urban + age | district)", [0.6, -0.5, 0, 0.3, 0, 0.02]),
    ],
)
def test_the_exact_hessian_in_runs_of_levels_is_the_whole_one(monkeypatch, hessian, formula, theta):
    """scalar_hessian and block_hessian (k = 2, 3) summed over runs of whole levels (a large
    fit's way) equal them on all the rows at once."""
    from glmm_binomial import datasets
    from glmm_binomial.methods import laplace
    from glmm_binomial.model.design import build_model

    model, _ = build_model(formula, datasets.load("contraception"))
    objective = LaplaceObjective(model)
    mode = objective.mode(np.array(theta, dtype=float), np.linspace(-0.5, 0.3, model.n_fixed))
    exact = getattr(laplace, f"{hessian}_hessian")
    whole = exact(objective.data, objective.structure, mode)
    for rows in (1, 37, 500):
        monkeypatch.setattr(laplace, f"{hessian.upper()}_HESSIAN_CHUNK_ROWS", rows)
        runs = exact(objective.data, objective.structure, mode)
        np.testing.assert_allclose(runs, whole, rtol=1e-11, atol=1e-9)
        assert np.array_equal(runs, runs.T)


def test_scalar_deviance_carries_the_mode_error_to_first_order() -> None:
    """The mode is found to a Newton decrement of 1e-14, which holds log det H only to about
    1e-7; find_scalar_mode adds the first-order change (mode_error), so that a warm-started
    sequence of evaluations gives the deviance at the exact mode (found from zero to a
    decrement of 1e-22) to 1e-10 where it was 1e-8 off."""
    from glmm_binomial.numerics.pirls import PirlsControl

    model, _ = build_model(
        "use ~ age + urban + livch + (1 | district)", g.datasets.load("contraception")
    )
    theta0, beta0 = np.array([0.47]), np.array([-1.5, -0.03, 0.7, 1.1, 1.3, 1.3])
    rng = np.random.default_rng(1)
    warm = LaplaceObjective(model)
    worst, largest_correction = 0.0, 0.0
    for _ in range(25):
        theta = theta0 * (1 + 0.05 * rng.normal())
        beta = beta0 + 0.05 * rng.normal(size=beta0.size)
        value = warm.deviance(theta, beta)
        largest_correction = max(largest_correction, abs(warm.mode(theta, beta).mode_error))
        exact = LaplaceObjective(model, PirlsControl(tol=1e-22)).deviance(theta, beta)
        worst = max(worst, abs(value - exact))
    assert worst < 1e-10
    assert largest_correction > 1e-9  # the term is doing something


@pytest.mark.parametrize(
    ("dataset", "formula"),
    [
        ("verbagg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"),
        ("contraception", "use ~ age + urban + livch + (1 + urban | district)"),
        ("contraception", "use ~ age + urban + (1 | district/livch)"),
    ],
)
def test_general_deviance_carries_the_mode_error_to_first_order(dataset: str, formula: str) -> None:
    """The general layout (crossed, vector, nested effects) as the scalar one above: the
    deviance adds -g'd + grad_u(log det H) . d of the search's last step (mode_error, from the
    gradient's own d log det H / du), so that warm-started evaluations give the exact mode's
    deviance to 1e-10 where they were up to 3e-7 off; deviance() and deviance_and_gradient()
    agree at every point."""
    from glmm_binomial.numerics.pirls import PirlsControl

    data = g.datasets.load(dataset)
    fitted = g.fit(formula, data)
    model, _ = build_model(formula, data)
    theta0 = np.asarray(fitted.theta)
    beta0 = np.asarray(fitted.params, dtype=float)
    rng = np.random.default_rng(1)
    warm, other = LaplaceObjective(model), LaplaceObjective(model)
    worst, largest_step = 0.0, 0.0
    for _ in range(8):
        theta = theta0 * (1 + 0.05 * rng.normal(size=theta0.size))
        beta = beta0 + 0.05 * rng.normal(size=beta0.size)
        value, _, _ = warm.deviance_and_gradient(theta, beta)
        mode = warm.mode(theta, beta)
        assert mode.last_step is not None
        largest_step = max(largest_step, mode.last_decrement)
        assert other.deviance(theta, beta) == pytest.approx(value, abs=1e-12)
        exact = LaplaceObjective(model, PirlsControl(tol=1e-22)).deviance(theta, beta)
        worst = max(worst, abs(value - exact))
    assert worst < 1e-10
    assert largest_step > 0.0  # the searches did stop short of the exact mode


def test_a_search_run_off_to_an_overflowing_lambda_is_a_clear_error() -> None:
    """A search that ran off (its last deviance not finite) to where even the conditional
    modes' factor fails (Lambda's SDs e^300) raises a ValueError that says so, not numpy's
    'Matrix is not positive definite' from deep inside."""
    from glmm_binomial import datasets
    from glmm_binomial.methods.laplace import finish_fit
    from glmm_binomial.model.design import build_model
    from glmm_binomial.numerics.optimize import Estimates, OptimizerControl, OptSummary

    data = datasets.load("contraception").assign(t=lambda d: d["livch"])
    model, _ = build_model("use ~ age + cs(0 + t | district)", data)
    objective = LaplaceObjective(model)
    theta = np.array([300.0, 300.0, 300.0, 300.0, 5.0])
    beta = np.zeros(model.n_fixed)
    with pytest.raises(np.linalg.LinAlgError):
        objective.deviance_and_gradient(theta, beta)
    summary = OptSummary("BFGS", "laplace", False, "", 0, 0, 0, 0, 0, np.inf, False, {}, 0.0)
    estimates = Estimates(theta, beta, np.inf, None, summary)
    with pytest.raises(ValueError, match="the fit failed: the search ran off"):
        finish_fit(model, objective, estimates, OptimizerControl(), "laplace", "Laplace")


def test_a_run_off_search_names_the_separation_that_drove_it() -> None:
    """cs_runaway_modes.csv (README there): no finite estimate (separation within groups);
    the search runs to an SD of 1.3e9, where the modes cannot be computed. The refusal names
    the separation, as the same data with successes and failures swapped report it. Which of
    the two ends so depends on rounding (numpy 2.4.6 / scipy 1.17.1 swapped them): the other
    stops short at a point reported as not converged, whose warning names the separation and
    says the values are no estimates."""
    frame = pd.read_csv(REFERENCE_DIR / "cs_runaway_modes.csv")
    separation = "separation within groups: in every group of g"
    refused = 0
    for data in (frame, frame.assign(y=1 - frame["y"])):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = g.fit("y ~ x + cs(0 + tf | g)", data)
        except ValueError as raised:
            refused += 1
            assert re.search(f"the fit failed: the search ran off.*{separation}", str(raised))
            assert "reported values" not in str(raised)
        else:
            assert not result.converged
            named = [str(w.message) for w in caught if separation in str(w.message)]
            assert named and "not estimates" in named[0]
    assert refused >= 1


def test_finish_fit_retries_the_final_mode_from_zero_after_a_failed_warm_start():
    """The final conditional modes start from the objective's warm start, which after
    better_of_basins may be another search's end far from the chosen one: a factor failure
    there is retried from u = 0 before the fit is refused (the same modes as a fresh
    objective's)."""
    from glmm_binomial.methods.laplace import finish_fit, fit_laplace
    from glmm_binomial.numerics.optimize import Estimates, OptimizerControl

    data = g.datasets.load("contraception")
    model, _ = build_model("use ~ age + (1 + urban | district)", data)
    fitted = fit_laplace(model)
    hessian = LaplaceObjective(model).exact_hessian(fitted.theta, fitted.beta)
    estimates = Estimates(
        fitted.theta, fitted.beta, -2.0 * fitted.loglik, hessian, fitted.opt_summary
    )

    class FailingWarmStart(LaplaceObjective):
        resets = 0

        def reset(self):
            self.resets += 1
            super().reset()

        def mode(self, theta, beta):
            if not self.resets:
                raise np.linalg.LinAlgError("Matrix is not positive definite")
            return super().mode(theta, beta)

    objective = FailingWarmStart(model)
    control = OptimizerControl()
    output = finish_fit(model, objective, estimates, control, "laplace", "logLik")
    assert objective.resets == 1
    fresh = finish_fit(model, LaplaceObjective(model), estimates, control, "laplace", "logLik")
    for a, b in zip(output.ranef, fresh.ranef, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
