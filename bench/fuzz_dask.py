"""Dask sweep: the Dask driver against the in-memory fit, on bench/metamorphic.py's random data.

    python bench/fuzz_dask.py --start 0 --count 10           # seeds 0-9, every kind
    python bench/fuzz_dask.py --only nested:4                # one case, the fits printed

Each (kind, seed) is metamorphic.py's data (kind_data) with its formula and options, fitted by
glmm_binomial.fit in memory and again on a Dask DataFrame of the same rows (dask.dataframe
from_pandas, --partitions partitions, rows shuffled first so that groups span partitions) on a
LocalCluster of two single-thread workers. The fit's contract (distributed/fit.py) is the
in-memory numbers up to the order of floating-point sums, so a case is a problem when:

- one side fits and the other raises anything but a ValueError (a refusal must be clear), or
  the in-memory fit refuses data the Dask fit accepts;
- both fit and the logLik differ by more than --tol (relative, at least absolute), the
  converged verdicts differ, an estimate (fixed effects, theta) differs by more than
  --estimate-tol (relative to max(1, |value|)), or the warning categories differ;
- the Dask fit reports converged with a non-finite logLik or estimate.

A Dask warning that separation is possible and was not checked (where the in-memory fit runs
its linear programs, which need every row) is not a difference. Where both fits are separated
(not converged, a SeparationWarning each), their ends are points on a diverging path that the
rounding of the sums moves: counted apart, not compared. A structured correlation at the end
of its range (within END_TOL), or a structured SD at zero (below SD_TOL), is compared as the
covariance it gives, not by its parameter, which runs out along a flat deviance to where each
search happened to stop.

The variational methods ("vb", "vb_meanfield") are swept too on four kinds' data (VARIATIONAL).
A Dask refusal of a kind it does not implement (AGQ on vector effects, structured
covariances, ...) is counted apart with its message. Exit status 1 when any case is a problem.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import metamorphic  # noqa: E402

import glmm_binomial as g  # noqa: E402


def outcome(fit: Any) -> tuple[str, Any, list[str]]:
    """("fit", result, warning categories), ("refused", message, []) for a ValueError, or
    ("error", traceback, []) for anything else."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fit()
        except ValueError as exc:
            return "refused", str(exc), []
        except Exception:  # noqa: BLE001 - a sweep reports every failure
            return "error", traceback.format_exc(), []
    # A Dask fit says where it could not run the in-memory separation check (documented):
    # not a difference in itself (marked, for compare's follow-on rule).
    categories = sorted(
        {
            w.category.__name__
            for w in caught
            if w.category is not UserWarning and "not run on a Dask DataFrame" not in str(w.message)
        }
    )
    if any("not run on a Dask DataFrame" in str(w.message) for w in caught):
        categories.append(NOT_RUN)
    return "fit", result, categories


NOT_RUN = "(separation check not run)"
"""Marks a Dask fit whose in-memory separation check (linear programs) did not run."""


def warning_sets(memory: list[str], dask: list[str]) -> tuple[set[str], set[str]]:
    """The two fits' warning categories to compare. Where the separation check did not run on
    Dask and only the in-memory fit decided a separation, that SeparationWarning is not
    compared, nor the BoundaryWarning that follows on Dask: a decided separation skips the
    variance boundary check, an undecided one does not (methods/structured_vb.py; seen on
    slope+vb:103)."""
    ours, theirs = set(memory), set(dask)
    if NOT_RUN in theirs:
        theirs.discard(NOT_RUN)
        if "SeparationWarning" in ours and "SeparationWarning" not in theirs:
            ours.discard("SeparationWarning")
            theirs.discard("BoundaryWarning")
    return ours, theirs


def values(result: Any) -> tuple[float, np.ndarray, np.ndarray]:
    return (
        float(result.llf),
        np.asarray(result.params, dtype=np.float64),
        np.asarray(result.theta, dtype=np.float64),
    )


VARIATIONAL: dict[str, tuple[str, dict[str, Any]]] = {
    f"{kind}+{method}": (kind, {"method": method})
    for kind in ("intercept", "slope", "nested", "nested_slope")
    for method in ("vb", "vb_meanfield")
}
"""Kinds fitted again by the variational methods, on the named kind's data: "KIND+METHOD"."""


END_TOL = 1e-6
"""A structured correlation within this of an end of its range counts as at the end."""

SD_TOL = 1e-4
"""A structured SD below this counts as at zero (OptimizerControl.boundary_tol's default)."""


