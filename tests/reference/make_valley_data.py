"""Write the nearly singular random-slope data sets of tests/test_optimize.py:

    python make_valley_data.py     # polar_valley_k2.csv, polar_valley_k3.csv,
                                   # probit_vanishing_slope.csv, ar1_saturated.csv,
                                   # saddle_shifted_slope.csv, saddle_crossed_slope.csv

Binomial counts of 1-3 trials per row, simulated with numpy's default_rng: group intercept SD
0 and random slopes, so that the fitted intercept SD is near zero and the correlations are
hardly identified (make_polar_valley.R fits the first two with glmer and glmmTMB).
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def valley(seed: int) -> pd.DataFrame:
    """(1 + x | g) for even seeds, (1 + x + x2 | g) for odd ones (seeds 8 and 101)."""
    rng = np.random.default_rng(1000 + seed)
    ng = int(rng.integers(4, 60))
    per = int(rng.integers(3, 40))
    n = ng * per
    grp = np.repeat(np.arange(ng), per)
    x = rng.normal(size=n)
    x2 = rng.binomial(1, 0.4, size=n)
    sd = [0.0, 0.3, 1.0, 2.5][seed % 4]
    ssd = [0.0, 0.3, 0.8][(seed // 4) % 3]
    b0 = [-3.0, -0.5, 1.0][(seed // 12) % 3]
    eta = b0 + 0.8 * x + sd * rng.normal(size=ng)[grp] + ssd * rng.normal(size=ng)[grp] * x
    if seed % 2:
        eta += 0.5 * ssd * rng.normal(size=ng)[grp] * x2
    m = rng.integers(1, 4, n) if seed % 5 else np.ones(n, dtype=int)
    y = rng.binomial(m, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "f": m - y, "x": x, "x2": x2, "g": grp})


def probit_slope(seed: int = 4) -> pd.DataFrame:
    """Fitted as cbind(y, f) ~ x + x2 + (1 + x | g) with the probit link."""
    rng = np.random.default_rng(seed)
    ng = int(rng.integers(4, 40))
    per = int(rng.integers(3, 30))
    n = ng * per
    grp = np.repeat(np.arange(ng), per)
    x = rng.normal(size=n)
    x2 = rng.normal(size=n)
    sd = [0.0, 0.3, 1.0, 2.5][seed % 4]
    ssd = [0.0, 0.5][(seed // 4) % 2]
    eta = -0.5 + 0.8 * x + sd * rng.normal(size=ng)[grp] + ssd * rng.normal(size=ng)[grp] * x
    h = rng.integers(0, 5, n)
    eta += 0.5 * rng.normal(size=5)[h]
    m = rng.integers(1, 4, n)
    y = rng.binomial(m, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "f": m - y, "x": x, "x2": x2, "g": grp, "h": h})


def ar1_saturated(seed: int = 18) -> pd.DataFrame:
    """Binomial counts on 4 occasions of 50 ids without any random effect, fitted as
    cbind(y, f) ~ x + ar1(0 + t | id): the estimate has the correlation at -1 (t is written
    as the occasion's number; read it as a factor)."""
    rng = np.random.default_rng(8000 + seed)
    ng, nt = int(rng.integers(10, 60)), 4
    ids, t = np.repeat(np.arange(ng), nt), np.tile(np.arange(nt), ng)
    b = rng.multivariate_normal(np.zeros(nt), 1e-12 * np.eye(nt), size=ng)
    x = rng.normal(size=ng * nt)
    m = rng.integers(1, 8, ng * nt)
    y = rng.binomial(m, 1 / (1 + np.exp(-(-0.4 + 0.5 * x + b[ids, t]))))
    return pd.DataFrame({"y": y, "f": m - y, "x": x, "id": ids, "t": t})


def shifted_slope(seed: int = 5) -> pd.DataFrame:
    """0/1 responses of 9 groups fitted as y ~ x + f + (1 + x | g), x shifted and scaled (10 x
    + 3, so that the intercept is far from the data): the estimate has the intercept SD small
    and perfectly correlated with the slope, and a search can stop on the saddle with the
    intercept SD at zero and the slope's column of Lambda turned freely (the draws are those
    of a sweep's generator, some unused)."""
    rng = np.random.default_rng([seed, 1])
    ng, per = int(rng.integers(5, 40)), int(rng.integers(3, 30))
    n = ng * per
    grp = np.repeat(np.arange(ng), per)
    x = rng.standard_normal(n)
    f = rng.choice(["a", "b", "c"], n)
    rng.integers(0, int(rng.integers(3, 15)), n)
    rng.integers(0, 3, n)
    sd0, sd1 = float(rng.choice([0.0, 0.05, 0.5, 1.5])), float(rng.choice([0.0, 0.3, 1.0]))
    u0, u1 = rng.standard_normal(ng) * sd0, rng.standard_normal(ng) * sd1
    eta = -0.3 + 0.8 * x + (f == "b") * 0.5 + u0[grp] + u1[grp] * x
    rng.standard_normal(50), rng.standard_normal((ng, 3)), rng.standard_normal((ng, 4))
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": 10.0 * x + 3.0, "f": f, "g": grp})


def crossed_slope(seed: int = 63) -> pd.DataFrame:
    """Binomial counts (1-5 trials) of 19 groups g crossed with 3 groups h, fitted as
    cbind(y, m - y) ~ x + (1 + x | g) + (1 | h): the intercept SD of g is 4e-4 at the optimum,
    perfectly correlated with the slope, and the deviance between that and the saddle with
    the SD at zero (the slope's row of Lambda turned to its diagonal) differs by 1e-5 (the
    draws are those of a sweep's generator, some unused)."""
    rng = np.random.default_rng([seed, 0, 3])
    ng, per = int(rng.integers(5, 35)), int(rng.integers(4, 25))
    n = ng * per
    grp = np.repeat(np.arange(ng), per)
    x, x2 = rng.standard_normal(n), rng.standard_normal(n)
    h = rng.integers(0, int(rng.integers(3, 12)), n)
    a, b = grp % max(2, ng // 4), rng.integers(0, 3, n)
    sd = rng.choice([0.0, 0.2, 0.8], size=4)
    eta = -0.3 + 0.7 * x + 0.3 * x2 + sd[0] * rng.standard_normal(ng)[grp]
    eta += sd[1] * rng.standard_normal(ng)[grp] * x
    eta += sd[2] * rng.standard_normal(20)[h] + sd[3] * rng.standard_normal((50, 3))[a, b]
    rng.standard_normal((ng, 3))
    m = rng.integers(1, 6, n)
    y = rng.binomial(m, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "m": m, "x": x, "g": grp, "h": h})


if __name__ == "__main__":
    valley(8).to_csv(HERE / "polar_valley_k2.csv", index=False)
    valley(101).to_csv(HERE / "polar_valley_k3.csv", index=False)
    probit_slope().to_csv(HERE / "probit_vanishing_slope.csv", index=False)
    ar1_saturated().to_csv(HERE / "ar1_saturated.csv", index=False)
    shifted_slope().to_csv(HERE / "saddle_shifted_slope.csv", index=False)
    crossed_slope().to_csv(HERE / "saddle_crossed_slope.csv", index=False)
