"""Multilevel benchmark (issue 8): nested and crossed grouping factors with thousands of levels,
ours side by side with the Rust `glmm` package, mixedlm and glmer/glmmTMB (when Rscript is
there), in one run.

    python bench/multilevel.py                          # every case, every installed engine
    python bench/multilevel.py --cases nested_200k crossed_50k --engines ours glmm
    python bench/multilevel.py --memory                 # also our peak memory per case
    python bench/multilevel.py --memory nested_1m       # ... on these cases only
    python bench/multilevel.py --skip glmer:nested_1m   # leave out engine:case pairs

Data are simulated here, seeded (numpy default_rng): a 0/1 response y, covariates x1 (normal)
and x2 (0/1), grouping columns with globally unique codes (so (1 | comm) + (1 | mom) is the
nested model, the same as (1 | comm/mom)). beta = (-0.5, 0.8, -0.4); random-intercept SDs
region 0.5, community 0.7, mother 1.0; crossed a 0.8, b 0.5.

    small_3level   2,159-ish rows, 1,595 mothers (1-3 rows each) in 161 communities
    nested_20k     20,000 rows, 4,000 mothers in 200 communities
    nested_50k     50,000 rows, 10,000 mothers in 500 communities
    nested_200k    200,000 rows, 40,000 mothers in 2,000 communities
    nested_1m      1,000,000 rows, 200,000 mothers in 10,000 communities
    nested4_200k   200,000 rows in 40,000 mothers in 2,000 communities in 100 regions
    crossed_50k    50,000 rows, 2,000 x 1,000 crossed levels
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402
from modeldata import model_data  # noqa: E402

from glmm_binomial.methods.laplace import fit_laplace  # noqa: E402

BETA = np.array([-0.5, 0.8, -0.4])


def _assign(rng: np.random.Generator, n_items: int, n_groups: int) -> np.ndarray:
    """Group of each item, every group present, otherwise uniform; sorted by group."""
    codes = rng.integers(0, n_groups, size=n_items)
    codes[rng.permutation(n_items)[:n_groups]] = np.arange(n_groups)
    return np.sort(codes)


def _frame(
    rng: np.random.Generator, groups: dict[str, np.ndarray], sds: dict[str, float]
) -> pd.DataFrame:
    n = next(iter(groups.values())).size
    x1 = rng.normal(size=n)
    x2 = rng.integers(0, 2, size=n).astype(np.float64)
    eta = BETA[0] + BETA[1] * x1 + BETA[2] * x2
    for name, codes in groups.items():
        eta += rng.normal(scale=sds[name], size=int(codes.max()) + 1)[codes]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    frame = pd.DataFrame({"y": y, "x1": x1, "x2": x2})
    for name, codes in groups.items():
        frame[name] = codes
    # Rows in random order: nothing may rely on sorted data.
    return frame.iloc[rng.permutation(n)].reset_index(drop=True)


SDS = {"region": 0.5, "comm": 0.7, "mom": 1.0, "a": 0.8, "b": 0.5}


def nested(seed: int, n: int, n_moms: int, n_comms: int, n_regions: int = 0) -> pd.DataFrame:
    """Rows in mothers in communities (in regions when n_regions > 0)."""
    rng = np.random.default_rng(seed)
    mom = _assign(rng, n, n_moms)
    comm_of_mom = _assign(rng, n_moms, n_comms)
    groups = {"comm": comm_of_mom[mom], "mom": mom}
    if n_regions:
        region_of_comm = _assign(rng, n_comms, n_regions)
        groups = {"region": region_of_comm[groups["comm"]], **groups}
    return _frame(rng, groups, SDS)


def small_3level(seed: int = 7) -> pd.DataFrame:
    """About 2,159 rows: 1,595 mothers with 1-3 rows each in 161 communities."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 2, 3], size=1595, p=[0.72, 0.21, 0.07])
    mom = np.repeat(np.arange(1595), sizes)
    comm_of_mom = _assign(rng, 1595, 161)
    return _frame(rng, {"comm": comm_of_mom[mom], "mom": mom}, SDS)


