"""Speed of the links against the logit link on the large simulated cases (issue 20).

    python bench/bench_families_speed.py                      # both cases, 3 repeats
    python bench/bench_families_speed.py --cases sim_slope_100k --repeats 5 --links probit

Each case (bench/simulate.py: sim_slope_100k, y ~ x1 + x2 + (1 + x1 | g), 100,000 rows;
sim_intercept_1m, y ~ x1 + x2 + (1 | g), 1,000,000 rows) is fitted by the Laplace method with
each link in turn, the links interleaved within every repeat so that the load of the machine
falls on all of them alike, after one untimed warm-up fit per link. The table shows the
median wall time, the ratio to the logit's median, the optimizer's evaluations and PIRLS
iterations, and the log-likelihood. The data are simulated from a logit model: the other links
fit them as well as they can (the timing is what is measured).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import simulate  # noqa: E402

import glmm_binomial  # noqa: E402

CASES = ("sim_slope_100k", "sim_intercept_1m")
LINKS = ("logit", "probit", "cloglog")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--links", nargs="*", default=list(LINKS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    links = ["logit", *[link for link in args.links if link != "logit"]]
    warnings.simplefilter("ignore")
    print("| case | link | median s | ratio to logit | evaluations | PIRLS iterations | logLik |")
    print("|---|---|---|---|---|---|---|")
    for name in args.cases:
        case = simulate.CASES[name]
        frame = case.make()
        seconds: dict[str, list[float]] = {link: [] for link in links}
        results = {}
        for link in links:  # warm-up
            results[link] = glmm_binomial.fit(case.formula, frame, link=link)
        for _ in range(args.repeats):
            for link in links:
                started = time.perf_counter()
                results[link] = glmm_binomial.fit(case.formula, frame, link=link)
                seconds[link].append(time.perf_counter() - started)
        base = statistics.median(seconds["logit"])
        for link in links:
            median = statistics.median(seconds[link])
            summary = results[link].opt_summary
            print(
                f"| {name} | {link} | {median:.2f} | {median / base:.2f} | "
                f"{summary.evaluations} | {summary.pirls_iterations} | "
                f"{results[link].loglik:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
