"""Parametric bootstrap speed: 1,000 refits of contraception `(1 | district)` (issue 10).

    python bench/bench_bootstrap.py [--n-boot 1000] [--jobs 1 2]

Prints the wall time of glmm_binomial.results.bootstrap for each number of worker processes,
the time per refit, the failed refits and the load average (the machine is shared: compare ratios).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import glmm_binomial as g

FORMULA = "use ~ age + I(age^2) + urban + livch + (1 | district)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    result = g.fit(FORMULA, g.datasets.load("contraception"))
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    print(f"one full fit: {result.opt_summary.seconds:.4f} s")
    outputs = {}
    for jobs in args.jobs:
        started = time.perf_counter()
        boot = g.bootstrap(result, n_boot=args.n_boot, seed=args.seed, n_jobs=jobs, progress=False)
        seconds = time.perf_counter() - started
        outputs[jobs] = boot.replicates.to_numpy()
        print(
            f"n_jobs={jobs}: {args.n_boot} refits in {seconds:.2f} s "
            f"({1000 * seconds / args.n_boot:.2f} ms a refit), {boot.n_failed} failed"
        )
    first = next(iter(outputs.values()))
    same = all(np.array_equal(first, o, equal_nan=True) for o in outputs.values())
    print(f"identical replicates across n_jobs: {same}")
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
    print(boot.confint())


if __name__ == "__main__":
    main()
