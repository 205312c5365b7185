"""Dask sweep of the log link: random low-rate data fitted in memory and on a Dask DataFrame.

    python bench/fuzz_dask_log.py --start 0 --count 12

Each seed draws a data set (8 to 39 groups of 4 to 19 rows, a covariate on one of four scales,
a factor, a subgroup within each group, counts of 1 to 5 trials, offsets 0 or a negative value
on half the rows) whose rates exp(eta) stay below 1 (eta at most -0.05, many rows near the
bound), and fits seven models with `link="log"` (intercept, slope, nested, counts, an offset,
a factor crossed with the groups, the counts beta-binomial; AGQ with 5 points on the scalar
ones too) in memory and on
a Dask DataFrame of the rows shuffled into 3 partitions (LocalCluster, two single-thread
workers). A case is:

- "ok": logLik within 1e-6 relative, the same converged verdict, estimates within 1e-3 (where
  converged) and the same warning categories;
- "both unconverged at bound/separated": both fits report the log link's active constraint
  (or separation): their ends are points where each search failed, not compared, but their
  warning categories must agree;
- "both refused": the same kind of clear refusal;
- "problem": anything else (printed). Exit status 1 when any case is a problem.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

import glmm_binomial as g

FORMULAS = [
    "y ~ x + f + (1 | g)",
    "y ~ x + (1 + x | g)",
    "y ~ x + (1 | g/h)",
    "cbind(k, m - k) ~ x + f + (1 | g)",
    "y ~ x + (1 | g) + offset(o)",
    # h crossed with g: the client's mode search over the partitions (crossed.py).
    "y ~ x + (1 | g) + (1 | h)",
    # The counts again, beta-binomial (FAMILY).
    "cbind(k, m - k) ~ x + f + (1 | g)",
]
VECTOR = {1, 2, 5}  # formulas AGQ is not run on (a vector effect, nested or crossed factors)
FAMILY = {6: "betabinomial"}  # formulas fitted with another family than the binomial


def data(seed: int) -> pd.DataFrame:
    """The seed's data set (module docstring)."""
    rng = np.random.default_rng(seed)
    n_groups, per = int(rng.integers(8, 40)), int(rng.integers(4, 20))
    groups = np.repeat(np.arange(n_groups), per)
    n = groups.size
    x = rng.normal(size=n) * rng.choice([1, 5]) + rng.choice([0, 10])
    xs = (x - x.mean()) / x.std()
    f = rng.choice(["a", "b", "c"], size=n)
    h = rng.integers(0, 3, size=n)
    o = np.where(rng.random(n) < 0.5, 0.0, -rng.uniform(0, 2))
    eta = rng.uniform(-3.5, -1.0) + 0.3 * xs + 0.2 * (f == "b")
    eta = eta + rng.normal(scale=rng.uniform(0.1, 0.8), size=n_groups)[groups]
    eta = np.minimum(eta + rng.normal(scale=0.3, size=(n_groups, 3))[groups, h], -0.05)
    p = np.exp(eta)
    m = rng.integers(1, 6, size=n)
    return pd.DataFrame(
        {
            "y": (rng.random(n) < p).astype(float),
            "k": rng.binomial(m, p),
            "m": m,
            "x": x,
            "f": f,
            "g": [f"G{v}" for v in groups],
            "h": h,
            "o": o,
        }
    )


def outcome(formula: str, frame: Any, options: dict[str, Any]) -> tuple[Any, list[str]]:
    """(result, warning categories) or (message, []) for a ValueError, ("ERROR ...", [])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = g.fit(formula, frame, **options)
        except ValueError as exc:
            return str(exc)[:100], []
        except Exception as exc:  # noqa: BLE001 - a sweep reports every failure
            return f"ERROR {exc!r}"[:200], []
    categories = {
        w.category.__name__
        for w in caught
        if w.category is not UserWarning and "not run on a Dask" not in str(w.message)
    }
    return result, sorted(categories)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()
    import dask.dataframe as dd
    import distributed

    counts: Counter[str] = Counter()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        for seed in range(args.start, args.start + args.count):
            frame = data(seed)
            shuffled = dd.from_pandas(frame.sample(frac=1, random_state=seed), npartitions=3)
            for i, formula in enumerate(FORMULAS):
                for method in ("laplace", "agq"):
                    if method == "agq" and i in VECTOR:
                        continue
                    options = {"link": "log", "method": method}
                    if i in FAMILY:
                        options["family"] = FAMILY[i]
                    if method == "agq":
                        options["n_agq"] = 5
                    memory, m_warn = outcome(formula, frame, options)
                    fitted, d_warn = outcome(formula, shuffled, options)
                    case = f"{seed} {formula} {FAMILY.get(i, '')} {method}"
                    if isinstance(memory, str) or isinstance(fitted, str):
                        errors = [v for v in (memory, fitted) if isinstance(v, str)]
                        if len(errors) == 2 and not any(e.startswith("ERROR") for e in errors):
                            counts["both refused"] += 1
                        else:
                            counts["problem"] += 1
                            print(f"{case}: {memory!s:.200} | {fitted!s:.200}")
                        continue
                    at_bound = any("constraint" in str(w) for w in memory.warnings)
                    if (
                        not memory.converged
                        and not fitted.converged
                        and (at_bound or "SeparationWarning" in m_warn)
                    ):
                        kind = "both unconverged at bound/separated"
                        if m_warn != d_warn:
                            kind = "problem"
                            print(f"{case}: warnings {m_warn} in memory, {d_warn} on Dask")
                        counts[kind] += 1
                        continue
                    problems = []
                    if abs(memory.loglik - fitted.loglik) > 1e-6 * max(1.0, abs(memory.loglik)):
                        problems.append(f"logLik {memory.loglik} {fitted.loglik}")
                    if memory.converged != fitted.converged:
                        problems.append(f"converged {memory.converged} {fitted.converged}")
                    a, b = np.asarray(memory.params), np.asarray(fitted.params)
                    if memory.converged and np.max(np.abs(a - b) / np.maximum(1, np.abs(a))) > 1e-3:
                        problems.append(f"params {a} {b}")
                    if m_warn != d_warn:
                        problems.append(f"warnings {m_warn} {d_warn}")
                    counts["problem" if problems else "ok"] += 1
                    if problems:
                        print(f"{case}: {'; '.join(problems)}")
    print(f"{sum(counts.values())} cases: {dict(counts)}")
    return 1 if counts["problem"] else 0


if __name__ == "__main__":
    sys.exit(main())
