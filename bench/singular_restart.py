"""Vector-term fits with and without the search from lme4's start after a singular end.

    python bench/singular_restart.py --start 3130 --count 300 [--kinds slope us] [--json f]

The data are bench/metamorphic.py's (kind_data: the same kind and seed give the same table).
Each case is fitted with OptimizerControl(singular_restart=False) (the first search's end
only) and with the default (a second search from lme4's start where the first ended singular
in an unstructured or diag term of two or more SDs), alternating in one process. The table
gives, per kind, the fits, how many ended singular, how many end higher or lower with the
restart (by more than --tol in logLik) and the time of the singular fits with the restart
over their time without (the two fits of a case in alternating order, after one untimed fit
of each kind); the cases that change are listed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import metamorphic  # noqa: E402

import glmm_binomial as g  # noqa: E402
from glmm_binomial.numerics.optimize import OptimizerControl  # noqa: E402

VECTOR_KINDS = [
    "slope",
    "slope3",
    "cloglog_slope",
    "diag",
    "crossed_slope",
    "agq_slope",
    "crossed_vector",
    "us",
    "slope3_counts",
    "slope3_probit",
    "nested_slope",
    "betabinomial",
]


def one_fit(kind: str, seed: int, restart: bool) -> dict[str, object] | None:
    """logLik, converged, singular and seconds of one fit; None where the data are refused."""
    formula, options = metamorphic.KINDS[kind]
    data = metamorphic.kind_data(kind, seed)[1]
    control = OptimizerControl(singular_restart=restart)
    started = time.perf_counter()
    try:
        fitted = g.fit(formula, data, control=control, **options)
    except ValueError:
        return None
    return {
        "logLik": float(fitted.llf),
        "converged": bool(fitted.converged),
        "singular": bool(fitted.singular),
        "seconds": time.perf_counter() - started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=int, default=3130)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--kinds", nargs="+", choices=VECTOR_KINDS, default=VECTOR_KINDS)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--json", help="write every case's record here (JSON lines)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    records = []
    for kind in args.kinds:
        one_fit(kind, args.start, restart=True)  # imports and first-call costs, not timed
    for seed in range(args.start, args.start + args.count):
        for kind in args.kinds:
            # The order alternates with the seed (caches warmed by the other fit of the data).
            if seed % 2:
                both = one_fit(kind, seed, restart=True)
                first = one_fit(kind, seed, restart=False)
            else:
                first = one_fit(kind, seed, restart=False)
                both = one_fit(kind, seed, restart=True)
            if first is None or both is None:
                continue
            records.append({"name": f"{kind}:{seed}", "first": first, "restart": both})
            row = table[kind]
            row["fits"] += 1
            gain = float(both["logLik"]) - float(first["logLik"])  # type: ignore[arg-type]
            row["higher"] += gain > args.tol
            row["lower"] += gain < -args.tol
            if first["singular"]:
                row["singular"] += 1
                row["seconds_first"] += float(first["seconds"])  # type: ignore[arg-type]
                row["seconds_restart"] += float(both["seconds"])  # type: ignore[arg-type]
            if abs(gain) > args.tol or first["converged"] != both["converged"]:
                print(
                    f"{kind}:{seed}: {first['logLik']:.10g} -> {both['logLik']:.10g} "
                    f"(converged {first['converged']} -> {both['converged']})",
                    flush=True,
                )
    print(f"{'kind':16s} {'fits':>5s} {'singular':>8s} {'higher':>6s} {'lower':>5s} time")
    totals: dict[str, float] = defaultdict(float)
    for kind, row in table.items():
        ratio = row["seconds_restart"] / max(row["seconds_first"], 1e-12)
        print(
            f"{kind:16s} {row['fits']:5.0f} {row['singular']:8.0f} {row['higher']:6.0f} "
            f"{row['lower']:5.0f} {ratio:.2f}x"
        )
        for key, value in row.items():
            totals[key] += value
    if totals:
        ratio = totals["seconds_restart"] / max(totals["seconds_first"], 1e-12)
        mean_ms = 1e3 * totals["seconds_first"] / max(totals["singular"], 1.0)
        print(
            f"{'all':16s} {totals['fits']:5.0f} {totals['singular']:8.0f} "
            f"{totals['higher']:6.0f} {totals['lower']:5.0f} {ratio:.2f}x "
            f"(singular fits {mean_ms:.1f} ms on average without the restart)"
        )
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
