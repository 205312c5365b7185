"""GLMM_BINOMIAL through xlwings' own custom-function call path (xlwings Lite and Server), with
the arguments as Office.js sends them: every range a 2D list, omitted arguments as null."""

from __future__ import annotations

import asyncio
import importlib
import sys
import types

import pytest
from _spec_examples import EXAMPLES, Y1, Y2, G, X

from glmm_binomial.frontends import excel
from glmm_binomial.sheet import glmm_binomial

# The contract's four examples, all seven arguments as Office.js passes them (null = omitted).
OFFICE_JS_ARGS = {number: [*args] + [None] * (7 - len(args)) for number, args in EXAMPLES.items()}
DIRECT = EXAMPLES


@pytest.fixture(scope="module")
def server():
    with pytest.MonkeyPatch.context() as patch:
        # xlwings' Office.js code path checks for a licence key when xlwings is imported;
        # "noncommercial" is the key xlwings documents for noncommercial use (xlwings Lite
        # sets its own).
        patch.setenv("XLWINGS_LICENSE_KEY", "noncommercial")
        xlwings = pytest.importorskip("xlwings")
        try:
            module = importlib.import_module("xlwings.server")
        except Exception as exc:  # noqa: BLE001 - any failure to load it: skip, not fail
            pytest.skip(f"xlwings.server unavailable: {exc}")
        if not xlwings.__pro__:
            pytest.skip("xlwings was imported before its licence key was set")
        yield module


def office_js_call(server, function, args):
    """What xlwings Lite / Server do with a custom-function request from Office.js."""
    import xlwings

    data = {
        "func_name": "GLMM_BINOMIAL",
        "args": args,
        "caller_address": "Sheet1!A1",
        "version": xlwings.__version__,
        "client": "Office.js",
        "runtime": "1.4",
        "culture_info_name": "en-US",
        "date_format": "M/d/yyyy",
    }
    module = types.SimpleNamespace(GLMM_BINOMIAL=function)
    return asyncio.run(server.custom_functions_call(data, module))


def as_excel_writes(table):
    """xlwings writes blank cells (None) as empty strings."""
    if isinstance(table, str):
        return table
    return [["" if cell is None else cell for cell in row] for row in table]


def test_declares_every_range_two_dimensional(server):
    function = excel.decorate(server.func, server.arg)
    info = function.__xlfunc__
    assert info["name"] == "GLMM_BINOMIAL"
    options = {a["name"]: a["options"] for a in info["args"]}
    assert [options[name].get("ndim") for name in ("y", "x", "groups", "x_random")] == [2] * 4
    # x_random, fit_intercept, alpha, method, link and prior (the contract's 8th and 9th
    # arguments) are optional.
    assert [a.get("optional", "required") for a in info["args"][3:]] == [None] * 6


def test_registration_metadata_as_excel_receives_it(server):
    module = types.SimpleNamespace(GLMM_BINOMIAL=excel.decorate(server.func, server.arg))
    (function,) = server.custom_functions_meta(module)["functions"]
    assert function["name"] == "GLMM_BINOMIAL" and "\n" not in function["description"]
    assert function["result"]["dimensionality"] == "matrix"  # the table spills
    parameters = function["parameters"]
    assert [p["name"] for p in parameters] == list(excel.ARGUMENT_DOCS)
    assert [p.get("optional", False) for p in parameters] == [False] * 3 + [True] * 6


@pytest.mark.parametrize("example", sorted(OFFICE_JS_ARGS))
def test_four_examples_through_office_js_path_equal_direct_call(server, example):
    function = excel.decorate(server.func, server.arg)
    got = office_js_call(server, function, OFFICE_JS_ARGS[example])
    direct = glmm_binomial(*DIRECT[example])
    assert not isinstance(direct, str), direct
    assert got == as_excel_writes(direct)


def test_office_js_habits(server):
    function = excel.decorate(server.func, server.arg)
    # Empty cells arrive as "" in a longer selection; a scalar where a range is expected.
    tail = [[""], [""]]
    args = [[[bool(v[0])] for v in Y2] + tail, X + tail, G + tail, None, 1, [[0.1]], "Laplace"]
    got = office_js_call(server, function, args)
    assert got == as_excel_writes(glmm_binomial(Y2, X, G, None, True, 0.1, "laplace"))
    message = office_js_call(server, function, [Y1[:5] + [[2]], X, G, None, None, None, None])
    assert message == [["Invalid input: y must contain only 0 or 1 values."]]


def test_module_builds_the_function_on_first_use_and_it_works_without_excel():
    pytest.importorskip("xlwings")
    function = excel.GLMM_BINOMIAL
    assert function(Y1, X, G, None, None, None, "laplace") == glmm_binomial(
        Y1, X, G, method="laplace"
    )


def test_missing_xlwings_is_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "xlwings", None)  # import xlwings now fails
    with pytest.raises(ImportError, match=r"pip install 'glmm-binomial\[excel\]'"):
        excel.decorate()
