"""Where GLMM_BINOMIAL spends its time on a large range: validation against the fit.

    python bench/bench_sheet.py [--rows N] [--repeats R]

Case: N rows (default 100,000) of 2 x columns, one x_random column, 1,000 groups, passed as a
spreadsheet sends them (lists of row lists of Python numbers); seeded simulation (seed 0).
Prints the median seconds of: validation (ranges -> arrays, every check), the separation
linear program, the "laplace" fit, and the whole call; and validation / fit. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from glmm_binomial.frontends import sheet


def arguments(n: int) -> tuple[list[list[float]], ...]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    z = rng.normal(size=n)
    g = rng.integers(0, 1000, n)
    b, s = rng.normal(size=1000), 0.5 * rng.normal(size=1000)
    eta = -0.3 + x @ np.array([0.5, -0.2]) + b[g] + s[g] * z
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return (
        [[int(v)] for v in y],
        x.tolist(),
        [[int(v)] for v in g],
        [[v] for v in z.tolist()],
    )


def timed(function, repeats: int) -> tuple[float, object]:
    seconds, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    y, x, groups, x_random = arguments(options.rows)
    sheet._available_methods()  # imports the methods' modules once, outside the timings
    validate, request = timed(
        lambda: sheet._validate(y, x, groups, x_random, True, 0.05, "laplace"), options.repeats
    )
    data = sheet._model_data(request)  # type: ignore[arg-type]
    separation, _ = timed(
        lambda: sheet.detect_separation(data.x, data.successes, data.trials), options.repeats
    )
    fit, _ = timed(lambda: sheet._fit(data, request), options.repeats)  # type: ignore[arg-type]
    call, _ = timed(lambda: sheet.glmm_binomial(y, x, groups, x_random, True, 0.05, "laplace"), 1)
    print(
        f"rows {options.rows}: validation {validate:.3f} s, separation LP {separation:.3f} s, "
        f"fit {fit:.3f} s, whole call {call:.3f} s; validation / fit {validate / fit:.3f}"
    )


if __name__ == "__main__":
    main()
