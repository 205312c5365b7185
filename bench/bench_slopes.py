"""Marginal effects side by side: our avg_slopes, avg_comparisons and avg_predictions (also
hypothesis=, predictions on a datagrid and plot_predictions' table) against R's
marginaleffects (0.11.0, on a glmer fit) in one run, where R has it installed.

    python bench/bench_slopes.py                  # every case, both engines
    python bench/bench_slopes.py --repeats 9

Each case is fitted once by each engine; the table gives the best of --repeats wall times of the
call alone (the fit excluded) in ms, the ratio R / ours (above 1: ours is faster) and the
largest differences of the estimates (absolute) and of the standard errors (relative to R's).
marginaleffects runs with its default Jacobian (forward differences in the coefficients), so
the SEs differ by its step's error too (about 1e-4 relative) besides glmer's optimum and
covariance.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import glmm_binomial as g

FORMULA = "use ~ age + I(age^2) + urban + livch + (1 + urban | district)"
GRID = object()  # stands for datagrid(fit, age=[-10, 0, 10], livch=["0", "1"])
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    # name: (our function, its arguments, the R call on the glmer fit `m`)
    "avg_slopes": ("avg_slopes", {}, "avg_slopes(m)"),
    "avg_slopes_by": ("avg_slopes", {"by": "livch"}, 'avg_slopes(m, by = "livch")'),
    "avg_comparisons_ratio": (
        "avg_comparisons",
        {"variables": "livch", "comparison": "ratioavg"},
        'avg_comparisons(m, variables = "livch", comparison = "ratioavg")',
    ),
    "avg_predictions_cf": (
        "avg_predictions",
        {"variables": "urban"},
        'avg_predictions(m, variables = "urban")',
    ),
    "slopes_rows": ("slopes", {"variables": "age"}, 'slopes(m, variables = "age")'),
    "pairwise_hypothesis": (
        "avg_comparisons",
        {"variables": "livch", "hypothesis": "pairwise"},
        'avg_comparisons(m, variables = "livch", hypothesis = "pairwise")',
    ),
    "predictions_grid": (
        "predictions",
        {"newdata": GRID},
        'predictions(m, newdata = datagrid(age = c(-10, 0, 10), livch = c("0", "1")))',
    ),
    "plot_predictions": (
        "plot_predictions",
        {"condition": ["age", "livch"], "draw": False},
        'plot_predictions(m, condition = c("age", "livch"), draw = FALSE)',
    ),
}
"""GRID: the rows of datagrid(fit, age=..., livch=...), made from the fit at run time (the
datagrid call is inside R's timing too)."""

R_SCRIPT = r"""
suppressMessages({library(lme4); library(marginaleffects); library(jsonlite)})
a <- commandArgs(TRUE)
data <- read.csv(a[1], stringsAsFactors = TRUE)
data$livch <- factor(data$livch)
data$district <- factor(data$district)
m <- glmer(as.formula(a[2]), data = data, family = binomial,
           control = glmerControl(optimizer = "bobyqa"))
calls <- fromJSON(a[3])
out <- lapply(calls, function(text) {
  expr <- parse(text = text)[[1]]
  times <- sapply(seq_len(as.integer(a[4])), function(i) system.time(eval(expr))[["elapsed"]])
  table <- as.data.frame(eval(expr))
  list(seconds = min(times), estimate = table$estimate, std_error = table$std.error)
})
names(out) <- names(calls)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), a[5])
"""


def run_r(repeats: int) -> dict[str, Any] | None:
    """R's timings and numbers per case; None when R or marginaleffects is missing."""
    if shutil.which("Rscript") is None:
        return None
    check = subprocess.run(
        ["Rscript", "-e", "library(marginaleffects)"], capture_output=True, text=True
    )
    if check.returncode != 0:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        g.datasets.load("contraception").to_csv(path / "data.csv", index=False)
        (path / "run.R").write_text(R_SCRIPT)
        calls = {name: case[2] for name, case in CASES.items()}
        result = subprocess.run(
            [
                "Rscript",
                str(path / "run.R"),
                str(path / "data.csv"),
                FORMULA,
                json.dumps(calls),
                str(repeats),
                str(path / "out.json"),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        loaded: dict[str, Any] = json.loads((path / "out.json").read_text())
        return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = g.fit(FORMULA, g.datasets.load("contraception"))
    peer = run_r(args.repeats)
    print(f"{FORMULA}: best of {args.repeats}, ms")
    for name, (function, given, _) in CASES.items():
        call = getattr(g, function)
        if any(v is GRID for v in given.values()):
            # the grid made inside the timed call, as R's datagrid() is
            def call(fit: Any, _function: Any = call, **arguments: Any) -> Any:
                grid = g.datagrid(fit, age=[-10, 0, 10], livch=["0", "1"])
                return _function(fit, **{k: grid if v is GRID else v for k, v in arguments.items()})

        arguments = given
        call(fit, **arguments)  # warm
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            table = call(fit, **arguments)
            times.append(time.perf_counter() - start)
        ours = 1000 * min(times)
        line = f"{name:24s} ours {ours:8.1f}"
        if peer is not None:
            theirs = peer[name]
            r_ms = 1000 * float(theirs["seconds"])
            estimate = np.atleast_1d(np.asarray(theirs["estimate"], dtype=float))
            se = np.atleast_1d(np.asarray(theirs["std_error"], dtype=float))
            if name == "plot_predictions":
                # R lists a factor's values in order of appearance in the data, ours in
                # level order: ours put in R's order (age varying slowest)
                seen = list(dict.fromkeys(g.datasets.load("contraception")["livch"]))
                position = table["livch"].astype(object).map({v: i for i, v in enumerate(seen)})
                table = table.assign(_p=position).sort_values(["age", "_p"], kind="stable")
            mine, mine_se = table["estimate"].to_numpy(), table["std_error"].to_numpy()
            d_est = float(np.max(np.abs(mine - estimate)))
            d_se = float(np.max(np.abs(mine_se / se - 1)))
            line += (
                f"  marginaleffects {r_ms:8.1f}  ratio {r_ms / ours:5.1f}x"
                f"  d_estimate {d_est:.1e}  d_se(rel) {d_se:.1e}"
            )
        print(line)


if __name__ == "__main__":
    main()
