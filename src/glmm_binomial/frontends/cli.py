"""Command line: fit a binomial GLMM to a CSV file (or a bundled dataset) and print the result.

glmm-binomial "cbind(incidence, size - incidence) ~ period + (1 | herd)" --dataset cbpp
glmm-binomial "y ~ x + (1 | g)" data.csv --method agq --n-agq 9 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import pandas as pd

from glmm_binomial import datasets
from glmm_binomial.api import METHODS, fit


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glmm-binomial",
        description="Fit a binomial GLMM (logit link) written in lme4's formula syntax.",
    )
    parser.add_argument("formula", help="lme4 formula, e.g. 'y ~ x + (1 | g)'")
    parser.add_argument("data", nargs="?", help="CSV file with a header row")
    parser.add_argument("--dataset", choices=datasets.names(), help="use a bundled dataset")
    parser.add_argument("--method", choices=METHODS, default="laplace")
    parser.add_argument("--n-agq", type=int, default=1, help="quadrature points (method agq)")
    parser.add_argument("--weights", help="column holding prior weights / trials")
    parser.add_argument("--offset", help="column holding an offset")
    parser.add_argument(
        "--factors",
        default="",
        help="comma-separated columns to read as labels (grouping columns always are)",
    )
    parser.add_argument("--conf-level", type=float, default=0.95)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    return parser


def _read(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    if args.dataset:
        return datasets.load(args.dataset), args.dataset
    if not args.data:
        raise ValueError("give a CSV file or --dataset NAME")
    labels = {c for c in args.factors.split(",") if c}
    try:
        frame = pd.read_csv(args.data, dtype={c: str for c in labels})
    except (OSError, pd.errors.ParserError) as exc:
        raise ValueError(f"cannot read {args.data}: {exc}") from None
    return frame, args.data


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `glmm-binomial` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        frame, name = _read(args)
        result = fit(
            args.formula,
            frame,
            method=args.method,
            n_agq=args.n_agq,
            weights=args.weights,
            offset=args.offset,
            conf_level=args.conf_level,
        )
    except ValueError as exc:
        print(f"glmm-binomial: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = {
            "formula": result.formula,
            "data": name,
            "method": result.method,
            "n_agq": result.n_agq,
            "nobs": result.nobs,
            "loglik": result.loglik,
            "aic": result.aic,
            "bic": result.bic,
            "converged": result.converged,
            "singular": result.singular,
            "fixed_effects": result.fixed_effects.reset_index().to_dict(orient="records"),
            "varcorr": result.varcorr.to_dict(orient="records"),
        }
        print(json.dumps(out, indent=1, default=float))
    else:
        print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
