"""Power by simulation (issue 23): speed against mixedlm's powerSim, and calibration.

    python bench/bench_power.py                          # speed and calibration, nsim 1000
    python bench/bench_power.py --parts speed --mixedlm-nsim 100
    python bench/bench_power.py --parts calibration --nsim 1000
    python bench/bench_power.py --parts side_by_side --rounds 3 --round-nsim 200

speed: `power_sim(fit, test="age", nsim)` on contraception `use ~ age + urban + livch +
(1 | district)` with n_jobs 1 and 2 (wall seconds, the same p-values bit for bit), and
mixedlm's `powerSim(glmer(...), test="age", nsim)` on the same model when mixedlm is installed
(`--mixedlm-nsim` fewer simulations for it: its time is then also given scaled to nsim).
calibration: the rejection rate at alpha 0.05 with the age effect set to 0 (Wald and likelihood
ratio), against the 95% binomial band of 0.05 for nsim simulations; and the power of the
fitted age effect. side_by_side: ours and mixedlm's powerSim alternating round by round (wall
and CPU ms a simulation, and their ratios).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from scipy import stats

import glmm_binomial as g

FORMULA = "use ~ age + urban + livch + (1 | district)"


def load() -> tuple[object, object]:
    data = g.datasets.load("contraception")
    return data, g.fit(FORMULA, data)


def speed(nsim: int, mixedlm_nsim: int | None) -> None:
    data, fit = load()
    g.power_sim(fit, test="age", nsim=4, seed=0)  # warm-up (imports, caches)
    results = {}
    for n_jobs in (1, 2):
        started = time.perf_counter()
        results[n_jobs] = g.power_sim(fit, test="age", nsim=nsim, seed=1, n_jobs=n_jobs)
        seconds = time.perf_counter() - started
        r = results[n_jobs]
        print(
            f"ours  n_jobs={n_jobs}: {seconds:7.2f} s for {nsim} simulations "
            f"({1000 * seconds / nsim:.1f} ms each); power {r.power:.3f} "
            f"[{r.ci_lower:.3f}, {r.ci_upper:.3f}], failed {r.n_failed}, singular {r.n_singular}"
        )
    same = np.array_equal(results[1].p_values, results[2].p_values, equal_nan=True)
    print(f"p-values bit-identical for n_jobs 1 and 2: {same}")
    try:
        import mixedlm
        from mixedlm.power import powerSim
    except ImportError:
        print("mixedlm: not installed")
        return
    n_peer = mixedlm_nsim or nsim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mixedlm.glmer(FORMULA, data, family=mixedlm.families.Binomial())
        powerSim(model, test="age", nsim=2, seed=0)
        started = time.perf_counter()
        peer = powerSim(model, test="age", nsim=n_peer, seed=1)
        seconds = time.perf_counter() - started
    scaled = seconds * nsim / n_peer
    print(
        f"mixedlm powerSim: {seconds:7.2f} s for {n_peer} simulations "
        f"({1000 * seconds / n_peer:.1f} ms each; {scaled:.1f} s scaled to {nsim}); "
        f"power {peer.power:.3f} [{peer.ci_lower:.3f}, {peer.ci_upper:.3f}], "
        f"failed {peer.n_failed}"
    )


def side_by_side(rounds: int, nsim: int, n_jobs: int) -> None:
    """Ours (with n_jobs processes) and mixedlm alternating, `nsim` simulations each per round,
    so that both see the same load: wall and CPU ms a simulation (this process's threads and,
    for ours, its worker processes), and the ratios."""
    import resource

    try:
        import mixedlm
        from mixedlm.power import powerSim
    except ImportError:
        print("mixedlm: not installed")
        return
    data, fit = load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mixedlm.glmer(FORMULA, data, family=mixedlm.families.Binomial())
        powerSim(model, test="age", nsim=2, seed=0)
    g.power_sim(fit, test="age", nsim=4, seed=0)

    def timed(run) -> tuple[float, float]:
        def used() -> float:
            own = resource.getrusage(resource.RUSAGE_SELF)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

        before = used()
        started = time.perf_counter()
        run()
        wall = time.perf_counter() - started
        cpu = used() - before
        return 1000 * wall / nsim, 1000 * cpu / nsim

    for round_ in range(1, rounds + 1):
        ours = timed(
            lambda r=round_: g.power_sim(fit, test="age", nsim=nsim, seed=r, n_jobs=n_jobs)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer = timed(lambda r=round_: powerSim(model, test="age", nsim=nsim, seed=r))
        print(
            f"round {round_} (load {os.getloadavg()[0]:.2f}), ms a simulation, wall / CPU: "
            f"ours {ours[0]:.1f} / {ours[1]:.1f}, mixedlm {peer[0]:.1f} / {peer[1]:.1f}; "
            f"ratio {peer[0] / ours[0]:.1f}x wall, {peer[1] / ours[1]:.1f}x CPU"
        )


def calibration(nsim: int, n_jobs: int) -> None:
    _, fit = load()
    low, high = stats.binom.ppf(0.025, nsim, 0.05), stats.binom.isf(0.025, nsim, 0.05)
    print(f"95% binomial band of 0.05 with {nsim} simulations: [{low / nsim}, {high / nsim}]")
    for method in ("wald", "lrt"):
        started = time.perf_counter()
        r = g.power_sim(
            fit, test="age", nsim=nsim, seed=11, effect={"age": 0.0}, method=method, n_jobs=n_jobs
        )
        seconds = time.perf_counter() - started
        inside = low <= r.n_significant <= high
        ks = stats.kstest(r.p_values[~np.isnan(r.p_values)], "uniform").pvalue
        print(
            f"{method:4s} age = 0: rejection rate {r.power:.4f} ({r.n_significant}/{r.n_valid}) "
            f"{'inside' if inside else 'OUTSIDE'} the band; KS p of the p-values {ks:.3f}; "
            f"failed {r.n_failed}, singular {r.n_singular}; {seconds:.1f} s"
        )
    for method in ("wald", "lrt"):
        r = g.power_sim(fit, test="age", nsim=nsim, seed=12, method=method, n_jobs=n_jobs)
        print(
            f"{method:4s} age = {fit.params['age']:.4f} (fitted): power {r.power:.3f} "
            f"[{r.ci_lower:.3f}, {r.ci_upper:.3f}]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["speed", "calibration"])
    parser.add_argument("--nsim", type=int, default=1000)
    parser.add_argument("--mixedlm-nsim", type=int, default=None)
    parser.add_argument(
        "--n-jobs", type=int, default=2, help="for the calibration and side_by_side runs"
    )
    parser.add_argument("--rounds", type=int, default=3, help="of the side_by_side part")
    parser.add_argument("--round-nsim", type=int, default=200, help="simulations per round")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    if "speed" in args.parts:
        speed(args.nsim, args.mixedlm_nsim)
    if "side_by_side" in args.parts:
        side_by_side(args.rounds, args.round_nsim, args.n_jobs)
    if "calibration" in args.parts:
        calibration(args.nsim, args.n_jobs)


if __name__ == "__main__":
    main()
