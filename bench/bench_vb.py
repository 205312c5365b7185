"""Benchmarks of the variational methods.

    python bench/bench_vb.py [--parts accuracy speed sheet meanfield] [--repeats N]

accuracy: method "vb" (structured) and "vb_meanfield" against the exact posteriors stored in
  tests/reference/posterior_*.json (PyMC NUTS, same priors): per fixed effect the posterior SD
  ratio to the exact SD and the mean's distance in exact SDs, the random-effect SDs' posterior
  means, the correlation (slope model) and the ELBOs.
speed: warm fit() times of "vb" and "laplace" on contraception `use ~ age + urban + livch +
  (1 | district)` (and with `(1 + urban | district)`), VerbAgg `r2 ~ btype + mode + situ +
  (1 | id) + (1 | item)` and 1M rows `y ~ x1 + x2 + (1 | g)` (bench/simulate.intercept_1m,
  10,000 groups): the minimum of N runs of each, alternating, wall and CPU seconds, and their
  ratios (CPU time is the steadier measure on a shared machine).
sheet: GLMM_BINOMIAL on 100,000 rows (bench/bench_sheet.py's data: 2 x columns, one x_random
  column, 1,000 groups) with the default method "vb" and with "laplace".
meanfield: method "vb_meanfield" (mean-field) against statsmodels' fit_vb:

Cases:
  verbagg   r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)   7,584 rows, 316 x 24
  sim10k    y ~ x1 + x2 + (1 | g), 10,000 rows in 100 groups (seeded simulation, seed 20240501)

For each: wall time of our fit_vb (median of N repeats) and of statsmodels'
BinomialBayesMixedGLM(...).fit_vb(rng=0) (one run; it starts from a random point), their ratio,
and the ELBO of both optima under our ELBO (Gauss-Hermite, 32 nodes), under an accurate one
(Gauss-Hermite, 100 nodes) and under statsmodels' vb_elbo (10-point Gauss-Legendre on [-5, 5]).
Not a test: prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

import glmm_binomial as g
from glmm_binomial import datasets
from glmm_binomial.methods.structured_vb import fit_structured_vb_detailed
from glmm_binomial.methods.variational import VariationalObjective, fit_vb_detailed
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import build_model

HERE = Path(__file__).resolve().parent
REFERENCE = HERE.parent / "tests" / "reference"
POSTERIOR_CASES = {
    "cbpp": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)"),
    "contraception": ("contraception", "use ~ age + urban + livch + (1 | district)"),
    "contraception_slope": (
        "contraception",
        "use ~ age + urban + livch + (1 + urban | district)",
    ),
}


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


def r_name(patsy_name: str) -> str:
    """The reference's patsy names in R's spelling (Intercept, urban[T.Y], C(period)[T.2])."""
    if patsy_name == "Intercept":
        return "(Intercept)"
    return re.sub(r"\[T\.(.*)\]$", r"\1", re.sub(r"^C\((\w+)\)", r"\1", patsy_name))


def accuracy() -> None:
    print("\n== accuracy against the exact posterior (PyMC NUTS, same priors)")
    for case, (dataset, formula) in POSTERIOR_CASES.items():
        reference = json.loads((REFERENCE / f"posterior_{case}.json").read_text())
        data = datasets.load(dataset)
        fits = {"vb": g.fit(formula, data, method="vb")}
        if "+ urban |" not in formula:
            fits["vb_meanfield"] = g.fit(formula, data, method="vb_meanfield")
        print(f"\n{formula}")
        header = f"  {'coefficient':12s} {'exact mean':>11s} {'exact SD':>9s}"
        for method in fits:
            header += f" | {method + ' SD ratio':>22s} {'mean diff (SD)':>14s}"
        print(header)
        for name, exact in reference["fixed_effects"].items():
            ours = r_name(name)
            line = f"  {ours:12s} {exact['mean']:11.4f} {exact['sd']:9.4f}"
            for result in fits.values():
                ratio = result.bse[ours] / exact["sd"]
                shift = (result.params[ours] - exact["mean"]) / exact["sd"]
                line += f" | {ratio:22.3f} {shift:+14.3f}"
            print(line)
        for key, exact in reference["sds"].items():
            group, _, column = key.partition(":")
            term = r_name(column) if column else "(Intercept)"
            line = f"  SD {key}: exact posterior mean {exact['mean']:.4f}"
            for method, result in fits.items():
                vc = result.varcorr
                sd = float(vc[(vc["group"] == group) & (vc["term"] == term)]["std_dev"].iloc[0])
                line += f"; {method} {sd:.4f} (ratio {sd / exact['mean']:.3f})"
            print(line)
        # q(log SD): its own factor, independent of the effects' (a limit of the family: its
        # spread is smaller than the exact posterior's, as in mean field).
        detailed = fit_structured_vb_detailed(build_model(formula, data)[0])
        position = 0
        for t, block in enumerate(detailed.objective.data.blocks):
            mean, sd, _ = detailed.objective.variance.sd_moments(detailed.phi, t)
            for c, term in enumerate(block.terms):
                key = block.group if block.k == 1 else f"{block.group}:{term}"
                exact_log = list(reference["log_sds"].values())[position]
                position += 1
                ratio = sd[c] / exact_log["sd"]
                print(
                    f"  log SD {key}: exact mean {exact_log['mean']:.4f} SD "
                    f"{exact_log['sd']:.4f}; vb q mean {mean[c]:.4f} SD {sd[c]:.4f} "
                    f"(SD ratio {ratio:.2f})"
                )
        print("  (vb_meanfield's std_dev is exp of the posterior mean log SD, not the mean SD)")
        for key, exact in reference["correlations"].items():
            corr = float(fits["vb"].varcorr["corr_1"].dropna().iloc[0])
            print(f"  correlation {key}: exact posterior mean {exact['mean']:.4f}; vb {corr:.4f}")
        for method, result in fits.items():
            print(
                f"  {method}: ELBO {result.elbo:.4f}, converged {result.converged}, "
                f"{result.opt_summary.evaluations} evaluations"
            )


def _minimum_times(fit, repeats: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fit()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def speed(repeats: int, big_repeats: int) -> None:
    sys.path.insert(0, str(HERE))
    from simulate import intercept_1m

    print(f"\n== speed: fit() warm, min of alternating runs (load average {os.getloadavg()})")
    cases = [
        ("contraception", "use ~ age + urban + livch + (1 | district)", None, repeats),
        ("contraception", "use ~ age + urban + livch + (1 + urban | district)", None, repeats),
        ("verbagg", "r2 ~ btype + mode + situ + (1 | id) + (1 | item)", None, repeats),
        ("1M rows", "y ~ x1 + x2 + (1 | g)", intercept_1m, big_repeats),
    ]
    for name, formula, make, n in cases:
        data = make() if make is not None else datasets.load(name)
        times: dict[str, list[tuple[float, float]]] = {"laplace": [], "vb": []}
        if make is None:
            g.fit(formula, data, method="laplace")
            g.fit(formula, data, method="vb")
        for _ in range(n):
            for method in times:
                times[method].append(
                    _minimum_times(lambda m=method, f=formula, d=data: g.fit(f, d, method=m), 1)
                )
        lap = (min(t[0] for t in times["laplace"]), min(t[1] for t in times["laplace"]))
        vb = (min(t[0] for t in times["vb"]), min(t[1] for t in times["vb"]))
        print(
            f"  {name:14s} {formula:52s} laplace {lap[0]:7.3f} s (cpu {lap[1]:7.3f})  "
            f"vb {vb[0]:7.3f} s (cpu {vb[1]:7.3f})  ratio wall {vb[0] / lap[0]:.2f} "
            f"cpu {vb[1] / lap[1]:.2f}"
        )


def sheet_speed(repeats: int) -> None:
    sys.path.insert(0, str(HERE))
    from bench_sheet import arguments

    from glmm_binomial.frontends import sheet

    y, x, groups, x_random = arguments(100_000)
    sheet._available_methods()
    print("\n== GLMM_BINOMIAL on 100,000 rows (1,000 groups, one x_random column)")
    for method in ("vb", "laplace"):
        wall, cpu = _minimum_times(
            lambda m=method: sheet.glmm_binomial(y, x, groups, x_random, method=m), repeats
        )
        table = sheet.glmm_binomial(y, x, groups, x_random, method=method)
        converged = [row[1] for row in table if row[0] == "converged"]
        print(f"  {method:8s} {wall:7.3f} s (cpu {cpu:7.3f}), converged {converged}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big-repeats", type=int, default=2, help="repeats of the 1M case")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["accuracy", "speed", "sheet", "meanfield"],
        choices=["accuracy", "speed", "sheet", "meanfield"],
    )
    args = parser.parse_args()
    if "accuracy" in args.parts:
        accuracy()
    if "speed" in args.parts:
        speed(args.repeats, args.big_repeats)
    if "sheet" in args.parts:
        sheet_speed(args.repeats)
    if "meanfield" in args.parts:
        verbagg = datasets.load("verbagg")
        formula = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"
        bench("verbagg crossed", build_model(formula, verbagg)[0], args.repeats)
        bench("sim10k", build_model("y ~ x1 + x2 + (1 | g)", simulated_10k())[0], args.repeats)


if __name__ == "__main__":
    main()
