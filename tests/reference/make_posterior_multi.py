#!/usr/bin/env python3
"""The exact posteriors of the two multi-factor models of posterior_multilevel_*.json.

Runs make_posterior.py (PyMC NUTS, the priors of method "mcmc"; --no-vb) on the seeded simulated
data of multilevel_crossed.csv and multilevel_nested.csv (made by make_multilevel.py):

    crossed: y ~ x1 + (1 | a) + (1 | b)                    (30 x 20 crossed levels, 600 rows)
    crossed_slope: y ~ x1 + (1 + x1 | a) + (1 | b)         (the same data; LKJ(2) on a's R)
    nested:  y ~ x1 + (1 | region) + (1 | region:comm)     (5 regions, 40 communities, 700 rows)

The nested model's inner factor is written out as a column rc = "region_comm" (comm's codes are
local to the region), in a copy of the CSV in a temporary directory. Run from this folder with a
Python that has PyMC, ArviZ and patsy:

    python make_posterior_multi.py
"""

import os
import subprocess
import sys
import tempfile

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "make_posterior.py")


def run(data: str, terms: str, out: str) -> None:
    subprocess.run(
        [sys.executable, SCRIPT, data, "y", "-", "x1", terms, os.path.join(HERE, out), "--no-vb"],
        check=True,
    )


def main() -> None:
    run(os.path.join(HERE, "multilevel_crossed.csv"), "a,b", "posterior_multilevel_crossed.json")
    run(
        os.path.join(HERE, "multilevel_crossed.csv"),
        "a|x1,b",
        "posterior_multilevel_crossed_slope.json",
    )
    with tempfile.TemporaryDirectory() as tmp:
        nested = pd.read_csv(os.path.join(HERE, "multilevel_nested.csv"))
        nested["rc"] = nested["region"].astype(str) + "_" + nested["comm"].astype(str)
        path = os.path.join(tmp, "multilevel_nested.csv")
        nested.to_csv(path, index=False)
        run(path, "region,rc", "posterior_multilevel_nested.json")


if __name__ == "__main__":
    main()
