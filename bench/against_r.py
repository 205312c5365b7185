"""Random data against R: our optimum never below the better of glmer's and glmmTMB's.

    python bench/against_r.py --start 0 --count 50            # every kind R can fit
    python bench/against_r.py --kinds slope3 us --count 20 --dir /tmp/against_r

The data are bench/metamorphic.py's (kind_data: the same kind and seed give the same table, so
a finding is replayed there with --only KIND:SEED). Each case is written as CSV, fitted by
lme4::glmer and glmmTMB in one R process (bench/against_r.R; R with lme4, glmmTMB and jsonlite
is needed; a folder's R results are reused, so an interrupted run resumes) and by us. A case
is a finding when our logLik is below the better R logLik by more than --tol (relative, at
least absolute), or when we refuse data an R engine fitted; a refusal by lme4's own rule (no
more observations than random effects, which glmer applies and glmmTMB does not) is counted
apart. Where we are above both, the case is counted too: a peer stopping short. A fit whose
random-effect variance has no finite estimate (separation within groups: every engine stops
somewhere along the diverging path, at a logLik that says how far) is counted apart.

glmer's logLik for the probit and cloglog is another approximation (the expected information
in the Laplace approximation; ours and glmmTMB's take the observed): those kinds are judged
against glmmTMB only. glmer's AGQ (nAGQ = 7) is compared with ours at n_agq = 7; the
structured covariances and the beta-binomial only with glmmTMB (1.1.5's cs() is
heterogeneous, as ours); kinds with priors or AGQ on vector or nested effects have no R peer
here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import metamorphic  # noqa: E402

import glmm_binomial as g  # noqa: E402

BOTH = ("glmer", "glmmTMB")
ENGINES: dict[str, tuple[str, ...]] = {
    "intercept": BOTH,
    "slope": BOTH,
    "slope3": BOTH,
    "crossed": BOTH,
    "crossed_slope": BOTH,
    "nested": BOTH,
    "nested_slope": BOTH,
    "probit": BOTH,
    "cloglog_slope": BOTH,
    "agq": ("glmer",),
    "betabinomial": ("glmmTMB",),
    "ar1": ("glmmTMB",),
    "cs": ("glmmTMB",),
    "us": ("glmmTMB",),
    "diag": ("glmmTMB",),
    "crossed_vector": BOTH,
    "slope3_counts": BOTH,
    "slope3_probit": BOTH,
    "nested_crossed": BOTH,
    "betabinomial_mild": ("glmmTMB",),
    "crossed_betabinomial": ("glmmTMB",),
    "crossed_cauchit": BOTH,
}


def write_cases(kinds: list[str], seeds: range, folder: Path) -> list[dict[str, object]]:
    """Each case's CSV in folder and its manifest entry."""
    cases: list[dict[str, object]] = []
    for seed in seeds:
        for kind in kinds:
            formula, options = metamorphic.KINDS[kind]
            name = f"{kind}:{seed}"
            csv = folder / f"{kind}_{seed}.csv"
            metamorphic.kind_data(kind, seed)[1].to_csv(csv, index=False)
            cases.append(
                {
                    "name": name,
                    "csv": str(csv),
                    "formula": formula,
                    "link": options.get("link", "logit"),
                    "n_agq": options.get("n_agq", 1),
                    "family": options.get("family", "binomial"),
                    "engines": list(ENGINES[kind]),
                }
            )
    return cases


def ours(kind: str, seed: int) -> dict[str, object]:
    formula, options = metamorphic.KINDS[kind]
    data = metamorphic.kind_data(kind, seed)[1]
    try:
        fit = g.fit(formula, data, **options)
    except ValueError as e:
        return {"error": str(e)[:200]}
    return {
        "logLik": float(fit.llf),
        "converged": bool(fit.converged),
        "singular": bool(fit.singular),
        "evaluations": int(fit.opt_summary.evaluations),
        # A variance the groups separate has no optimum: logLik is a point on the path.
        "variance_diverges": bool(fit.fit_output.separation.columns),
    }


def read_peers(path: Path) -> dict[str, dict[str, dict[str, object]]]:
    """R's records by case name and engine (empty when R has not run)."""
    peers: dict[str, dict[str, dict[str, object]]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            peers.setdefault(rec["name"], {})[rec["engine"]] = rec
    return peers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--kinds", nargs="+", choices=list(ENGINES), default=list(ENGINES))
    parser.add_argument("--dir", default="/tmp/against_r", help="where the CSVs and R's output go")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--json", help="write every case's record here")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    cases = write_cases(args.kinds, range(args.start, args.start + args.count), folder)
    manifest, r_out = folder / "manifest.json", folder / "r.jsonl"
    peers = read_peers(r_out)
    # Cases R has already fitted in this folder (an interrupted run) are not fitted again.
    rest = [c for c in cases if len(peers.get(str(c["name"]), {})) < len(c["engines"])]  # type: ignore[arg-type]
    if rest:
        manifest.write_text(json.dumps(rest))
        subprocess.run(
            ["Rscript", str(HERE / "against_r.R"), str(manifest), str(r_out)], check=True
        )
        peers = read_peers(r_out)
    records, findings, above, lme4_rule, diverging, no_peer = [], 0, 0, 0, 0, 0
    for case in cases:
        name = str(case["name"])
        kind, seed = name.rsplit(":", 1)
        mine = ours(kind, int(seed))
        r = peers.get(name, {})
        # glmer's Laplace for links other than the logit takes the expected information, a
        # different approximation (README): its logLik is recorded, not compared.
        judged = [v for e, v in r.items() if case["link"] == "logit" or e == "glmmTMB"]
        values = [
            float(v["logLik"])
            for v in judged
            if isinstance(v.get("logLik"), float | int) and v["logLik"] == v["logLik"]
        ]
        best = max(values, default=None)
        record = {"name": name, "ours": mine, "r": r, "best_r": best}
        records.append(record)
        if best is None:
            # glmmTMB reports logLik NA where its Hessian is not positive definite (common on
            # singular fits), and glmer is not judged for links other than the logit.
            no_peer += 1
            continue
        if "error" in mine and "number of observations" in str(mine["error"]):
            lme4_rule += 1
            continue
        if "error" in mine:
            findings += 1
            print(f"{name}: we refuse ({mine['error']}), R {best:.10g}", flush=True)
            continue
        ll = float(mine["logLik"])  # type: ignore[arg-type]
        gap = best - ll
        if mine.get("variance_diverges"):
            # No optimum to compare: how far each engine follows the path is arbitrary.
            diverging += 1
            print(f"{name}: a variance diverges (separation within groups): not compared")
            continue
        if gap > args.tol * max(1.0, abs(best)):
            findings += 1
            detail = {k: v.get("logLik") for k, v in r.items()}
            print(
                f"{name}: ours {ll:.10g} (converged {mine['converged']}) below R by "
                f"{gap:.3g} {detail}",
                flush=True,
            )
        elif gap < -args.tol * max(1.0, abs(best)):
            above += 1
    if args.json:
        Path(args.json).write_text(json.dumps(records))
    print(
        f"{len(cases)} cases, {findings} below R or refused, {above} above the better R engine, "
        f"{lme4_rule} refused by lme4's rule (observations <= random effects) that R fitted, "
        f"{diverging} whose variance diverges (not compared), {no_peer} without a judged R "
        "logLik (glmmTMB's NA, glmer not judged: not compared)"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
