"""Speed of the simulated (DHARMa) residuals: 250 simulations on 100,000 rows (issue 22).

    python bench/bench_residuals.py [--rows 100000] [--n-sim 250] [--repeats 3]

Fits `y ~ x1 + x2 + (1 + x1 | g)` on bench/simulate.py's slope_100k (0/1 rows, 1000 groups),
then times simulate_residuals (simulations, quantiles) for re="posterior", "conditional" and
"unconditional", the three tests, grouping by g, and the same with 10 trials per row
(the response redrawn from the fitted model as Binomial(10, p)). Prints the best of
`--repeats` wall times, the peak traced memory of one call (tracemalloc: numpy's buffers) and
the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from simulate import slope_100k  # noqa: E402

import glmm_binomial as g  # noqa: E402
from glmm_binomial.results.simulated_residuals import simulate_residuals  # noqa: E402


def best_time(call: Any, repeats: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - started)
    return best, value


def peak_memory(call: Any) -> float:
    tracemalloc.start()
    call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--n-sim", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    data = slope_100k(seed=1, n=args.rows, n_groups=args.groups)
    started = time.perf_counter()
    result = g.fit("y ~ x1 + x2 + (1 + x1 | g)", data)
    print(f"fit: {time.perf_counter() - started:.2f} s, {result.nobs} rows")

    for re in ("posterior", "conditional", "unconditional"):
        seconds, res = best_time(
            lambda re=re: simulate_residuals(result, n_sim=args.n_sim, seed=1, re=re),
            args.repeats,
        )
        size = f"{args.n_sim} sims x {result.nobs} rows"
        print(f"simulate_residuals re={re}, {size}: {seconds:.2f} s")
    memory = peak_memory(lambda: simulate_residuals(result, n_sim=args.n_sim, seed=1))
    print(f"  peak traced memory (re=posterior, the default): {memory:.0f} MiB")
    seconds, _ = best_time(lambda: res.tests(), args.repeats)
    print(f"three tests: {seconds:.3f} s")
    seconds, _ = best_time(lambda: res.grouped("g"), args.repeats)
    print(f"grouped by g ({result.ngroups['g']} groups): {seconds:.3f} s")

    # Ten trials per row: the same design with a binomial response drawn from the fit.
    rng = np.random.default_rng(2)
    model = result.model
    successes = rng.binomial(10, result.fitted()).astype(np.float64)
    binomial_model = dataclasses.replace(
        model,
        successes=successes,
        trials=np.full(model.n_obs, 10.0),
        log_binomial_constant=float("nan"),
    )
    binomial = g.fit_model(binomial_model)
    seconds, _ = best_time(
        lambda: simulate_residuals(binomial, n_sim=args.n_sim, seed=1), args.repeats
    )
    print(f"simulate_residuals, 10 trials per row: {seconds:.2f} s")
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
