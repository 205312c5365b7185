"""Method objects, the registry and FitOptions (src/glmm_binomial/methods/base.py, registry.py,
options.py): one place for each method's settings, checks and label."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CBPP

import glmm_binomial as g
from glmm_binomial.methods.agq import MAX_N_AGQ, Agq
from glmm_binomial.methods.base import Method
from glmm_binomial.methods.laplace import Laplace
from glmm_binomial.methods.options import FitOptions, fit_options
from glmm_binomial.methods.registry import METHODS, make_method, method_class, method_names
from glmm_binomial.methods.structured_vb import VariationalBayes
from glmm_binomial.methods.variational import MeanFieldVB, VariationalControl
from glmm_binomial.numerics.optimize import OptimizerControl
from glmm_binomial.numerics.pirls import PirlsControl


def test_registry_lists_every_method_once_with_its_class():
    assert method_names() == tuple(METHODS)
    for name in method_names():
        cls = method_class(name)
        assert issubclass(cls, Method)
        assert cls.name == name
    with pytest.raises(ValueError, match="method must be one of 'laplace', 'agq', 'vb'"):
        method_class("ml")
    # Names in any letter case, as the spreadsheet takes them.
    assert method_class("Laplace") is method_class("laplace")
    assert method_class("AGQ") is method_class("agq")
    assert method_class("VB_MeanField") is method_class("vb_meanfield")
    with pytest.raises(ValueError, match="got 'ML'"):
        method_class("ML")


def test_method_objects_validate_their_own_settings():
    with pytest.raises(ValueError, match="n_agq must be a positive integer.*nAGQ = 0"):
        Agq(0)
    with pytest.raises(ValueError, match="n_agq must be a positive integer"):
        Agq(-2)
    with pytest.raises(ValueError, match=f"n_agq must be at most {MAX_N_AGQ}"):
        Agq(MAX_N_AGQ + 1)
    with pytest.raises(ValueError, match="prior_fe_sd must be a positive number"):
        VariationalBayes(prior_fe_sd=-1.0)
    with pytest.raises(ValueError, match="method 'laplace' must be an OptimizerControl"):
        make_method("laplace", control=VariationalControl())
    with pytest.raises(ValueError, match="control for method 'vb' must be a StructuredVBControl"):
        make_method("vb", control=OptimizerControl())
    with pytest.raises(ValueError, match="method 'vb_meanfield' must be a VariationalControl"):
        make_method("vb_meanfield", control=OptimizerControl())
    with pytest.raises(ValueError, match="n_agq applies only to method='agq'"):
        make_method("laplace", n_agq=5)
    with pytest.raises(ValueError, match="prior_fe_sd does not apply to method 'agq'"):
        make_method("agq", prior_fe_sd=3.0)
    with pytest.raises(ValueError, match="give the settings to the method object"):
        make_method(Agq(5), n_agq=5)


def test_fit_options_check_level_and_threads():
    with pytest.raises(ValueError, match="conf_level"):
        fit_options("laplace", conf_level=1.0)
    with pytest.raises(ValueError, match="blas_threads"):
        fit_options("laplace", blas_threads=0)
    options = fit_options("agq", n_agq=7, conf_level=0.9)
    assert isinstance(options, FitOptions)
    assert options.method == Agq(7)
    assert options.conf_level == 0.9


def test_a_method_object_fits_as_its_name_does_bit_for_bit():
    data = g.datasets.load("cbpp")
    by_name = g.fit(CBPP, data, method="agq", n_agq=5)
    by_object = g.fit(CBPP, data, method=Agq(5))
    by_options = g.fit(CBPP, data, options=fit_options("agq", n_agq=5))
    for other in (by_object, by_options):
        assert other.loglik == by_name.loglik
        np.testing.assert_array_equal(other.params, by_name.params)
        np.testing.assert_array_equal(other.theta, by_name.theta)
    assert by_object.method_object == Agq(5)
    assert by_object.summary().splitlines()[0].endswith("nAGQ = 5)")


def test_refit_goes_through_the_fit_s_method_and_settings():
    data = g.datasets.load("cbpp")
    control = OptimizerControl(gtol=1e-8)
    result = g.fit(CBPP, data, method=Laplace(control=control))
    again = result.refit(result.model.successes)
    assert again.method_object == result.method_object
    assert again.opt_summary.tolerances["gtol"] == 1e-8
    assert again.loglik == pytest.approx(result.loglik, abs=1e-8)
    vb = g.fit(CBPP, data, method="vb")
    with pytest.raises(ValueError, match="maximum-likelihood fits"):
        vb.refit(vb.model.successes)


def test_each_method_owns_its_title_and_posterior_flag():
    assert Laplace().title == "maximum likelihood (Laplace Approximation)"
    assert Agq(9).title == "maximum likelihood (Adaptive Gauss-Hermite Quadrature, nAGQ = 9)"
    assert not Laplace().posterior and not Agq(3).posterior
    assert VariationalBayes().posterior and MeanFieldVB().posterior
    assert VariationalBayes(prior_fe_sd=3).tolerances["prior_fe_sd"] == 3.0


def test_options_and_loose_arguments_do_not_mix():
    data = g.datasets.load("cbpp")
    options = FitOptions(Laplace())
    with pytest.raises(ValueError, match="give method, conf_level in options"):
        g.fit(CBPP, data, options=options, method="agq", conf_level=0.9)
    with pytest.raises(ValueError, match="options must be a FitOptions"):
        g.fit(CBPP, data, options={"method": "agq"})


def test_control_as_a_mapping_of_settings():
    """control= as a dict: the method's control with those settings, the rest at defaults;
    an unknown setting (lme4's glmerControl ones too) or a value of the wrong kind is named."""
    method = make_method("laplace", control={"max_iter": 500, "gtol": 1e-5})
    assert method.control == OptimizerControl(max_iter=500, gtol=1e-5)
    assert make_method("vb", control={"max_iter": 50}).control.max_iter == 50
    with pytest.raises(ValueError, match="'optimizer' is not a setting of OptimizerControl.*lme4"):
        make_method("laplace", control={"optimizer": "bobyqa"})
    with pytest.raises(ValueError, match="'bogus' is not a setting of StructuredVBControl"):
        make_method("vb", control={"bogus": 1})
    with pytest.raises(ValueError, match="OptimizerControl.max_iter must be a whole number"):
        make_method("laplace", control={"max_iter": "many"})
    with pytest.raises(ValueError, match="OptimizerControl.gtol must be a number, got nan"):
        make_method("laplace", control={"gtol": float("nan")})
    with pytest.raises(ValueError, match="OptimizerControl.basin_starts must be True or False"):
        make_method("laplace", control=OptimizerControl(basin_starts=1))


def test_settings_out_of_range_are_named():
    """No tolerance, step, limit or cap is negative; a step (and boundary_tol, compared on the
    log scale) is above 0; a setting that may be 0 is taken at 0 (snap_tol = 0: no snap)."""
    cases = [
        ("laplace", {"gtol": -1.0}, "OptimizerControl.gtol must be a number at least 0, got -1.0"),
        ("laplace", {"max_iter": -3}, "OptimizerControl.max_iter must be a whole number at least"),
        ("laplace", {"hessian_step": 0.0}, "OptimizerControl.hessian_step must be a number above"),
        ("agq", {"boundary_tol": 0}, "OptimizerControl.boundary_tol must be a number above 0"),
        ("vb", {"max_step": 0.0}, "StructuredVBControl.max_step must be a number above 0"),
        ("vb_meanfield", {"gtol": -1e-6}, "VariationalControl.gtol must be a number at least 0"),
    ]
    for method, settings, message in cases:
        with pytest.raises(ValueError, match=f"^control: {message}"):
            make_method(method, control=settings)
        control_type = type(make_method(method).control)
        with pytest.raises(ValueError, match=f"^control: {message}"):
            make_method(method, control=control_type(**settings))
    assert make_method("laplace", control={"snap_tol": 0.0, "max_iter": 0}).control.snap_tol == 0
    assert make_method("laplace", control={"column_runaway_screen": np.inf}).control


def test_pirls_control_as_a_mapping_or_named_in_its_error():
    """pirls_control= takes a PirlsControl or a dict of its settings, as control= does; any
    other value, an unknown setting or a negative one is a ValueError naming pirls_control
    (it was an AttributeError from inside the mode search)."""
    for method in ("laplace", "agq"):
        made = make_method(method, pirls_control={"max_iter": 50, "tol": 1e-12})
        assert made.pirls_control == PirlsControl(max_iter=50, tol=1e-12)
        with pytest.raises(ValueError, match="^pirls_control for method .* must be a PirlsControl"):
            make_method(method, pirls_control="fast")
        with pytest.raises(ValueError, match="^pirls_control: 'bogus' is not a setting"):
            make_method(method, pirls_control={"bogus": 1})
        with pytest.raises(ValueError, match="^pirls_control: PirlsControl.max_iter must be a"):
            make_method(method, pirls_control=PirlsControl(max_iter=-1))
    fitted = g.fit(CBPP, g.datasets.load("cbpp"), pirls_control={"tol": 1e-12})
    assert fitted.converged
    assert fitted.llf == pytest.approx(g.fit(CBPP, g.datasets.load("cbpp")).llf, abs=1e-9)
