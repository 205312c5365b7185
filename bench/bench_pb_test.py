"""Calibration of the parametric bootstrap likelihood-ratio test (pb_test) against the chi-square
on data simulated under the smaller model.

    python bench/bench_pb_test.py --sets 100 --nsim 99

cbpp's design (56 rows, 15 herds): data sets simulated from `~ 1 + (1 | herd)` at its estimates,
each tested for `period` (3 df) by the chi-square and by pb_test; the share of p-values below
0.05 and 0.10 (nominal 0.05, 0.10) and the Kolmogorov-Smirnov p-value of their uniformity.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy import stats

import glmm_binomial as g

RESPONSE = "cbind(incidence, size - incidence)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=100)
    parser.add_argument("--nsim", type=int, default=99)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    data = g.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = g.fit(f"{RESPONSE} ~ 1 + (1 | herd)", data)
    responses = small.simulate(args.sets, seed=args.seed)
    chisq, boot = [], []
    started = time.perf_counter()
    for i in range(args.sets):
        frame = data.assign(incidence=responses[:, i].astype(int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = g.fit(f"{RESPONSE} ~ 1 + (1 | herd)", frame)
            large = g.fit(f"{RESPONSE} ~ period + (1 | herd)", frame)
            test = g.pb_test(large, s, nsim=args.nsim, seed=args.seed * 100_003 + i)
        chisq.append(test.p_chisq)
        boot.append(test.p_value)
    seconds = time.perf_counter() - started
    print(f"{args.sets} data sets x {args.nsim} simulations in {seconds:.0f} s")
    for name, values in (("chi-square", np.array(chisq)), ("bootstrap", np.array(boot))):
        print(
            f"{name:10}  p < 0.05: {np.mean(values < 0.05):.3f}  p < 0.10: "
            f"{np.mean(values < 0.10):.3f}  KS p: {stats.kstest(values, 'uniform').pvalue:.3f}"
        )


if __name__ == "__main__":
    main()
