"""Structured variational Bayes (method "vb") on Dask against the Dask Laplace fit, and both
against their in-memory fits: contraception replicated (`--copies` times its 1,934 rows, each
copy's districts relabelled, so 60 x copies districts; `--same-groups` keeps the 60), fitted on
a LocalCluster of worker processes.

Reports the wall time of each fit (min over `--repeats`, Dask and in-memory fits alternating),
the optimizer's evaluations, Dask's time over Laplace-on-Dask's and over the in-memory fit's,
and the largest differences between the Dask and in-memory vb fits (posterior means and SDs,
theta, ELBO, random effects).

    python bench/bench_dask_vb.py --copies 50 --workers 2 --npartitions 4

Timed on a shared machine: the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from typing import Any

import numpy as np
import pandas as pd

import glmm_binomial as g

FORMULA = "use ~ age + urban + livch + (1 | district)"


def replicated(copies: int, same_groups: bool) -> pd.DataFrame:
    """contraception `copies` times; each copy's districts relabelled unless same_groups."""
    frame = g.datasets.load("contraception")
    parts = []
    for c in range(copies):
        part = frame.copy()
        if not same_groups:
            part["district"] = part["district"].astype(str) + f"_{c}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def relative(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--same-groups", action="store_true")
    parser.add_argument("--formula", default=FORMULA)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--npartitions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--malloc-trim", type=int, default=2**28, help="as bench_dask.py's")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    frame = replicated(args.copies, args.same_groups)
    environ = "distributed.nanny.pre-spawn-environ"
    dask.config.set(
        {
            f"{environ}.MALLOC_TRIM_THRESHOLD_": args.malloc_trim,
            f"{environ}.MALLOC_MMAP_THRESHOLD_": args.malloc_trim,
        }
    )
    times: dict[str, list[float]] = {}
    fits: dict[str, Any] = {}
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(importlib.import_module, "glmm_binomial.distributed.fit")
        ddf = dd.from_pandas(frame, npartitions=args.npartitions).persist()
        for _ in range(args.repeats):
            for method in ("vb", "laplace"):
                for where, data in (("dask", ddf), ("memory", frame)):
                    started = time.perf_counter()
                    fits[f"{where} {method}"] = g.fit(args.formula, data, method=method)
                    times.setdefault(f"{where} {method}", []).append(time.perf_counter() - started)
    best = {key: min(values) for key, values in times.items()}
    dask_vb, memory_vb = fits["dask vb"], fits["memory vb"]
    report = {
        "rows": len(frame),
        "groups": int(frame["district"].nunique()),
        "formula": args.formula,
        "workers": args.workers,
        "partitions": args.npartitions,
        "wall_seconds_min": {key: round(value, 2) for key, value in best.items()},
        "evaluations": {key: fit.opt_summary.evaluations for key, fit in fits.items()},
        "dask_vb_over_dask_laplace": round(best["dask vb"] / best["dask laplace"], 2),
        "dask_vb_over_memory_vb": round(best["dask vb"] / best["memory vb"], 2),
        "dask_laplace_over_memory_laplace": round(best["dask laplace"] / best["memory laplace"], 2),
        "vb_relative_differences": {
            "params": relative(dask_vb.params, memory_vb.params),
            "bse": relative(dask_vb.bse, memory_vb.bse),
            "theta": relative(dask_vb.theta, memory_vb.theta),
            "elbo": abs(dask_vb.elbo - memory_vb.elbo) / abs(memory_vb.elbo),
            "loglik": abs(dask_vb.loglik - memory_vb.loglik) / abs(memory_vb.loglik),
            # Per column (means, SDs): the largest difference over the largest value.
            "ranef": max(
                float(np.max(np.abs(dask_vb.ranef(condvar=True)[k][c] - v[c])))
                / float(np.max(np.abs(v[c])))
                for k, v in memory_vb.ranef(condvar=True).items()
                for c in v.columns
            ),
        },
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
