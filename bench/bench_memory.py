"""Peak memory of fits and spreadsheet calls on large quasi-separated Bernoulli data (issue 18).

    python bench/bench_memory.py [--cases fit sheet scaling] [--rows 200000]
                                 [--scaling-rows 10000 100000 1000000] [--json FILE]

Each case runs in a fresh child process (this script with ``--child``), which reports its own
peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after the data are built
and after the call, and its wall time. Data (seed 1): x ~ N(0, 1), a dummy d with P(d = 1) = 0.1,
groups g of about 200 rows each with N(0, 0.5^2) intercepts, y ~ Bernoulli(expit(-0.5 + x + b_g))
and then y = 1 wherever d = 1: quasi-complete separation by d (no finite ML estimate for d).

- fit: ``glmm_binomial.fit("y ~ x + d + (1 | g)")`` with laplace, agq (n_agq = 5) and vb;
- sheet: ``GLMM_BINOMIAL(y, [x, d], g)`` under vb and laplace, ranges sent as lists of row lists;
- scaling: the laplace fit at each of ``--scaling-rows``, to show peak memory linear in rows.

Before issue 18 the separation check built an n x n identity (8 n^2 bytes: 320 GB at 200,000
rows), so these calls ran out of memory. Not a test: numbers for the notes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

SRC = str(Path(__file__).resolve().parents[1] / "src")


def megabytes_peak() -> float:
    """Peak RSS of this process so far, in MB (ru_maxrss is in kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def simulate(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    d = (rng.random(n) < 0.1).astype(np.float64)
    g = rng.integers(0, max(n // 200, 2), n)
    b = 0.5 * rng.normal(size=int(g.max()) + 1)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(0.5 - x - b[g]))).astype(np.int64)
    y[d == 1] = 1
    return {"y": y, "x": x, "d": d, "g": g}


def child(kind: str, n: int, method: str) -> dict[str, object]:
    """Run one case here and return its record (called in the child process)."""
    import glmm_binomial

    columns = simulate(n)
    if kind == "sheet":
        arguments = (
            columns["y"].reshape(-1, 1).tolist(),
            np.column_stack([columns["x"], columns["d"]]).tolist(),
            columns["g"].reshape(-1, 1).tolist(),
        )
    else:
        import pandas as pd

        frame = pd.DataFrame(columns)
    before = megabytes_peak()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "sheet":
            table = glmm_binomial.GLMM_BINOMIAL(*arguments, method=method)
            if isinstance(table, str):
                raise SystemExit(f"the call returned a message: {table}")
            said = [row[1] for row in table if row[0] == "warning"]
            converged = next(row[1] for row in table if row[0] == "converged")
        else:
            result = glmm_binomial.fit(
                "y ~ x + d + (1 | g)", frame, method=method, n_agq=5 if method == "agq" else 1
            )
            said = [str(w) for w in result.warnings]
            converged = bool(result.converged)
    seconds = time.perf_counter() - start
    return {
        "case": kind,
        "method": method,
        "rows": n,
        "seconds": round(seconds, 2),
        "peak_mb_before_call": round(before, 1),
        "peak_mb": round(megabytes_peak(), 1),
        "converged": converged,
        "separation_reported": any("separation" in text for text in said),
    }


def run_child(kind: str, n: int, method: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": SRC}
    command = [sys.executable, __file__, "--child", kind, str(n), method]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"case": kind, "method": method, "rows": n, "error": done.stderr.strip()[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["fit", "sheet", "scaling"])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--scaling-rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--json", help="also write the records to this file")
    parser.add_argument(
        "--child", nargs=3, metavar=("KIND", "ROWS", "METHOD"), help=argparse.SUPPRESS
    )
    options = parser.parse_args()
    if options.child:
        kind, rows, method = options.child
        print(json.dumps(child(kind, int(rows), method)))
        return
    print(f"load average {os.getloadavg()[0]:.2f}; peak RSS per child process, MB")
    plan: list[tuple[str, int, str]] = []
    if "fit" in options.cases:
        plan += [("fit", options.rows, m) for m in ("laplace", "agq", "vb")]
    if "sheet" in options.cases:
        plan += [("sheet", options.rows, m) for m in ("vb", "laplace")]
    if "scaling" in options.cases:
        plan += [("fit", n, "laplace") for n in options.scaling_rows]
    records = []
    for kind, n, method in plan:
        record = run_child(kind, n, method)
        records.append(record)
        if "error" in record:
            print(f"{kind:6} {method:8} {n:>9,} rows  FAILED: {record['error']}")
            continue
        print(
            f"{kind:6} {method:8} {n:>9,} rows  peak {record['peak_mb']:8.1f} MB "
            f"(after the data: {record['peak_mb_before_call']:7.1f})  {record['seconds']:7.2f} s  "
            f"separation reported: {record['separation_reported']}"
        )
    scaling = [
        r for r in records if r["case"] == "fit" and r["method"] == "laplace" and "error" not in r
    ]
    scaling = sorted({int(r["rows"]): r for r in scaling}.values(), key=lambda r: r["rows"])
    if len(scaling) >= 2:
        print("laplace fit, peak MB growth per 1,000 rows between sizes:")
        for a, b in zip(scaling, scaling[1:], strict=False):
            per = (b["peak_mb"] - a["peak_mb"]) / ((b["rows"] - a["rows"]) / 1000)
            print(f"  {a['rows']:>9,} -> {b['rows']:>9,}: {per:.3f} MB")
    if options.json:
        Path(options.json).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
