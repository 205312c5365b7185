"""Benchmark of method "vb" (mean-field variational Bayes) against statsmodels' fit_vb.

    python bench/bench_vb.py [--repeats N]

Cases:
  verbagg   r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)   7,584 rows, 316 x 24
  sim10k    y ~ x1 + x2 + (1 | g), 10,000 rows in 100 groups (seeded simulation, seed 20240501)

For each: wall time of our fit_vb (median of N repeats) and of statsmodels'
BinomialBayesMixedGLM(...).fit_vb(rng=0) (one run; it starts from a random point), their ratio,
and the ELBO of both optima under our ELBO (Gauss-Hermite, 32 nodes), under an accurate one
(Gauss-Hermite, 100 nodes) and under statsmodels' vb_elbo (10-point Gauss-Legendre on [-5, 5]).
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

from glmm_binomial import datasets
from glmm_binomial.methods.variational import VariationalObjective, fit_vb_detailed
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import build_model


def simulated_10k(seed: int = 20240501, n: int = 10_000, n_groups: int = 100) -> pd.DataFrame:
    """y ~ x1 + x2 + (1 | g): beta = (-0.5, 0.8, -0.4), random-intercept SD 0.8."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, size=n)
    g[rng.permutation(n)[:n_groups]] = np.arange(n_groups)  # every group present
    x1 = rng.normal(size=n)
    x2 = rng.integers(0, 2, size=n).astype(float)
    b = rng.normal(scale=0.8, size=n_groups)
    eta = -0.5 + 0.8 * x1 - 0.4 * x2 + b[g]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": g})


def statsmodels_model(data: ModelData) -> BinomialBayesMixedGLM:
    """statsmodels' model on our columns (one sparse column per level of each k = 1 block)."""
    rows, cols, values, ident = [], [], [], []
    start = 0
    for t, block in enumerate(data.blocks):
        rows.append(np.arange(data.n_obs))
        cols.append(start + block.codes)
        values.append(block.z[:, 0])
        ident.extend([t] * block.n_levels)
        start += block.n_levels
    exog_vc = scipy.sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
        shape=(data.n_obs, start),
    )
    return BinomialBayesMixedGLM(
        data.successes, data.x, exog_vc, np.array(ident, dtype=int), vcp_p=1.0, fe_p=2.0
    )


def bench(name: str, data: ModelData, repeats: int) -> None:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        ours = fit_vb_detailed(data)
        seconds.append(time.perf_counter() - started)
    ours_time = float(np.median(seconds))

    model = statsmodels_model(data)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = model.fit_vb(rng=0)
    theirs_time = time.perf_counter() - started
    theirs_packed = np.asarray(theirs.optim_retvals.x)
    n = len(theirs_packed) // 2

    accurate = VariationalObjective(data, n_gauss_hermite=100)
    out = ours.output
    print(f"\n== {name}: {data.n_obs} rows, blocks {[b.n_levels for b in data.blocks]}")
    print(
        f"time   ours {ours_time:8.3f} s (median of {repeats}; {out.opt_summary.iterations} "
        f"L-BFGS-B iterations, converged {out.converged})"
    )
    print(
        f"       statsmodels {theirs_time:8.3f} s (BFGS, {theirs.optim_retvals.nit} iterations, "
        f"success {theirs.optim_retvals.success}: {theirs.optim_retvals.message})"
    )
    print(f"       ratio statsmodels / ours = {theirs_time / ours_time:.1f}")
    for label, packed in (("ours", ours.packed), ("statsmodels", theirs_packed)):
        print(
            f"ELBO   {label:12s} ours(GH32) {ours.objective.elbo(packed):.6f}  "
            f"accurate(GH100) {accurate.elbo(packed):.6f}  "
            f"statsmodels vb_elbo {model.vb_elbo(packed[:n], np.exp(packed[n:])):.6f}"
        )
    p = data.n_fixed
    print(f"beta   ours        {np.array2string(out.beta, precision=4)}")
    print(f"       statsmodels {np.array2string(theirs_packed[:p], precision=4)}")
    print(f"max |beta diff| {np.max(np.abs(out.beta - theirs_packed[:p])):.2e}")
    print(f"SDs    ours {out.theta}  statsmodels {np.exp(theirs.vcp_mean)}")
    print(f"loglik (Laplace at posterior means) {out.loglik:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    verbagg = datasets.load("verbagg")
    formula = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"
    bench("verbagg crossed", build_model(formula, verbagg)[0], args.repeats)
    bench("sim10k", build_model("y ~ x1 + x2 + (1 | g)", simulated_10k())[0], args.repeats)


if __name__ == "__main__":
    main()
