"""Random formulas in lme4's syntax, fitted by us and by R: the same model, named as R names it.

    python bench/fuzz_formula.py --seed 1 --count 200
    python bench/fuzz_formula.py --seed 1 --count 200 --only 17     # replay one case
    python bench/fuzz_formula.py --seed 13 --count 200 --links      # probit and cloglog too

Each case is a random table (a 0/1 response y, successes s of n trials, numeric x1 and a
positive x2, an integer i, text factors f (3 levels) and k (2), a logical b, grouping factors g
and h) and a formula drawn from a grammar of what R users write: responses y, factor(y),
as.numeric(s > 1) and cbind(s, n - s); interactions, `*`, `/`, `^`, `%in%`, removal, `0 +`
and `- 1`, I(), log, sqrt, exp, abs, poly (orthogonal and raw), scale, factor(), C(f,
contr.sum), lme4's dummy(), offset(), ns, bs, cut, relevel, interaction, as.numeric, pmin,
ifelse, %% and more; random parts with slopes, `||`, nesting and crossing. R fits every case
with glmer and glmmTMB in one process (bench/fuzz_formula.R; R with lme4, glmmTMB, splines and
jsonlite); we fit it with glmm_binomial.fit. A case is a finding when

- we refuse (ValueError) a formula glmer fits, or raise anything but ValueError;
- both fit and our fixed-effect names differ from glmer's model-matrix columns (after glmer
  drops aliased ones), in order, or our random-effect columns differ from glmer's (group and
  column, `||` terms compared without lme4's ".1" suffixes);
- our logLik is below the better R engine's by more than --tol (relative, at least absolute)
  or above it by more than --above (another model, not a better optimum) where that engine
  did not warn that it failed to converge;
- where car is installed in R: our Wald tests per term (wald_test_terms, Type II and III) name
  other terms or Df than car's Anova on the glmer fit (whose columns are ours), or, where
  glmmTMB reaches our optimum (logLik within 1e-3, no warning) with the same Df, a Chisq
  differs from car's on glmmTMB by more than ANOVA_RTOL.

Fits we make where both R engines fail are counted apart. With --links each case's link is
drawn too (logit, probit or cloglog; from a generator of its own, so that a case's table and
formula are those without --links), R's binomial(link = ...) and our link=; the logLik of a
probit or cloglog fit is compared with glmmTMB's only (glmer's is another approximation).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from against_r import read_peers  # noqa: E402

import glmm_binomial as g  # noqa: E402

# Fixed-part terms, with the weight each is drawn with.
FIXED: list[tuple[str, float]] = [
    ("x1", 4),
    ("x2", 2),
    ("f", 3),
    ("k", 2),
    ("b", 2),
    ("i", 1),
    ("x1:f", 1),
    ("f:k", 1),
    ("x1:x2", 1),
    ("x1*f", 1),
    ("f*k", 1),
    ("x1*k", 1),
    ("(x1 + f + k)^2", 1),
    ("f/x1", 1),
    ("x1 %in% f", 1),
    ("b:x1", 1),
    ("I(x1^2)", 1),
    ("I(x1 > 0)", 1),
    ("I(x1 * x2)", 1),
    ("I(i - 1)", 1),
    ("log(x2)", 1),
    ("sqrt(x2)", 1),
    ("exp(x1 / 3)", 1),
    ("abs(x1)", 1),
    ("poly(x1, 2)", 1),
    ("poly(x1, 2, raw = TRUE)", 1),
    ("scale(x1)", 1),
    ("factor(i)", 1),
    ("log(x2):f", 1),
    ("offset(log(x2))", 1),
    ('dummy(f, "b")', 1),
    ('I(f == "b")', 1),
    ("x1:f:k", 1),
    ("(f + k)^2", 1),
    ("f:k:b", 1),
    ("C(f, contr.sum)", 1),
    ("poly(x1, 3)", 1),
    ("log(x2 + 1)", 1),
    ("I(x1/2)", 1),
    ("k:x2", 1),
    ("ns(x1, 3)", 1),
    ("bs(x1, df = 4)", 1),
    ("log10(x2)", 1),
    ("log2(x2)", 1),
    ('relevel(f, "b")', 1),
    ("interaction(f, k)", 1),
    ("as.numeric(f)", 1),
    ("as.factor(i)", 1),
    ("pmin(x1, 1)", 1),
    ("ifelse(x1 > 0, 1, 0)", 1),
    ("round(x1)", 1),
    ("floor(x2)", 1),
    ("scale(x1, scale = FALSE)", 1),
    ("poly(x1, degree = 2)", 1),
    ("I(i %% 2)", 1),
    ("I(i %/% 2)", 1),
    ("cut(x1, 3)", 1),
    ("x1:x2:f", 1),
    ("(x1 + x2)^2", 1),
    ("log(x2, 2)", 1),
    ("cut(x1, c(-Inf, 0, Inf))", 1),
    ("cut(x2, 2, include.lowest = TRUE)", 1),
    ('dummy(f, c("b", "c"))', 1),
    ("ns(x1, df = 2, Boundary.knots = c(-3, 3))", 1),
]
FIXED_ADDED: list[tuple[int, list[tuple[str, float]]]] = [
    (
        17,  # R's operators inside expressions: ^, !, &, | (R's precedence), %in% matching
        [
            ("I(x1 > 0 & b)", 1),
            ('I(f %in% c("a", "b"))', 1),
            ("I(!b)", 1),
            ("ifelse(x1 > 0 & x2 > 2, 1, 0)", 1),  # lme4 reads any | as a random-effect bar
            ("log(x2^2)", 1),
            ("exp(-x1^2)", 1),
            ("I(!(x1 > 0) & x2 < 2)", 1),
            ("I((i + 1) %in% c(2, 3))", 1),
        ],
    ),
    (
        22,  # summaries, distribution functions, factor()'s arguments
        [
            ("I(x1 - mean(x1))", 1),
            ("I(x2 / sd(x2))", 1),
            ("I(x1 > median(x1))", 1),
            ('factor(f, labels = c("A", "B", "C"))', 1),
            ('factor(k, levels = c("lo", "hi"))', 1),
            ("ordered(f)", 1),
            ("plogis(x1)", 1),
            ("pnorm(x1 / 2)", 1),
            ("sin(x1)", 1),
            ('factor(i, labels = "n")', 1),
        ],
    ),
    (
        26,  # qualified calls, is.na, as.vector
        [
            ("splines::ns(x1, 2)", 1),
            ("stats::poly(x1, 2)", 1),
            ("base::log(x2)", 1),
            ("I(ifelse(is.na(x1), 0, x1))", 1),
            ("as.vector(scale(x2))", 1),
        ],
    ),
    (
        34,  # C(): R's contrast names, functions, matrices and how.many
        [
            ("C(f, sum)", 1),
            ("C(f, helmert)", 1),
            ("C(k, SAS)", 1),
            ("C(f, contr.treatment(3, base = 2))", 1),
            ("C(f, poly):x1", 1),
            ("C(f, sum, 1)", 1),
            ('C(f, "contr.helmert")', 1),
        ],
    ),
    (
        79,  # relevel(factor()), R's T as an argument, trigonometric and gamma functions
        [
            ('relevel(factor(i), ref = "2")', 1),
            ("poly(x1, 2, raw = T)", 1),
            ("asin(x2 / (1 + x2))", 1),
            ("tanh(x1)", 1),
            ("lgamma(x2 + 1)", 1),
        ],
    ),
]
"""Fixed-part terms added to the grammar, each drawn from its seed on (the cases of earlier
seeds are as they were)."""
RANDOM: list[tuple[str, float]] = [
    ("(1 | g)", 6),
    ("(1 | h)", 2),
    ("(x1 | g)", 2),
    ("(1 + x1 | g)", 1),
    ("(0 + x1 | g)", 1),
    ("(1 + x1 || g)", 1),
    ("(1 | g) + (1 | h)", 2),
    ("(1 | g/h)", 1),
    ("(1 | g:h)", 1),
    ("(1 | g) + (0 + x1 | g)", 1),
    ("(k | g)", 1),
    ("(1 | k:g)", 1),
    ("(1 | g) + (1 | g:h)", 1),
    ("(x1 + x2 || g)", 1),
    ('(0 + dummy(f, "b") | g)', 1),
    ("(0 + k | g)", 1),
    ("(1 | g) + (x1 | h)", 1),
    ("(0 + f | g)", 1),
    ("(1 + I(x1 > 0) | g)", 1),
    ("(1 | g) + (0 + poly(x1, 2) | g)", 1),
]
RESPONSES = ["y", "cbind(s, n - s)", "y", "cbind(s, n - s)", "factor(y)", "as.numeric(s > 1)"]


def draw(rng: np.random.Generator, pool: list[tuple[str, float]]) -> str:
    weights = np.array([w for _, w in pool])
    return pool[int(rng.choice(len(pool), p=weights / weights.sum()))][0]


def make_case(seed: int, index: int) -> tuple[pd.DataFrame, str]:
    """One case's table and formula (the same seed and index give the same case)."""
    rng = np.random.default_rng([seed, index])
    n_g, n_h = int(rng.integers(6, 14)), int(rng.integers(3, 6))
    n = int(rng.integers(80, 220))
    gi, hi = rng.integers(0, n_g, n), rng.integers(0, n_h, n)
    x1 = rng.normal(size=n)
    x2 = np.exp(0.5 * rng.normal(size=n))
    f = rng.choice(np.array(["a", "b", "c"]), n)
    k = rng.choice(np.array(["hi", "lo"]), n)
    b = rng.random(n) < 0.4
    i = rng.integers(1, 5, n)
    u = rng.normal(0, 0.8, n_g)[gi] + rng.normal(0, 0.4, n_h)[hi]
    eta = -0.3 + 0.7 * x1 + 0.5 * (f == "b") - 0.4 * (k == "lo") + 0.3 * b + u
    p = 1 / (1 + np.exp(-eta))
    trials = rng.integers(1, 7, n)
    frame = pd.DataFrame(
        {
            "y": rng.binomial(1, p),
            "s": rng.binomial(trials, p),
            "n": trials,
            "x1": np.round(x1, 6),
            "x2": np.round(x2, 6),
            "i": i,
            "f": f,
            "k": k,
            "b": b,
            "g": np.char.add("g", gi.astype(str)),
            "h": np.char.add("h", hi.astype(str)),
        }
    )
    pool = FIXED + [term for since, terms in FIXED_ADDED if seed >= since for term in terms]
    terms = [draw(rng, pool) for _ in range(int(rng.integers(1, 4)))]
    fixed = " + ".join(dict.fromkeys(terms))
    start = rng.random()
    if start < 0.1:
        fixed = "0 + " + fixed
    elif start < 0.2:
        fixed = fixed + " - 1"
    elif start < 0.25:
        fixed = "1 + " + fixed
    elif start < 0.3 and len(terms) > 1 and re.fullmatch(r"\w+([*:/]\w+)?", terms[0]):
        fixed = fixed + " - " + re.split(r"[*:/]", terms[0])[0]
    formula = f"{RESPONSES[int(rng.integers(0, 6))]} ~ {fixed} + {draw(rng, RANDOM)}"
    return frame, formula


