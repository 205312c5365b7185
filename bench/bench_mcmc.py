"""Benchmark of method="mcmc" (Polya-Gamma Gibbs) against PyMC NUTS and nutpie, side by side.

    python bench/bench_mcmc.py [--cases cbpp contraception contraception_slope sim100k]
                               [--engines ours ours_compiled pymc nutpie]
                               [--draws 2000] [--warmup 200] [--chains 4] [--seed 1]
                               [--n-jobs 1]

Cases (the first three are the models of tests/reference/posterior_*.json):
  cbpp                 cbind(incidence, size - incidence) ~ period + (1 | herd)     56 rows
  contraception        use ~ age + urban + livch + (1 | district)                 1,934 rows
  contraception_slope  use ~ age + urban + livch + (1 + urban | district)         1,934 rows
  sim100k              y ~ x1 + x2 + (1 | g), 100,000 rows in 60 groups (seeded simulation)
  multilevel_crossed   y ~ x1 + (1 | a) + (1 | b), 600 rows, 30 x 20 crossed levels
  multilevel_nested    y ~ x1 + (1 | region/comm), 700 rows, 5 regions, 40 communities
  multilevel_crossed_slope  y ~ x1 + (1 + x1 | a) + (1 | b), the crossed data (no peers)
                       (these three: tests/reference/posterior_multilevel_*.json)
  verbagg_crossed      r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), 7,584 rows,
                       316 x 24 crossed levels

For each engine: the wall time of the whole fit (ours: the fit() call, formula to result with
its diagnostics; PyMC and nutpie: model building, compilation and sampling, and sampling alone),
the smallest bulk ESS of the fixed effects, ESS per second, the largest R-hat, and the ratio of
our ESS/s to each peer's. PyMC's ESS/s from the reference files (sampling only, 2,000 tuning +
2,000 draws, on this 2-core machine) is printed as well. PyMC and nutpie run where installed
(their own venv: pip install pymc nutpie arviz); ours_compiled where the optional polyagamma
package is. PyMC and nutpie get the references' model: NUTS on the coefficients of the
centred and scaled design, non-centred random effects, target_accept 0.95 (PyMC), 1,000 tuning
steps by default (--peer-tune). sim100k with PyMC or nutpie takes very long (NUTS mixes
badly there): pass --peer-cases to choose where peers run.
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import glmm_binomial as g
from glmm_binomial import datasets
from glmm_binomial.methods import mcmc_diagnostics
from glmm_binomial.methods.polya_gamma import compiled_sampler
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import build_model

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference"

CASES = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp"),
    "contraception": ("use ~ age + urban + livch + (1 | district)", "contraception"),
    "contraception_slope": (
        "use ~ age + urban + livch + (1 + urban | district)",
        "contraception",
    ),
    "sim100k": ("y ~ x1 + x2 + (1 | g)", "sim100k"),
    # Several grouping factors (methods/mcmc_multi.py).
    "multilevel_crossed": ("y ~ x1 + (1 | a) + (1 | b)", "multilevel_crossed"),
    "multilevel_nested": ("y ~ x1 + (1 | region/comm)", "multilevel_nested"),
    "multilevel_crossed_slope": ("y ~ x1 + (1 + x1 | a) + (1 | b)", "multilevel_crossed"),
    "verbagg_crossed": (
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        "verbagg",
    ),
}
TARGETS = {"cbpp": 5.0, "contraception": 10.0, "contraception_slope": 10.0}


def simulated_100k(seed: int = 20261203, n: int = 100_000, n_groups: int = 60) -> pd.DataFrame:
    """y ~ x1 + x2 + (1 | g): beta = (-0.5, 0.8, -0.4), random-intercept SD 0.7."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_groups, size=n)
    group[:n_groups] = np.arange(n_groups)
    x1 = rng.normal(size=n)
    x2 = rng.integers(0, 2, size=n).astype(float)
    b = rng.normal(scale=0.7, size=n_groups)
    eta = -0.5 + 0.8 * x1 - 0.4 * x2 + b[group]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": group.astype(str)})


def load(case: str) -> pd.DataFrame:
    name = CASES[case][1]
    if name.startswith("multilevel"):
        data = pd.read_csv(REFERENCE / f"{name}.csv")
        return data.astype({c: str for c in ("a", "b", "region", "comm") if c in data})
    return simulated_100k() if name == "sim100k" else datasets.load(name)


