import json

import pytest

from glmm_binomial.cli import main

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def test_summary_of_bundled_dataset(capsys):
    assert main([CBPP, "--dataset", "cbpp"]) == 0
    assert "period4" in capsys.readouterr().out


def test_json_from_csv(tmp_path, capsys):
    from glmm_binomial import datasets

    path = tmp_path / "cbpp.csv"
    datasets.load("cbpp").to_csv(path, index=False)
    assert main([CBPP, str(path), "--factors", "period,herd", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["loglik"] == pytest.approx(-92.02628, abs=1e-4)
    assert [row["term"] for row in out["fixed_effects"]][-1] == "period4"


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["y ~ x + (1 | g)", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["y ~ nothere + (1 | herd)", "--dataset", "cbpp"]) == 2
    assert "nothere" in capsys.readouterr().err
