"""Small fits side by side (issue 23): ours against the Rust `glmm`, `mixedlm` and lme4's glmer,
in one run.

    python bench/bench_small.py                     # every case, every installed engine
    python bench/bench_small.py --repeats 15 --cases contraception cbpp
    python bench/bench_small.py --memory            # also peak RSS per engine and case
    python bench/bench_small.py --profile contraception   # cProfile of 20 of our fits

Each engine fits each case once untimed (warm-up), then `--repeats` times with the engines
alternating fit by fit (so that they share the machine's load); the table gives the best and
the median wall time in ms, the logLik difference to ours and the ratios peer / ours (above 1:
ours is faster). `--memory`: each engine's fits of a case in a fresh process, the peak RSS
(VmHWM, reset through /proc/self/clear_refs after a first fit) above the RSS then: what three
fits add (imports, data and caches excluded).

lme4 (where Rscript and lme4 are installed): bench_small.R fits the case in one R process,
a warm-up fit and then `--repeats` fits timed inside R (R's start-up not counted); it runs
after the Python engines' fits of the case, not alternated with them, and has no --memory row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import multilevel  # noqa: E402

import glmm_binomial as g  # noqa: E402

CASES: dict[str, tuple[str, Callable[[], pd.DataFrame]]] = {
    "contraception": (
        "use ~ age + urban + livch + (1 | district)",
        lambda: g.datasets.load("contraception"),
    ),
    "contraception_slope": (
        "use ~ age + urban + livch + (1 + urban | district)",
        lambda: g.datasets.load("contraception"),
    ),
    "cbpp": (
        # A failures column: glmm's cbind() takes column names only.
        "cbind(incidence, failures) ~ period + (1 | herd)",
        lambda: g.datasets.load("cbpp").assign(failures=lambda d: d["size"] - d["incidence"]),
    ),
    "nested_2159": ("y ~ x1 + x2 + (1 | comm) + (1 | mom)", multilevel.small_3level),
    "verbagg_crossed": (
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        lambda: g.datasets.load("verbagg"),
    ),
}


def engine(name: str, formula: str) -> Callable[[pd.DataFrame], float] | None:
    """fit(frame) -> logLik for one engine; None when it is not installed."""
    if name == "ours":
        return lambda frame: float(g.fit(formula, frame).loglik)
    if name == "glmm":
        try:
            import glmm
        except ImportError:
            return None
        return lambda frame: float(glmm.fit(frame, formula, "binomial").loglik)
    if name == "mixedlm":
        try:
            import mixedlm
        except ImportError:
            return None

        family = mixedlm.families.Binomial()
        counts = re.match(r"\s*cbind\((\w+),\s*(\w+)\)\s*~(.*)", formula)
        if counts is None:

            def run(frame: pd.DataFrame) -> float:
                return float(mixedlm.glmer(formula, frame, family=family).logLik().value)

            return run
        # mixedlm's formulas take no cbind(): the proportion of successes, weighted by the
        # trials (the same likelihood; cbpp's logLik equal to 1e-12).
        successes, failures, rest = counts.groups()

        def run_counts(frame: pd.DataFrame) -> float:
            trials = (frame[successes] + frame[failures]).to_numpy(dtype=float)
            data = frame.assign(prop_=frame[successes].to_numpy(dtype=float) / trials)
            fitted = mixedlm.glmer(f"prop_ ~{rest}", data, family=family, weights=trials)
            return float(fitted.logLik().value)

        return run_counts
    raise ValueError(name)


def timings(case: str, engines: list[str], repeats: int) -> dict[str, dict[str, float]]:
    formula, load = CASES[case]
    frame = load()
    runs = {name: engine(name, formula) for name in engines if name != "lme4"}
    runs = {name: fit for name, fit in runs.items() if fit is not None}
    loglik: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fit in list(runs.items()):
            try:
                loglik[name] = fit(frame)
            except Exception as error:  # noqa: BLE001 - a peer that cannot fit is reported
                print(f"{case}: {name} failed: {type(error).__name__}: {str(error)[:100]}")
                del runs[name]
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeats):
            for name, fit in runs.items():
                started = time.perf_counter()
                fit(frame)
                seconds[name].append(time.perf_counter() - started)
    found = {
        name: {
            "best_ms": 1000 * min(values),
            "median_ms": 1000 * statistics.median(values),
            "loglik": loglik[name],
        }
        for name, values in seconds.items()
    }
    if "lme4" in engines:
        lme4 = lme4_timings(case, repeats)
        if lme4 is not None:
            found["lme4"] = lme4
    return found


def lme4_timings(case: str, repeats: int) -> dict[str, float] | None:
    """lme4's glmer on the case in one R process (bench_small.R: a warm-up fit, then `repeats`
    timed inside R, so that R's start-up is not counted); None when Rscript or lme4 is not
    installed. Not alternated fit by fit with the Python engines (another process): run on a
    quiet machine."""
    if shutil.which("Rscript") is None:
        return None
    formula, load = CASES[case]
    with tempfile.TemporaryDirectory() as folder:
        data, out = Path(folder) / "data.csv", Path(folder) / "out.json"
        frame = load()
        frame.to_csv(data, index=False)
        # Columns that are factors here are factors in R too (cbpp's period 1-4 would be read
        # as numbers).
        factors = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        script = HERE / "bench_small.R"
        done = subprocess.run(
            ["Rscript", str(script), str(data), formula, str(repeats), str(out), ",".join(factors)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not out.exists():
            print(f"{case}: lme4 failed: {done.stderr.strip()[-200:]}")
            return None
        found = json.loads(out.read_text())
    seconds = list(found["seconds"])
    return {
        "best_ms": 1000 * min(seconds),
        "median_ms": 1000 * statistics.median(seconds),
        "loglik": float(found["loglik"]),
    }


def memory_child(case: str, name: str) -> None:
    formula, load = CASES[case]
    frame = load()
    fit = engine(name, formula)
    assert fit is not None

    def status(field: str) -> float:
        with open("/proc/self/status", encoding="utf-8") as lines:
            return next(int(line.split()[1]) for line in lines if line.startswith(field)) / 1024

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(frame)  # imports and caches first
        start = status("VmRSS")
        # Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS (Linux).
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as clear:
            clear.write("5")
        for _ in range(3):
            fit(frame)
    print(json.dumps({"above_start_mb": status("VmHWM") - start}))


def memory(case: str, name: str) -> dict[str, float] | None:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", case, name],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    if out.returncode != 0:
        return None
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def profile(case: str) -> None:
    import cProfile
    import pstats

    formula, load = CASES[case]
    frame = load()
    for _ in range(3):
        g.fit(formula, frame)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(20):
        result = g.fit(formula, frame)
    profiler.disable()
    summary = result.opt_summary
    print(
        f"{case}: {summary.evaluations} evaluations, {summary.gradient_evaluations} gradients, "
        f"{summary.pirls_iterations} PIRLS iterations, {summary.iterations} L-BFGS-B iterations"
    )
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--engines", nargs="+", default=["ours", "glmm", "mixedlm", "lme4"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--profile", choices=list(CASES))
    parser.add_argument("--memory-child", nargs=2, metavar=("CASE", "ENGINE"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    if args.profile:
        profile(args.profile)
        return
    print(f"load average {os.getloadavg()[0]:.2f}; best and median of {args.repeats}, ms")
    table = {}
    for case in args.cases:
        found = timings(case, args.engines, args.repeats)
        if args.memory:
            for name in found:
                found[name].update(memory(case, name) or {})
        table[case] = found
        ours = found.get("ours")
        for name, row in found.items():
            line = f"{case:20s} {name:8s} best {row['best_ms']:8.1f} median {row['median_ms']:8.1f}"
            if ours is not None and name != "ours":
                line += (
                    f"  dlogLik {row['loglik'] - ours['loglik']:+.2e}"
                    f"  ratio best {row['best_ms'] / ours['best_ms']:.2f}x"
                    f" median {row['median_ms'] / ours['median_ms']:.2f}x"
                )
            if "above_start_mb" in row:
                line += f"  peak RSS +{row['above_start_mb']:.1f} MB"
            print(line, flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
