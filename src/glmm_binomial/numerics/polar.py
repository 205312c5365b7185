"""Polar coordinates of the rows of unstructured Lambda_t, where the quasi-Newton search moves.

A row (l_i1, ..., l_ii) of Lambda_t (Sigma_t = Lambda_t Lambda_t') is written as its length r
(the SD of random-effect column i) and the hyperspherical angles of its direction (which set
the correlations with the columns before it):

    l_i1 = r cos a_1, l_i2 = r sin a_1 cos a_2, ..., l_ii = r sin a_1 ... sin a_{m-1}

(m = i entries). Where a covariance is nearly singular and a correlation hardly identified (a
column's SD close to zero: moving a correlation then changes the deviance very little), the
deviance has a long valley along which the SDs stay put and the direction turns: curved in the
Cartesian entries of Lambda, straight in these coordinates. The quasi-Newton search crept
along such valleys in hundreds of short steps (a 46,000-row (1 + x | g) fit: 248
evaluations). A correlation of +-1 (l_ii = 0) lies at an angle of 0 or pi, inside the
coordinates' range, where the deviance is smooth and even in the angle.

Rows with one entry (l_11) and every other structure keep their own theta entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.model.covariance import Unstructured
from glmm_binomial.model.data import ModelData

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

ANGLE_SCALE_MAX = 0.5
"""An angle's whitening scale (radians per whitened unit) is at most this: near r = 0 the
angles hardly move the deviance, and a step of a few whitened units must not wrap them
around the circle."""


@dataclass(frozen=True)
class PolarRows:
    """Which theta entries form the rows of Lambda with two or more entries (each row's theta
    indices in column order, the diagonal entry last)."""

    rows: tuple[IntArray, ...]

    @classmethod
    def of(cls, data: ModelData) -> PolarRows | None:
        """The rows of every unstructured block with two or more columns; None when there is
        none (scalar terms, structured covariances only)."""
        found: list[IntArray] = []
        for block, where in zip(data.blocks, data.theta_slices(), strict=True):
            if not isinstance(block.covariance, Unstructured) or block.covariance.k < 2:
                continue
            rows, cols = block.covariance.lower_indices()
            for i in range(1, block.covariance.k):
                at = np.flatnonzero(rows == i)
                found.append((where.start + at[np.argsort(cols[at])]).astype(np.intp))
        return cls(tuple(found)) if found else None

    def to_polar(self, theta: FloatArray) -> FloatArray:
        """theta with each row's entries replaced by (r, a_1, ..., a_{m-1}); a row of zeros
        gets the angles of the diagonal direction (every a = pi / 2)."""
        out = np.array(theta, dtype=np.float64)
        for idx in self.rows:
            v = out[idx]
            m = len(v)
            r = float(np.sqrt(v @ v))
            angles = np.full(m - 1, 0.5 * np.pi)
            if r > 0.0:
                # a_j = atan2(|v_{j+1..m}|, v_j) in [0, pi]; the last one atan2(v_m, v_{m-1}).
                tail = np.sqrt(np.cumsum((v * v)[::-1])[::-1])
                angles[:-1] = np.arctan2(tail[1 : m - 1], v[: m - 2])
                angles[-1] = np.arctan2(v[m - 1], v[m - 2])
            out[idx[0]] = r
            out[idx[1:]] = angles
        return out

    def to_theta(self, polar: FloatArray) -> FloatArray:
        """The inverse of to_polar: each row's entries r times its unit direction."""
        out = np.array(polar, dtype=np.float64)
        for idx in self.rows:
            out[idx] = row_direction(polar[idx[1:]]) * polar[idx[0]]
        return out

    def jacobians(self, polar: FloatArray) -> list[FloatArray]:
        """Each row's m x m Jacobian d(row entries) / d(r, a_1, ..., a_{m-1}) at `polar`."""
        return [row_jacobian(float(polar[idx[0]]), polar[idx[1:]]) for idx in self.rows]

    def pull_back(
        self, polar: FloatArray, gradient: FloatArray, jacobians: list[FloatArray] | None = None
    ) -> FloatArray:
        """A gradient in theta as one in the polar coordinates at `polar` (J' g per row)."""
        out = np.array(gradient, dtype=np.float64)
        for idx, jac in zip(self.rows, jacobians or self.jacobians(polar), strict=True):
            out[idx] = jac.T @ gradient[idx]
        return out

    def scales(self, polar: FloatArray, theta_scale: FloatArray) -> FloatArray:
        """Whitening scales of the polar coordinates from those of theta's entries (about
        1 / sqrt(curvature) each): a diagonal quadratic model in theta with curvatures
        1 / theta_scale^2, pulled back, has curvature sum_i J_ij^2 / theta_scale_i^2 along
        coordinate j; each scale is 1 / sqrt of that (angles at most ANGLE_SCALE_MAX)."""
        out = np.array(theta_scale, dtype=np.float64)
        for idx, jac in zip(self.rows, self.jacobians(polar), strict=True):
            curvature = ((jac / theta_scale[idx][:, None]) ** 2).sum(axis=0)
            scale = 1.0 / np.sqrt(np.maximum(curvature, 1e-24))
            scale[1:] = np.minimum(scale[1:], ANGLE_SCALE_MAX)
            out[idx] = scale
        return out


def row_direction(angles: FloatArray) -> FloatArray:
    """The unit vector (cos a_1, sin a_1 cos a_2, ..., sin a_1 ... sin a_{m-1})."""
    m = len(angles) + 1
    sines = np.concatenate([[1.0], np.cumprod(np.sin(angles))])
    cosines = np.concatenate([np.cos(angles), [1.0]])
    return np.asarray(sines[:m] * cosines, dtype=np.float64)


def row_jacobian(r: float, angles: FloatArray) -> FloatArray:
    """d(r u(a)) / d(r, a): the first column u(a), then for each angle a_j the entries
    l >= j of u with sin a_j or cos a_j replaced by its derivative, times r."""
    m = len(angles) + 1
    sin, cos = np.sin(angles), np.cos(angles)
    jac = np.zeros((m, m))
    jac[:, 0] = row_direction(angles)
    for j in range(m - 1):
        for entry in range(j, m):
            # u_entry = prod_{t < entry} sin a_t * (cos a_entry, or 1 for the last entry).
            factors = [sin[t] for t in range(entry)] + ([cos[entry]] if entry < m - 1 else [])
            if entry == j:
                factors[j] = -sin[j]  # d cos a_j
            else:
                factors[j] = cos[j]  # d sin a_j
            jac[entry, j + 1] = r * float(np.prod(factors))
    return jac
