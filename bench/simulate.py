"""Seeded simulated data sets for the speed benchmark (issue 5).

Each generator returns a pandas DataFrame with a 0/1 response ``y``, two fixed-effect
covariates ``x1`` (standard normal) and ``x2`` (0/1), and integer grouping columns, and is
deterministic given its seed (numpy's default_rng, one stream per call). Every level of every
grouping factor is present. ``write_csv`` stores a set for R.

    slope_100k      y ~ x1 + x2 + (1 + x1 | g)          100,000 rows, 1000 groups
    singular_slope_50k  the same model, 50,000 rows, 1000 groups, no random intercept
    crossed_100k    y ~ x1 + x2 + (1 | g1) + (1 | g2)   100,000 rows, 1000 x 100 levels
    intercept_1m    y ~ x1 + x2 + (1 | g)               1,000,000 rows, 10,000 groups

The true values: beta = (-0.5, 0.8, -0.4); random-intercept SD 0.8 (one factor), 0.7 and 0.5
(crossed), 0.6 (1M); slope SD 0.4 with intercept-slope correlation 0.3 (singular_slope_50k:
slope SD 0.5, intercept SD 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

BETA = np.array([-0.5, 0.8, -0.4])


def _codes(rng: np.random.Generator, n: int, n_levels: int) -> np.ndarray:
    """Random group membership with every level present (a random permutation of the first
    n_levels rows gets one row per level)."""
    if n < n_levels:
        raise ValueError(f"n ({n}) must be at least the number of levels ({n_levels})")
    codes = rng.integers(0, n_levels, size=n)
    codes[rng.permutation(n)[:n_levels]] = np.arange(n_levels)
    return codes


def _covariates(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x1 = rng.normal(size=n)
    x2 = rng.integers(0, 2, size=n).astype(np.float64)
    return x1, x2


def _response(rng: np.random.Generator, eta: np.ndarray) -> np.ndarray:
    return (rng.random(eta.shape[0]) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)


def slope_100k(seed: int = 1, n: int = 100_000, n_groups: int = 1000) -> pd.DataFrame:
    """Correlated random intercept and slope on x1: y ~ x1 + x2 + (1 + x1 | g)."""
    rng = np.random.default_rng(seed)
    x1, x2 = _covariates(rng, n)
    g = _codes(rng, n, n_groups)
    sd = np.array([0.8, 0.4])
    corr = np.array([[1.0, 0.3], [0.3, 1.0]])
    b = rng.multivariate_normal(np.zeros(2), corr * np.outer(sd, sd), size=n_groups)
    eta = BETA[0] + BETA[1] * x1 + BETA[2] * x2 + b[g, 0] + b[g, 1] * x1
    return pd.DataFrame({"y": _response(rng, eta), "x1": x1, "x2": x2, "g": g})


def singular_slope_50k(seed: int = 4, n: int = 50_000, n_groups: int = 1000) -> pd.DataFrame:
    """A random slope without a random intercept, fitted as y ~ x1 + x2 + (1 + x1 | g): the
    intercept SD estimate near zero leaves the correlation hardly identified (a nearly
    singular fit, as lme4 users meet it every day)."""
    rng = np.random.default_rng(seed)
    x1, x2 = _covariates(rng, n)
    g = _codes(rng, n, n_groups)
    b = rng.normal(scale=0.5, size=n_groups)
    eta = BETA[0] + BETA[1] * x1 + BETA[2] * x2 + b[g] * x1
    return pd.DataFrame({"y": _response(rng, eta), "x1": x1, "x2": x2, "g": g})


def crossed_100k(
    seed: int = 2, n: int = 100_000, n_levels1: int = 1000, n_levels2: int = 100
) -> pd.DataFrame:
    """Two crossed random intercepts: y ~ x1 + x2 + (1 | g1) + (1 | g2)."""
    rng = np.random.default_rng(seed)
    x1, x2 = _covariates(rng, n)
    g1 = _codes(rng, n, n_levels1)
    g2 = _codes(rng, n, n_levels2)
    b1 = rng.normal(scale=0.7, size=n_levels1)
    b2 = rng.normal(scale=0.5, size=n_levels2)
    eta = BETA[0] + BETA[1] * x1 + BETA[2] * x2 + b1[g1] + b2[g2]
    return pd.DataFrame({"y": _response(rng, eta), "x1": x1, "x2": x2, "g1": g1, "g2": g2})


def intercept_1m(seed: int = 3, n: int = 1_000_000, n_groups: int = 10_000) -> pd.DataFrame:
    """One random intercept with many groups: y ~ x1 + x2 + (1 | g)."""
    rng = np.random.default_rng(seed)
    x1, x2 = _covariates(rng, n)
    g = _codes(rng, n, n_groups)
    b = rng.normal(scale=0.6, size=n_groups)
    eta = BETA[0] + BETA[1] * x1 + BETA[2] * x2 + b[g]
    return pd.DataFrame({"y": _response(rng, eta), "x1": x1, "x2": x2, "g": g})


@dataclass(frozen=True)
class SimulatedCase:
    """A simulated benchmark set: its generator, formula and grouping columns."""

    name: str
    make: Callable[..., pd.DataFrame]
    formula: str
    groups: tuple[str, ...]


CASES: dict[str, SimulatedCase] = {
    "sim_slope_100k": SimulatedCase(
        "sim_slope_100k", slope_100k, "y ~ x1 + x2 + (1 + x1 | g)", ("g",)
    ),
    "sim_singular_slope_50k": SimulatedCase(
        "sim_singular_slope_50k", singular_slope_50k, "y ~ x1 + x2 + (1 + x1 | g)", ("g",)
    ),
    "sim_crossed_100k": SimulatedCase(
        "sim_crossed_100k", crossed_100k, "y ~ x1 + x2 + (1 | g1) + (1 | g2)", ("g1", "g2")
    ),
    "sim_intercept_1m": SimulatedCase(
        "sim_intercept_1m", intercept_1m, "y ~ x1 + x2 + (1 | g)", ("g",)
    ),
}


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a generated set as CSV (full float precision, so R reads the same numbers)."""
    path = Path(path)
    frame.to_csv(path, index=False, float_format="%.17g")
    return path


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write the simulated benchmark sets as CSV.")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--cases", nargs="*", default=sorted(CASES), choices=sorted(CASES))
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    for name in args.cases:
        print(write_csv(CASES[name].make(), args.outdir / f"{name}.csv"))


if __name__ == "__main__":
    main()
