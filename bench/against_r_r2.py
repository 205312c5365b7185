"""Random designs against R's performance: Nakagawa's R2 and the ICC equal its.

    python bench/against_r_r2.py --start 0 --count 40 --dir /tmp/against_r_r2

Each seed draws a table (factors A and B, numeric x, a positive z, groups g with h crossed
with them, and hn nested in g) and one of FIXED's fixed parts with one of RANDOM's random
parts. R (bench/against_r_r2.R: lme4 1.1-31, performance 0.10.2, insight 0.19.0) fits glmer and
gives r2_nakagawa, icc and get_variance's var.fixed and var.random; we fit the same formula and
take r2_nakagawa, icc and the same variances. Both fits are at the optimum up to glmer's
stopping short, so a case is compared when our logLik is within --loglik-tol of glmer's:

- a finding when a number differs by more than --rtol (relative, at least --atol absolute)
  and the check at glmer's estimates (below) does not explain it (there it is counted apart as
  the fits' difference), when one side gives a number where the other gives none
  (performance's NA for a singular fit is our NaN), or when we raise anything;
- counted apart: fits singular by insight's rule (a relative covariance factor's diagonal
  entry below 1e-5, performance's check_singularity) on one side only, where each search
  stopped at its own distance from a boundary optimum (performance then computes R2 from a
  variance of 1e-10 or so, we give NaN, or the reverse); cases where the fits differ by more
  than --loglik-tol (listed: glmer stopping short, or another optimum); and KNOWN: insight
  0.19.0 leaves the slope variance of an uncorrelated term `(1 + x || g)` (its terms g and
  g.1) out of var.random, which is then the intercepts' alone, where we include it.

Besides, at glmer's own estimates (its fixef and VarCorr, where its terms line up with ours):
our variance_components must give performance's var.fixed and var.random to --exact-rtol
whatever our fit found (the formulas alone); a difference is a finding.

Exit status 1 when any case is a finding.
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from r_batch import case_csv, r_records, sweep_args  # noqa: E402

import glmm_binomial as g  # noqa: E402
from glmm_binomial.results.variance_decomposition import variance_components  # noqa: E402

FIXED = [
    "A + x",
    "A * x",
    "log(z) + B",
    "A + poly(x, 2)",
    "A + x + offset(log(z))",
    "A * B + scale(x)",
    "x + I(x^2) + z",
]
RANDOM = [
    "(1 | g)",
    "(1 + x | g)",
    "(1 | g) + (1 | h)",
    "(1 | g/hn)",
    "(1 + x || g)",
    "(0 + x | g) + (1 | h)",
]


def case(seed: int) -> tuple[pd.DataFrame, str]:
    rng = np.random.default_rng([seed, 2026_12_07, 2])
    n_g, per = int(rng.integers(12, 30)), int(rng.integers(8, 16))
    n = n_g * per
    g_codes = np.repeat(np.arange(n_g), per)
    h_codes = rng.integers(0, 6, size=n)
    hn_codes = rng.integers(0, 3, size=n)
    a = rng.integers(0, 3, size=n)
    b = rng.integers(0, 2, size=n)
    x = rng.normal(size=n)
    z = np.exp(0.4 * rng.normal(size=n))
    sd_g, sd_slope, sd_h = rng.uniform(0.2, 1.5), rng.uniform(0.0, 0.8), rng.uniform(0.0, 1.0)
    eta = (
        -0.4
        + 0.5 * (a == 1)
        - 0.3 * (b == 1)
        + 0.6 * x
        + sd_g * rng.normal(size=n_g)[g_codes]
        + sd_slope * rng.normal(size=n_g)[g_codes] * x
        + sd_h * rng.normal(size=6)[h_codes]
        + 0.5 * rng.normal(size=(n_g, 3))[g_codes, hn_codes]
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    frame = pd.DataFrame(
        {
            "y": y,
            "A": [f"a{v}" for v in a],
            "B": [f"b{v}" for v in b],
            "x": x.round(6),
            "z": z.round(6),
            "g": [f"G{v:02d}" for v in g_codes],
            "h": [f"H{v}" for v in h_codes],
            "hn": [f"N{v}" for v in hn_codes],
        }
    )
    formula = (
        f"y ~ {FIXED[int(rng.integers(len(FIXED)))]} + {RANDOM[int(rng.integers(len(RANDOM)))]}"
    )
    return frame, formula


def at_glmer(result: Any, theirs: dict[str, Any]) -> tuple[float, float] | None:
    """Our var.fixed and var.random at glmer's estimates, or None where its terms or columns do
    not line up with ours (names, order and sizes)."""
    if list(result.params.index) != theirs.get("fixef_names"):
        return None
    blocks = result.model.blocks
    # lme4 names the second term of (1 + x || g) g.1, and orders terms by their levels: match
    # by name, in order of appearance.
    names = [re.sub(r"\.\d+$", "", str(n)) for n in theirs.get("vc_names", [])]
    matrices = theirs["vc"]
    matrices = list(matrices.values()) if isinstance(matrices, dict) else matrices
    pending = list(zip(names, matrices, strict=True))
    covariances = []
    for block in blocks:
        found = next((i for i, (name, _) in enumerate(pending) if name == block.group), None)
        if found is None:
            return None
        covariances.append(np.atleast_2d(np.array(pending.pop(found)[1], dtype=float)))
    if pending:
        return None
    if any(c.shape != (b.k, b.k) for c, b in zip(covariances, blocks, strict=True)):
        return None
    v = variance_components(
        result.model, np.array(theirs["fixef"], dtype=float), covariances, singular=False
    )
    return v.fixed, v.random


def ours(frame: pd.DataFrame, formula: str) -> tuple[dict[str, Any], Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit(formula, frame)
        r2 = g.r2_nakagawa(result)
        icc = g.icc(result)
    return result, {
        "logLik": float(result.loglik),
        "singular": bool(result.singular),
        "r2_marginal": r2.marginal,
        "r2_conditional": r2.conditional,
        "icc_adjusted": icc.adjusted,
        "icc_unadjusted": icc.unadjusted,
        "var_fixed": r2.components.fixed,
        "var_random": r2.components.random,
        "insight_singular": bool(r2.components.singular),
    }


KEYS = (
    "r2_marginal",
    "r2_conditional",
    "icc_adjusted",
    "icc_unadjusted",
    "var_fixed",
    "var_random",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sweep_args(parser, "/tmp/against_r_r2")
    parser.add_argument("--rtol", type=float, default=5e-3)
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument("--loglik-tol", type=float, default=1e-3)
    parser.add_argument("--exact-rtol", type=float, default=1e-8)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    seeds = range(args.start, args.start + args.count)
    cases = {seed: case(seed) for seed in seeds}
    manifest = [
        {"name": str(seed), "csv": case_csv(args.dir, seed, frame), "formula": formula}
        for seed, (frame, formula) in cases.items()
    ]
    theirs_by = r_records(HERE / "against_r_r2.R", manifest, args.dir, args.start)
    findings, apart, agreed, exact_checked, unmatched = [], [], 0, 0, 0
    for seed, (frame, formula) in cases.items():
        theirs = theirs_by[str(seed)]
        where = f"{seed} {formula}"
        try:
            result, mine = ours(frame, formula)
        except Exception:
            findings.append(f"{where}: raised\n{traceback.format_exc()}")
            continue
        if "error" in theirs:
            apart.append(f"{where}: glmer failed ({theirs['error'][:80]})")
            continue
        exact = at_glmer(result, theirs)
        wrong: list[str] = []
        if exact is None:
            unmatched += 1
        else:
            exact_checked += 1
            for name, value in zip(("var_fixed", "var_random"), exact, strict=True):
                reference = theirs.get(name)
                if reference is None:
                    continue  # performance's NA (singular by insight's rule)
                if "||" in formula and name == "var_random":
                    continue  # KNOWN: insight leaves the uncorrelated slope out
                if abs(value - reference) > args.exact_rtol * max(abs(reference), 1e-12):
                    wrong.append(f"{name} {value:.10g} vs R's {reference:.10g}")
            if wrong:
                findings.append(f"{where}: at glmer's estimates " + "; ".join(wrong))
        gap = mine["logLik"] - theirs["logLik"]
        if abs(gap) > args.loglik_tol:
            apart.append(f"{where}: logLik ours - glmer's = {gap:.3g}")
            continue
        if mine["insight_singular"] != bool(theirs["insight_singular"]):
            apart.append(
                f"{where}: singular by insight's rule {mine['insight_singular']} vs glmer's "
                f"{theirs['insight_singular']} (each at its own distance from the boundary)"
            )
            continue
        intercepts = theirs.get("var_intercept")
        if (
            "||" in formula
            and intercepts is not None
            and theirs.get("var_random") is not None
            and abs(theirs["var_random"] - intercepts) <= args.rtol * abs(intercepts)
            and np.isfinite(mine["var_random"])
            and mine["var_random"] > theirs["var_random"] * (1.0 + args.rtol)
        ):
            apart.append(
                f"{where}: KNOWN insight leaves the uncorrelated slope out: var.random "
                f"{theirs['var_random']:.6g} (its intercepts'), ours {mine['var_random']:.6g}"
            )
            continue
        problems = []
        for key in KEYS:
            a, b = mine[key], theirs.get(key)
            a_known = a is not None and np.isfinite(a)
            if b is None or not a_known:
                if a_known != (b is not None):
                    problems.append(f"{key} {a} vs R's {b}")
                continue
            if abs(a - b) > max(args.atol, args.rtol * abs(b)):
                problems.append(f"{key} {a:.6g} vs R's {b:.6g}")
        if problems and exact is not None and not wrong:
            # The formulas give R's numbers at glmer's estimates: the difference is the fits'.
            apart.append(f"{where}: fit difference (logLik gap {gap:.2g}): " + "; ".join(problems))
        elif problems:
            findings.append(f"{where}: " + "; ".join(problems))
        else:
            agreed += 1
    print(
        f"seeds {args.start}-{args.start + args.count - 1}: {agreed} agree, {len(apart)} apart, "
        f"{len(findings)} findings; at glmer's estimates {exact_checked} checked, "
        f"{unmatched} whose terms did not line up"
    )
    for line in apart + findings:
        print(" -", line)
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
