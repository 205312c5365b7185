"""Calibration of the simulated-residual tests (issue 22), by simulation.

    python bench/bench_residuals_calibration.py [--sets 200] [--n-sim 250] [--seed 2026]

Data sets of 40 groups x 20 rows, eta = -0.5 + 0.5 x + b_g, x ~ N(0, 1), b_g ~ N(0, 0.8^2),
each fitted by Laplace as `cbind(y, trials - y) ~ x + (1 | g)`:
- "binomial": y ~ Binomial(10, expit(eta)) (the model is right);
- "bernoulli": y ~ Bernoulli(expit(eta)) (the model is right);
- "beta-binomial": p ~ Beta(mu phi, (1 - mu) phi), mu = expit(eta), phi = 3, y ~ Binomial(10, p)
  (overdispersed; the binomial model is wrong).
For each set and each way of simulating the random effects (re="posterior", "conditional" and
"unconditional"), simulate_residuals(n_sim) and its three tests. Prints, per scenario and re:
the share of sets where each test rejects at 5%, and the Kolmogorov-Smirnov p-value of the
test's p-values against U(0, 1) (they should be uniform when the model is right); also the
uniformity and dispersion tests of the residuals grouped by g ("by g": sums per group).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

import glmm_binomial as g
from glmm_binomial.results.simulated_residuals import simulate_residuals

SCENARIOS = ("binomial", "bernoulli", "beta-binomial")
RE_MODES = ("posterior", "conditional", "unconditional")


def data_set(
    rng: np.random.Generator, scenario: str, groups: int, rows: int, phi: float
) -> pd.DataFrame:
    n = groups * rows
    g_codes = np.repeat(np.arange(groups), rows)
    x = rng.normal(size=n)
    b = rng.normal(scale=0.8, size=groups)
    mu = expit(-0.5 + 0.5 * x + b[g_codes])
    trials = 1 if scenario == "bernoulli" else 10
    if scenario == "beta-binomial":
        p = rng.beta(mu * phi, (1.0 - mu) * phi)
    else:
        p = mu
    y = rng.binomial(trials, p)
    return pd.DataFrame({"y": y, "n": trials, "x": x, "g": g_codes})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", type=int, default=200)
    parser.add_argument("--n-sim", type=int, default=250)
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--phi", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--re", nargs="+", default=list(RE_MODES), choices=RE_MODES)
    args = parser.parse_args()
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    print(
        f"{args.sets} data sets per scenario, {args.groups} groups x {args.rows} rows, "
        f"n_sim {args.n_sim}, seed {args.seed}"
    )
    started = time.perf_counter()
    root = np.random.SeedSequence(args.seed)
    streams = root.spawn(len(SCENARIOS))
    for scenario, stream in zip(SCENARIOS, streams, strict=True):
        if scenario not in args.scenarios:
            continue
        p_values: dict[tuple[str, str], list[float]] = {}
        failed = 0
        for s, child in enumerate(stream.spawn(args.sets)):
            rng = np.random.default_rng(child)
            data = data_set(rng, scenario, args.groups, args.rows, args.phi)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = g.fit("cbind(y, n - y) ~ x + (1 | g)", data)
            if not result.converged:
                failed += 1
            for re in args.re:
                res = simulate_residuals(result, n_sim=args.n_sim, seed=[args.seed, s], re=re)
                for name, test in res.tests().items():
                    p_values.setdefault((re, name), []).append(test.p_value)
                # Residuals of the groups (sums per group), DHARMa's advice for 0/1 data.
                grouped = res.grouped("g")
                for name in ("uniformity", "dispersion"):
                    test = getattr(grouped, f"test_{name}")()
                    p_values.setdefault((re, f"{name} by g"), []).append(test.p_value)
        print(f"\n{scenario} ({failed} fits not converged)")
        print(f"  {'re':<14}{'test':<18}{'reject at 5%':>13}{'KS of p-values':>16}")
        for (re, name), values in p_values.items():
            ps = np.asarray(values)
            rate = float(np.mean(ps < 0.05))
            uniform_p = float(stats.kstest(ps, "uniform").pvalue)
            print(f"  {re:<14}{name:<18}{rate:>13.3f}{uniform_p:>16.3g}")
    print(f"\n{time.perf_counter() - started:.0f} s")
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
