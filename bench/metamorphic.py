"""Metamorphic sweep: fits that must agree with each other, on random data of many model kinds.

    python bench/metamorphic.py                      # seeds 0-19, every check
    python bench/metamorphic.py --start 40 --count 50 --checks invariance nesting
    python bench/metamorphic.py --only slope:5       # one kind and seed, the problems printed
    python bench/metamorphic.py --only ar1:24 --write data.csv   # and its data saved

No reference values: each check compares fits that the model's mathematics says are equal, so
any difference beyond the optimizer's tolerance is a wrong optimum, a convergence verdict that
depends on how the data are written, or a crash:

- invariance: the same data with the rows permuted, the group labels renamed, the grouping
  column as a category, the response as float or bool, the factor f's levels reordered, three
  rows with x missing added (dropped), binomial counts as a proportion with weights m, a
  covariate with a random slope changed affinely (10 x + 3: unstructured covariances only; a
  vector effect's AGQ product rule is not invariant, see the README), and 0/1 rows doubled
  against weights 2 (log C(2, 2) = 0), and successes and failures swapped (every link but the
  cloglog: the likelihood at -beta), and an offset 1.5 x (without priors): the same logLik
  (1e-7 relative, 1e-6 for the affine change) and the same converged verdict; refitting the
  same frame bit for bit the same, the frame unmodified, and no non-finite estimate reported
  as converged.
- nesting: chains of nested models (random intercept, uncorrelated and correlated slopes, a
  second slope; crossed and nested factors added; ar1, cs and diag inside us): a larger
  model's logLik never below a smaller one's by more than 1e-6 where both converged.

Each (kind, seed) draws its own data (numpy default_rng([seed, kind index])): a problem is
replayed with --only KIND:SEED. Exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

import glmm_binomial as g

KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "intercept": ("y ~ x + f + (1 | g)", {}),
    "slope": ("y ~ x + f + (1 + x | g)", {}),
    "slope3": ("y ~ x + x2 + (1 + x + x2 | g)", {}),
    "crossed": ("y ~ x + (1 | g) + (1 | h)", {}),
    "crossed_slope": ("cbind(y, m - y) ~ x + (1 + x | g) + (1 | h)", {}),
    "nested": ("y ~ x + (1 | a/b)", {}),
    "nested_slope": ("y ~ x + (1 + x | a/b)", {}),
    "probit": ("y ~ x + f + (1 | g)", {"link": "probit"}),
    "cloglog_slope": ("y ~ x + (1 + x | g)", {"link": "cloglog"}),
    "agq": ("y ~ x + f + (1 | g)", {"method": "agq", "n_agq": 7}),
    "agq_nested": ("y ~ x + (1 | a/b)", {"method": "agq", "n_agq": 5}),
    "betabinomial": ("cbind(y, m - y) ~ x + (1 + x | g)", {"family": "betabinomial"}),
    "blme": ("y ~ x + f + (1 + x | g)", {"priors": "blme"}),
    "ar1": ("y ~ x + ar1(0 + tf | g)", {}),
    "cs": ("y ~ x + cs(0 + tf | g)", {}),
    "us": ("y ~ x + us(0 + tf | g)", {}),
    "diag": ("y ~ x + diag(1 + x | g)", {}),
    # Appended (a kind's data depend on its index in this table).
    "crossed_vector": ("y ~ x + (1 + x | g) + (1 + x | h)", {}),
    "slope3_counts": ("cbind(y, m - y) ~ x + x2 + (1 + x + x2 | g)", {}),
    "slope3_probit": ("y ~ x + x2 + (1 + x + x2 | g)", {"link": "probit"}),
    "agq_slope": ("y ~ x + (1 + x | g)", {"method": "agq", "n_agq": 5}),
    "nested_crossed": ("y ~ x + (1 | a/b) + (1 | h)", {}),
    "blme3": ("y ~ x + x2 + (1 + x + x2 | g)", {"priors": "blme"}),
    # phi drawn from 10, 100 and inf: a maximum at phi -> inf (the binomial) in some.
    "betabinomial_mild": ("cbind(y, m - y) ~ x + (1 | g)", {"family": "betabinomial"}),
    # Likelihoods that are not log-concave with a crossed factor (fuzz_dask: the client's
    # mode search on the partitions); phi drawn from 5, 20 and inf.
    "crossed_betabinomial": ("cbind(y, m - y) ~ x + (1 | g) + (1 | h)", {"family": "betabinomial"}),
    "crossed_cauchit": ("y ~ x + (1 | g) + (1 | h)", {"link": "cauchit"}),
}
AFFINE = {
    "slope",
    "slope3",
    "crossed_slope",
    "nested_slope",
    "cloglog_slope",
    "betabinomial",
    "crossed_vector",
    "slope3_counts",
    "slope3_probit",
}
DOUBLED = {"intercept", "slope", "crossed", "nested", "probit", "agq"}
CHAINS = [
    [
        "y ~ x + (1 | g)",
        "y ~ x + (1 + x || g)",
        "y ~ x + (1 + x | g)",
        "y ~ x + x2 + (1 + x | g)",
        "y ~ x + x2 + (1 + x + x2 | g)",
    ],
    [
        "y ~ x + (1 | g)",
        "y ~ x + (1 | g) + (1 | h)",
        "y ~ x + (1 + x | g) + (1 | h)",
        "y ~ x + (1 + x | g) + (1 + x | h)",
    ],
    ["y ~ x + (1 | a)", "y ~ x + (1 | a/b)", "y ~ x + (1 + x | a) + (1 | a:b)"],
    ["y ~ x + ar1(0 + tf | g)", "y ~ x + us(0 + tf | g)"],
    ["y ~ x + diag(0 + tf | g)", "y ~ x + us(0 + tf | g)"],
    ["y ~ x + (1 | g)", "y ~ x + cs(0 + tf | g)", "y ~ x + us(0 + tf | g)"],
]


def simulate(rng: np.random.Generator, binomial: bool, phi: float) -> pd.DataFrame:
    """Random groups g (5-40, 3-30 rows each) crossed with h and with a, b nested in g's
    clusters, occasions tf; random intercepts, slopes and occasion effects with SDs drawn
    from 0 to 1 (zeros make boundary fits); 0/1 responses, or counts of 1-5 trials; with a
    finite phi, each row's probability drawn from Beta(p phi, (1 - p) phi) (beta-binomial)."""
    n_g, per = int(rng.integers(5, 40)), int(rng.integers(3, 30))
    n = n_g * per
    grp = np.repeat(np.arange(n_g), per)
    x = rng.standard_normal(n) * float(rng.choice([1.0, 3.0])) + float(rng.choice([0.0, 2.0]))
    x2 = rng.standard_normal(n)
    f = rng.choice(["a", "b", "c"], n)
    h = rng.integers(0, int(rng.integers(3, 12)), n)
    a, b = grp % max(2, n_g // 3), rng.integers(0, 3, n)
    t = np.tile(np.arange(per), n_g) % 3
    sd = rng.choice([0.0, 0.0, 0.1, 0.5, 1.0], size=6)
    xs = (x - x.mean()) / max(float(x.std()), 1e-12)
    eta = -0.3 + 0.7 * xs + 0.3 * x2 + 0.5 * (f == "b")
    eta += sd[0] * rng.standard_normal(n_g)[grp] + sd[1] * rng.standard_normal(n_g)[grp] * xs
    eta += sd[2] * rng.standard_normal(20)[h] + sd[3] * rng.standard_normal((50, 3))[a, b]
    eta += sd[4] * rng.standard_normal((n_g, 3))[grp, t]
    eta += sd[5] * rng.standard_normal(n_g)[grp] * x2
    m = rng.integers(1, 6, n) if binomial else np.ones(n, dtype=int)
    p = 1.0 / (1.0 + np.exp(-eta))
    if np.isfinite(phi):
        p = rng.beta(p * phi + 1e-3, (1.0 - p) * phi + 1e-3)
    y = rng.binomial(m, p)
    return pd.DataFrame(
        {
            "y": y,
            "m": m,
            "x": x,
            "x2": x2,
            "f": f,
            "g": grp,
            "h": h,
            "a": a,
            "b": b,
            "tf": pd.Categorical([f"t{v}" for v in t]),
        }
    )


def near(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a))