LINKS = ("logit", "probit", "cloglog")
LINK_WEIGHTS = (0.4, 0.3, 0.3)


def case_link(seed: int, index: int) -> str:
    """--links: a case's link, drawn from a generator of its own (the table and formula are
    make_case's, the same as without --links)."""
    rng = np.random.default_rng([seed, index, len(LINKS)])
    return str(rng.choice(LINKS, p=LINK_WEIGHTS))


def ours(frame: pd.DataFrame, formula: str, link: str = "logit") -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = g.fit(formula, frame, link=link)
    except ValueError as e:
        return {"error": str(e)}
    except Exception as e:  # noqa: BLE001 - a crash is what the harness looks for
        return {"crash": f"{type(e).__name__}: {e}"}
    vc = fit.VarCorr
    record: dict[str, Any] = {
        "logLik": float(fit.llf),
        "converged": bool(fit.converged),
        "fixed": [str(c) for c in fit.params.index],
        "random": [(str(a), str(b)) for a, b in zip(vc["group"], vc["term"], strict=True)],
    }
    for kind, key in (("II", "anova2"), ("III", "anova3")):
        try:
            table = fit.wald_test_terms(kind)
        except Exception as e:  # noqa: BLE001 - a crash is what the harness looks for
            return {"crash": f"wald_test_terms({kind!r}): {type(e).__name__}: {e}"}
        record[key] = {
            "terms": [str(t) for t in table.index],
            "df": [int(d) for d in table["Df"]],
            "chisq": [float(c) for c in table["Chisq"]],
        }
    return record


