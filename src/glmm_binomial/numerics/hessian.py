"""The Hessian of a scalar function by finite differences of its exact gradient.

Column j of H is the change of the gradient g along coordinate j:

    forward:  H[:, j] = (g(x + h_j e_j) - g(x)) / h_j                      (n gradients, error O(h))
    central:  H[:, j] = (g(x + h_j e_j) - g(x - h_j e_j)) / (2 h_j)        (2n gradients, O(h^2))

and the result is symmetrized, (H + H') / 2. The step h_j is `step` itself (absolute, for
coordinates already on a common scale such as the optimizer's whitened ones) or
step * max(1, |x_j|) (relative, for parameters in their natural units).

With bounds (central differences only), the two points are kept inside them: x_j + h_j is cut
at upper_j and x_j - h_j at lower_j, and the difference is divided by the distance between the
two points actually used (a coordinate whose two points coincide gets a zero column). Without
bounds the divisor is the nominal 2 h_j (or h_j), as the callers have always used.

The gradient is evaluated point after point in a fixed order (for each j: the upper point,
then the lower one), which matters for objectives that warm-start from their last evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

SCHEMES = ("forward", "central")


def gradient_hessian(
    gradient: Callable[[FloatArray], FloatArray],
    x: FloatArray,
    step: float,
    *,
    scheme: Literal["forward", "central"] | str = "forward",
    relative: bool = False,
    gradient_at_x: FloatArray | None = None,
    lower: FloatArray | None = None,
    upper: FloatArray | None = None,
    columns: Sequence[int] | None = None,
) -> FloatArray:
    """Symmetrized finite-difference Hessian at x of the function whose exact gradient is
    `gradient` (see the module docstring for the formulas).

    step: h_j = step (relative=False) or step * max(1, |x_j|) (relative=True).
    scheme: "forward" (needs g(x): pass gradient_at_x, else it is evaluated first) or "central".
    lower, upper: bounds the central points are kept inside (either may be None: unbounded).
    columns: difference only these columns (None: every one); the others are zero before the
    symmetrization, which leaves the diagonal entries of those columns exact as computed."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(map(repr, SCHEMES))}, got {scheme!r}")
    bounded = lower is not None or upper is not None
    if bounded and scheme != "central":
        raise ValueError("bounds apply to central differences only")
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if scheme == "forward" and gradient_at_x is None:
        gradient_at_x = gradient(x)
    hess = np.zeros((n, n))
    for j in range(n) if columns is None else columns:
        h = step * max(1.0, abs(x[j])) if relative else step
        up = x.copy()
        up[j] += h
        if scheme == "forward":
            assert gradient_at_x is not None
            hess[:, j] = (gradient(up) - gradient_at_x) / h
            continue
        down = x.copy()
        down[j] -= h
        if not bounded:
            hess[:, j] = (gradient(up) - gradient(down)) / (2.0 * h)
            continue
        if upper is not None:
            up[j] = min(up[j], upper[j])
        if lower is not None:
            down[j] = max(down[j], lower[j])
        if up[j] <= down[j]:
            continue
        hess[:, j] = (gradient(up) - gradient(down)) / (up[j] - down[j])
    return 0.5 * (hess + hess.T)
