"""Simulate the small multilevel reference data sets (seeded) as CSV for make_multilevel.R.

    python make_multilevel.py        # writes multilevel_nested.csv and multilevel_crossed.csv

nested: 700 rows of 0/1 data, children in 240 mothers in 40 communities in 5 regions, codes
local to the parent (mom 0.. within each community), so only (1 | region/comm/mom) or the
interaction names identify them; a random slope on x1 by community.
crossed: 600 rows, 30 x 20 crossed levels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def nested(seed: int = 20261129) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region_of_comm = np.sort(np.concatenate([np.arange(5), rng.integers(0, 5, 35)]))
    comm_of_mom = np.sort(np.concatenate([np.arange(40), rng.integers(0, 40, 200)]))
    mom = np.sort(np.concatenate([np.arange(240), rng.integers(0, 240, 460)]))
    comm = comm_of_mom[mom]
    region = region_of_comm[comm]
    n = mom.size
    x1 = rng.normal(size=n)
    eta = -0.3 + 0.7 * x1
    eta += rng.normal(scale=0.5, size=5)[region]
    eta += rng.normal(scale=0.7, size=40)[comm] + rng.normal(scale=1.0, size=40)[comm] * x1
    eta += rng.normal(scale=1.0, size=240)[mom]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    # Codes local to the parent: mother j of a community is numbered within it.
    first_mom = np.searchsorted(comm_of_mom, comm_of_mom)
    local_mom = np.arange(240) - first_mom
    first_comm = np.searchsorted(region_of_comm, region_of_comm)
    local_comm = np.arange(40) - first_comm
    frame = pd.DataFrame(
        {"y": y, "x1": x1, "region": region, "comm": local_comm[comm], "mom": local_mom[mom]}
    )
    return frame.iloc[rng.permutation(n)].reset_index(drop=True)


def crossed(seed: int = 20261130) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 600
    a = np.concatenate([np.arange(30), rng.integers(0, 30, n - 30)])
    b = np.concatenate([np.arange(20), rng.integers(0, 20, n - 20)])
    x1 = rng.normal(size=n)
    eta = 0.2 + 0.5 * x1 + rng.normal(scale=0.9, size=30)[a] + rng.normal(scale=0.6, size=20)[b]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x1": x1, "a": a, "b": b})


if __name__ == "__main__":
    nested().to_csv(HERE / "multilevel_nested.csv", index=False, float_format="%.17g")
    crossed().to_csv(HERE / "multilevel_crossed.csv", index=False, float_format="%.17g")