def r_random(record: dict[str, Any]) -> list[tuple[str, str]]:
    """glmer's random-effect columns as (group, column), `||` suffixes (g.1) removed."""
    out = []
    for term in record.get("random") or []:
        group = re.sub(r"\.\d+$", "", term["group"])
        names = term["terms"] if isinstance(term["terms"], list) else [term["terms"]]
        out.extend((group, str(name)) for name in names)
    return out


def _short(r: dict[str, dict[str, Any]], best: float) -> bool:
    """Whether the R engine with the best logLik said it did not converge (then our higher
    value is its failure, not another model)."""
    for record in r.values():
        if record.get("logLik") == best:
            # jsonlite writes a single warning as a string, not a list of one.
            warnings = record.get("warnings") or []
            return any("converge" in str(w) for w in _as_list(warnings))
    return False


ANOVA_RTOL = 0.05
"""Relative gap of a Wald chi-square from glmmTMB's (car's Anova on its fit) that is a finding
where both fits reach the same optimum (logLik within 1e-3) and have the same terms and Df,
unless ours is within it of glmer's at that optimum too."""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _anova_problems(mine: dict[str, Any], r: dict[str, dict[str, Any]]) -> list[str]:
    """Our wald_test_terms against car's Anova: glmer's term labels and Df (its fixed columns
    equal ours), glmmTMB's Chisq (its covariance from the exact Hessian) at the same optimum."""
    problems = []
    tmb = r.get("glmmTMB", {})
    for key in ("anova2", "anova3"):
        theirs = r.get("glmer", {}).get(key)
        if not isinstance(theirs, dict) or "error" in theirs or key not in mine:
            continue
        terms, df = _as_list(theirs["terms"]), [int(d) for d in _as_list(theirs["df"])]
        if (mine[key]["terms"], mine[key]["df"]) != (terms, df):
            problems.append(
                f"{key} terms {list(zip(mine[key]['terms'], mine[key]['df'], strict=True))} != "
                f"car's on glmer {list(zip(terms, df, strict=True))}"
            )
            continue
        other = tmb.get(key)
        if not isinstance(other, dict) or "error" in other or "logLik" not in tmb:
            continue
        if [int(d) for d in _as_list(other["df"])] != df or tmb.get("warnings"):
            continue
        if abs(float(tmb["logLik"]) - mine["logLik"]) > 1e-3:
            continue
        chisqs = _as_list(other["chisq"])
        # At a singular fit glmmTMB's Hessian and glmer's finite-difference one can disagree;
        # agreeing with glmer's (at the same optimum) is then not a finding.
        glmer_same = abs(float(r.get("glmer", {}).get("logLik", np.inf)) - mine["logLik"]) < 1e-3
        glmer_chisqs = _as_list(theirs["chisq"]) if glmer_same else [None] * len(terms)
        for term, ours_chisq, chisq, mer in zip(
            terms, mine[key]["chisq"], chisqs, glmer_chisqs, strict=True
        ):
            if chisq is None or not np.isfinite(ours_chisq):
                continue
            if abs(ours_chisq - chisq) <= ANOVA_RTOL * max(abs(chisq), 1.0):
                continue
            if mer is not None and abs(ours_chisq - mer) <= ANOVA_RTOL * max(abs(mer), 1.0):
                continue
            problems.append(f"{key} {term}: Chisq {ours_chisq:.6g} != glmmTMB's {chisq:.6g}")
    return problems


