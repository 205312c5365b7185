"""Separation sweep: a fit separated by the fixed effects against the fit without the separated
rows, which is its limit.

    python bench/fuzz_separation.py --start 0 --count 50       # seeds 0-49
    python bench/fuzz_separation.py --only 17                  # one case, the fits printed

Seed s draws a random design (groups, a nested or crossed factor, a covariate x, a 3-level
factor f), a link, a random-effect structure and a method (Laplace; AGQ where the factors
allow it: one factor, or nested ones), simulates responses, and adds an indicator d whose 1-3
rows all share one outcome (all successes or all failures): quasi-complete separation along d
alone. In the limit along
the diverging path those rows' contributions vanish, so the fit of `y ~ d + x + f + (...)` on
every row and the fit of `y ~ x + f + (...)` without them have the same supremum. A case is a
problem when the full fit:

- raises anything, or does not report d (and d only) as diverging;
- does not say its end is verified (result.limit_verified) while the reduced fit converged;
- differs from the reduced fit in logLik by more than --tol (absolute), or in a standard error
  of the other coefficients, a coefficient or an SD by more than --estimate-tol (relative to
  max(1, |value|) for estimates, to the value for standard errors).

The cauchit's tails fall as 1 / |eta|, so the separated rows still weigh on the fit where the
search stops along the path (logLik about 1e-6 below the supremum, estimates 5e-4 apart,
the end's curvature along the path at rounding, so not always verified): for it the
tolerances are CAUCHIT_SLACK times wider and an unverified end is not a problem.

With --dask N the separated data are fitted on a Dask DataFrame of N partitions (the rows
shuffled; a LocalCluster of two workers), the fit without the rows in memory: the same checks
(Dask screens for separation instead of running the linear programs); a Dask refusal (AGQ on
a vector effect, ...) is counted apart.

With --warm the separated data are fitted from the reduced fit's estimates (d's coefficient at
0), as a refit of the bootstrap, power_sim or pb_test starts from the fitted model's: the
search then reaches the diverging path's tail from inside, not from the GLM's far start.

A reduced fit that is itself separated (a small design's f) or does not converge is counted
apart, not compared; a singular one (an SD at
zero) is compared as any other and counted apart. Exit status 1 when any case is a problem.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

import glmm_binomial as g

LINKS = ("logit", "probit", "cloglog", "cauchit")
CAUCHIT_SLACK = 20.0
STRUCTURES = ("(1 | g)", "(1 + x | g)", "(1 | g) + (1 | g:h)", "(1 | g) + (1 | h)")


def case(seed: int) -> tuple[pd.DataFrame, str, str, dict[str, Any]]:
    """(data, random part, link, fit options) of seed; data has columns y, d, x, f, g, h."""
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(6, 25))
    per = int(rng.integers(6, 20))
    n = n_groups * per
    g_codes = np.repeat(np.arange(n_groups), per)
    h_codes = rng.integers(0, int(rng.integers(2, 5)), n)
    x = rng.standard_normal(n)
    f = rng.choice(["a", "b", "c"], n)
    structure = STRUCTURES[int(rng.integers(len(STRUCTURES)))]
    link = LINKS[int(rng.integers(len(LINKS)))]
    sd = float(rng.uniform(0.2, 1.2))
    eta = -0.3 + 0.5 * x + np.where(f == "b", 0.4, np.where(f == "c", -0.4, 0.0))
    eta = eta + sd * rng.standard_normal(n_groups)[g_codes]
    if "x |" in structure:
        eta = eta + 0.3 * x * rng.standard_normal(n_groups)[g_codes]
    if "h" in structure:
        eta = eta + 0.5 * rng.standard_normal(n_groups * 5)[g_codes * 5 + h_codes]
    # The link's own scale: cloglog and cauchit predictors on the logit's are extreme.
    p = {
        "logit": 1 / (1 + np.exp(-eta)),
        "probit": special.ndtr(0.6 * eta),
        "cloglog": 1 - np.exp(-np.exp(eta - 0.4)),
        "cauchit": 0.5 + np.arctan(eta) / np.pi,
    }[link]
    y = (rng.random(n) < p).astype(float)
    d = np.zeros(n)
    lone = rng.choice(n, int(rng.integers(1, 4)), replace=False)
    d[lone] = 1.0
    y[lone] = float(rng.integers(0, 2))
    data = pd.DataFrame(
        {"y": y, "d": d, "x": x, "f": f, "g": [f"g{c}" for c in g_codes], "h": h_codes}
    )
    options: dict[str, Any] = {}
    if structure != "(1 | g) + (1 | h)" and rng.random() < 0.4:
        options = {"method": "agq", "n_agq": int(rng.choice([3, 5, 7]))}
    return data, structure, link, options


def run(
    seed: int,
    tol: float,
    estimate_tol: float,
    show: bool = False,
    dask: tuple[Any, int] | None = None,
    warm: bool = False,
) -> tuple[str, str]:
    """(verdict, detail) of one case: "ok", "ok, singular", "reduced separated", "reduced not
    converged" or "problem"."""
    data, structure, link, options = case(seed)
    label = f"{structure}, {link}, {options or 'laplace'}, {len(data)} rows"
    reduced_rows = data[data["d"] == 0]
    full_rows: Any = data
    fit_options = dict(options)
    if dask is not None:
        import dask.dataframe as dd

        client, partitions = dask
        shuffled = data.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        full_rows = dd.from_pandas(shuffled, npartitions=partitions)
        fit_options["client"] = client
        label += f", on Dask ({partitions} partitions)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reduced = g.fit(f"y ~ x + f + {structure}", reduced_rows, link=link, **options)
            if warm:
                fixef = np.concatenate([reduced.params.to_numpy()[:1], [0.0], reduced.params[1:]])
                fit_options["start"] = {"theta": reduced.theta, "fixef": fixef}
                label += ", warm start"
            try:
                full = g.fit(f"y ~ d + x + f + {structure}", full_rows, link=link, **fit_options)
            except ValueError as refusal:
                if dask is None:
                    raise
                return "refused by dask", f"{label}: {refusal}"
    except Exception:  # noqa: BLE001 - a sweep reports every failure
        return "problem", f"{label}: raised\n{traceback.format_exc()}"
    if show:
        print(label)
        print(full.summary())
        print(reduced.summary())
    if reduced.diverging:
        return "reduced separated", f"{label}: {', '.join(reduced.diverging)}"
    if not reduced.converged:
        return "reduced not converged", f"{label}: {reduced.opt_summary.message}"
    if link == "cauchit":
        tol, estimate_tol = tol * CAUCHIT_SLACK, estimate_tol * CAUCHIT_SLACK
    problems = []
    if full.diverging != ["d"]:
        problems.append(f"diverging {full.diverging}")
    if not full.limit_verified and link != "cauchit":
        problems.append(f"end not verified ({full.opt_summary.message})")
    if abs(full.llf - reduced.llf) > tol:
        problems.append(f"logLik {full.llf:.10g} vs {reduced.llf:.10g}")
    others = reduced.params.index
    estimates = np.concatenate([full.params[others], full.theta])
    expected = np.concatenate([reduced.params, reduced.theta])
    worst = float(np.max(np.abs(estimates - expected) / np.maximum(1.0, np.abs(expected))))
    if not worst <= estimate_tol:
        problems.append(f"estimates differ by {worst:.3g}")
    se = full.bse[others].to_numpy()
    worst_se = float(np.max(np.abs(se / reduced.bse.to_numpy() - 1.0)))
    if not worst_se <= estimate_tol:
        problems.append(f"standard errors differ by {worst_se:.3g}")
    if problems:
        return "problem", f"{label}: {'; '.join(problems)}"
    return ("ok, singular" if reduced.singular else "ok"), label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--only", type=int, default=None, help="one seed, the fits printed")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--estimate-tol", type=float, default=1e-3)
    parser.add_argument(
        "--dask",
        type=int,
        default=0,
        help="fit the separated data on a Dask DataFrame of this many partitions (0: in memory)",
    )
    parser.add_argument(
        "--warm", action="store_true", help="start the separated fit at the reduced fit's estimates"
    )
    args = parser.parse_args()
    if not args.dask:
        return sweep(args, None)
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        return sweep(args, (client, args.dask))


def sweep(args: argparse.Namespace, dask: tuple[Any, int] | None) -> int:
    """Run --only's case or --start/--count's, print the problems and counts; exit status."""
    if args.only is not None:
        verdict, detail = run(
            args.only, args.tol, args.estimate_tol, show=True, dask=dask, warm=args.warm
        )
        print(verdict, detail)
        return int(verdict == "problem")
    counts: Counter[str] = Counter()
    for seed in range(args.start, args.start + args.count):
        verdict, detail = run(seed, args.tol, args.estimate_tol, dask=dask, warm=args.warm)
        counts[verdict] += 1
        if verdict in ("problem", "reduced not converged"):
            print(f"seed {seed} ({verdict}): {detail}", flush=True)
    print(f"{sum(counts.values())} cases: {dict(counts)}")
    return int(counts["problem"] > 0)


if __name__ == "__main__":
    sys.exit(main())
