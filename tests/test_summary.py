"""summary(): lme4's layout as text, tables as DataFrames, HTML; no placeholder shown as an
estimate (issue 9 item 7)."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import CBPP, REFERENCE_DIR

import glmm_binomial as g
from glmm_binomial.results.summary import Summary, abbreviate, format_pvalues


@pytest.fixture(scope="module")
def cbpp_fit():
    return g.fit(CBPP, g.datasets.load("cbpp"))


def test_text_is_laid_out_as_lme4(cbpp_fit, capsys):
    summary = cbpp_fit.summary(data_name="cbpp")
    assert isinstance(summary, Summary) and isinstance(summary, str)
    lines = str(summary).splitlines()
    assert lines[3] == "   Data: cbpp"
    assert "Scaled residuals: " in lines
    header = lines[lines.index("Fixed effects:") + 1]
    assert header.split() == ["Estimate", "Std.", "Error", "z", "value", "Pr(>|z|)"]
    row = lines[lines.index("Fixed effects:") + 2]
    assert row.startswith("(Intercept)  -1.3985     0.2325  -6.016")
    # Aligned columns: every row of the table ends its estimate at the same column.
    table = lines[lines.index("Fixed effects:") + 1 : lines.index("---")]
    ends = {line.index(".") for line in table[1:]}
    assert len(ends) == 1
    assert " herd   (Intercept) 0.4125   0.6423" in lines  # lme4: left-aligned columns
    # R's print of a named vector: one width for every name and value.
    assert "     AIC      BIC   logLik deviance df.resid" in lines
    assert lines[lines.index("Scaled residuals: ") + 1] == "    Min      1Q  Median      3Q     Max"
    assert "Correlation of Fixed Effects:" in lines
    assert lines[-1].startswith("period4 -0.26")
    # lme4's layout (print of R's formatted character matrix: one width, left-aligned):
    #         (Intr) perid2 perid3
    # period2 -0.351
    # period3 -0.329  0.267
    assert lines[-4] == "        (Intr) perid2 perid3"
    assert re.fullmatch(r"period3 -0\.\d{3}  0\.\d{3}", lines[-2])
    print(cbpp_fit.summary())
    assert "Random effects:" in capsys.readouterr().out
    assert repr(summary) == str(summary)


def test_tables_and_html(cbpp_fit):
    summary = cbpp_fit.summary()
    assert list(summary.fixed_effects.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    assert summary.random_effects.loc[0, "Std.Dev."] == pytest.approx(cbpp_fit.varcorr.std_dev[0])
    assert list(summary.criteria.columns) == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    html = summary._repr_html_()
    assert html.count("<table") == 5 and "Fixed effects" in html
    assert cbpp_fit._repr_html_() == html


def test_correlated_terms_show_corr_column():
    result = g.fit("use ~ age + urban + (1 + urban | district)", g.datasets.load("contraception"))
    lines = str(result.summary()).splitlines()
    start = lines.index("Random effects:")
    assert lines[start + 1].split() == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert lines[start + 3].strip().startswith("urbanY")
    corr = float(result.varcorr["corr_1"].iloc[1])
    assert lines[start + 3].rstrip().endswith(f"{corr:5.2f}")


def test_separated_fit_shows_no_placeholder_as_an_estimate():
    frame = pd.DataFrame(
        {
            "y": [0, 1, 0, 1, 1, 0, 0, 1],
            "x": [1, 2, 1.5, 2.5, 3, 1.2, 0.5, 4],
            "grp": [1, 1, 2, 2, 3, 3, 4, 4],
        }
    )
    result = g.fit("y ~ x + (1 | grp)", frame)
    summary = result.summary()
    random_line = next(line for line in summary.splitlines() if "(Intercept)" in line)
    assert random_line.split()[-2:] == ["NA", "NA"]  # not "1 1", where the optimizer started
    assert summary.fixed_effects.isna().all().all()
    assert "-3525" not in summary and "e+95" not in summary
    assert "Warning: complete separation" in summary


def test_abbreviate_as_r():
    """R's abbreviate() (tests/reference/make_print_format.R): blanks, words, vowels, then
    lower-case letters, then any character, and names that would coincide made longer."""
    reference = json.loads((REFERENCE_DIR / "print_format.json").read_text())
    assert abbreviate(reference["x"], 6) == reference["a6"]
    assert abbreviate(reference["x"], 11) == reference["a11"]
    assert abbreviate([reference["x"][1], "splines::ns(x2, 2)2"], 6) == reference["unique"]


def test_pvalues_formatted_as_r():
    """R's format.pval(p, digits = 3) as printCoefmat shows a table's p-values
    (tests/reference/make_print_format.R): a common format for those from 1e-4 up, another for
    the smaller ones, "<2e-16" (with a blank beside wide ones) below machine precision."""
    reference = json.loads((REFERENCE_DIR / "print_format.json").read_text())
    for values, shown in zip(reference["pvalues"], reference["pvalues_shown"], strict=True):
        assert format_pvalues(np.asarray(values, dtype=float)) == shown, values
    assert format_pvalues(np.array([np.nan, 0.5])) == ["NA", "0.5"]