def compare(kind: str, seed: int, args: argparse.Namespace, client: Any) -> tuple[str, str]:
    """("ok" | "refused by dask" | "both refused" | "both separated" | "problem", detail)."""
    import dask.dataframe as dd

    base, extra = VARIATIONAL.get(kind, (kind, {}))
    formula, options = metamorphic.KINDS[base]
    options = {**options, **extra}
    rng, data = metamorphic.kind_data(base, seed)
    shuffled = data.iloc[rng.permutation(len(data))].reset_index(drop=True)
    memory = outcome(lambda: g.fit(formula, data, **options))
    frame = dd.from_pandas(shuffled, npartitions=args.partitions)
    dask = outcome(lambda: g.fit(formula, frame, client=client, **options))
    if memory[0] == "error" or dask[0] == "error":
        side = "in memory" if memory[0] == "error" else "on Dask"
        text = memory[1] if memory[0] == "error" else dask[1]
        return "problem", f"an exception {side}:\n{text}"
    if memory[0] == "refused" and dask[0] == "refused":
        return "both refused", f"{memory[1][:90]} | {dask[1][:90]}"
    if memory[0] == "refused":
        return "problem", f"refused in memory ({memory[1][:200]}) but fitted on Dask"
    if dask[0] == "refused":
        return "refused by dask", dask[1]
    ours, theirs = memory[1], dask[1]
    separated = ["SeparationWarning" in side[2] for side in (memory, dask)]
    if not ours.converged and not theirs.converged and all(separated):
        # Both on a diverging path: where each search stopped along it depends on the rounding
        # of its sums (logLik and estimates are points on the path, not estimates).
        return "both separated", ""
    m_llf, m_beta, m_theta = values(ours)
    d_llf, d_beta, d_theta = values(theirs)
    problems = []
    if theirs.converged and not (
        np.isfinite(d_llf) and np.isfinite(d_beta).all() and np.isfinite(d_theta).all()
    ):
        problems.append("Dask fit converged with a non-finite estimate")
    if abs(m_llf - d_llf) > args.tol * max(1.0, abs(m_llf)):
        problems.append(f"logLik {m_llf:.10g} in memory, {d_llf:.10g} on Dask")
    if bool(ours.converged) != bool(theirs.converged):
        problems.append(f"converged {ours.converged} in memory, {theirs.converged} on Dask")
    # A structured correlation at the end of its range: its parameter (glmmTMB's phi) goes out
    # along a flat deviance (ar1's 7e5 or 1.7e6, cs's -31 or -1500, rho the same to 1e-12),
    # where each search stopped is not an estimate: compared as the covariance it gives.
    ends = np.zeros(len(m_theta), dtype=bool)
    if m_theta.shape == d_theta.shape:
        ends = ours.model.theta_saturated(m_theta, END_TOL) & theirs.model.theta_saturated(
            d_theta, END_TOL
        )
        # So is a structured log SD at zero (below boundary_tol, on a flat deviance: diag:61's
        # -27.6 in memory, -26.5 on Dask).
        log_sds = ours.model.theta_log_sds()
        ends |= (
            log_sds
            & ours.model.theta_at_boundary(m_theta, SD_TOL)
            & theirs.model.theta_at_boundary(d_theta, SD_TOL)
        )
        # A term whose every SD is at zero has no correlation in the model (ar1:63, 64: phi
        # -30.8 in memory, -4.4 on Dask): all of its entries are compared as its covariance.
        for part in ours.model.theta_slices():
            if log_sds[part].any() and ends[part][log_sds[part]].all():
                ends[part] = True
        m_theta, d_theta = m_theta[~ends], d_theta[~ends]
        if ends.any():
            for a, b in zip(ours.covariance_matrices(), theirs.covariance_matrices(), strict=True):
                if not np.allclose(a, b, rtol=args.estimate_tol, atol=args.estimate_tol):
                    problems.append(f"covariance at a range end: {a} in memory, {b} on Dask")
    for name, a, b in (("params", m_beta, d_beta), ("theta", m_theta, d_theta)):
        if a.shape != b.shape:
            problems.append(f"{name}: shapes {a.shape} and {b.shape}")
            continue
        both = np.isfinite(a) & np.isfinite(b)
        if not np.array_equal(np.isfinite(a), np.isfinite(b)):
            problems.append(f"{name}: finite {np.isfinite(a)} in memory, {np.isfinite(b)} on Dask")
        gap = np.abs(a[both] - b[both]) / np.maximum(1.0, np.abs(a[both]))
        # Singular ends and diverging coefficients move along flat directions: only judged
        # where the fit converged to an interior optimum.
        if ours.converged and gap.size and gap.max() > args.estimate_tol:
            problems.append(f"{name}: {np.round(a, 6)} in memory, {np.round(b, 6)} on Dask")
    ours_warned, theirs_warned = warning_sets(memory[2], dask[2])
    if ours_warned != theirs_warned:
        problems.append(f"warnings {memory[2]} in memory, {dask[2]} on Dask")
    if problems:
        return "problem", "; ".join(problems)
    return "ok", ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", choices=[*metamorphic.KINDS, *VARIATIONAL])
    parser.add_argument("--only", help="KIND:SEED, one case")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--estimate-tol", type=float, default=1e-3)
    args = parser.parse_args()
    import distributed

    if args.only:
        kind, _, seed = args.only.partition(":")
        cases = [(kind, int(seed))]
    else:
        kinds = args.kinds or [*metamorphic.KINDS, *VARIATIONAL]
        cases = [(k, s) for s in range(args.start, args.start + args.count) for k in kinds]
    counts: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    both: Counter[str] = Counter()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        for kind, seed in cases:
            status, detail = compare(kind, seed, args, client)
            counts[status] += 1
            if status == "refused by dask":
                refusals[f"{kind}: {detail[:120]}"] += 1
            if status == "both refused":
                both[f"{kind}: {detail}"] += 1
            if status == "problem":
                print(f"{kind}:{seed}: {detail}", flush=True)
    print(f"{len(cases)} cases: {dict(counts)}")
    for text, n in sorted(refusals.items()):
        print(f"  refused by Dask x{n}: {text}")
    for text, n in sorted(both.items()):
        print(f"  refused by both x{n} (in memory | on Dask): {text}")
    return 1 if counts["problem"] else 0


if __name__ == "__main__":
    sys.exit(main())
