"""Run from an installed wheel (no source tree on the path): the contract's four examples.

Usage: python check_wheel.py   (in a virtual environment holding only the wheel and its
runtime dependencies). Exits non-zero if any example gives a message instead of a table, if
the package is imported from a source tree, or if the lazy import pulled in heavy modules.
"""

import sys
from pathlib import Path

# The examples live once, as plain data, in the repo's tests/ folder (appended, so nothing
# there can shadow the installed package).
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
from _spec_examples import EXAMPLES  # noqa: E402

import glmm_binomial  # noqa: E402

heavy = sorted(m for m in ("formulaic", "scipy.optimize", "pandas") if m in sys.modules)
assert not heavy, f"import glmm_binomial imported {heavy}"
assert "site-packages" in glmm_binomial.__file__, glmm_binomial.__file__

for number, args in EXAMPLES.items():
    table = glmm_binomial.GLMM_BINOMIAL(*args)
    assert isinstance(table, list) and table[0][0] == "fixed_effects", (number, table)
    labels = {row[0]: row[1] for row in table if row[0]}
    print(f"example {number}: log_likelihood {labels['log_likelihood']:.6f}")
print("wheel OK:", glmm_binomial.__file__)
