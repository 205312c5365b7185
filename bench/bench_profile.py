"""Profile intervals of every parameter where lme4 1.1-31 fails ("profiling detected new, lower
deviance"): contraception `use ~ age + I(age^2) + urban + livch + (1 + urban | district)`;
and the correlated slope model of tests/reference/contraception_slope_profile.json.

    python bench/bench_profile.py
"""

from __future__ import annotations

import time
from pathlib import Path

import glmm_binomial as g

FORMULAS = (
    "use ~ age + I(age^2) + urban + livch + (1 + urban | district)",
    "use ~ age + urban + livch + (1 + urban | district)",
)


def main() -> None:
    data = g.datasets.load("contraception")
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    for formula in FORMULAS:
        result = g.fit(formula, data)
        started = time.perf_counter()
        profile = result.profile()
        seconds = time.perf_counter() - started
        print(
            f"\n{formula}\nlogLik {result.loglik:.6f}; profile of every parameter: {seconds:.1f} s"
        )
        print(profile.confint().to_string())
        for message in profile.warnings:
            print(f"warning: {message}")
    print(f"\nload average: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
