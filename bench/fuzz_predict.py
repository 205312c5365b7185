"""Predict fuzz (issue 18): random good and bad new data against fitted models.

Each case takes rows of a model's training table (a random sample, in random order), maybe with
missing values or grouping levels the fit has not seen (the same in both calls), and predicts
them twice: once as a clean frame (the columns as the fit had them) and once as a variant:

* good variants deliver the same values another way: numbers as text (object, ``str``,
  ``"string"``, Arrow strings, a third of them text), factors as text of any dtype or as a
  categorical with other category order and unused categories, grouping labels as integers,
  floats, text or a mix, logical columns as bool, ``"boolean"``, objects or text, another
  index, extra and duplicated unused columns, a polars frame. The answer must equal the clean
  call's, value for value (NaN where the clean call has NaN);
* bad variants carry one defect: a needed column missing or duplicated, a factor level the fit
  has not seen, text or a logical value in a numeric column, a value that is not logical in a
  logical column, new data that is not a frame, an unknown ``re`` or ``type``. The call must
  raise one ValueError.

Any other exception, a good variant that fails or differs, a bad one that does not raise, or a
change of a canary prediction (made before the first case, repeated every few cases: a call on
the result must not change what later calls return) is a failure.

    python bench/fuzz_predict.py --calls 10000 --seed 1     # counts, and each failure

tests/test_predict_state.py runs a fast slice of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import glmm_binomial as g
from glmm_binomial.model.frame import label_key


@dataclass(frozen=True)
class Model:
    """A fitted model and the roles of its newdata columns."""

    name: str
    result: Any
    data: pd.DataFrame
    numbers: tuple[str, ...]
    factors: tuple[str, ...]
    groups: tuple[str, ...]
    logicals: tuple[str, ...] = ()


@dataclass
class Case:
    """One predict call: the variant and the clean call it must agree with (or bad: must raise
    a ValueError)."""

    description: list[str]
    newdata: Any
    clean: pd.DataFrame
    kwargs: dict[str, Any]
    bad: bool
    positional: bool = False  # compare by position (the variant has no pandas index)


@dataclass
class Tally:
    calls: int = 0
    clean_calls: int = 0
    canary_calls: int = 0
    good: int = 0
    bad: int = 0
    good_equal: int = 0
    bad_value_error: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)


def fit_models() -> list[Model]:
    """The models the fuzz predicts from (formula transforms, an offset term, logical and
    factor predictors, random slopes, a cbind response)."""
    contraception = g.datasets.load("contraception")
    contraception = contraception.assign(
        u=contraception["urban"] == "Y", district=contraception["district"].astype(int)
    )
    cbpp = g.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quadratic = g.fit(
            "use ~ age + I(age^2) + urban + livch + (1 + urban | district)", contraception
        )
        transforms = g.fit(
            "use ~ poly(age, 2) + livch + u + offset(age / 100) + (1 | district)", contraception
        )
        scaled = g.fit("use ~ scale(age) + u:livch + (1 | district)", contraception)
        counts = g.fit(
            "cbind(incidence, size - incidence) ~ period + offset(log(size) - 2) + (1 | herd)",
            cbpp,
        )
    return [
        Model("quadratic", quadratic, contraception, ("age",), ("urban", "livch"), ("district",)),
        Model("transforms", transforms, contraception, ("age",), ("livch",), ("district",), ("u",)),
        Model("scaled", scaled, contraception, ("age",), ("livch",), ("district",), ("u",)),
        Model("counts", counts, cbpp, ("size",), ("period",), ("herd",)),
    ]


# --- good variants: the same values, delivered another way ------------------------------------


def _text(series: pd.Series, dtype: Any, rng: np.random.Generator) -> pd.Series:
    """Values as text (numbers as repr, which reads back exactly), missing values kept."""

    def one(value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (float, np.floating)):
            return repr(float(value))
        return str(value)

    text = series.astype(object).map(one, na_action="ignore")
    if dtype == "third":
        out = series.astype(object).copy()
        take = rng.random(len(series)) < 1 / 3
        out[take] = text[take]
        return out
    return text.astype(dtype)


def _number_variant(series: pd.Series, rng: np.random.Generator) -> tuple[pd.Series, str]:
    choice = rng.integers(8)
    if choice == 0:
        return series, "float"
    if choice == 1:
        return series.astype(object), "object numbers"
    if choice == 2:
        return _text(series, object, rng), "object text"
    if choice == 3:
        return _text(series, str, rng), "str"
    if choice == 4:
        return _text(series, "string", rng), "string"
    if choice == 5:
        return _text(series, pd.ArrowDtype(_pyarrow().string()), rng), "arrow"
    if choice == 6:
        return _text(series, "third", rng), "a third text"
    return series.astype("Float64"), "Float64"


def _factor_variant(series: pd.Series, rng: np.random.Generator) -> tuple[pd.Series, str]:
    choice = rng.integers(6)
    if choice == 0:
        return series, "categorical"
    if choice == 1:
        return _text(series, object, rng), "object text"
    if choice == 2:
        return _text(series, str, rng), "str"
    if choice == 3:
        return _text(series, "string", rng), "string"
    if choice == 4:
        return _text(series, pd.ArrowDtype(_pyarrow().string()), rng), "arrow"
    categories = [*reversed(list(series.cat.categories)), "unused level"]
    return series.cat.set_categories(categories), "categorical, other order, unused level"


def _group_variant(series: pd.Series, rng: np.random.Generator) -> tuple[pd.Series, str]:
    numeric = pd.to_numeric(series, errors="coerce")
    whole = bool(numeric.notna().all())  # new labels (text) keep the column text
    choice = rng.integers(6)
    if choice == 0 or (choice in (1, 2) and not whole):
        return series, "as fitted"
    if choice == 1:
        return numeric.astype(np.int64), "int"
    if choice == 2:
        return numeric.astype(np.float64), "float"
    if choice == 3:
        return _text(series, object, rng), "object text"
    if choice == 4:
        return _text(series, "string", rng), "string"
    mixed = series.astype(object).copy()
    for position in range(len(mixed)):
        value = mixed.iloc[position]
        number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
        if not pd.isna(number) and rng.random() < 0.5:
            mixed.iloc[position] = int(number) if rng.random() < 0.5 else float(number)
        else:
            mixed.iloc[position] = str(value)
    return mixed, "mixed int/float/text"


def _logical_variant(series: pd.Series, rng: np.random.Generator) -> tuple[pd.Series, str]:
    choice = rng.integers(5)
    if choice == 0:
        return series, "bool"
    if choice == 1:
        return series.astype("boolean"), "boolean"
    if choice == 2:
        return series.astype(object), "object bools"
    if choice == 3:
        return series.map({True: "TRUE", False: "FALSE"}), "text TRUE/FALSE"
    return _text(series, object, rng), "text True/False"


def _pyarrow() -> Any:
    import pyarrow

    return pyarrow


# --- cases ---------------------------------------------------------------------------------------


def _needed(model: Model) -> list[str]:
    return [*model.numbers, *model.factors, *model.groups, *model.logicals]


def make_case(model: Model, rng: np.random.Generator) -> Case:
    """A random case for ``model`` (see the module docstring)."""
    n = int(rng.integers(1, 40))
    rows = rng.choice(len(model.data), size=n, replace=False)
    clean = model.data.iloc[rows][_needed(model)].copy()
    description = [f"model {model.name}", f"{n} rows"]
    if rng.random() < 0.3:  # missing values: NaN predictions in both calls
        column = str(rng.choice(list(model.numbers)))
        clean.loc[clean.index[rng.random(n) < 0.3], column] = np.nan
        description.append(f"NaN in {column}")
    if rng.random() < 0.25:  # grouping levels the fit has not seen: a zero random effect
        group = model.groups[0]
        labels = clean[group].astype(object).astype(str)
        labels[rng.random(n) < 0.4] = "new level"
        clean[group] = labels
        description.append(f"new {group} levels")
    kwargs: dict[str, Any] = {}
    if rng.random() < 0.3:
        kwargs["re"] = str(rng.choice(["exclude", "include"]))
    if rng.random() < 0.3:
        kwargs["type"] = "link"
    if rng.random() < 0.1:
        kwargs["se_fit"] = True
    elif rng.random() < 0.1:
        kwargs["conf_level"] = float(rng.choice([0.8, 0.95]))
    variant = clean.copy()
    for column in model.numbers:
        variant[column], how = _number_variant(clean[column], rng)
        description.append(f"{column}: {how}")
    for column in model.factors:
        variant[column], how = _factor_variant(clean[column], rng)
        description.append(f"{column}: {how}")
    for column in model.groups:
        variant[column], how = _group_variant(clean[column], rng)
        description.append(f"{column}: {how}")
    for column in model.logicals:
        variant[column], how = _logical_variant(clean[column], rng)
        description.append(f"{column}: {how}")
    if rng.random() < 0.3:
        variant.index = pd.Index([f"r{i}" for i in rng.permutation(n)])
        clean.index = variant.index
        description.append("text index")
    if rng.random() < 0.2:
        variant["unused"] = "x"
        variant = pd.concat([variant, variant[["unused"]]], axis=1)
        description.append("extra duplicated unused column")
    bad = rng.random() < 0.35
    newdata: Any = variant
    if bad:
        newdata = _defect(model, variant, kwargs, rng, description)
    positional = False
    if not bad and rng.random() < 0.1 and "se_fit" not in kwargs and "conf_level" not in kwargs:
        newdata = _polars(variant, model.groups)
        positional = newdata is not variant
        description.append("polars")
    return Case(description, newdata, clean, kwargs, bad, positional)


def _defect(
    model: Model,
    frame: pd.DataFrame,
    kwargs: dict[str, Any],
    rng: np.random.Generator,
    description: list[str],
) -> Any:
    frame = frame.copy()
    row = frame.index[int(rng.integers(len(frame)))]
    needed_by_fixed = [*model.numbers, *model.factors, *model.logicals]
    kinds = [
        "missing column",
        "duplicated column",
        "new factor level",
        "text in a numeric column",
        "logical in a numeric column",
        "not a frame",
        "unknown re",
        "unknown type",
    ]
    if model.logicals:
        kinds.append("not logical")
    kind = str(rng.choice(kinds))
    description.append(f"defect: {kind}")
    if kind == "missing column":
        return frame.drop(columns=[str(rng.choice(needed_by_fixed))])
    if kind == "duplicated column":
        column = str(rng.choice(needed_by_fixed))
        return pd.concat([frame, frame[[column]]], axis=1)
    if kind == "new factor level":
        column = str(rng.choice(list(model.factors)))
        values = frame[column].astype(object)
        values[row] = "not a level"
        frame[column] = values
        return frame
    if kind in ("text in a numeric column", "logical in a numeric column"):
        column = str(rng.choice(list(model.numbers)))
        values = frame[column].astype(object)
        values[row] = "abc" if kind.startswith("text") else True
        frame[column] = values
        return frame
    if kind == "not logical":
        column = model.logicals[0]
        values = frame[column].astype(object)
        values[row] = "maybe"
        frame[column] = values
        return frame
    if kind == "not a frame":
        return rng.choice(np.array(["newdata.csv", 42, [[1, 2]], {"x": 1}], dtype=object))
    if kind == "unknown re":
        kwargs["re"] = ["no such factor"]
        return frame
    kwargs["type"] = "odds"
    return frame


def _polars(frame: pd.DataFrame, groups: tuple[str, ...]) -> Any:
    try:
        import narwhals  # noqa: F401
        import polars as pl
    except ImportError:
        return frame
    if not frame.columns.is_unique:
        return frame
    columns = {}
    for name in frame.columns:
        series = frame[name]
        if name in groups:  # labels as their text (1.0 is the label "1", as R writes it)
            values = [None if pd.isna(v) else label_key(v) for v in series.astype(object)]
            columns[name] = pl.Series(name, values, dtype=pl.String)
        elif isinstance(series.dtype, pd.CategoricalDtype):
            columns[name] = pl.Series(name, series.astype(object).tolist(), dtype=pl.String)
        elif series.dtype == object or isinstance(series.dtype, pd.StringDtype | pd.ArrowDtype):
            values = [None if pd.isna(v) else str(v) for v in series.astype(object)]
            columns[name] = pl.Series(name, values, dtype=pl.String)
        else:
            columns[name] = pl.Series(name, series.to_numpy(dtype=None))
    return pl.DataFrame(columns)


# --- running ------------------------------------------------------------------------------------


def _as_array(answer: Any) -> np.ndarray:
    return np.asarray(answer.to_numpy() if hasattr(answer, "to_numpy") else answer, dtype=float)


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    return got.shape == want.shape and bool(
        np.all((got == want) | (np.isnan(got) & np.isnan(want)))
    )


def run_case(model: Model, case: Case, tally: Tally) -> None:
    """Make the clean and the variant call of one case and record what happened."""
    tally.kinds[case.description[-1] if case.bad else "good"] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NewLevelsWarning on new levels, in both calls
        if case.bad:
            tally.bad += 1
            tally.calls += 1
            try:
                model.result.predict(case.newdata, **case.kwargs)
            except ValueError as exc:
                if str(exc).strip():
                    tally.bad_value_error += 1
                    return
                _fail(tally, case, "empty ValueError message")
            except Exception as exc:  # noqa: BLE001 - the fuzz records every other exception
                _fail(tally, case, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            else:
                _fail(tally, case, "bad newdata predicted without an error")
            return
        tally.good += 1
        tally.clean_calls += 1
        try:
            want = model.result.predict(case.clean, **case.kwargs)
        except Exception as exc:  # noqa: BLE001
            _fail(tally, case, f"clean call: {type(exc).__name__}: {exc}", traceback.format_exc())
            return
        tally.calls += 1
        try:
            got = model.result.predict(case.newdata, **case.kwargs)
        except Exception as exc:  # noqa: BLE001
            _fail(tally, case, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            return
    if not case.positional and isinstance(got, pd.Series | pd.DataFrame):
        if not got.index.equals(case.newdata.index):
            _fail(tally, case, "the answer is not indexed like newdata")
            return
    if _same(_as_array(got), _as_array(want)):
        tally.good_equal += 1
    else:
        difference = np.nanmax(np.abs(_as_array(got) - _as_array(want)))
        _fail(tally, case, f"answer differs from the clean call's (max {difference:.3g})")


def _fail(tally: Tally, case: Case, what: str, trace: str = "") -> None:
    tally.failures.append({"case": "; ".join(case.description), "failure": what, "trace": trace})


def fuzz(calls: int, seed: int, models: list[Model] | None = None, canary_every: int = 25) -> Tally:
    """Run cases until ``calls`` variant calls were made; returns the tally."""
    models = models or fit_models()
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    canaries = []
    for model in models:
        frame = model.data.head(20)[_needed(model)]
        canaries.append((model, frame, _as_array(model.result.predict(frame))))
    tally = Tally()
    while tally.calls < calls:
        model = models[int(rng.integers(len(models)))]
        run_case(model, make_case(model, rng), tally)
        if tally.calls % canary_every == 0:
            for canary_model, frame, want in canaries:
                tally.canary_calls += 1
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        got = _as_array(canary_model.result.predict(frame))
                    what = "" if _same(got, want) else "changed"
                except Exception as exc:  # noqa: BLE001
                    what = f"now fails: {type(exc).__name__}: {exc}"
                if what:
                    tally.failures.append(
                        {"case": f"canary of {canary_model.name}", "failure": what}
                    )
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="random predict calls")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the tally as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    tally = fuzz(args.calls, args.seed)
    seconds = time.perf_counter() - started
    summary = {
        "calls (random newdata)": tally.calls,
        "clean calls": tally.clean_calls,
        "canary calls": tally.canary_calls,
        "good variants": tally.good,
        "good variants equal to the clean call": tally.good_equal,
        "bad variants": tally.bad,
        "bad variants giving one ValueError": tally.bad_value_error,
        "failures": len(tally.failures),
        "defects": dict(sorted(tally.kinds.items())),
        "seconds": round(seconds, 1),
    }
    if args.json:
        print(json.dumps({**summary, "failure list": tally.failures}, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
        for failure in tally.failures[:20]:
            print(f"FAILURE {failure['case']}: {failure['failure']}\n{failure.get('trace', '')}")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
