"""cs fits with and without the searches from other basins (OptimizerControl.basin_starts).

    python bench/cs_basins.py --start 0 --count 120 [--json out.jsonl]

Random data for `y ~ x + cs(0 + tf | g)`: 40, 60, 100 or 150 groups of 3-14 rows, k = 3, 4
or 6 occasions, SDs drawn from {0, 0.1, 0.5, 1} and rho from U(-0.3, 0.9). Each case is
fitted with basin_starts off (the first search's end only) and on (the default), and the
table gives, per (groups, k), the fits, how many end higher with the starts (by more than
1e-4 in logLik) and the evaluations of each. The metamorphic sweep's cs kind has 5-39
groups; these have more, where the deviance still has optima on several faces.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import defaultdict

import numpy as np
import pandas as pd

import glmm_binomial as g
from glmm_binomial.numerics.optimize import OptimizerControl

FORMULA = "y ~ x + cs(0 + tf | g)"


def case_data(seed: int) -> pd.DataFrame:
    """One random case (the same seed, the same table)."""
    rng = np.random.default_rng([seed, 77])
    n_g = int(rng.choice([40, 60, 100, 150]))
    per = int(rng.integers(3, 15))
    k = int(rng.choice([3, 3, 4, 6]))
    n = n_g * per
    grp = np.repeat(np.arange(n_g), per)
    t = np.tile(np.arange(per), n_g) % k
    x = rng.standard_normal(n)
    sds = rng.choice([0.0, 0.1, 0.5, 1.0], size=k)
    rho = float(rng.uniform(-0.3, 0.9))
    corr = np.full((k, k), rho)
    np.fill_diagonal(corr, 1.0)
    w, v = np.linalg.eigh(np.outer(sds, sds) * corr)
    u = rng.standard_normal((n_g, k)) @ (v * np.sqrt(np.clip(w, 0.0, None))).T
    eta = -0.3 + 0.7 * x + u[grp, t]
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "g": grp, "tf": [f"t{v}" for v in t]})


def run_case(seed: int) -> dict[str, object]:
    data = case_data(seed)
    record: dict[str, object] = {
        "seed": seed,
        "groups": int(data["g"].nunique()),
        "k": int(data["tf"].nunique()),
        "rows": len(data),
    }
    for name, control in (("off", OptimizerControl(basin_starts=False)), ("on", None)):
        try:
            fitted = g.fit(FORMULA, data, control=control)
        except ValueError:
            record[name] = None
            continue
        record[name] = [fitted.llf, bool(fitted.converged), fitted.opt_summary.evaluations]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--json", default=None, help="write each case's record (JSON lines)")
    args = parser.parse_args()
    table: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    out = open(args.json, "w") if args.json else None  # noqa: SIM115 - closed below
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(args.start, args.start + args.count):
            record = run_case(seed)
            if out is not None:
                out.write(json.dumps(record) + "\n")
            off, on = record["off"], record["on"]
            if not isinstance(off, list) or not isinstance(on, list):
                continue
            row = table[(int(record["groups"]), int(record["k"]))]  # type: ignore[call-overload]
            gain = on[0] - off[0]
            row[0] += 1
            row[1] += gain > 1e-4
            row[2] += gain < -1e-6
            row[3] += off[2]
            row[4] += on[2]
            if gain > 1e-4 or gain < -1e-6:
                print(f"seed {seed}: {record['groups']} groups, k {record['k']}: {gain:+.4f}")
    if out is not None:
        out.close()
    print("groups  k   fits  higher  lower  evaluations off -> on")
    for (groups, k), (n, up, down, e_off, e_on) in sorted(table.items()):
        print(f"{groups:>6} {k:>2} {n:>6} {up:>7} {down:>6}  {e_off:>8} -> {e_on:>6}")
    total = np.sum(list(table.values()), axis=0)
    print(
        f"all: {total[0]} fits, {total[1]} higher, {total[2]} lower, evaluations "
        f"{total[3]} -> {total[4]} ({total[4] / max(total[3], 1):.1f}x)"
    )


if __name__ == "__main__":
    main()
