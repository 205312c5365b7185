"""Speed benchmark of glmm-binomial against its peers, in one run (issue 5).

    python bench/run.py                       # every case, every installed engine
    python bench/run.py --cases contraception_intercept verbagg_crossed --repeats 3
    python bench/run.py --engines ours glmm --json out.json
    python bench/run.py --memory              # also the peak memory of our 1M-row fit
    python bench/run.py --r-on-1m             # also glmer/glmmTMB on the 1M case (~5 min)
    python bench/run.py --blas-threads 1      # BLAS thread cap for every engine (R inherits it)

Each engine fits each case once untimed (warm-up: imports, caches; on the large cases on a
2000-row subset), then `repeats` timed fits; the table shows the median wall time, the Laplace
log-likelihood (binomial constants included, i.e. R's logLik; 0 for 0/1 data), its difference
to ours (peer - ours: negative means ours is higher) and the time ratio (peer / ours).

Engines, each used when installed:
    ours          glmm_binomial.fit(formula, frame) (the formula front end included);
                  falls back to the core when the front end is not there
    ours_core     ModelData built by hand (bench/modeldata.py) + laplace.fit_laplace
    glmm          the Rust `glmm` package from PyPI: glmm.fit(frame, formula, "binomial")
    mixedlm       mixedlm.glmer (Rust-backed), Laplace
    sm_vb/sm_map  statsmodels BinomialBayesMixedGLM fit_vb / fit_map (small cases only; a
                  Bayesian fit, so no log-likelihood; not on (1 + urban | district), as
                  statsmodels has no correlated random effects)
    glmer/glmmTMB R through Rscript (bench/fit_r.R), its own warm-up and repeats
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

# --blas-threads must act before numpy loads its BLAS, so it is read ahead of the imports.
if "--blas-threads" in sys.argv:
    _threads = sys.argv[sys.argv.index("--blas-threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import simulate  # noqa: E402
from modeldata import model_data  # noqa: E402

import glmm_binomial  # noqa: E402
from glmm_binomial import datasets  # noqa: E402
from glmm_binomial.methods.laplace import fit_laplace  # noqa: E402

ENGINES = ("ours", "ours_core", "glmm", "mixedlm", "sm_vb", "sm_map", "glmer", "glmmTMB")
R_ENGINES = ("glmer", "glmmTMB")


@dataclass(frozen=True)
class Case:
    """One benchmark model: data, its formula for each front end and the hand-built design."""

    name: str
    load: Callable[[], pd.DataFrame]
    formula: str  # lme4 syntax, used by ours, glmm and R
    plain_formula: str  # without I(), for mixedlm
    response: str
    fixed: str  # formulaic right-hand side for the hand-built ModelData
    blocks: list[tuple[str, tuple[str, ...]]]
    factors: tuple[str, ...]  # columns R must read as factors
    big: bool = False
    statsmodels: tuple[str, dict[str, str]] | None = None  # fixed formula, variance components
    subset: Callable[[], pd.DataFrame] | None = None  # small warm-up data for big cases


def _contraception() -> pd.DataFrame:
    frame = datasets.load("contraception")
    frame["age2"] = frame["age"] ** 2
    frame["urban_y"] = (frame["urban"] == "Y").astype(np.float64)
    return frame


def _verbagg() -> pd.DataFrame:
    return datasets.load("verbagg")


_CONTRA_FIXED = "age + I(age^2) + urban + livch"
_CONTRA_PLAIN = "age + age2 + urban + livch"

CASES: dict[str, Case] = {
    "contraception_intercept": Case(
        "contraception_intercept",
        _contraception,
        f"use ~ {_CONTRA_FIXED} + (1 | district)",
        f"use ~ {_CONTRA_PLAIN} + (1 | district)",
        "use",
        "age + I(age**2) + urban + livch",
        [("district", ())],
        ("district", "livch", "urban"),
        statsmodels=(f"use ~ {_CONTRA_PLAIN}", {"district": "0 + C(district)"}),
    ),
    "contraception_slope": Case(
        "contraception_slope",
        _contraception,
        f"use ~ {_CONTRA_FIXED} + (1 + urban | district)",
        f"use ~ {_CONTRA_PLAIN} + (1 + urban | district)",
        "use",
        "age + I(age**2) + urban + livch",
        [("district", ("urban",))],
        ("district", "livch", "urban"),
    ),
    "verbagg_crossed": Case(
        "verbagg_crossed",
        _verbagg,
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        "r2",
        "Anger + Gender + btype + situ",
        [("id", ()), ("item", ())],
        ("id", "item"),
        statsmodels=(
            "r2 ~ Anger + Gender + btype + situ",
            {"id": "0 + C(id)", "item": "0 + C(item)"},
        ),
    ),
}
for _sim, _blocks in (
    ("sim_slope_100k", [("g", ("x1",))]),
    ("sim_singular_slope_50k", [("g", ("x1",))]),
    ("sim_crossed_100k", [("g1", ()), ("g2", ())]),
    ("sim_intercept_1m", [("g", ())]),
):
    _spec = simulate.CASES[_sim]
    CASES[_sim] = Case(
        _sim,
        _spec.make,
        _spec.formula,
        _spec.formula,
        "y",
        "x1 + x2",
        _blocks,
        _spec.groups,
        big=True,
        subset=lambda make=_spec.make: make().iloc[:2000].reset_index(drop=True),
    )


@dataclass
class Outcome:
    """Timings and log-likelihood of one engine on one case."""

    case: str
    engine: str
    seconds: list[float] = field(default_factory=list)
    loglik: float = math.nan
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan


# --- engines: each returns a callable fit(frame) -> loglik ------------------------------------
def _ours(case: Case) -> Callable[[pd.DataFrame], float] | None:
    if not hasattr(glmm_binomial, "fit"):
        return None

    def run(frame: pd.DataFrame) -> float:
        return float(glmm_binomial.fit(case.formula, frame).loglik)

    return run


def _ours_core(case: Case) -> Callable[[pd.DataFrame], float]:
    def run(frame: pd.DataFrame) -> float:
        return float(fit_laplace(model_data(frame, case.response, case.fixed, case.blocks)).loglik)

    return run


def _glmm(case: Case) -> Callable[[pd.DataFrame], float] | None:
    try:
        import glmm
    except ImportError:
        return None

    def run(frame: pd.DataFrame) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(glmm.fit(frame, case.formula, "binomial").loglik)

    return run


def _mixedlm(case: Case) -> Callable[[pd.DataFrame], float] | None:
    try:
        import mixedlm
    except ImportError:
        return None

    def run(frame: pd.DataFrame) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = mixedlm.glmer(case.plain_formula, frame, family=mixedlm.families.Binomial())
            return float(fitted.logLik().value)

    return run


def _statsmodels(case: Case, how: str) -> Callable[[pd.DataFrame], float] | None:
    if case.statsmodels is None:
        return None
    try:
        from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
    except ImportError:
        return None
    fixed, components = case.statsmodels

    def run(frame: pd.DataFrame) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = BinomialBayesMixedGLM.from_formula(fixed, components, frame)
            model.fit_vb() if how == "vb" else model.fit_map()
        return math.nan

    return run


def _python_engine(name: str, case: Case) -> Callable[[pd.DataFrame], float] | None:
    if name == "ours":
        return _ours(case)
    if name == "ours_core":
        return _ours_core(case)
    if name == "glmm":
        return _glmm(case)
    if name == "mixedlm":
        return _mixedlm(case)
    if name in ("sm_vb", "sm_map"):
        return None if case.big else _statsmodels(case, name[3:])
    raise ValueError(name)


def time_python(name: str, case: Case, frame: pd.DataFrame, repeats: int) -> Outcome | None:
    """Warm-up fit, then `repeats` timed fits of one Python engine."""
    run = _python_engine(name, case)
    if run is None:
        return None
    outcome = Outcome(case.name, name)
    try:
        run(case.subset() if case.subset is not None else frame)
        for _ in range(repeats):
            started = time.perf_counter()
            outcome.loglik = run(frame)
            outcome.seconds.append(time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - a failing peer is reported, not fatal
        outcome.note = f"{type(exc).__name__}: {str(exc)[:120]}"
    return outcome


def r_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    check = subprocess.run(
        ["Rscript", "-e", "suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})"],
        capture_output=True,
    )
    return check.returncode == 0


def time_r(engine: str, case: Case, csv: Path, repeats: int) -> Outcome:
    """Fit in R through bench/fit_r.R (its own warm-up; R's start-up is not timed)."""
    outcome = Outcome(case.name, engine)
    cmd = ["Rscript", str(BENCH / "fit_r.R"), str(csv), case.formula, engine, str(repeats)]
    done = subprocess.run(cmd + list(case.factors), capture_output=True, text=True)
    if done.returncode != 0:
        outcome.note = "R failed: " + done.stderr.strip().splitlines()[-1][:120]
        return outcome
    record = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = record["seconds"]
    outcome.seconds = [float(s) for s in (seconds if isinstance(seconds, list) else [seconds])]
    outcome.loglik = float(record["logLik"])
    return outcome


def r_csv(case: Case, frame: pd.DataFrame, folder: Path) -> Path:
    path = folder / f"{case.name}.csv"
    if not path.exists():
        columns = [c for c in frame.columns if c not in ("age2", "urban_y")]
        simulate.write_csv(frame[columns], path)
    return path


# --- memory of our 1M fit ------------------------------------------------------------------------
def _max_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory_child(case_name: str) -> None:
    """In a fresh process: peak RSS around one core fit, then tracemalloc's traced peak."""
    import tracemalloc

    case = CASES[case_name]
    frame = case.load()
    data = model_data(frame, case.response, case.fixed, case.blocks)
    before = _max_rss_mb()
    fit_laplace(data)
    after = _max_rss_mb()
    tracemalloc.start()
    fit_laplace(data)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        json.dumps(
            {
                "rss_before_fit_mb": before,
                "rss_peak_mb": after,
                "traced_peak_of_fit_mb": traced_peak / 2**20,
            }
        )
    )


