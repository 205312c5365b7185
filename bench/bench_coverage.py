"""Coverage of 95% profile and parametric-bootstrap intervals on data simulated from a known
model (issue 10): y ~ x + (1 | g), 40 groups of 20 Bernoulli rows, beta = (-0.5, 1), SD 0.8.

    python bench/bench_coverage.py [--n-sets 200] [--n-boot 200] [--jobs 1]

Prints, per parameter, the share of data sets whose interval holds the true value (with its
binomial standard error) and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import glmm_binomial as g

TRUE = {"sd_(Intercept)|g": 0.8, "(Intercept)": -0.5, "x": 1.0}


def simulate(rng: np.random.Generator, n_groups: int = 40, per_group: int = 20) -> pd.DataFrame:
    groups = np.repeat(np.arange(n_groups), per_group)
    x = rng.normal(size=len(groups))
    b = rng.normal(scale=TRUE["sd_(Intercept)|g"], size=n_groups)
    eta = TRUE["(Intercept)"] + TRUE["x"] * x + b[groups]
    y = (rng.uniform(size=len(x)) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": groups})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-sets", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    rng = np.random.default_rng(args.seed)
    hits = {"profile": {k: 0 for k in TRUE}, "boot": {k: 0 for k in TRUE}}
    started = time.perf_counter()
    for i in range(args.n_sets):
        result = g.fit("y ~ x + (1 | g)", simulate(rng))
        tables = {
            "profile": result.confint("profile"),
            "boot": result.confint(
                "boot", n_boot=args.n_boot, seed=args.seed + i, n_jobs=args.jobs
            ),
        }
        for method, table in tables.items():
            for name, value in TRUE.items():
                if table.loc[name, "lower"] <= value <= table.loc[name, "upper"]:
                    hits[method][name] += 1
    seconds = time.perf_counter() - started
    n = args.n_sets
    print(f"{n} data sets, {args.n_boot} bootstrap replicates each, {seconds:.0f} s")
    for method, counts in hits.items():
        for name, count in counts.items():
            share = count / n
            se = np.sqrt(share * (1 - share) / n)
            print(f"{method:8s} {name:18s} coverage {share:.3f} (+- {se:.3f})")
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