def agree(problems: list[str], tag: str, base: Any, fit: Callable[[], Any], tol: float) -> None:
    """The variant's fit has base's logLik (where either converged) and verdict; with priors
    (blme), the objective minimized (the logLik itself may move along a flat objective)."""
    try:
        other = fit()
    except Exception as e:  # noqa: BLE001 - every failure of a variant is a finding
        problems.append(f"{tag}: {type(e).__name__}: {e}"[:300])
        return
    same = near(other.penalized_objective, base.penalized_objective, tol)
    if not same and (other.converged or base.converged):
        problems.append(
            f"{tag}: logLik {other.llf:.10g} vs {base.llf:.10g}, converged "
            f"{other.converged}/{base.converged}, evaluations "
            f"{other.opt_summary.evaluations}/{base.opt_summary.evaluations}"
        )
    elif other.converged != base.converged:
        problems.append(f"{tag}: converged {other.converged} vs {base.converged}")


def kind_data(kind: str, seed: int) -> tuple[np.random.Generator, pd.DataFrame]:
    """The generator (after drawing) and the data of an invariance case."""
    rng = np.random.default_rng([seed, list(KINDS).index(kind)])
    phi = {"betabinomial": 5.0}.get(kind, np.inf)
    if kind == "betabinomial_mild":
        phi = float(rng.choice([10.0, 100.0, np.inf]))
    if kind == "crossed_betabinomial":
        phi = float(rng.choice([5.0, 20.0, np.inf]))
    return rng, simulate(rng, "m - y" in KINDS[kind][0], phi)