def measure_memory(case_name: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--memory-child", case_name], capture_output=True, text=True
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- table ----------------------------------------------------------------------------------------
def reference_engine(outcomes: list[Outcome]) -> Outcome | None:
    for name in ("ours", "ours_core"):
        for o in outcomes:
            if o.engine == name and o.seconds:
                return o
    return None


def table(results: dict[str, list[Outcome]]) -> str:
    lines = [
        f"{'case':<25} {'engine':<10} {'median s':>9} {'loglik':>16} {'d loglik':>10} "
        f"{'peer/ours':>9}  note"
    ]
    for case_name, outcomes in results.items():
        ours = reference_engine(outcomes)
        for o in outcomes:
            dll = o.loglik - ours.loglik if ours is not None else math.nan
            ratio = o.median / ours.median if ours is not None else math.nan
            lines.append(
                f"{case_name:<25} {o.engine:<10} {o.median:>9.3f} {o.loglik:>16.6f} "
                f"{dll:>10.2e} {ratio:>9.2f}  {o.note}"
            )
    return "\n".join(lines)


def time_engine(
    engine: str, case: Case, frame: pd.DataFrame, repeats: int, tmp: Path, use_r: bool
) -> Outcome | None:
    """Time one engine on one case (None when the engine is not available) and log the line."""
    if engine in R_ENGINES:
        if not use_r:
            return None
        outcome = time_r(engine, case, r_csv(case, frame, tmp), repeats)
    else:
        found = time_python(engine, case, frame, repeats)
        if found is None:
            return None
        outcome = found
    print(
        f"  {case.name} {engine}: {outcome.median:.3f} s, loglik {outcome.loglik:.6f}"
        f" {outcome.note}",
        file=sys.stderr,
        flush=True,
    )
    return outcome


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--repeats", type=int, default=5, help="timed fits on the small cases")
    parser.add_argument("--big-repeats", type=int, default=2, help="timed fits on the large cases")
    parser.add_argument("--r-on-1m", action="store_true", help="also run R on the 1M-row case")
    parser.add_argument("--memory", action="store_true", help="peak memory of our 1M-row fit")
    parser.add_argument("--json", type=Path, help="write all outcomes here")
    parser.add_argument(
        "--blas-threads", help="set OPENBLAS/OMP/MKL_NUM_THREADS for all engines (default: as is)"
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return

    use_r = any(e in R_ENGINES for e in args.engines) and r_available()
    results: dict[str, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="glmm_bench_") as tmp:
        for case_name in args.cases:
            case = CASES[case_name]
            frame = case.load()
            repeats = args.big_repeats if case.big else args.repeats
            outcomes = []
            for engine in args.engines:
                if engine in R_ENGINES and case_name == "sim_intercept_1m" and not args.r_on_1m:
                    continue
                outcome = time_engine(engine, case, frame, repeats, Path(tmp), use_r)
                if outcome is not None:
                    outcomes.append(outcome)
            results[case_name] = outcomes
    memory = measure_memory("sim_intercept_1m") if args.memory else None

    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(
        f"glmm-binomial benchmark: {os.cpu_count()} cores, BLAS threads {threads}, "
        f"load average {os.getloadavg()[0]:.1f}; warm wall seconds (median)"
    )
    print(table(results))
    if memory is not None:
        print(f"memory of our fit on sim_intercept_1m (MB): {json.dumps(memory)}")
    if args.json is not None:
        payload = {
            "results": {
                c: [
                    {
                        "engine": o.engine,
                        "seconds": o.seconds,
                        "median": o.median,
                        "loglik": o.loglik,
                        "note": o.note,
                    }
                    for o in outs
                ]
                for c, outs in results.items()
            },
            "memory": memory,
        }
        args.json.write_text(json.dumps(payload, indent=1, allow_nan=True))


if __name__ == "__main__":
    main()