def judge(
    mine: dict[str, Any],
    r: dict[str, dict[str, Any]],
    tol: float,
    above: float,
    link: str = "logit",
) -> list[str]:
    """What is wrong with our answer to one case, given R's (empty: nothing). glmer's logLik
    for the probit and cloglog is another approximation (the expected information in the
    Laplace approximation; ours and glmmTMB's the observed): there the logLik is compared
    with glmmTMB's only (glmer's names still are)."""
    if "crash" in mine:
        return [f"crash {mine['crash']}"]
    glmer = r.get("glmer", {})
    peers = r if link == "logit" else {k: v for k, v in r.items() if k == "glmmTMB"}
    fitted = [
        float(v["logLik"]) for v in peers.values() if isinstance(v.get("logLik"), float | int)
    ]
    if "error" in mine:
        if "logLik" in glmer:
            return [f"refused what glmer fits: {mine['error'][:300]}"]
        return []
    problems = []
    if "fixed" in glmer:
        theirs = glmer["fixed"] if isinstance(glmer["fixed"], list) else [glmer["fixed"]]
        if mine["fixed"] != theirs:
            problems.append(f"fixed names {mine['fixed']} != glmer's {theirs}")
        if sorted(mine["random"]) != sorted(r_random(glmer)):
            problems.append(f"random columns {mine['random']} != glmer's {r_random(glmer)}")
    if "fixed" in glmer and mine["fixed"] == _as_list(glmer["fixed"]):
        problems += _anova_problems(mine, r)
    if fitted:
        best = max(fitted)
        gap = best - mine["logLik"]
        scale = max(1.0, abs(best))
        if gap > tol * scale:
            problems.append(f"logLik {mine['logLik']:.8g} below R's {best:.8g} by {gap:.3g}")
        elif -gap > above * scale and not _short(peers, best):
            problems.append(f"logLik {mine['logLik']:.8g} above R's {best:.8g} by {-gap:.3g}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--only", type=int, nargs="*", help="case indices to run")
    parser.add_argument("--dir", default="/tmp/fuzz_formula")
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--above", type=float, default=1e-2)
    parser.add_argument("--links", action="store_true", help="draw the link too")
    args = parser.parse_args()
    folder = Path(args.dir) / (f"seed{args.seed}" + ("_links" if args.links else ""))
    folder.mkdir(parents=True, exist_ok=True)
    indices = args.only if args.only else list(range(args.count))
    cases = []
    for index in indices:
        frame, formula = make_case(args.seed, index)
        csv = folder / f"case_{index}.csv"
        # TRUE/FALSE, which both readers take as logical (R reads "True" as text).
        frame.assign(b=np.where(frame["b"], "TRUE", "FALSE")).to_csv(csv, index=False)
        link = case_link(args.seed, index) if args.links else "logit"
        cases.append({"name": str(index), "csv": str(csv), "formula": formula, "link": link})
    r_out = folder / "r.jsonl"
    peers = read_peers(r_out)
    # A folder's R records are reused (an interrupted run resumes) when made for the same text
    # (records without the text come from an older generator: made again).
    for case in cases:
        known = peers.get(case["name"], {})
        if any(
            rec.get("formula") != case["formula"] or rec.get("link", "logit") != case["link"]
            for rec in known.values()
        ):
            peers.pop(case["name"])
    rest = [c for c in cases if len(peers.get(c["name"], {})) < 2]
    if rest:
        manifest = folder / "manifest.json"
        manifest.write_text(json.dumps(rest))
        subprocess.run(
            ["Rscript", str(HERE / "fuzz_formula.R"), str(manifest), str(r_out)], check=True
        )
        peers = read_peers(r_out)
    findings = only_ours = refused_both = 0
    for case, index in zip(cases, indices, strict=True):
        frame = pd.read_csv(case["csv"])
        mine = ours(frame, case["formula"], case["link"])
        r = peers.get(case["name"], {})
        problems = judge(mine, r, args.tol, args.above, case["link"])
        if "logLik" in mine and not any("logLik" in v for v in r.values()):
            only_ours += 1
        if "error" in mine and not any("logLik" in v for v in r.values()):
            refused_both += 1
        if problems:
            findings += 1
            link = "" if case["link"] == "logit" else f"  [link {case['link']}]"
            print(f"{args.seed}:{index} {case['formula']}{link}", flush=True)
            for problem in problems:
                print(f"    {problem}", flush=True)
    print(
        f"{len(cases)} cases, {findings} with findings, {only_ours} fitted by us alone, "
        f"{refused_both} refused by us and by both R engines"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
