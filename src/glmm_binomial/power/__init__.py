"""Power analysis by simulation (simr's powerSim, powerCurve, extend and makeGlmer).

    power_sim(fit_or_model, test="age", nsim=1000, effect={"age": -0.02}, seed=1)
    power_curve(fit_or_model, test="age", along="district", breaks=[10, 20, 40, 80])
    extend(fit_or_model, along="district", n=120)      # or within="district", n=40
    make_model(formula, data, fixef={...}, varcorr={"district": 0.5})

Responses are simulated from the model's parameters on its design (built once), refitted by
its method from those parameters and tested (Wald or likelihood ratio); the power comes with
its exact binomial interval and the counts of failed and singular refits.
"""

from glmm_binomial.power.curve import PowerCurve, power_curve
from glmm_binomial.power.design import extend
from glmm_binomial.power.model import PowerModel, make_model, power_model
from glmm_binomial.power.simulation import PowerResult, power_sim

__all__ = [
    "PowerCurve",
    "PowerModel",
    "PowerResult",
    "extend",
    "make_model",
    "power_curve",
    "power_model",
    "power_sim",
]
