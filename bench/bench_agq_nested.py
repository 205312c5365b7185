"""Nested (multilevel) AGQ fits: exact gradient against the finite-difference one (issue 8).

Data: seeded three-level binary data shaped like a survey of children in mothers in
communities, y ~ x + (1 | comm) + (1 | comm:mom). "small": 2,159 rows, 1,595 mothers with 1-3
rows each, in 161 communities. "large": 20,000 rows, 4,000 mothers (5 rows each on average) in
200 communities, issue 8's 20,000-row shape. (The same 20,000 rows with 1-3 rows per mother,
14,770 mothers in 1,490 communities, wait on the sparse factor: there PIRLS's dense
1,490 x 14,770 block costs seconds per Newton step, the quadrature a fraction of that.)

Each case is fitted with fit_agq (one BLAS thread, as glmm_binomial.fit) at n_agq = 5, 12, 25
with the exact gradient (QuadratureControl(nested_gradient="exact"), the default) and, unless
--no-differences, with the old central-difference gradient in the same run. The table gives
wall and CPU seconds, evaluations (mode searches), gradient evaluations, the largest
differences between the two optima and the time ratios.

Run: PYTHONPATH=src python bench/bench_agq_nested.py [--cases small,large]
     [--n-agq 5,12,25] [--no-differences]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from glmm_binomial.methods.agq import QuadratureControl, fit_agq
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.numerics import blas


def three_level(
    seed: int = 1,
    n_comm: int = 161,
    n_mothers: int = 1595,
    n_rows: int = 2159,
    sds: tuple[float, float] = (1.0, 2.0),
    beta: tuple[float, float] = (-0.3, 0.8),
) -> ModelData:
    """Children (rows) in mothers in communities, binary response, one covariate x.

    Every community gets at least one mother (the rest are spread uniformly) and every mother
    one row. When n_rows <= 3 n_mothers the extra rows give a random set of mothers a second
    row and 18% of those a third (1-3 rows each, as in survey data); otherwise they are spread
    uniformly (multinomial). The total is exactly n_rows. Random intercepts with SDs
    sds = (community, mother). Blocks: comm (outer), comm:mom (inner)."""
    rng = np.random.default_rng(seed)
    extra = n_rows - n_mothers
    if extra < 0 or n_mothers < n_comm:
        raise ValueError("need n_comm <= n_mothers <= n_rows")
    mother_comm = np.concatenate(
        [np.arange(n_comm), rng.integers(0, n_comm, size=n_mothers - n_comm)]
    )
    mother_comm = np.sort(mother_comm)
    sizes = np.ones(n_mothers, dtype=np.intp)
    if extra <= 2 * n_mothers:
        third = min(int(round(0.18 * extra)), extra // 2)
        with_two = rng.choice(n_mothers, size=extra - third, replace=False)
        sizes[with_two] += 1
        sizes[rng.choice(with_two, size=third, replace=False)] += 1
    else:
        sizes += rng.multinomial(extra, np.full(n_mothers, 1.0 / n_mothers))
    mom = np.repeat(np.arange(n_mothers), sizes).astype(np.intp)
    comm = mother_comm[mom].astype(np.intp)
    n = mom.size
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    eta = x @ np.asarray(beta)
    eta = eta + rng.normal(scale=sds[0], size=n_comm)[comm]
    eta = eta + rng.normal(scale=sds[1], size=n_mothers)[mom]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    ones = np.ones((n, 1))
    blocks = (
        RandomBlock("comm", ("(Intercept)",), comm, tuple(range(n_comm)), ones),
        RandomBlock("comm:mom", ("(Intercept)",), mom, tuple(range(n_mothers)), ones),
    )
    return ModelData(y, np.ones(n), x, np.zeros(n), ("(Intercept)", "x"), blocks)


def timed_fit(data: ModelData, n_agq: int, gradient: str) -> tuple[float, float, FitOutput]:
    """Wall and CPU seconds of one fit, and the fit."""
    control = QuadratureControl(nested_gradient=gradient)
    started, cpu_started = time.perf_counter(), time.process_time()
    # One BLAS thread, as glmm_binomial.fit runs a fit.
    with blas.blas_threads(1):
        fit = fit_agq(data, n_agq, quadrature_control=control)
    return time.perf_counter() - started, time.process_time() - cpu_started, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="small", help="comma-separated: small, large")
    parser.add_argument("--no-differences", action="store_true", help="skip the old path")
    parser.add_argument("--n-agq", default="5,12,25", help="comma-separated n_agq values")
    args = parser.parse_args()
    makers = {
        "small": ("small (2,159 rows)", lambda: three_level()),
        "large": ("large (20,000 rows)", lambda: three_level(2, 200, 4000, 20000)),
    }
    cases = [(makers[c][0], makers[c][1]()) for c in args.cases.split(",")]
    n_agqs = [int(v) for v in args.n_agq.split(",")]
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}  cpus: {os.cpu_count()}")
    head = "case                  n_agq  gradient     wall_s   cpu_s  evals  grads  loglik"
    print(head + "              d_loglik  d_estimates  wall_ratio  cpu_ratio", flush=True)
    for name, data in cases:
        for n_agq in n_agqs:
            seconds, cpu, fit = timed_fit(data, n_agq, "exact")
            summary = fit.opt_summary
            estimates = np.concatenate([fit.theta, fit.beta])
            print(
                f"{name:21s} {n_agq:5d}  exact       {seconds:7.2f} {cpu:7.2f} "
                f"{summary.evaluations:6d} "
                f"{summary.gradient_evaluations:6d}  {fit.loglik:.10f}",
                flush=True,
            )
            if args.no_differences:
                continue
            old_seconds, old_cpu, old = timed_fit(data, n_agq, "differences")
            d_loglik = abs(old.loglik - fit.loglik)
            d_est = float(np.max(np.abs(np.concatenate([old.theta, old.beta]) - estimates)))
            print(
                f"{name:21s} {n_agq:5d}  differences {old_seconds:7.2f} {old_cpu:7.2f} "
                f"{old.opt_summary.evaluations:6d} {old.opt_summary.gradient_evaluations:6d}  "
                f"{old.loglik:.10f}  {d_loglik:9.2e}  {d_est:10.2e}  "
                f"{old_seconds / seconds:9.1f}x  {old_cpu / cpu:8.1f}x",
                flush=True,
            )
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of the process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
