from __future__ import annotations

import pandas as pd
import pytest

from glmm_binomial import datasets


def categories(frame: pd.DataFrame, column: str) -> list[str]:
    dtype = frame[column].dtype
    assert isinstance(dtype, pd.CategoricalDtype), f"{column} is {dtype}"
    return [str(level) for level in dtype.categories]


def test_names() -> None:
    assert datasets.names() == ["cbpp", "contraception", "verbagg"]


@pytest.mark.parametrize(
    ("name", "shape"),
    [("cbpp", (56, 4)), ("contraception", (1934, 6)), ("verbagg", (7584, 8))],
)
def test_shapes(name: str, shape: tuple[int, int]) -> None:
    frame = datasets.load(name)
    assert frame.shape == shape
    assert not frame.isna().any().any()


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ValueError, match="cbpp, contraception, verbagg"):
        datasets.load("nope")


def test_load_returns_fresh_copy() -> None:
    first = datasets.load("cbpp")
    first.loc[0, "size"] = -1
    assert datasets.load("cbpp").loc[0, "size"] != -1


def test_cbpp() -> None:
    frame = datasets.load("cbpp")
    assert list(frame.columns) == ["herd", "incidence", "size", "period"]
    assert categories(frame, "herd") == [str(i) for i in range(1, 16)]
    assert categories(frame, "period") == ["1", "2", "3", "4"]
    assert frame["incidence"].dtype == "int64"
    assert frame["size"].dtype == "int64"
    assert (frame["incidence"] <= frame["size"]).all()


def test_contraception() -> None:
    frame = datasets.load("contraception")
    assert categories(frame, "woman") == [str(i) for i in range(1, 1935)]
    district = categories(frame, "district")
    assert len(district) == 60
    assert district == sorted(district, key=int)
    assert categories(frame, "livch") == ["0", "1", "2", "3+"]
    assert categories(frame, "urban") == ["N", "Y"]
    assert frame["use"].dtype == "int64"
    assert set(frame["use"]) == {0, 1}
    assert frame["age"].dtype == "float64"


def test_verbagg() -> None:
    frame = datasets.load("verbagg")
    assert categories(frame, "id") == [str(i) for i in range(1, 317)]
    item = categories(frame, "item")
    assert len(item) == 24
    assert item[:4] == ["S1WantCurse", "S1WantScold", "S1WantShout", "S2WantCurse"]
    assert item[-1] == "S4DoShout"
    assert item == list(pd.unique(frame["item"].astype(str)))
    assert categories(frame, "Gender") == ["F", "M"]
    assert categories(frame, "btype") == ["curse", "scold", "shout"]
    assert categories(frame, "situ") == ["other", "self"]
    assert categories(frame, "mode") == ["want", "do"]
    assert frame["Anger"].dtype == "int64"
    assert frame["r2"].dtype == "int64"
    assert set(frame["r2"]) == {0, 1}
