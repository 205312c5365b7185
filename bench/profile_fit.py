"""Where the time of our fit goes: cProfile of one case, with the optimizer's counts.

    python bench/profile_fit.py contraception_intercept verbagg_crossed --top 25
    python bench/profile_fit.py sim_intercept_1m --front-end  # formula front end included

Prints, per case: the wall time of the formula/design step and of the core fit, the counts
from OptSummary (outer iterations, deviance+gradient evaluations, PIRLS iterations), and the
functions with the most own time (cProfile tottime) and cumulative time for the core stages.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from modeldata import model_data  # noqa: E402
from run import CASES  # noqa: E402

import glmm_binomial  # noqa: E402
from glmm_binomial.methods.laplace import fit_laplace  # noqa: E402

# Core stages reported by cumulative time (function names in src/glmm_binomial).
STAGES = (
    "minimize_deviance",
    "glm_start",
    "gradient_hessian",
    "deviance_and_gradient",
    "find_mode",
    "factorize",
    "solve",
    "transpose_times",
    "times",
    "z_lambda",
    "_penalized_deviance",
    "gradient_at",
    "row_inverse_products",
    "selected_inverse",
    "finish_fit",
    "conditional_effects",
    "model_data",
    "build_model_data",
    "fit",
)


def profile_case(name: str, top: int, front_end: bool) -> None:
    case = CASES[name]
    frame = case.load()
    started = time.perf_counter()
    data = model_data(frame, case.response, case.fixed, case.blocks)
    design_seconds = time.perf_counter() - started
    fit_laplace(data)  # warm-up
    started = time.perf_counter()
    out = fit_laplace(data)
    fit_seconds = time.perf_counter() - started
    s = out.opt_summary
    print(f"== {name}: design {design_seconds:.4f} s, core fit {fit_seconds:.4f} s")
    print(
        f"   outer iterations {s.iterations}, evaluations {s.evaluations}, "
        f"gradients {s.gradient_evaluations}, PIRLS iterations {s.pirls_iterations}, "
        f"loglik {out.loglik:.6f}"
    )
    if front_end and hasattr(glmm_binomial, "fit"):
        glmm_binomial.fit(case.formula, frame)
        started = time.perf_counter()
        glmm_binomial.fit(case.formula, frame)
        print(
            f"   glmm_binomial.fit (formula + fit + result): {time.perf_counter() - started:.4f} s"
        )
    profiler = cProfile.Profile()
    profiler.enable()
    if front_end and hasattr(glmm_binomial, "fit"):
        glmm_binomial.fit(case.formula, frame)
    else:
        fit_laplace(data)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"   profiled total {total:.4f} s; cumulative time of the core stages:")
    seen = set()
    for (filename, _, function), (_, ncalls, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if function in STAGES and "glmm_binomial" in filename or function == "model_data":
            key = (Path(filename).name, function)
            if key in seen:
                continue
            seen.add(key)
            print(f"     {key[0]:>14}:{function:<24} calls {ncalls:>6}  cum {cumtime:8.4f} s")
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(top)
    print("   top functions by own time:")
    lines = buffer.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    for line in lines[start : start + top + 1]:
        print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", nargs="+", choices=list(CASES))
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--front-end", action="store_true")
    args = parser.parse_args()
    for name in args.cases:
        profile_case(name, args.top, args.front_end)


if __name__ == "__main__":
    main()
