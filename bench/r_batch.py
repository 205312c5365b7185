"""One R process for a sweep's cases: the manifest written as JSON, an R script run on it, its
JSON lines read back (bench/against_r_emmeans.py, bench/against_r_r2.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def sweep_args(parser: Any, directory: str) -> None:
    """The options every such sweep takes: --start, --count and --dir (default `directory`)."""
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=Path(directory))


def case_csv(directory: Path, seed: int, frame: Any) -> str:
    """Write a case's table where R reads it (directory/case_SEED.csv); its path."""
    csv = directory / f"case_{seed}.csv"
    frame.to_csv(csv, index=False)
    return str(csv)


def r_records(script: Path, manifest: list[dict[str, Any]], directory: Path, start: int) -> dict:
    """Run `Rscript script MANIFEST OUT` on `manifest` (written to directory) and return its
    output's records (one JSON object a line) by their "name"."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / f"manifest_{start}.json"
    manifest_path.write_text(json.dumps(manifest))
    out_path = directory / f"r_{start}.jsonl"
    subprocess.run(["Rscript", str(script), str(manifest_path), str(out_path)], check=True)
    records = {}
    for line in out_path.read_text().splitlines():
        record = json.loads(line)
        records[record["name"]] = record
    return records
