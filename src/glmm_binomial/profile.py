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
    if model.x.shape[0] != model.n_obs:
        raise ValueError(
            "profile intervals refit the model, and the rows of this fit are on a Dask cluster; "
            "fit the computed frame in memory (glmm_binomial.fit(formula, ddf.compute()))"
        )
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
        profile = _Profile(objective, x_hat, se, index, n_theta, deviance_hat, control)
        is_sd = index < n_theta
        ends = []
        for direction in (-1.0, 1.0):
            profile.restart()
            estimate = x_hat[index]
            step = se[index]
            inside, outside = estimate, None
            for _ in range(control.max_doublings):
                trial = estimate + direction * step
                if is_sd and trial <= 0.0:
                    trial = 0.0
                if profile.excess(trial, cutoff) > 0.0:
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
                    profile.excess, inside, outside, args=(cutoff,), xtol=control.xtol
                )
            )
        rows.append({"parameter": name, "lower": ends[0], "upper": ends[1]})
    return pd.DataFrame(rows).set_index("parameter")


class _Profile:
    """The deviance profiled over one coordinate of (theta, beta), re-fits warm-started."""

    def __init__(
        self,
        objective: LaplaceObjective,
        x_hat: FloatArray,
        se: FloatArray,
        index: int,
        n_theta: int,
        deviance_hat: float,
        control: ProfileControl,
    ) -> None:
        self.objective, self.x_hat, self.index = objective, x_hat, index
        self.n_theta, self.deviance_hat, self.control = n_theta, deviance_hat, control
        self.free = np.ones(len(x_hat), dtype=bool)
        self.free[index] = False
        self.scale = se[self.free]
        self.restart()

    def restart(self) -> None:
        """Start the next re-fit from the estimates again."""
        self.warm = self.x_hat[self.free].copy()

    def excess(self, value: float, cutoff: float = 0.0) -> float:
        """Profiled deviance at x[index] = value, minus the minimum and the cut-off."""
        x = self.x_hat.copy()
        x[self.index] = value

        def fun(z: FloatArray) -> tuple[float, FloatArray]:
            x[self.free] = z * self.scale
            dev, g_theta, g_beta = self.objective.deviance_and_gradient(
                x[: self.n_theta], x[self.n_theta :]
            )
            return dev, np.concatenate([g_theta, g_beta])[self.free] * self.scale

        found = scipy.optimize.minimize(
            fun,
            self.warm / self.scale,
            jac=True,
            method="L-BFGS-B",
            options={"gtol": self.control.gtol, "maxiter": self.control.max_iter},
        )
        self.warm = np.asarray(found.x) * self.scale
        return float(found.fun) - self.deviance_hat - cutoff