def reference_speed(case: str) -> float | None:
    path = REFERENCE / f"posterior_{case}.json"
    if not path.exists():
        return None
    return float(json.loads(path.read_text())["ess_per_second"])


def run_ours(case: str, args: argparse.Namespace, compiled: bool) -> dict[str, Any]:
    formula, _ = CASES[case]
    data = load(case)
    control = g.McmcControl(
        draws=args.draws,
        warmup=args.warmup,
        chains=args.chains,
        seed=args.seed,
        use_compiled=compiled,
        n_jobs=args.n_jobs,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit(formula, data, method="mcmc", control=control)
    seconds = time.perf_counter() - started
    summary = result.mcmc_summary
    fixed = summary.loc[result.fixed_names]
    return {
        "seconds": seconds,
        "sampling_seconds": float(result.opt_summary.seconds),
        "min_ess": float(fixed["ess_bulk"].min()),
        "max_rhat": float(summary["r_hat"].max()),
        "means": summary["mean"].to_dict(),
    }


def peer_model(model: ModelData) -> Any:
    """The references' PyMC model (make_posterior.py) on our design: NUTS on the coefficients
    theta of the centred and scaled design (beta = T theta, the N(0, 2^2) prior on beta),
    non-centred random effects, log SDs N(0, 1), LKJCorr(eta = 2) for a 2-column term."""
    import pymc as pm
    import pytensor.tensor as pt

    x = model.x
    p = x.shape[1]
    centre = np.zeros(p)
    scale = np.ones(p)
    intercept = [j for j in range(p) if np.all(x[:, j] == 1.0)]
    for j in range(p):
        if j in intercept:
            continue
        centre[j] = x[:, j].mean() if intercept else 0.0
        sd = x[:, j].std()
        scale[j] = sd if sd > 0 else 1.0
    transform = np.eye(p)
    for j in range(p):
        if j in intercept:
            continue
        transform[j, j] = 1.0 / scale[j]
        if intercept:
            transform[intercept[0], j] = -centre[j] / scale[j]
    xs = x @ transform
    block = model.blocks[0]
    if len(model.blocks) > 1 and any(b.k > 1 for b in model.blocks):
        raise ValueError("the peer model takes one term, or one-column terms only")
    with pm.Model() as pymc_model:
        theta = pm.Flat("theta", shape=p)
        beta = pm.Deterministic("beta", pt.dot(pt.as_tensor_variable(transform), theta))
        pm.Potential("beta_prior", pm.logp(pm.Normal.dist(0.0, 2.0), beta).sum())
        eta = pt.dot(pt.as_tensor_variable(xs), theta) + model.offset
        codes = pt.as_tensor_variable(block.codes.astype("int64"))
        if all(b.k == 1 for b in model.blocks):
            # One-column terms (one factor or several): independent log SDs.
            for t, term in enumerate(model.blocks):
                log_sd = pm.Normal(f"log_sd_{t}", 0.0, 1.0)
                z = pm.Normal(f"z_{t}", 0.0, 1.0, shape=term.n_levels)
                codes = pt.as_tensor_variable(term.codes.astype("int64"))
                eta = eta + (pt.exp(log_sd) * z)[codes] * term.z[:, 0]
        else:
            log_s = pm.Normal("log_sds", 0.0, 1.0, shape=2)
            r = pm.LKJCorr("corr", n=2, eta=2.0)[0]
            s = pt.exp(log_s)
            chol = pt.stack(
                [
                    pt.stack([s[0], pt.zeros_like(s[0])]),
                    pt.stack([s[1] * r, s[1] * pt.sqrt(1.0 - r**2)]),
                ]
            )
            z = pm.Normal("z", 0.0, 1.0, shape=(block.n_levels, 2))
            b = pt.dot(z, chol.T)
            eta = eta + pt.sum(pt.as_tensor_variable(block.z) * b[codes], axis=1)
        if np.all(model.trials == 1.0):
            pm.Bernoulli("y", logit_p=eta, observed=model.successes.astype(int))
        else:
            pm.Binomial(
                "y",
                n=model.trials.astype(int),
                logit_p=eta,
                observed=model.successes.astype(int),
            )
    return pymc_model


def run_peer(case: str, args: argparse.Namespace, engine: str) -> dict[str, Any]:
    import arviz as az
    import pymc as pm

    formula, _ = CASES[case]
    model, _ = build_model(formula, load(case))
    started = time.perf_counter()
    pymc_model = peer_model(model)
    if engine == "pymc":
        sampling_started = time.perf_counter()
        with pymc_model:
            idata = pm.sample(
                draws=args.draws,
                tune=args.peer_tune,
                chains=args.chains,
                cores=min(args.chains, os.cpu_count() or 1),
                target_accept=0.95,
                random_seed=args.seed,
                progressbar=False,
                compute_convergence_checks=False,
            )
        sampling = float(idata.posterior.attrs.get("sampling_time", np.nan))
        if not np.isfinite(sampling):
            sampling = time.perf_counter() - sampling_started
    else:
        import nutpie

        compiled = nutpie.compile_pymc_model(pymc_model)
        sampling_started = time.perf_counter()
        idata = nutpie.sample(
            compiled,
            draws=args.draws,
            tune=args.peer_tune,
            chains=args.chains,
            seed=args.seed,
            progress_bar=False,
        )
        sampling = time.perf_counter() - sampling_started
    seconds = time.perf_counter() - started
    beta = idata.posterior["beta"].values  # (chains, draws, p)
    ess = [mcmc_diagnostics.ess_bulk(beta[:, :, j]) for j in range(beta.shape[2])]
    rhat = [mcmc_diagnostics.rhat(beta[:, :, j]) for j in range(beta.shape[2])]
    del az
    return {
        "seconds": seconds,
        "sampling_seconds": sampling,
        "min_ess": float(min(ess)),
        "max_rhat": float(max(rhat)),
    }


def available(engine: str) -> bool:
    if engine == "ours":
        return True
    if engine == "ours_compiled":
        return compiled_sampler() is not None
    try:
        __import__("pymc" if engine == "pymc" else "nutpie")
        __import__("arviz")
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["ours", "ours_compiled", "pymc", "nutpie"],
        choices=["ours", "ours_compiled", "pymc", "nutpie"],
    )
    parser.add_argument(
        "--peer-cases",
        nargs="+",
        default=["cbpp", "contraception", "contraception_slope"],
        choices=list(CASES),
    )
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--peer-tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--n-jobs", type=int, default=1, help="our worker processes (PyMC runs min(chains, cores))"
    )
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()}")
    print(
        f"ours: {args.chains} chains x {args.draws} draws after {args.warmup} warm-up sweeps; "
        f"peers: {args.peer_tune} tuning steps + {args.draws} draws"
    )
    rows = []
    for case in args.cases:
        results: dict[str, dict[str, Any]] = {}
        for engine in args.engines:
            if not available(engine):
                print(f"{case}: {engine} not installed, skipped")
                continue
            if engine in ("pymc", "nutpie") and case not in args.peer_cases:
                continue
            if engine.startswith("ours"):
                results[engine] = run_ours(case, args, compiled=engine == "ours_compiled")
            else:
                results[engine] = run_peer(case, args, engine)
            r = results[engine]
            r["ess_per_second"] = r["min_ess"] / r["seconds"]
            print(
                f"{case:20s} {engine:14s} wall {r['seconds']:8.2f} s (sampling "
                f"{r['sampling_seconds']:8.2f} s)  min bulk ESS {r['min_ess']:7.0f}  "
                f"ESS/s {r['ess_per_second']:8.1f}  max R-hat {r['max_rhat']:.4f}",
                flush=True,
            )
        ours = results.get("ours", {}).get("ess_per_second")
        reference = reference_speed(case)
        line: dict[str, Any] = {"case": case, "ours ESS/s": ours}
        if reference is not None and ours is not None:
            line["PyMC (reference file, sampling only)"] = reference
            line["ratio to reference"] = ours / reference
            line["target ratio"] = TARGETS.get(case)
        for engine in ("ours_compiled", "pymc", "nutpie"):
            if engine in results and ours is not None:
                peer = results[engine]
                line[f"{engine} ESS/s"] = peer["ess_per_second"]
                line[f"ratio to {engine}"] = ours / peer["ess_per_second"]
                if engine != "ours_compiled":
                    sampling_speed = peer["min_ess"] / peer["sampling_seconds"]
                    line[f"ratio to {engine} sampling only"] = ours / sampling_speed
        rows.append(line)
    print(f"load average at end: {os.getloadavg()}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).set_index("case").round(2).T)


if __name__ == "__main__":
    main()
