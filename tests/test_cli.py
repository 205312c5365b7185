"""The glmm-binomial command: data formats, outputs, exit codes, messages (issue 11, 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import CBPP

from glmm_binomial import datasets
from glmm_binomial.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command in a fresh interpreter (``python -m glmm_binomial``), this tree's source."""
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-m", "glmm_binomial", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """cbpp as CSV (comma and semicolon), separated toy data, new data to predict."""
    folder = tmp_path_factory.mktemp("cli")
    frame = datasets.load("cbpp")
    frame.to_csv(folder / "cbpp.csv", index=False)
    frame.to_csv(folder / "cbpp_semicolon.csv", index=False, sep=";")
    separated = pd.DataFrame(
        {
            "y": [0, 1, 0, 1, 1, 0],
            "x": [1, 2, 1.5, 2.5, 3, 1.2],
            "g": ["a", "a", "b", "b", "c", "c"],
        }
    )
    separated.to_csv(folder / "separated.csv", index=False, sep=";")
    frame.head(3).to_csv(folder / "new.csv", index=False)
    (folder / "latin1.csv").write_bytes("y,x,g\n0,1,caf\xe9\n1,2,b\n".encode("latin-1"))
    return folder


# --- subprocesses: one per exit status ----------------------------------------------------------


def test_exit_0_with_every_output_option(files):
    pytest.importorskip("openpyxl")  # anova.xlsx
    out = run(
        "fit",
        "cbpp",  # a bundled data set's name as DATA
        CBPP,
        "--method",
        "agq",
        "--n-agq",
        "5",
        "--conf-level",
        "0.9",
        "-o",
        "fit.json",
        "--ranef",
        "ranef.csv",
        "--anova",
        "anova.xlsx",
        "--predict",
        "new.csv",
        "--predict-out",
        "pred.json",
        "--factors",
        "period,herd",
        cwd=files,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no progress off a terminal, no warnings
    assert out.stdout.splitlines() == [  # one line naming each file written
        "glmm-binomial: wrote the fit to fit.json",
        "glmm-binomial: wrote the random effects to ranef.csv",
        "glmm-binomial: wrote the tests of the terms to anova.xlsx",
        "glmm-binomial: wrote the predictions to pred.json",
    ]
    document = json.loads((files / "fit.json").read_text())
    assert document["method"] == "agq" and document["n_agq"] == 5
    assert document["converged"] is True and document["warnings"] == []
    assert document["loglik"] == pytest.approx(-92.0, abs=0.1)
    assert [r["term"] for r in document["fixed_effects"]][-1] == "period4"
    ranef = pd.read_csv(files / "ranef.csv")
    assert list(ranef.columns[:3]) == ["group", "level", "(Intercept)"] and len(ranef) == 15
    predictions = json.loads((files / "pred.json").read_text())["predictions"]
    assert len(predictions) == 3 and all(0 < p["probability"] < 1 for p in predictions)
    anova = pd.read_excel(files / "anova.xlsx", sheet_name="anova")
    assert list(anova.columns[:4]) == ["term", "Chisq", "Df", "Pr(>Chisq)"]
    assert anova["term"].tolist() == ["period"] and anova["Df"].tolist() == [3]


def test_slopes_writes_the_average_marginal_effects(files):
    """--slopes: avg_slopes' table (the fit's data read from the file), the same numbers as
    the library's; a model without variables writes the header alone."""
    import glmm_binomial as g

    args = ("--factors", "period,herd", "--slopes", "slopes.csv", "--json")
    out = run("fit", "cbpp.csv", CBPP, *args, cwd=files)
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(files / "slopes.csv", dtype={"contrast": str})
    assert list(table.columns) == [
        "term",
        "contrast",
        "estimate",
        "std_error",
        "z",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]
    assert table["contrast"].tolist() == ["2 - 1", "3 - 1", "4 - 1"]
    fit = g.fit(CBPP, datasets.load("cbpp"))
    expected = g.avg_slopes(fit)
    assert table["estimate"].to_numpy() == pytest.approx(expected["estimate"].to_numpy(), rel=1e-9)
    formula = "cbind(incidence, size - incidence) ~ 1 + (1 | herd)"
    out = run("fit", "cbpp", formula, "--slopes", "none.json", "--json", cwd=files)
    assert out.returncode == 0, out.stderr
    assert json.loads((files / "none.json").read_text()) == {"slopes": []}


