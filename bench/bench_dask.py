"""Fit y ~ x + (1 + x | g) (or --formula) to a Parquet data set (bench/parquet_data.py) on a
LocalCluster; with --compare, also in memory, and report the differences.

Reports wall time (and the optimizer's share), the estimates, and the peak memory of all
processes: the resident set sizes of this process (client and scheduler) and of every child
process (nannies and workers), summed at each sample (every --interval seconds) and maximized.

    python bench/parquet_data.py /tmp/glmm10m --rows 10000000 --groups 100000
    python bench/bench_dask.py /tmp/glmm10m --workers 2
    python bench/parquet_data.py /tmp/nested1m --rows 1000000 --groups 10000 --subgroups 5
    python bench/bench_dask.py /tmp/nested1m --compare --formula "y ~ x + (1 | g) + (1 | h)"

Timed on a shared machine: print the load average alongside (it is in the output).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants in a thread."""

    def __init__(self, interval: float) -> None:
        import psutil

        self.psutil = psutil
        self.interval = interval
        self.peak = 0
        self.peak_workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int]:
        me = self.psutil.Process()
        total = me.memory_info().rss
        children = 0
        for child in me.children(recursive=True):
            try:
                children += child.memory_info().rss
            except self.psutil.Error:
                continue
        return total + children, children

    def _run(self) -> None:
        while not self._stop.is_set():
            total, children = self.sample()
            self.peak = max(self.peak, total)
            self.peak_workers = max(self.peak_workers, children)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _kill_one_worker(client: Any) -> None:
    """SIGKILL the process of the first worker (by address order)."""
    import signal

    pids = client.run(os.getpid)
    address = sorted(pids)[0]
    print(f"killing worker {address} (pid {pids[address]})", flush=True)
    os.kill(pids[address], signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="directory of part-*.parquet files")
    parser.add_argument("--formula", default="y ~ x + (1 + x | g)")
    parser.add_argument("--method", default="laplace", choices=["laplace", "agq", "vb"])
    parser.add_argument("--n-agq", type=int, default=None, help="points for --method agq")
    parser.add_argument(
        "--link", default="logit", choices=["logit", "probit", "cloglog", "cauchit"]
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--npartitions", type=int, default=None)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--malloc-trim",
        type=int,
        default=2**28,
        help="MALLOC_TRIM_THRESHOLD_ and MALLOC_MMAP_THRESHOLD_ of the workers (Dask's default "
        "trim threshold, 65536, returns every freed numpy temporary to the OS, so each new one "
        "page-faults: evaluations ran 2-5 times slower in worker processes than in the client)",
    )
    parser.add_argument(
        "--kill-after",
        type=float,
        default=None,
        help="seconds after the fit starts at which one worker process is killed (SIGKILL; the "
        "nanny restarts it and Dask rebuilds its partitions from the files)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also fit the data in memory (pandas) and report the differences and time ratio",
    )
    args = parser.parse_args()

    import logging

    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from glmm_binomial.distributed.fit import default_partitions, fit_dask
    from glmm_binomial.family import make_family
    from glmm_binomial.methods.options import fit_options

    logging.basicConfig(format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("glmm_binomial.distributed").setLevel(logging.INFO)
    environ = "distributed.nanny.pre-spawn-environ"
    dask.config.set(
        {
            f"{environ}.MALLOC_TRIM_THRESHOLD_": args.malloc_trim,
            f"{environ}.MALLOC_MMAP_THRESHOLD_": args.malloc_trim,
        }
    )
    with PeakMemory(args.interval) as memory:
        baseline, _ = memory.sample()
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=args.threads,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            # Imports on the workers are start-up cost, not fit time: pay them first.
            client.run(importlib.import_module, "glmm_binomial.distributed.fit")
            client.run(importlib.import_module, "pyarrow.parquet")
            ddf = dd.read_parquet(str(args.path / "part-*.parquet"))
            killer = None
            if args.kill_after is not None:
                killer = threading.Timer(args.kill_after, _kill_one_worker, (client,))
                killer.start()
            started = time.perf_counter()
            result = fit_dask(
                args.formula,
                ddf,
                fit_options(args.method, n_agq=args.n_agq),
                client=client,
                npartitions=args.npartitions,
                family=make_family("binomial", args.link),
            )
            if killer is not None:
                killer.cancel()
            wall = time.perf_counter() - started
            _, workers_after = memory.sample()
    report = {
        "rows": result.nobs,
        "formula": args.formula,
        "method": args.method,
        "n_agq": args.n_agq,
        "link": args.link,
        "groups": result.ngroups,
        "partitions": args.npartitions or default_partitions(ddf.npartitions, result.nobs),
        "workers": args.workers,
        "wall_seconds": round(wall, 1),
        "optimizer_seconds": round(result.opt_summary.seconds, 1),
        "evaluations": result.opt_summary.evaluations,
        "peak_memory_all_processes_gb": round(memory.peak / 1e9, 2),
        "peak_memory_children_gb": round(memory.peak_workers / 1e9, 2),
        "client_baseline_gb": round(baseline / 1e9, 2),
        "children_after_fit_gb": round(workers_after / 1e9, 2),
        "loglik": result.loglik,
        "estimates_full_precision": [*result.theta.tolist(), *result.params.tolist()],
        "beta": result.params.round(4).to_dict(),
        "sd": result.varcorr["std_dev"].round(4).tolist(),
        "converged": result.converged,
        "killed_worker_after_seconds": args.kill_after,
        "loadavg": os.getloadavg(),
    }
    if args.compare:
        import numpy as np
        import pandas as pd

        import glmm_binomial

        frame = pd.concat(
            [pd.read_parquet(p) for p in sorted(args.path.glob("part-*.parquet"))],
            ignore_index=True,
        )
        started = time.perf_counter()
        memory_fit = glmm_binomial.fit(
            args.formula, frame, method=args.method, link=args.link, n_agq=args.n_agq
        )
        memory_wall = time.perf_counter() - started
        report["in_memory_wall_seconds"] = round(memory_wall, 1)
        report["dask_over_memory_time"] = round(wall / memory_wall, 2)
        report["loglik_difference"] = result.loglik - memory_fit.loglik
        report["max_abs_beta_difference"] = float(
            np.max(np.abs(result.params.to_numpy() - memory_fit.params.to_numpy()))
        )
        report["max_abs_theta_difference"] = float(np.max(np.abs(result.theta - memory_fit.theta)))
        report["max_abs_ranef_difference"] = max(
            float(np.max(np.abs(result.ranef()[name].to_numpy() - frame_.to_numpy())))
            for name, frame_ in memory_fit.ranef().items()
        )
        report["loglik_relative_difference"] = abs(report["loglik_difference"]) / abs(
            memory_fit.loglik
        )
    print(json.dumps(report, indent=1, default=str))
    print(result.summary())
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
