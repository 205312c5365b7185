"""Write a large simulated data set for y ~ x + (1 + x | g) to Parquet, chunk by chunk.

Never holds more than one chunk of rows in memory (plus the n_groups x 2 random effects). Each
chunk is one Parquet file, drawn from its own stream: numpy's SeedSequence(seed) spawns one
child for the random effects and one per chunk, so the files are the same whatever order or
machine writes them. Rows within a chunk are in random group order (the fit must shuffle).

    python bench/parquet_data.py OUTDIR --rows 10000000 --groups 100000 --chunk-rows 1000000

True values: beta = (-0.5, 0.8); random intercept SD 0.8, random slope SD 0.4, correlation 0.3;
with --subgroups K, K subgroups h per group with intercepts of SD 0.5 (h nested in g).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

BETA = np.array([-0.5, 0.8])
SDS = np.array([0.8, 0.4])
CORRELATION = 0.3
NESTED_SD = 0.5


def random_effects(seed_sequence: np.random.SeedSequence, n_groups: int) -> np.ndarray:
    """n_groups x 2 (intercept, slope) draws with the true covariance."""
    cov = np.diag(SDS) @ np.array([[1.0, CORRELATION], [CORRELATION, 1.0]]) @ np.diag(SDS)
    rng = np.random.default_rng(seed_sequence)
    return rng.normal(size=(n_groups, 2)) @ np.linalg.cholesky(cov).T


def chunk(
    seed_sequence: np.random.SeedSequence,
    rows: int,
    effects: np.ndarray,
    nested: np.ndarray | None = None,
) -> pd.DataFrame:
    """One chunk of rows: group g uniform over the groups, x standard normal, y Bernoulli.
    With nested (n_groups x K intercepts of subgroups), also h: a subgroup of g labelled
    g * K + j (a factor nested in g, for (1 | g) + (1 | h) or, with labels j, (1 | g/h))."""
    rng = np.random.default_rng(seed_sequence)
    g = rng.integers(0, effects.shape[0], size=rows).astype(np.int32)
    x = rng.normal(size=rows)
    eta = BETA[0] + effects[g, 0] + (BETA[1] + effects[g, 1]) * x
    columns: dict[str, np.ndarray] = {}
    if nested is not None:
        # Drawn after y's uniforms would change the data without subgroups: drawn from a
        # stream of its own instead.
        sub = np.random.default_rng(seed_sequence.spawn(1)[0])
        j = sub.integers(0, nested.shape[1], size=rows)
        eta = eta + nested[g, j]
        columns["h"] = (g.astype(np.int64) * nested.shape[1] + j).astype(np.int64)
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    return pd.DataFrame({"y": y, "x": x, "g": g, **columns})


def write(
    outdir: Path,
    rows: int,
    groups: int,
    chunk_rows: int,
    seed: int = 20261129,
    subgroups: int = 0,
) -> list[Path]:
    """Write ceil(rows / chunk_rows) files part-NNNNN.parquet into outdir; return their paths.
    subgroups > 0 adds h, that many subgroups per group with intercepts of SD NESTED_SD."""
    outdir.mkdir(parents=True, exist_ok=True)
    n_chunks = -(-rows // chunk_rows)
    children = np.random.SeedSequence(seed).spawn(n_chunks + 1)
    effects = random_effects(children[0], groups)
    nested = None
    if subgroups > 0:
        stream = np.random.default_rng(children[0].spawn(1)[0])
        nested = stream.normal(scale=NESTED_SD, size=(groups, subgroups))
    paths = []
    for i in range(n_chunks):
        size = min(chunk_rows, rows - i * chunk_rows)
        path = outdir / f"part-{i:05d}.parquet"
        chunk(children[i + 1], size, effects, nested).to_parquet(path, index=False)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument(
        "--subgroups", type=int, default=0, help="add h: this many subgroups nested in each g"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    paths = write(args.outdir, args.rows, args.groups, args.chunk_rows, args.seed, args.subgroups)
    size = sum(p.stat().st_size for p in paths)
    print(
        f"wrote {args.rows:,} rows, {args.groups:,} groups in {len(paths)} files "
        f"({size / 1e6:.0f} MB) to {args.outdir} in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
