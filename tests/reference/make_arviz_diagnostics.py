"""Reference values of ArviZ's MCMC diagnostics for tests/test_mcmc_diagnostics.py.

    python make_arviz_diagnostics.py > arviz_diagnostics.json

Needs arviz (0.23.4 made the stored file). Simulates a few AR(1) chains (seeded; the draws
themselves are stored, rounded to 6 decimals, so the test does not depend on numpy's
generator) and records ArviZ's summary columns mean, sd, mcse_mean, ess_bulk, ess_tail and
r_hat for each set, computed on the stored (rounded) draws.
"""

import json
import warnings

import numpy as np

warnings.simplefilter("ignore")
import arviz as az  # noqa: E402


def ar1(rng, rho, shape, shift):
    e = rng.normal(size=shape)
    x = np.zeros(shape)
    for t in range(shape[1]):
        x[:, t] = (rho * x[:, t - 1] if t else 0.0) + e[:, t]
    x[0] += shift
    return np.round(x, 6)


def main():
    rng = np.random.default_rng(20261203)
    sets = {
        "independent": ar1(rng, 0.0, (4, 200), 0.0),
        "sticky_odd_length": ar1(rng, 0.9, (4, 201), 0.3),
        "two_chains": ar1(rng, 0.5, (2, 150), 0.0),
        "not_mixed": ar1(rng, 0.95, (4, 120), 3.0),
        "ties": np.round(ar1(rng, 0.3, (3, 100), 0.0)),
    }
    out = {"arviz": az.__version__, "sets": {}}
    for name, draws in sets.items():
        s = az.summary(az.convert_to_inference_data(draws), round_to="none")
        out["sets"][name] = {
            "draws": draws.tolist(),
            "summary": {
                k: float(s[k].iloc[0])
                for k in ("mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat")
            },
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