def crossed(seed: int, n: int, n_a: int, n_b: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # b drawn independently of a (a permuted assignment): fully crossed.
    a = _assign(rng, n, n_a)
    b = rng.permutation(_assign(rng, n, n_b))
    return _frame(rng, {"a": a, "b": b}, SDS)


def _case(name: str, load, groups: tuple[str, ...], big: bool) -> run.Case:
    terms = " + ".join(f"(1 | {g})" for g in groups)
    formula = f"y ~ x1 + x2 + {terms}"
    return run.Case(
        name,
        load,
        formula,
        formula,
        "y",
        "x1 + x2",
        [(g, ()) for g in groups],
        groups,
        big=big,
        subset=(lambda: load().iloc[:2000].reset_index(drop=True)) if big else None,
    )


CASES: dict[str, run.Case] = {
    "small_3level": _case("small_3level", small_3level, ("comm", "mom"), False),
    "nested_20k": _case(
        "nested_20k", lambda: nested(1, 20_000, 4_000, 200), ("comm", "mom"), False
    ),
    "nested_50k": _case(
        "nested_50k", lambda: nested(2, 50_000, 10_000, 500), ("comm", "mom"), True
    ),
    "nested_200k": _case(
        "nested_200k", lambda: nested(3, 200_000, 40_000, 2_000), ("comm", "mom"), True
    ),
    "nested_1m": _case(
        "nested_1m", lambda: nested(4, 1_000_000, 200_000, 10_000), ("comm", "mom"), True
    ),
    "nested4_200k": _case(
        "nested4_200k",
        lambda: nested(5, 200_000, 40_000, 2_000, 100),
        ("region", "comm", "mom"),
        True,
    ),
    "crossed_50k": _case("crossed_50k", lambda: crossed(6, 50_000, 2_000, 1_000), ("a", "b"), True),
}


def memory_child(case_name: str) -> None:
    """In a fresh process: peak RSS around one core fit (ru_maxrss, MB), tracemalloc's peak of
    a second fit (what the fit itself allocates, apart from building the data) and logLik."""
    import tracemalloc

    case = CASES[case_name]
    data = model_data(case.load(), case.response, case.fixed, case.blocks)
    before = run._max_rss_mb()
    fit = fit_laplace(data)
    after = run._max_rss_mb()
    tracemalloc.start()
    fit_laplace(data)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    record = {
        "rss_before_fit_mb": before,
        "rss_peak_mb": after,
        "traced_peak_of_fit_mb": traced / 2**20,
        "loglik": fit.loglik,
    }
    print(json.dumps(record))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["ours", "glmm", "mixedlm", "glmer", "glmmTMB"],
        choices=run.ENGINES,
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed fits on the small cases")
    parser.add_argument("--big-repeats", type=int, default=1, help="timed fits on the large cases")
    parser.add_argument(
        "--memory", nargs="*", default=None, help="our peak memory on these cases (none: all)"
    )
    parser.add_argument("--skip", nargs="*", default=[], help="engine:case pairs not to run")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    use_r = any(e in run.R_ENGINES for e in args.engines) and run.r_available()
    results: dict[str, list[run.Outcome]] = {}
    memory: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="glmm_multilevel_") as tmp:
        for case_name in args.cases:
            case = CASES[case_name]
            frame = case.load()
            repeats = args.big_repeats if case.big else args.repeats
            outcomes = []
            for engine in args.engines:
                if f"{engine}:{case_name}" in args.skip:
                    continue
                outcome = run.time_engine(engine, case, frame, repeats, Path(tmp), use_r)
                if outcome is not None:
                    outcomes.append(outcome)
            results[case_name] = outcomes
            if args.memory is not None and (not args.memory or case_name in args.memory):
                done = subprocess.run(
                    [sys.executable, __file__, "--memory-child", case_name],
                    capture_output=True,
                    text=True,
                )
                memory[case_name] = (
                    json.loads(done.stdout.strip().splitlines()[-1])
                    if done.returncode == 0
                    else {"error": done.stderr.strip()[-300:]}
                )
    print(
        f"glmm-binomial multilevel benchmark: {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; warm wall seconds (median)"
    )
    print(run.table(results))
    for case_name, record in memory.items():
        print(f"peak memory of our core fit on {case_name}: {json.dumps(record)}")


if __name__ == "__main__":
    main()
