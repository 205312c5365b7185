"""Models refused before fitting (issue 9, items 13 and 15): unidentifiable random effects, and
correlated terms for method "vb_meanfield" with advice in valid formula syntax."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_binomial as g
from glmm_binomial.model.design import build_model
from glmm_binomial.model.validation import check_identifiable, independent_text


def _one_row_per_group(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(13)
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": rng.normal(size=n),
            "g": [f"g{i}" for i in range(n)],
            "h": np.arange(n) // 4,
        }
    )


def test_one_bernoulli_row_per_group_is_refused_naming_the_term():
    frame = _one_row_per_group()
    for formula in ("y ~ x + (1 | g)", "y ~ x + (1 | h) + (1 | g)"):
        with pytest.raises(ValueError, match=r"\(=120\).*term \(1 \| g\).*every level of g"):
            g.fit(formula, frame)


def test_one_row_per_group_refused_by_fit_model_and_every_method():
    model, _ = build_model("y ~ x + (1 | g)", _one_row_per_group())
    for method in ("laplace", "agq", "vb", "vb_meanfield"):
        with pytest.raises(ValueError, match="not identifiable"):
            g.fit_model(model, method=method)


def test_slopes_need_more_rows_than_random_effects():
    frame = _one_row_per_group()
    frame["pair"] = np.arange(len(frame)) // 2
    with pytest.raises(ValueError, match=r"term \(1 \+ x \| pair\).*no more 0/1 rows"):
        g.fit("y ~ x + (1 + x | pair)", frame)


def test_binomial_rows_with_several_trials_are_not_refused():
    frame = _one_row_per_group()
    rng = np.random.default_rng(3)
    frame["k"] = rng.integers(0, 6, len(frame))
    frame["n"] = 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit("cbind(k, n - k) ~ x + (1 | g)", frame)
    assert np.isfinite(result.loglik)


def test_groups_with_two_rows_are_fine():
    model, _ = build_model("y ~ x + (1 | h)", _one_row_per_group())
    check_identifiable(model)  # 4 rows per level: no error


def test_sheet_returns_the_message_for_one_row_per_group():
    frame = _one_row_per_group(20)
    out = g.glmm_binomial(
        [[v] for v in frame["y"]], [[v] for v in frame["x"]], [[v] for v in frame["g"]]
    )
    assert isinstance(out, str) and "not identifiable" in out


VB_TERMS = [
    ("(1 + urban | district)", '(1 + dummy(urban, "Y") || district)'),
    ("(0 + urban | district)", '(0 + dummy(urban, "N") + dummy(urban, "Y") || district)'),
    ("(1 + age | district)", "(1 + age || district)"),
    ("(age * urban | district)", None),
]


@pytest.mark.parametrize(("term", "advice"), VB_TERMS, ids=[t for t, _ in VB_TERMS])
def test_vb_advice_for_correlated_terms_is_valid_input(term, advice):
    data = g.datasets.load("contraception")
    formula = f"use ~ age + {term}"
    with pytest.raises(ValueError, match="method 'vb_meanfield' fits independent") as caught:
        g.fit(formula, data, method="vb_meanfield")
    message = str(caught.value)
    assert "urbanN" not in message and "urbanY" not in message  # no internal column names
    written = message.split("write it as ")[1].removesuffix(" (method 'vb' fits correlated terms)")
    if advice is not None:
        assert written == advice
    # The advice is valid input that method "vb_meanfield" accepts, with one column per term.
    model, design = build_model(f"use ~ age + {written}", data)
    assert all(block.k == 1 for block in model.blocks)
    assert len(model.blocks) == len(build_model(formula, data)[0].blocks[0].terms)


def test_vb_advice_keeps_transform_names():
    data = g.datasets.load("contraception")
    model, design = build_model("use ~ (1 + I(age^2) + livch | district)", data)
    text = independent_text(design.random_specs[0].term, model.blocks[0])
    assert re.fullmatch(r"\(1 \+ I\(age\^2\) \+ dummy\(livch, \"1\"\) .* \|\| district\)", text)
    assert all(block.k == 1 for block in build_model(f"use ~ {text}", data)[0].blocks)


def test_vb_refusal_for_model_data_names_no_syntax():
    model, _ = build_model("use ~ age + (1 + urban | district)", g.datasets.load("contraception"))
    with pytest.raises(ValueError, match="RandomBlock of its own"):
        g.fit_model(model, method="vb_meanfield")


def test_vb_advice_after_double_bar_on_a_factor_says_where_the_term_came_from():
    data = g.datasets.load("contraception")
    with pytest.raises(ValueError, match=r"\(0 \+ urban \| district\) \(from '\|\|'") as caught:
        g.fit("use ~ age + (1 + urban || district)", data, method="vb_meanfield")
    assert str(caught.value).endswith(
        '(0 + dummy(urban, "N") + dummy(urban, "Y") || district) '
        "(method 'vb' fits correlated terms)"
    )
