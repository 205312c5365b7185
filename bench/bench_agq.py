"""Timings of adaptive Gauss-Hermite quadrature (quadrature.fit_agq / AgqObjective).

Prints, per case, the time of one deviance-and-gradient evaluation (median of repeats, PIRLS
warm-started) and of a full fit, and how they grow with n_agq, the dimension k of a vector
effect and the nesting depth. Run: python bench/bench_agq.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _simulate_nested import nested_model  # noqa: E402
from test_quadrature import cbpp, contraception, verbagg  # noqa: E402

from glmm_binomial.methods.agq import AgqObjective, fit_agq  # noqa: E402
from glmm_binomial.methods.laplace import fit_laplace  # noqa: E402
from glmm_binomial.model.data import ModelData, RandomBlock  # noqa: E402


def vector_model(seed: int, k: int, n_groups: int = 60, per_group: int = 15) -> ModelData:
    """One grouping factor with a k-vector effect (intercept and k - 1 slopes), binary."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    codes = np.repeat(np.arange(n_groups), per_group).astype(np.intp)
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    z = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    b = rng.normal(scale=0.7, size=(n_groups, k))
    eta = x @ np.array([-0.3, 0.5, 0.2]) + np.einsum("ic,ic->i", z, b[codes])
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))).astype(float)
    terms = ("(Intercept)", *[f"z{c}" for c in range(1, k)])
    block = RandomBlock("g", terms, codes, tuple(range(n_groups)), z)
    return ModelData(y, np.ones(n), x, np.zeros(n), ("(Intercept)", "x1", "x2"), (block,))


def eval_seconds(data: ModelData, n_agq: int, repeats: int = 5) -> tuple[float, int]:
    fit = fit_laplace(data)
    objective = AgqObjective(data, n_agq)
    objective.deviance_and_gradient(fit.theta, fit.beta)  # warm start
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        objective.deviance_and_gradient(fit.theta, fit.beta)
        times.append(time.perf_counter() - started)
    return float(np.median(times)), objective.n_nodes


def fit_seconds(data: ModelData, n_agq: int) -> tuple[float, float]:
    started = time.perf_counter()
    out = fit_agq(data, n_agq)
    return time.perf_counter() - started, out.loglik


def _row(
    name: str, data: ModelData, n_agq: int, nodes: int, ev: float, fs: float, ll: float
) -> None:
    cells = f"{data.n_obs:6d} {n_agq:6d} {nodes:9d} {1e3 * ev:8.2f} {fs:7.2f} {ll:10.4f}"
    print(f"{name:36s} {cells}", flush=True)


def main() -> None:
    quick = "--quick" in sys.argv
    print(
        "case                                  n_obs  n_agq  nodes/grp  eval_ms   fit_s    loglik"
    )
    scalar = [("cbpp (1|herd)", cbpp()), ("contraception (1|district)", contraception())]
    scalar.append(("VerbAgg (1|id)", verbagg()))
    for name, data in scalar:
        for n_agq in (1, 5, 12, 25):
            ev, nodes = eval_seconds(data, n_agq)
            fs, ll = fit_seconds(data, n_agq)
            _row(name, data, n_agq, nodes, ev, fs, ll)
    vector = [("contraception (1+urban|district) k=2", contraception("slope"))]
    vector += [(f"simulated vector k={k}", vector_model(1, k)) for k in (2, 3, 4)]
    for name, data in vector:
        for n_agq in (1, 3, 5, 9) if quick else (1, 3, 5, 9, 15):
            if n_agq ** data.blocks[0].k > 20_000:
                continue  # seconds per evaluation; see the growth up to here
            ev, nodes = eval_seconds(data, n_agq)
            fs, ll = (
                fit_seconds(data, n_agq)
                if n_agq <= 9 or data.blocks[0].k == 2
                else (np.nan, np.nan)
            )
            _row(name, data, n_agq, nodes, ev, fs, ll)
    nested = [
        ("nested depth 1 (40)", nested_model(6, branching=(40,), sds=(1.0,))),
        ("nested depth 2 (40x3)", nested_model(6, branching=(40, 3))),
        ("nested depth 3 (20x3x2)", nested_model(6, branching=(20, 3, 2), sds=(0.8, 1.0, 1.2))),
    ]
    for name, data in nested:
        depth = len(data.blocks)
        for n_agq in (1, 3, 5, 9) if quick else (1, 3, 5, 9, 15):
            ev, nodes = eval_seconds(data, n_agq, repeats=3)
            fs, ll = fit_seconds(data, n_agq) if n_agq**depth <= 1000 else (np.nan, np.nan)
            _row(name, data, n_agq, nodes, ev, fs, ll)


if __name__ == "__main__":
    main()
