"""Seeded simulated ModelData for tests that need no reference."""

from __future__ import annotations

import numpy as np

from glmm_binomial.model.data import ModelData, RandomBlock


def simulated_model(
    seed: int,
    n: int = 400,
    levels: tuple[int, ...] = (20,),
    slopes: tuple[bool, ...] = (False,),
    trials: int = 1,
) -> ModelData:
    """Binomial data with one block per entry of `levels` (crossed, random assignment)."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, size=n)])
    eta = x @ np.array([-0.3, 0.5, 0.4])
    blocks = []
    for t, (n_levels, slope) in enumerate(zip(levels, slopes, strict=True)):
        codes = (
            np.sort(rng.integers(0, n_levels, size=n))
            if t == 0
            else rng.integers(0, n_levels, size=n)
        )
        codes[:n_levels] = np.arange(n_levels)  # every level present
        z = np.column_stack([np.ones(n), x[:, 1]]) if slope else np.ones((n, 1))
        b = rng.normal(scale=0.8, size=(n_levels, z.shape[1]))
        eta = eta + np.einsum("ic,ic->i", z, b[codes])
        terms = ("(Intercept)", "x1") if slope else ("(Intercept)",)
        blocks.append(RandomBlock(f"g{t}", terms, codes, tuple(range(n_levels)), z))
    m = np.full(n, float(trials))
    k = rng.binomial(trials, 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return ModelData(k, m, x, np.zeros(n), ("(Intercept)", "x1", "x2"), tuple(blocks))


def separated_frame():
    """90 rows in 9 groups of `g`; f's level "c" is all successes, so `y ~ x + f + (1 | g)` has
    no finite estimate for fc (quasi-separation) and fits (1 | g) at a zero variance."""
    import pandas as pd

    rng = np.random.default_rng(2026)
    n = 90
    x = np.round(rng.normal(size=n), 3)
    f = np.tile(["a", "b", "c"], n // 3)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-0.5 * x))).astype(int)
    y[f == "c"] = 1
    return pd.DataFrame({"y": y, "x": x, "f": f, "g": np.repeat(np.arange(9), 10)})


def rare_level_frame(all_failures: bool = False):
    """160 rows in 20 groups of `g` (8 each), x normal, f in a, b and a rare level "c" of 4
    rows (one per fifth group) with a low probability: in `y ~ x + f + (1 | g)` many
    simulated responses have fc's rows all failures (quasi-separation along fc alone);
    all_failures: the rows are so here too."""
    import pandas as pd

    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(20), 8)
    f = np.where(np.arange(groups.size) % 8 < 3, "a", "b")
    f[::40] = "c"
    x = rng.normal(size=groups.size)
    eta = -0.5 + 0.5 * x + (f == "b") * 0.4 - (f == "c") * 1.5 + 0.6 * rng.normal(size=20)[groups]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    if all_failures:
        y[f == "c"] = 0
    return pd.DataFrame({"y": y, "x": x, "f": f, "g": groups})


def one_level_all_failures(n: int = 400, n_groups: int = 20, seed: int = 5):
    """n rows in n_groups groups of `g`; f's level "a" is all failures (quasi-separation: in
    `y ~ f + z + (1 | g)` the intercept, fb and fc diverge together), levels b and c mixed;
    z's mean differs by level, so z's standard error depends on the mixed cells' intercepts."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    f = rng.choice(["a", "b", "c"], n)
    z = rng.normal(size=n) + 1.5 * (f == "c")
    group = rng.integers(0, n_groups, n)
    u = rng.normal(scale=0.8, size=n_groups)
    eta = np.where(f == "b", -0.5, -1.0) + 0.8 * z + u[group]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    y[f == "a"] = 0
    return pd.DataFrame({"y": y, "f": f, "z": z, "g": group})


def one_level_one_outcome(value: int):
    """300 rows in 15 groups of `g`, x normal, f in a, b, c; every row of f's level "b" has
    y = value: in `y ~ x + f + (1 | g)` fb has no finite estimate, and a cloglog fit (value 1)
    or probit fit (value 0) stalls on the diverging path with fb's coefficient near 6."""
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 300
    frame = pd.DataFrame(
        {"g": rng.integers(0, 15, n), "x": rng.standard_normal(n), "f": rng.choice(list("abc"), n)}
    )
    eta = -0.5 + 0.5 * frame["x"] + 0.5 * rng.standard_normal(15)[frame["g"]]
    frame["y"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    frame.loc[frame["f"] == "b", "y"] = value
    return frame


def pure_groups_frame():
    """48 rows in 8 groups, each all 0 or all 1: in `y ~ x + (1 | g)` the variance of (1 | g)
    has no finite estimate (separation within groups)."""
    import pandas as pd

    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(8), 6)
    return pd.DataFrame(
        {"y": np.where(groups % 2 == 0, 1, 0), "x": rng.normal(size=48), "g": groups}
    )


def all_successes_group_frame():
    """80 rows in 10 groups, rates about 0.3 but group 0 all successes: under the log link,
    `y ~ x + (1 | g)` has its maximum on the bound mu = 1 (laplace.with_link_bound)."""
    import pandas as pd

    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"g": np.repeat(np.arange(10), 8), "x": rng.normal(size=80)})
    frame["y"] = (rng.random(80) < 0.3).astype(float)
    frame.loc[frame["g"] == 0, "y"] = 1.0
    return frame
