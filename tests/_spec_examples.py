"""The contract's four spreadsheet examples, as plain data (no glmm_binomial import, so the
wheel check in .ci/check_wheel.py can load it before testing what the package imports)."""

Y1 = [[0], [1], [0], [1], [1], [0]]
Y2 = [[0], [1], [1], [0], [1], [1]]
X = [[1], [2], [1.5], [2.5], [3], [1.2]]
G = [[1], [1], [2], [2], [3], [3]]
XR = [[1], [1], [1.5], [1.5], [2], [2]]

# Positional arguments as a spreadsheet passes them.
EXAMPLES = {
    1: (Y1, X, G),
    2: (Y2, X, G, XR),
    3: (Y1, X, G, False),
    4: (Y2, X, G, XR, True, 0.1),
}
