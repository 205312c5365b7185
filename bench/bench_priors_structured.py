"""Issue 21: the cost of structured covariances and of priors.

Structured terms: `cbind(k, n - k) ~ time + trt + S(timef + 0 | id)` on the longitudinal data
(400 ids x 6 visits = 2,400 rows; tests/reference/longitudinal.csv) for S = ar1, cs, diag and
us (lme4's unstructured term, 21 covariance parameters), Laplace fits; the ratio of each to
the us fit. Priors: the same fit with and without priors (cbpp with blme's default Wishart,
contraception (1 + urban | district) with normal(sd = c(3, 3)) + Wishart, the separation data
with t(df = 7, scale = 2.5) + Wishart on the linear model, the ar1 fit with a Wishart); the
ratio with / without. Each time is the median of --repeats fits (after one warm-up fit), run
alternately so that the machine's load hits both sides alike.

Run: python bench/bench_priors_structured.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import glmm_binomial as g

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference"


def longitudinal() -> pd.DataFrame:
    data = pd.read_csv(REFERENCE / "longitudinal.csv")
    data["timef"] = data["timef"].astype(str).astype("category")
    data["id"] = data["id"].astype(str)
    return data


def median_times(fits: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median wall seconds per fit, the fits run in turn repeats times (after a warm-up)."""
    for fit in fits.values():
        fit()
    times: dict[str, list[float]] = {name: [] for name in fits}
    for _ in range(repeats):
        for name, fit in fits.items():
            started = time.perf_counter()
            fit()
            times[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores, shared)")

    data = longitudinal()
    formula = "cbind(k, n - k) ~ time + trt + {}(timef + 0 | id)"
    fits = {s: (lambda s=s: g.fit(formula.format(s), data)) for s in ("ar1", "cs", "diag", "us")}
    times = median_times(fits, args.repeats)
    print("\nstructured terms, 2,400 rows, 6 occasions (median seconds; ratio to us)")
    for name, seconds in times.items():
        result = fits[name]()
        print(
            f"  {name:5s} {seconds:7.3f} s  {seconds / times['us']:5.2f}x  "
            f"logLik {result.loglik:.5f}  evaluations {result.opt_summary.evaluations}"
        )

    cbpp = g.datasets.load("cbpp")
    contraception = g.datasets.load("contraception")
    separation = pd.read_csv(REFERENCE / "separation.csv")
    cases = {
        "cbpp (1 | herd), wishart": (
            "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            cbpp,
            "blme",
        ),
        "contraception (1 + urban | district), normal + wishart": (
            "use ~ age + urban + livch + (1 + urban | district)",
            contraception,
            {"fixef": "normal(sd = c(3, 3))", "cov": "wishart"},
        ),
        "separation y ~ x + z + (1 | g), t + wishart": (
            "y ~ x + z + (1 | g)",
            separation,
            {"fixef": "t(df = 7, scale = 2.5)", "cov": "wishart"},
        ),
        "longitudinal ar1, wishart": (formula.format("ar1"), data, "blme"),
    }
    print("\npriors (median seconds without / with; ratio)")
    for label, (text, frame, priors) in cases.items():
        pair = {
            "plain": lambda text=text, frame=frame: g.fit(text, frame),
            "prior": lambda text=text, frame=frame, priors=priors: g.fit(
                text, frame, priors=priors
            ),
        }
        seconds = median_times(pair, args.repeats)
        ratio = seconds["prior"] / seconds["plain"]
        print(f"  {label:55s} {seconds['plain']:6.3f} {seconds['prior']:6.3f}  {ratio:5.2f}x")
    print(f"\nload average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