def invariance(kind: str, seed: int) -> list[str]:
    formula, options = KINDS[kind]
    rng, data = kind_data(kind, seed)
    copy = data.copy()
    problems: list[str] = []
    try:
        base = g.fit(formula, data, **options)
    except ValueError:
        return problems  # the data do not admit the model (a clear refusal)
    values = [base.llf, *np.asarray(base.params, float), *np.asarray(base.theta, float)]
    if base.converged and not np.all(np.isfinite(values)):
        problems.append("converged with a non-finite estimate")
    again = g.fit(formula, data, **options)
    if again.llf != base.llf or not np.array_equal(np.asarray(again.params), base.params):
        problems.append("the same frame fitted twice: not bit for bit the same")
    if not data.equals(copy):
        problems.append("the caller's frame was modified")
    labels = {v: f"L{(int(v) * 7919) % 10007}_{v}" for v in data["g"].unique()}
    variants = {
        "permuted": data.iloc[rng.permutation(len(data))].reset_index(drop=True),
        "relabelled": data.assign(g=data["g"].map(labels), h=data["h"].astype(str) + "z"),
        "g as category": data.assign(g=data["g"].astype("category")),
        "y as float": data.assign(y=data["y"].astype(float)),
    }
    if "m - y" not in formula:
        variants["y as bool"] = data.assign(y=data["y"].astype(bool))
    if " f " in formula:
        variants["f relevelled"] = data.assign(
            f=pd.Categorical(data["f"], categories=["c", "a", "b"])
        )
    missing = data.iloc[:3].assign(x=np.nan)
    variants["rows with x missing added"] = pd.concat([data, missing], ignore_index=True)
    for tag, variant in variants.items():
        agree(problems, tag, base, lambda v=variant: g.fit(formula, v, **options), 1e-7)
    if "m - y" in formula and "family" not in options:
        proportion = "p ~ " + formula.split("~", 1)[1]
        shares = data.assign(p=data["y"] / data["m"])
        agree(
            problems,
            "proportion with weights m",
            base,
            lambda: g.fit(proportion, shares, weights="m", **options),
            1e-7,
        )
    if kind in AFFINE:
        shifted = data.assign(x=10.0 * data["x"] + 3.0)
        agree(problems, "affine x", base, lambda: g.fit(formula, shifted, **options), 1e-6)
    if options.get("link") != "cloglog":
        # A symmetric link (F(-eta) = 1 - F(eta)): successes and failures swapped give the
        # same likelihood at -beta (and the beta-binomial's at the same phi).
        swapped = data.assign(y=data["m"] - data["y"] if "m - y" in formula else 1 - data["y"])
        agree(problems, "successes swapped", base, lambda: g.fit(formula, swapped, **options), 1e-7)
    if "priors" not in options:
        # An offset 1.5 x moves x's coefficient by -1.5 (a prior would see that move).
        agree(
            problems,
            "offset 1.5 x",
            base,
            lambda: g.fit(formula, data, offset=1.5 * data["x"].to_numpy(), **options),
            1e-7,
        )
    if kind in DOUBLED:
        doubled = pd.concat([data, data], ignore_index=True)
        weighted = data.assign(w=2.0)
        twice = g.fit(formula, doubled, **options)
        agree(
            problems,
            "weights 2 vs doubled rows",
            twice,
            lambda: g.fit(formula, weighted, weights="w", **options),
            1e-7,
        )
    return problems


