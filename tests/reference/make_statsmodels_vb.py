"""Regenerate statsmodels_vb_<case>.json: statsmodels' BinomialBayesMixedGLM.fit_vb results.

    python tests/reference/make_statsmodels_vb.py [cbpp] [verbagg]

Each case builds ModelData exactly as tests/test_variational.py does, hands statsmodels the same
columns (exog = X; exog_vc = a sparse matrix with one column per level of each random-effect
block, in block then level order; ident = the block of each column; vcp_p = 1, fe_p = 2) and
runs its default fit_vb() (BFGS from statsmodels' random start) with the start seeded (rng=0)
so that the file can be reproduced. Stored: statsmodels' packed optimum x (means of fixed
effects, log SDs, random effects; then the logs of their posterior SDs, our packed layout),
its vb_elbo there, convergence, iterations and the wall time of the fit. Regenerate only on
purpose.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import statsmodels

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from test_variational import CASES, statsmodels_model  # noqa: E402

from glmm_binomial.model.data import ModelData  # noqa: E402


def run(data: ModelData, seed: int = 0) -> dict[str, object]:
    model = statsmodels_model(data)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit_vb(rng=seed)
    seconds = time.perf_counter() - started
    optimum = result.optim_retvals
    x = np.asarray(optimum.x, dtype=float)
    n = len(x) // 2
    return {
        "statsmodels_version": statsmodels.__version__,
        "call": f"BinomialBayesMixedGLM(..., vcp_p=1, fe_p=2).fit_vb(rng={seed})",
        "fixed_names": list(data.fixed_names),
        "n_obs": data.n_obs,
        "success": bool(optimum.success),
        "message": str(optimum.message),
        "iterations": int(optimum.nit),
        "warnings": sorted({str(w.message) for w in caught}),
        "seconds": seconds,
        "vb_elbo": float(model.vb_elbo(x[:n], np.exp(x[n:]))),
        "x": x.tolist(),
        "fe_mean": np.asarray(result.fe_mean).tolist(),
        "fe_sd": np.asarray(result.fe_sd).tolist(),
        "vcp_mean": np.asarray(result.vcp_mean).tolist(),
        "vcp_sd": np.asarray(result.vcp_sd).tolist(),
    }


def main(names: list[str]) -> None:
    for name in names or ["cbpp", "verbagg"]:
        record = run(CASES[name]())
        path = HERE / f"statsmodels_vb_{name}.json"
        path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(path, record["success"], record["message"], f"{record['seconds']:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