def test_anova_of_a_model_without_terms_writes_the_header(files):
    formula = "cbind(incidence, size - incidence) ~ 1 + (1 | herd)"
    out = run("fit", "cbpp", formula, "--anova", "empty.csv", "--json", cwd=files)
    assert out.returncode == 0, out.stderr
    assert (files / "empty.csv").read_text().splitlines() == ["term,Chisq,Df,Pr(>Chisq),note"]


def test_exit_3_separated_fit_json_carries_the_warning_not_the_numbers(files):
    out = run("fit", "separated.csv", "y ~ x + (1 | g)", "--json", cwd=files)
    assert out.returncode == 3, out.stderr
    document = json.loads(out.stdout)  # strict JSON: no NaN / Infinity tokens
    assert document["converged"] is False
    assert "separation" in [w["kind"] for w in document["warnings"]]
    for record in document["fixed_effects"]:
        assert record["estimable"] is False and record["estimate"] is None
        assert record["std_error"] is None
    assert "separation warning" in out.stderr
    assert "RuntimeWarning" not in out.stderr and "Traceback" not in out.stderr


def test_exit_1_one_line_naming_the_file(files, capsys):
    out = run("fit", "missing.csv", "y ~ x + (1 | g)", cwd=files)
    assert out.returncode == 1
    assert out.stderr == "glmm-binomial: error: cannot read missing.csv: no such file\n"
    # A file that is not UTF-8 text: one line naming it (same code path, in this process).
    assert main(["fit", str(files / "latin1.csv"), "y ~ x + (1 | g)"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "latin1.csv" in err and "--encoding" in err


def test_exit_2_usage_version_and_help():
    usage = run("fit", "--no-such-option")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1  # one line
    assert "required: DATA FORMULA" in usage.stderr and "--help" in usage.stderr
    usage = run("fit", "cbpp", CBPP, "--no-such-option")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
    assert "unrecognized arguments: --no-such-option" in usage.stderr
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("glmm-binomial 0.")
    text = run("--help").stdout
    assert "exit status" in text and "3  fitted, but not converged" in text


# --- in-process: the same main() ----------------------------------------------------------------


def test_earlier_forms_still_work(files, capsys):
    assert main([CBPP, "--dataset", "cbpp"]) == 0
    assert "period4" in capsys.readouterr().out
    assert main(["--dataset", "cbpp", CBPP]) == 0
    assert "period4" in capsys.readouterr().out
    assert main([CBPP, str(files / "cbpp.csv"), "--factors", "period,herd", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["loglik"] == pytest.approx(-92.02628, abs=1e-4)
    assert main(["fit", "--dataset", "cbpp", CBPP, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loglik"] == pytest.approx(-92.02628, abs=1e-4)
    assert main(["fit", "cbpp", CBPP, "--method", "vb"]) == 0
    assert "Note: coefficient, std_error, ci_lower and ci_upper are posterior means" in (
        capsys.readouterr().out
    )
    assert main(["fit", "cbpp", CBPP, "--method", "vb_meanfield"]) == 0
    assert "Note: std_error, z, p" in capsys.readouterr().out
    # Method and link names in any letter case, as in Python.
    assert main(["fit", "cbpp", CBPP, "--method", "AGQ", "--n-agq", "3", "--link", "Logit"]) == 0
    assert "nAGQ = 3" in capsys.readouterr().out


def test_contrasts_and_subset_options_are_glmers_arguments(capsys):
    """--contrasts NAME=CONTRAST: glmer's contrasts argument (R's names period1 ..); --subset:
    glmer's subset as R code."""
    assert main(["fit", "cbpp", CBPP, "--contrasts", "period=contr.sum", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["loglik"] == pytest.approx(-92.02628, abs=1e-4)
    assert "period1" in json.dumps(out) and "period4" not in json.dumps(out)
    assert main(["fit", "cbpp", CBPP, "--subset", "period != '4'", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nobs"] == 43  # period 4 has 13 rows
    assert main(["fit", "cbpp", CBPP, "--subset", "perio > 1"]) == 1
    assert "subset 'perio > 1' uses column(s) not in data" in capsys.readouterr().err
    assert main(["fit", "cbpp", CBPP, "--contrasts", "period"]) == 2
    assert "write NAME=CONTRAST" in capsys.readouterr().err
    assert main(["fit", "cbpp", CBPP, "--contrasts", "period=contr.bogus"]) == 1
    assert "unknown contrast 'contr.bogus'" in capsys.readouterr().err


def test_errors_are_one_line_messages(tmp_path, capsys):
    assert main(["y ~ x + (1 | g)", str(tmp_path / "missing.csv")]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "missing.csv" in err and err.count("\n") == 1
    assert main(["y ~ nothere + (1 | herd)", "--dataset", "cbpp"]) == 1
    err = capsys.readouterr().err
    assert "nothere" in err and "\x1b[" not in err
    with pytest.raises(Exception, match="nothere"):
        main(["fit", "--dataset", "cbpp", "y ~ nothere + (1 | herd)", "--debug"])
    assert main(["fit", "cbpp", CBPP, "-o", "out.docx"]) == 2  # a usage error, before the fit
    assert ".json" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["fit", "cbpp"]) == 2  # no formula
    assert "formula" in capsys.readouterr().err
    assert main(["fit", "--dataset", "cbpp", "cbpp", CBPP]) == 2


def test_semicolon_csv_is_sniffed_and_sep_given(files, capsys):
    args = ["fit", str(files / "cbpp_semicolon.csv"), CBPP, "--factors", "period,herd", "--json"]
    assert main(args) == 0
    sniffed = json.loads(capsys.readouterr().out)
    assert main([*args, "--sep", ";"]) == 0
    assert json.loads(capsys.readouterr().out)["loglik"] == sniffed["loglik"]
    assert sniffed["loglik"] == pytest.approx(-92.02628, abs=1e-4)


def test_xlsx_and_parquet_inputs(files, capsys):
    pytest.importorskip("openpyxl")
    frame = datasets.load("cbpp")
    book = files / "cbpp.xlsx"
    with pd.ExcelWriter(book) as writer:
        frame.head(2).to_excel(writer, sheet_name="notes", index=False)
        frame.to_excel(writer, sheet_name="data", index=False)
    assert main(["fit", str(book), CBPP, "--sheet", "data", "--factors", "period,herd"]) == 0
    assert "-92.0" in capsys.readouterr().out
    if pytest.importorskip("pyarrow"):
        parquet = files / "cbpp.parquet"
        frame.to_parquet(parquet)
        assert main(["fit", str(parquet), CBPP, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["nobs"] == 56


def test_missing_parquet_engine_is_a_clear_message(files, capsys, monkeypatch):
    pytest.importorskip("pyarrow")
    parquet = files / "cbpp.parquet"
    datasets.load("cbpp").to_parquet(parquet)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert main(["fit", str(parquet), CBPP]) == 1
    assert "pip install 'glmm-binomial[parquet]'" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".xlsx"])
def test_outputs_by_extension(files, capsys, suffix):
    if suffix == ".xlsx":
        pytest.importorskip("openpyxl")
    target = files / f"result{suffix}"
    args = ["fit", "cbpp", CBPP, "-o", str(target), "--predict", str(files / "new.csv")]
    assert main([*args, "--factors", "period,herd"]) == 0
    assert (
        capsys.readouterr().out == f"glmm-binomial: wrote the fit and the predictions to {target}\n"
    )
    if suffix == ".txt":
        text = target.read_text()
        assert "Fixed effects" in text and "predictions:" in text
    elif suffix == ".csv":
        text = target.read_text()
        assert "# fixed_effects" in text and "# predictions" in text and "period4" in text
    else:
        sheets = pd.read_excel(target, sheet_name=None)
        assert {"fixed_effects", "random_effects", "fit", "warnings", "predictions"} <= set(sheets)
        assert sheets["fixed_effects"]["term"].iloc[-1] == "period4"


def test_separated_text_output_says_numbers_are_not_estimates(files, capsys):
    assert main(["fit", str(files / "separated.csv"), "y ~ x + (1 | g)"]) == 3
    out = capsys.readouterr().out
    assert "No finite maximum-likelihood estimate for (Intercept), x" in out


def test_progress_only_on_a_terminal(monkeypatch):
    import io

    from glmm_binomial.frontends.cli import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    with progress("fitting"):
        pass
    assert pipe.getvalue() == ""  # silent when not a terminal
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with progress("fitting"):
        pass
    assert terminal.getvalue() == "fitting ...\n"  # without rich or tqdm: a one-line note
    with progress("fitting", enabled=False):  # --no-progress
        pass
    assert terminal.getvalue() == "fitting ...\n"


def test_prediction_warnings_are_kept_with_their_kind():
    import warnings

    from glmm_binomial.diagnostics import NewLevelsWarning
    from glmm_binomial.frontends.cli import _glmm_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("new levels of herd: 99", NewLevelsWarning, stacklevel=1)
        warnings.warn("new levels of herd: 99", NewLevelsWarning, stacklevel=1)
        warnings.warn("overflow in exp", RuntimeWarning, stacklevel=1)  # numpy's: not shown
    assert _glmm_warnings(caught) == [{"kind": "newlevels", "message": "new levels of herd: 99"}]


def test_prior_option(capsys):
    assert (
        main(
            [
                "fit",
                "cbpp",
                CBPP,
                "--prior",
                "fixef=normal(sd=3)",
                "--prior",
                "cov=wishart",
                "--json",
            ]
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    assert document["penalized"] is True
    assert document["priors"] == [
        "fixef: normal(sd = 3)",
        "cov (herd: (Intercept)): wishart(df = 3.5, scale = Inf)",
    ]
    assert document["penalized_objective"] == pytest.approx(
        document["deviance"] + document["prior_deviance"]
    )
    assert main(["fit", "cbpp", CBPP, "--prior", "blme"]) == 0
    assert "Prior dev" in capsys.readouterr().out
    assert main(["fit", "cbpp", CBPP, "--prior", "normal(sd=3)"]) == 2
    assert main(["fit", "cbpp", CBPP, "--prior", "fixef=normal(sd=3)", "--method", "vb"]) == 1
    assert "priors= applies" in capsys.readouterr().err


def test_mcmc_method_is_seeded_and_reports_its_draws(capsys):
    """--method mcmc with --draws/--warmup/--chains: the same command gives the same document
    (a fixed seed by default), with each parameter's diagnostics; --seed changes the draws;
    the sampler's options with another method are a usage error."""
    argv = ["fit", "cbpp", CBPP, "--method", "mcmc", "--draws", "40", "--warmup", "30"]
    argv += ["--chains", "2", "--json", "--no-progress"]
    # So few draws leave R-hat above 1.01: exit status 3, "not converged", said so.
    assert main(argv) == 3
    first = capsys.readouterr().out
    assert main(argv) == 3
    assert capsys.readouterr().out == first
    document = json.loads(first)
    assert document["method"] == "mcmc" and document["converged"] is False
    assert [r["parameter"] for r in document["posterior"]] == [
        "(Intercept)",
        "period2",
        "period3",
        "period4",
        "sd_(Intercept)|herd",
    ]
    assert document["sampler"]["draws"] == 40 and document["sampler"]["chains"] == 2
    assert "credible intervals" in document["notes"][0]
    main([*argv, "--seed", "3"])
    assert json.loads(capsys.readouterr().out)["fixed_effects"] != document["fixed_effects"]
    assert main(["fit", "cbpp", CBPP, "--draws", "40"]) == 2
    assert "--draws apply to --method mcmc only" in capsys.readouterr().err


# --- power --------------------------------------------------------------------------------------


def test_power_prints_simrs_summary_and_is_the_api_result(capsys):
    import glmm_binomial as g

    assert main(["power", "cbpp", CBPP, "--test", "period", "--nsim", "12", "--seed", "4"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Pilot fit: {CBPP} on cbpp, logLik -92.0263")
    pilot = g.fit(CBPP, datasets.load("cbpp"))
    expected = g.power_sim(pilot, test="period", nsim=12, seed=4, progress=False)
    assert expected.summary() in text


def test_power_json_is_the_same_for_one_and_two_workers(capsys):
    common = ["power", "cbpp", CBPP, "--nsim", "8", "--effect", "period=-0.2,-0.4,-0.6"]
    assert main([*common, "--test-method", "lrt", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main([*common, "--test-method", "lrt", "--json", "--n-jobs", "2"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert one == two
    assert one["effect"] == {"period2": -0.2, "period3": -0.4, "period4": -0.6}
    assert one["test"] == "period" and one["test_method"] == "lrt" and one["seed"] == 1
    assert one["pilot"]["converged"] is True and one["nsim"] == 8
    assert 0.0 <= one["ci_lower"] <= one["power"] <= one["ci_upper"] <= 1.0


def test_power_curve_to_csv_and_a_figure(files, capsys):
    pytest.importorskip("matplotlib")
    table, figure = files / "curve.csv", files / "curve.png"
    arguments = ["power", "cbpp", CBPP, "--nsim", "6", "--breaks", "5,10"]
    assert main([*arguments, "-o", str(table), "--plot", str(figure)]) == 0
    assert f"wrote the power to {table}" in capsys.readouterr().out
    written = pd.read_csv(table)
    assert list(written.columns[:3]) == ["levels of herd", "n_obs", "power"]
    assert written["levels of herd"].tolist() == [5, 10]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--nsim", "0"], "argument --nsim: must be a positive whole number"),
        (["--alpha", "1.5"], "argument --alpha: must be a number between 0 and 1"),
        (["--seed", "-1"], "argument --seed"),
        (["--n-jobs", "0"], "argument --n-jobs"),
        (["--effect", "age"], "--effect 'age': write NAME=VALUE"),
        (["--effect", "period2=1", "--effect", "period2=2"], "given twice"),
        (["--breaks", "5,ten"], "--breaks '5,ten'"),
        (["--along", "herd", "--within", "herd"], "not both"),
        (["--plot", "p.png"], "--plot draws a power curve"),
        (["-o", "power.xlsx"], "-o writes .txt, .json or .csv"),
    ],
)
def test_power_usage_errors_name_the_option(capsys, arguments, message):
    assert main(["power", "cbpp", CBPP, *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glmm-binomial power: error:") and message in err
    assert len(err.strip().splitlines()) == 1


def test_power_errors_of_the_model_are_one_line(capsys):
    assert main(["power", "cbpp", CBPP, "--test", "nope", "--nsim", "2"]) == 1
    err = capsys.readouterr().err
    assert "test 'nope' is not a fixed effect" in err and len(err.strip().splitlines()) == 1
    assert main(["power", "cbpp", CBPP, "--along", "nope", "--nsim", "2"]) == 1
    assert "along 'nope' is not a grouping factor" in capsys.readouterr().err


def test_power_exit_status_in_a_fresh_process():
    out = run("power", "cbpp", CBPP, "--nsim", "4", "-o", "-", "--no-progress")
    assert out.returncode == 2 and "cannot tell the output format" in out.stderr
    out = run("power", "cbpp", CBPP, "--nsim", "4", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "Power for period (wald test, alpha 0.05)" in out.stdout and out.stderr == ""


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--n-agq", "0"], "argument --n-agq: must be a positive whole number, got '0'"),
        (["--n-agq", "5"], "--n-agq applies to --method agq only"),
        (["--conf-level", "2"], "argument --conf-level: must be a number between 0 and 1"),
        (["--method", "mcmc", "--draws", "0"], "argument --draws"),
        (["--method", "mcmc", "--chains", "-1"], "argument --chains"),
        (["--method", "mcmc", "--warmup", "-5"], "argument --warmup: must be a whole number"),
        (["--method", "mcmc", "--seed", "-3"], "argument --seed: must be a whole number >= 0"),
    ],
)
def test_fit_options_out_of_range_are_usage_errors_naming_them(capsys, arguments, message):
    # Refused before the data are read or anything is fitted (exit status 2, one line).
    assert main(["fit", "cbpp", CBPP, *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glmm-binomial fit: error:") and message in err
    assert len(err.strip().splitlines()) == 1
