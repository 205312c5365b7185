"""Dask fit of a model with a factor crossed with the partitioning one (distributed_crossed.py)
against the in-memory fit of the same rows: wall seconds side by side, the differences in
logLik, estimates and standard errors, and the load average.

    python bench/bench_dask_crossed.py --rows 200000 --groups 5000 --items 200 --workers 2
    python bench/bench_dask_crossed.py --link log       # rates exp(eta) below 1
    python bench/bench_dask_crossed.py --family betabinomial \
        --formula "cbind(k, fail) ~ x + (1 + x | g) + (1 | item)"

The rows are simulated in memory (seeded): g with a random intercept and slope on x, item
crossed with g; y a 0/1 response and k of k + fail trials (1 to 5, overdispersed as a
beta-binomial with phi = 5) by the link's inverse (the log link's rates a tenth of the logit's,
below 1). Worker processes (forked), one thread each; the client is this process.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd


def simulate(seed: int, rows: int, groups: int, items: int, link: str = "logit") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, rows)
    item = rng.integers(0, items, rows)
    x = rng.normal(size=rows)
    eta = -0.3 + 0.6 * x + rng.normal(scale=0.8, size=groups)[g]
    eta += rng.normal(scale=0.4, size=groups)[g] * x + rng.normal(scale=0.7, size=items)[item]
    p = 1.0 / (1.0 + np.exp(-eta))
    if link == "log":
        p = 0.1 * p
    elif link == "cauchit":
        p = 0.5 + np.arctan(eta) / np.pi
    y = (rng.random(rows) < p).astype(np.float64)
    trials = rng.integers(1, 6, rows)
    k = rng.binomial(trials, rng.beta(5.0 * p + 1e-9, 5.0 * (1.0 - p) + 1e-9))
    return pd.DataFrame(
        {"y": y, "k": k, "fail": trials - k, "x": x, "g": g.astype(str), "item": item.astype(str)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--groups", type=int, default=5_000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--formula", default="y ~ x + (1 + x | g) + (1 | item)")
    parser.add_argument("--link", default="logit")
    parser.add_argument("--family", default="binomial")
    args = parser.parse_args()
    options = {"link": args.link, "family": args.family}
    logging.disable(logging.INFO)

    import dask
    import dask.dataframe as dd
    import distributed

    import glmm_binomial

    with open("/proc/loadavg") as f:
        print("load average at start:", f.read().strip())
    frame = simulate(1, args.rows, args.groups, args.items, args.link)
    print(
        f"{args.formula} ({args.family}, {args.link}): {args.rows} rows, {args.groups} g, "
        f"{args.items} items"
    )
    started = time.perf_counter()
    memory = glmm_binomial.fit(args.formula, frame, **options)
    t_memory = time.perf_counter() - started
    with (
        dask.config.set({"distributed.worker.multiprocessing-method": "fork"}),
        distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        ddf = dd.from_pandas(frame, npartitions=args.partitions)
        started = time.perf_counter()
        fitted = glmm_binomial.fit(args.formula, ddf, client=client, **options)
        t_dask = time.perf_counter() - started
    with open("/proc/loadavg") as f:
        print("load average at end:  ", f.read().strip())
    print(
        f"in memory: {t_memory:.1f} s   Dask ({args.workers} workers): {t_dask:.1f} s   "
        f"ratio {t_dask / t_memory:.2f}"
    )
    print(
        "evaluations, PIRLS iterations and converged (memory, Dask):",
        (memory.opt_summary.evaluations, memory.opt_summary.pirls_iterations, memory.converged),
        (fitted.opt_summary.evaluations, fitted.opt_summary.pirls_iterations, fitted.converged),
    )
    rel = abs(fitted.loglik - memory.loglik) / abs(memory.loglik)
    print(f"logLik {memory.loglik:.6f}; relative difference {rel:.2e}")
    d_beta = np.max(np.abs(fitted.params.to_numpy() - memory.params.to_numpy()))
    d_theta = np.max(np.abs(fitted.theta - memory.theta))
    d_se = np.max(np.abs(fitted.bse.to_numpy() / memory.bse.to_numpy() - 1.0))
    print(f"max |d beta| {d_beta:.2e}  max |d theta| {d_theta:.2e}  max rel d SE {d_se:.2e}")
    for name, ranef in memory.ranef().items():
        diff = np.max(np.abs(fitted.ranef()[name].to_numpy() - ranef.to_numpy()))
        print(f"ranef {name}: max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
