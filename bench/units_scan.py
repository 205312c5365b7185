"""Covariate units scan (issue 9 item 10): refit slope models with x * 10^k and count the fits
whose logLik, convergence flag or warnings differ from the fit on x.

The binomial GLMM is equivariant under rescaling a covariate, so every refit should match
(|delta logLik| <= 1e-6, same warnings). Prints each mismatch and the count, and the wall time.
Run: python bench/units_scan.py [--quick]
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

import glmm_binomial as gb


def simulated(seed: int, mean: float, sd: float) -> pd.DataFrame:
    """400 Bernoulli rows, 20 groups, random intercept and slope of SD `sd` each."""
    rng = np.random.default_rng(100 + seed)
    n, n_groups = 400, 20
    groups = rng.integers(0, n_groups, n)
    x = rng.normal(loc=mean, size=n)
    b = rng.normal(size=(n_groups, 2)) * sd
    eta = -0.5 + 0.5 * x + b[groups, 0] + b[groups, 1] * x
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": groups})


def main(quick: bool) -> None:
    warnings.simplefilter("ignore")
    settings = [(0.0, 0.0), (0.0, 0.05), (2.0, 0.3), (0.0, 1.0), (0.0, 0.6), (1.0, 0.8)]
    exponents = [-6, 6] if quick else [-6, -3, 3, 6, 8]
    started, bad, total = time.perf_counter(), 0, 0
    for seed, (mean, sd) in enumerate(settings[:2] if quick else settings):
        data = simulated(seed, mean, sd)
        for formula in ["y ~ x + (1 + x | g)", "y ~ x + (1 + x || g)"]:
            for method in ["laplace", "agq"]:
                n_agq = 1 if method == "laplace" else 3
                base = gb.fit(formula, data, method=method, n_agq=n_agq)
                kinds = [w.category for w in base.warnings]
                for k in exponents:
                    total += 1
                    refit = gb.fit(
                        formula, data.assign(x=data["x"] * 10.0**k), method=method, n_agq=n_agq
                    )
                    delta = refit.loglik - base.loglik
                    same = refit.converged == base.converged and kinds == [
                        w.category for w in refit.warnings
                    ]
                    if abs(delta) > 1e-6 or not same:
                        bad += 1
                        print(f"seed {seed} {formula} {method} x*1e{k}: dlogLik {delta:.3g}")
    print(f"{bad} of {total} refits differ; {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main("--quick" in sys.argv)
