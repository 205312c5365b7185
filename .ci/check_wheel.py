"""Run from an installed wheel (no source tree on the path): the contract's four examples.

Usage: python check_wheel.py   (in a virtual environment holding only the wheel and its
runtime dependencies). Exits non-zero if any example gives a message instead of a table, if
the package is imported from a source tree, or if the lazy import pulled in heavy modules.
"""

import sys

import glmm_binomial

heavy = sorted(m for m in ("formulaic", "scipy.optimize", "pandas") if m in sys.modules)
assert not heavy, f"import glmm_binomial imported {heavy}"
assert "site-packages" in glmm_binomial.__file__, glmm_binomial.__file__

Y1 = [[0], [1], [0], [1], [1], [0]]
Y2 = [[0], [1], [1], [0], [1], [1]]
X = [[1], [2], [1.5], [2.5], [3], [1.2]]
G = [[1], [1], [2], [2], [3], [3]]
XR = [[1], [1], [1.5], [1.5], [2], [2]]
EXAMPLES = {
    1: (Y1, X, G),
    2: (Y2, X, G, XR),
    3: (Y1, X, G, False),
    4: (Y2, X, G, XR, True, 0.1),
}
for number, args in EXAMPLES.items():
    table = glmm_binomial.GLMM_BINOMIAL(*args)
    assert isinstance(table, list) and table[0][0] == "fixed_effects", (number, table)
    labels = {row[0]: row[1] for row in table if row[0]}
    print(f"example {number}: log_likelihood {labels['log_likelihood']:.6f}")
print("wheel OK:", glmm_binomial.__file__)
