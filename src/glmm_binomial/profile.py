"""Profile-likelihood confidence intervals (lme4's confint(method = "profile")).

For each parameter -- every fixed effect, and the SD of every scalar random-effect term -- the
deviance is minimized over all other parameters with that one held at a value v; the interval
is where the profiled deviance exceeds its minimum by at most the chi-square(1) quantile of the
confidence level. The end points are found by Brent's method on that difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.optimize
from numpy.typing import NDArray
from scipy import stats

from glmm_binomial.laplace import LaplaceObjective
from glmm_binomial.result import GLMMResult

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ProfileControl:
    """Tolerances of the profile: xtol of Brent's root search, gtol and max_iter of each
    constrained re-fit (L-BFGS-B in coordinates scaled by the Wald standard errors), and the
    cap on doublings of the bracket (start: one standard error from the estimate)."""

    xtol: float = 1e-6
    gtol: float = 1e-6
    max_iter: int = 500
    max_doublings: int = 30


def profile_confint(
    result: GLMMResult, conf_level: float = 0.95, control: ProfileControl | None = None
) -> pd.DataFrame:
    """Profile-likelihood intervals for the SDs of scalar random-effect terms (named
    `sd_<term>|<group>` as lme4 does) and the fixed effects, at `conf_level`.

    Only for Laplace fits (the profiled deviance is the Laplace deviance). An SD whose profile
    stays below the cut-off down to zero gets the lower end 0."""
    if not isinstance(result, GLMMResult):
        raise ValueError("profile_confint takes a GLMMResult")
    if result.method != "laplace":
        raise ValueError("profile intervals are computed for method='laplace' fits")
    if not 0.0 < conf_level < 1.0:
        raise ValueError("conf_level must be strictly between 0 and 1")
    control = control or ProfileControl()
    model = result.model
    objective = LaplaceObjective(model)
    n_theta = model.n_theta
    x_hat = np.concatenate([result.theta, result.params.to_numpy()])
    deviance_hat = objective.deviance(result.theta, result.params.to_numpy())
    cutoff = float(stats.chi2.ppf(conf_level, 1))

    # Wald standard errors scale the re-fits and the first bracket.
    fit = result.fit_output
    se = np.ones(len(x_hat))
    se[n_theta:] = np.sqrt(np.diag(fit.vcov_beta))
    if fit.theta_cov is not None:
        theta_se = np.sqrt(np.abs(np.diag(fit.theta_cov)))
        se[:n_theta] = np.where(np.isfinite(theta_se) & (theta_se > 0), theta_se, 0.1)

    targets: list[tuple[str, int]] = []
    for block, sl in zip(model.blocks, model.theta_slices(), strict=True):
        if block.k == 1:
            targets.append((f"sd_{block.terms[0]}|{block.group}", sl.start))
    targets += [(name, n_theta + j) for j, name in enumerate(model.fixed_names)]

    rows = []
    for name, index in targets:
        free = np.ones(len(x_hat), dtype=bool)
        free[index] = False
        warm = {"x": x_hat[free].copy()}

        def excess(value: float, index: int = index, free: NDArray[np.bool_] = free) -> float:
            """Profiled deviance at x[index] = value, minus the minimum."""
            scale = se[free]

            def fun(z: FloatArray) -> tuple[float, FloatArray]:
                x = np.empty(len(x_hat))
                x[index] = value
                x[free] = z * scale
                dev, g_theta, g_beta = objective.deviance_and_gradient(x[:n_theta], x[n_theta:])
                grad = np.concatenate([g_theta, g_beta])[free] * scale
                return dev, grad

            found = scipy.optimize.minimize(
                fun,
                warm["x"] / scale,
                jac=True,
                method="L-BFGS-B",
                options={"gtol": control.gtol, "maxiter": control.max_iter},
            )
            warm["x"] = np.asarray(found.x) * scale
            return float(found.fun) - deviance_hat

        is_sd = index < n_theta
        ends = []
        for direction in (-1.0, 1.0):
            warm["x"] = x_hat[free].copy()
            estimate = x_hat[index]
            step = se[index]
            inside, outside = estimate, None
            for _ in range(control.max_doublings):
                trial = estimate + direction * step
                if is_sd and trial <= 0.0:
                    trial = 0.0
                if excess(trial) > cutoff:
                    outside = trial
                    break
                inside = trial
                if is_sd and trial == 0.0:
                    break
                step *= 2.0
            if outside is None:
                ends.append(0.0 if is_sd and direction < 0 else direction * np.inf)
                continue
            ends.append(
                scipy.optimize.brentq(
                    lambda v: excess(v) - cutoff, inside, outside, xtol=control.xtol
                )
            )
        rows.append({"parameter": name, "lower": ends[0], "upper": ends[1]})
    return pd.DataFrame(rows).set_index("parameter")
