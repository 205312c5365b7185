"""Deletion diagnostics side by side: our influence() against lme4's influence(model, groups),
in one run (R with lme4 where installed).

    python bench/bench_influence.py                 # every case, both engines
    python bench/bench_influence.py --n-jobs 2      # ours on two processes too

Each case is fitted once by each engine; the table gives the seconds of the deletion refits
alone (the fit excluded), the ratio R / ours (above 1: ours is faster), the largest difference
of the refits' fixed effects (dfbeta) and of Cook's distances relative to their largest, and
whether every refit converged. lme4 refits with its default optimizer settings from the fit's
theta and fixed effects, as its influence() does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import glmm_binomial as g

CASES = {
    "cbpp_herd": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "herd"),
    "cbpp_rows": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", None),
    "contraception_district": (
        "contraception",
        "use ~ age + urban + livch + (1 | district)",
        "district",
    ),
    "slope_district": (
        "contraception",
        "use ~ age + urban + livch + (1 + urban | district)",
        "district",
    ),
}

R_SCRIPT = r"""
suppressMessages({library(lme4); library(jsonlite)})
a <- commandArgs(TRUE)
data <- read.csv(a[1], stringsAsFactors = TRUE)
for (col in c("herd", "period", "district", "livch")) {
  if (!is.null(data[[col]])) data[[col]] <- factor(data[[col]])
}
fit <- glmer(as.formula(a[2]), data = data, family = binomial)
fit@call$data <- data
seconds <- system.time(
  infl <- if (a[3] == "") influence(fit) else influence(fit, groups = a[3])
)[["elapsed"]]
writeLines(toJSON(list(seconds = seconds, dfbeta = unname(dfbeta(infl)),
                       cooks = unname(cooks.distance(infl)),
                       converged = all(infl[["converged"]])), digits = NA, auto_unbox = TRUE), a[4])
"""


def run_r(folder: Path, data: str, formula: str, groups: str | None) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    csv = folder / f"{data}.csv"
    if not csv.exists():
        g.datasets.load(data).to_csv(csv, index=False)
    script = folder / "influence.R"
    script.write_text(R_SCRIPT)
    out = folder / "out.json"
    done = subprocess.run(
        ["Rscript", str(script), str(csv), formula, groups or "", str(out)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(done.stderr[-500:], file=sys.stderr)
        return None
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    header = f"{'case':24} {'units':>5} {'ours s':>7} {'lme4 s':>7} {'ratio':>6} "
    print(header + f"{'dfbeta':>8} {'cooks':>7}  converged (ours, lme4)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.cases:
            data, formula, groups = CASES[name]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = g.fit(formula, g.datasets.load(data))
                started = time.perf_counter()
                infl = result.influence(groups, n_jobs=args.n_jobs)
                ours = time.perf_counter() - started
            peer = run_r(folder, data, formula, groups)
            units = len(infl.fixed_effects_deleted)
            line = f"{name:24} {units:5d} {ours:7.2f} "
            if peer is None:
                print(line + f"{'-':>7} {'-':>6}  converged {bool(infl.converged.all())}")
                continue
            dfbeta = np.max(np.abs(infl.dfbeta().to_numpy() - np.array(peer["dfbeta"])))
            cooks = np.array(peer["cooks"])
            relative = np.max(np.abs(infl.cooks_distance().to_numpy() - cooks)) / cooks.max()
            ratio = peer["seconds"] / ours
            print(
                line + f"{peer['seconds']:7.2f} {ratio:6.1f} {dfbeta:8.1e} {relative:7.1e}  "
                f"{bool(infl.converged.all())}, {bool(peer['converged'])}"
            )
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