def chain_data(chain_index: int, seed: int) -> pd.DataFrame:
    """The data of a nesting case."""
    return simulate(np.random.default_rng([seed, 100 + chain_index]), False, np.inf)


def nesting(chain_index: int, seed: int) -> list[str]:
    data = chain_data(chain_index, seed)
    problems: list[str] = []
    fits = []
    for formula in CHAINS[chain_index]:
        try:
            fits.append((formula, g.fit(formula, data)))
        except ValueError:
            fits.append((formula, None))
    for (f1, r1), (f2, r2) in zip(fits, fits[1:], strict=False):
        if r1 is None or r2 is None or not (r1.converged and r2.converged):
            continue
        if r2.llf < r1.llf - 1e-6:
            problems.append(f"{f2} ({r2.llf:.8f}) below {f1} ({r1.llf:.8f})")
    return problems


def run(name: str, seed: int) -> list[str]:
    try:
        if name.startswith("chain"):
            return nesting(int(name[5:]), seed)
        return invariance(name, seed)
    except Exception as e:  # noqa: BLE001 - a crash is a finding
        return ["".join(traceback.format_exception(e))[-800:]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--checks", nargs="+", default=["invariance", "nesting"])
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), help="invariance kinds")
    parser.add_argument("--only", help="KIND:SEED (a kind, or chainN for a nesting chain)")
    parser.add_argument("--write", help="with --only: save the case's data as this CSV")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.only:
        name, seed = args.only.rsplit(":", 1)
        if args.write:
            if name.startswith("chain"):
                frame = chain_data(int(name[5:]), int(seed))
            else:
                frame = kind_data(name, int(seed))[1]
            frame.to_csv(args.write, index=False)
        problems = run(name, int(seed))
        print("\n".join(problems) or "no problem")
        return 1 if problems else 0
    names = []
    if "invariance" in args.checks:
        names += args.kinds or list(KINDS)
    if "nesting" in args.checks:
        names += [f"chain{i}" for i in range(len(CHAINS))]
    failed = total = 0
    for seed in range(args.start, args.start + args.count):
        for name in names:
            total += 1
            problems = run(name, seed)
            if problems:
                failed += 1
                print(f"{name}:{seed}", *problems, sep="\n  ", flush=True)
    print(f"{total} cases, {failed} with a problem")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
