"""The first call in a fresh Python (issue 23): imports and first fits, wall and CPU seconds.

    python bench/bench_import.py                          # this checkout's src
    python bench/bench_import.py --compare /work/main/src # another checkout side by side
    python bench/bench_import.py --repeats 9 --cases sheet fit_csv

Each case runs in a new interpreter (`python -c`, PYTHONPATH the src directory), `--repeats`
times, the checkouts alternating so that both see the same load; the table gives the median
wall seconds of the whole process and the median CPU seconds (user + system of the child) and
what the process loaded (pandas, formulaic, scipy.stats, scipy.optimize). `-X importtime`
of a case: `--importtime CASE` prints the 25 largest cumulative import times. The cases
floor_sheet and floor_csv import only the other packages that sheet and fit_csv load: the
part of the first call that is the machine's and those packages' (scipy 1.17's vendored
array-api-compat, for one, imports numpy.testing, numpy.f2py and numpy.ma with any scipy
subpackage).

Each src directory is byte-compiled first (``compileall``, with PYTHONDONTWRITEBYTECODE
lifted), as pip does for an installed wheel: a module edited since its last compilation is
otherwise compiled again in every process (and not written where PYTHONDONTWRITEBYTECODE is
set), which added 0.05-0.15 s to the first call after a day's edits.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
CSV = SRC / "glmm_binomial" / "data" / "contraception.csv"

CASES = {
    "import": "import glmm_binomial",
    "import_api": "import glmm_binomial.api",
    # The contract's first example (GLMM_BINOMIAL.md), default method "vb".
    "sheet": (
        "import glmm_binomial as g\n"
        "g.GLMM_BINOMIAL([[0], [1], [0], [1], [1], [0]], [[1], [2], [1.5], [2.5], [3], [1.2]], "
        "[[1], [1], [2], [2], [3], [3]])"
    ),
    "sheet_laplace": (
        "import glmm_binomial as g\n"
        "g.GLMM_BINOMIAL([[0], [1], [0], [1], [1], [0]], [[1], [2], [1.5], [2.5], [3], [1.2]], "
        "[[1], [1], [2], [2], [3], [3]], method='laplace')"
    ),
    "fit_csv": (
        "import pandas as pd\nimport glmm_binomial as g\n"
        f"d = pd.read_csv({str(CSV)!r})\n"
        "g.fit('use ~ age + urban + livch + (1 | district)', d).summary()"
    ),
    # The floors: the other packages' imports that the two first calls above need (what the
    # process loads of them, measured alone), on which no change of ours can gain.
    "floor_sheet": "import numpy, scipy.linalg, scipy.sparse, scipy.optimize",
    "floor_csv": "import numpy, pandas, scipy.linalg, scipy.sparse, formulaic",
}

PROBE = (
    "\nimport sys\nprint(' '.join(m for m in ('pandas', 'formulaic', 'scipy.stats', "
    "'scipy.optimize') if m in sys.modules))"
)


def compile_sources(src: Path) -> None:
    """Byte-compile src's modules (what an installed wheel has)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], env=env, check=True)


def run(code: str, src: Path) -> tuple[float, float, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code + PROBE], capture_output=True, text=True, env=env, check=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def importtime(code: str, src: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env
    )
    rows = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line[12:].split("|"))
            if cumulative.isdigit():
                rows.append((int(cumulative), name))
    for cumulative, name in sorted(rows, reverse=True)[:25]:
        print(f"{cumulative / 1e6:8.3f} s  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compare", type=Path, default=None, help="another src directory")
    parser.add_argument("--importtime", choices=list(CASES), default=None)
    args = parser.parse_args()
    sources = {"this": SRC}
    if args.compare is not None:
        sources["other"] = args.compare.resolve()
    for src in sources.values():
        compile_sources(src)
    if args.importtime:
        for label, src in sources.items():
            print(f"-X importtime {args.importtime} ({label}: {src})")
            importtime(CASES[args.importtime], src)
        return
    print(f"load average {os.getloadavg()[0]:.2f}; median of {args.repeats}; {sources}")
    for case in args.cases:
        results: dict[str, list[tuple[float, float, str]]] = {label: [] for label in sources}
        for src in sources.values():
            run(CASES[case], src)  # warm the file cache
        for _ in range(args.repeats):
            for label, src in sources.items():
                results[label].append(run(CASES[case], src))
        for label, rows in results.items():
            wall = statistics.median(r[0] for r in rows)
            cpu = statistics.median(r[1] for r in rows)
            print(
                f"{case:14s} {label:5s} wall {wall:6.3f} s  cpu {cpu:6.3f} s  loaded: {rows[-1][2]}"
            )


if __name__ == "__main__":
    main()
