"""The same fits on two versions of the package, side by side (issue 17: the redesign must not
cost speed or change an optimum).

    python bench/bench_before_after.py                     # before = 5923094, after = this tree
    python bench/bench_before_after.py --before REV --rounds 5 --repeats 5

The `before` revision is checked out (git worktree) into a temporary folder; each round runs
one subprocess per version, alternating which goes first, and each subprocess fits every case
once untimed (imports, caches) and then `repeats` times. The table shows each version's median
CPU time (process time, BLAS on one thread: on a shared machine it varies far less than wall
time, which other processes' load inflates at random) over all its timed fits, the ratio
before / after (above 1: faster now), the largest difference in deviance between the two and
each version's peak memory (ru_maxrss of the subprocess, so imports included). Data: the
bundled cbpp, contraception and VerbAgg, and the nested and crossed simulations of
bench/multilevel.py (made by this tree's bench/ for both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "cbpp_laplace": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", {}),
    "cbpp_agq25": (
        "cbpp",
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        {"method": "agq", "n_agq": 25},
    ),
    "contraception_intercept": (
        "contraception",
        "use ~ age + I(age**2) + urban + livch + (1 | district)",
        {},
    ),
    "contraception_slope": (
        "contraception",
        "use ~ age + I(age**2) + urban + livch + (1 + urban | district)",
        {},
    ),
    "verbagg_crossed": (
        "verbagg",
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        {},
    ),
    # bench/multilevel.py's simulations (made by this tree's bench/ for both versions)
    "small_3level": ("small_3level()", "y ~ x1 + x2 + (1 | comm) + (1 | mom)", {}),
    "nested_20k": ("nested(1, 20_000, 4_000, 200)", "y ~ x1 + x2 + (1 | comm) + (1 | mom)", {}),
    "crossed_50k": ("crossed(6, 50_000, 2_000, 1_000)", "y ~ x1 + x2 + (1 | a) + (1 | b)", {}),
}

WORKER = r"""
import json, resource, sys, time
import pandas as pd
import glmm_binomial as g
from glmm_binomial.datasets import load
cases = json.loads(sys.argv[1]); repeats = int(sys.argv[2])
out = {}
for name, (dataset, formula, kwargs) in cases.items():
    data = pd.read_pickle(dataset) if dataset.endswith(".pkl") else load(dataset)
    result = g.fit(formula, data, **kwargs)
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        result = g.fit(formula, data, **kwargs)
        times.append(time.process_time() - t0)
    out[name] = {"times": times, "deviance": -2 * float(result.llf)}
out["_file"] = g.__file__
out["_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run(src: Path, cases: dict, repeats: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(cases), str(repeats)],
        env={
            "PYTHONPATH": str(src),
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def simulated(cases: dict, folder: Path) -> dict:
    """The cases with bench/multilevel.py's simulations made once here and stored as pickles
    (the workers of either version read the same rows)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import multilevel

    out = {}
    for name, (dataset, formula, kwargs) in cases.items():
        if "(" in dataset:
            path = folder / f"{name}.pkl"
            eval(dataset, vars(multilevel)).to_pickle(path)  # noqa: S307 - our own constants
            dataset = str(path)
        out[name] = (dataset, formula, kwargs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="5923094")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    cases = {name: CASES[name] for name in args.cases}
    with tempfile.TemporaryDirectory() as folder:
        cases = simulated(cases, Path(folder))
        old = Path(folder) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.before],
            check=True,
            capture_output=True,
        )
        try:
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for r in range(args.rounds):
                order = [("before", old / "src"), ("after", ROOT / "src")]
                for label, src in order if r % 2 == 0 else order[::-1]:
                    runs[label].append(run(src, cases, args.repeats))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=True
            )
    print(f"before = {args.before}, after = this tree; {args.rounds} rounds x {args.repeats} fits")
    head = f"{'case':26s} {'before cpu ms':>13s} {'after cpu ms':>13s}"
    print(f"{head} {'ratio':>7s} {'max |d dev|':>12s}")
    for name in cases:
        med = {
            label: 1000 * statistics.median(t for one in runs[label] for t in one[name]["times"])
            for label in runs
        }
        dev = max(
            abs(a[name]["deviance"] - b[name]["deviance"])
            for a in runs["before"]
            for b in runs["after"]
        )
        ratio = med["before"] / med["after"]
        print(f"{name:26s} {med['before']:13.1f} {med['after']:13.1f} {ratio:7.2f} {dev:12.2e}")
    for label in runs:
        print(f"{label}: {runs[label][0]['_file']}")
        peak = max(one["_peak_mb"] for one in runs[label])
        print(f"peak memory {label}: {peak:.0f} MB")


if __name__ == "__main__":
    main()
