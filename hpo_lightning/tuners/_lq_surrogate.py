"""A linear-quadratic regression surrogate for CMA-ES (numpy only).

After lq-CMA-ES (Hansen 2019, "A Global Surrogate Assisted CMA-ES", GECCO): a global model
``f(z) ~ c + b.z [+ sum a_i z_i^2 [+ sum a_ij z_i z_j]]`` is fitted by least squares on the most
recent evaluated points, in coordinates centred on CMA-ES's mean and scaled by its current
spread. The model's complexity grows with the data: linear, then diagonal quadratic, then full
quadratic (up to 10 dimensions; above, diagonal at most, to keep a fit to a few ms), the
largest one with at least ``1.1`` data points per coefficient. Its ranking is
trusted when Kendall's tau against the true values on the most recent evaluated points reaches
``0.85`` (the paper's threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TAU_TRUSTED = 0.85
POINTS_PER_COEF = 1.1
FULL_QUADRATIC_MAX_DIM = 10  # above: at most diagonal, so that a fit stays within a few ms


def n_coefs(dim: int, kind: int) -> int:
    """Coefficients of the linear (0), diagonal quadratic (1) or full quadratic (2) model."""
    return (dim + 1, 2 * dim + 1, (dim + 1) * (dim + 2) // 2)[kind]


def features(z: np.ndarray, kind: int) -> np.ndarray:
    """Design matrix rows ``[1, z, z_i^2 (kind >= 1), z_i z_j for i < j (kind 2)]``."""
    cols = [np.ones((len(z), 1)), z]
    if kind >= 1:
        cols.append(z**2)
    if kind == 2:
        i, j = np.triu_indices(z.shape[1], k=1)
        cols.append(z[:, i] * z[:, j])
    return np.hstack(cols)


def richest(dim: int) -> int:
    """The richest model kind fitted in ``dim`` dimensions."""
    return 2 if dim <= FULL_QUADRATIC_MAX_DIM else 1


def max_points(dim: int) -> int:
    """Most recent points a fit uses: twice the richest model's coefficients (at least 20)."""
    return max(2 * n_coefs(dim, richest(dim)), 20)


@dataclass(frozen=True)
class LQModel:
    """A fitted surrogate: ``predict(x)`` for points of the unit cube."""

    center: np.ndarray
    scale: float
    kind: int
    coef: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, center: np.ndarray, scale: float) -> LQModel | None:
        """Least squares on ``(x, y)``; ``None`` while there are too few points for a line."""
        dim = x.shape[1]
        kinds = range(richest(dim), -1, -1)
        fits = [k for k in kinds if len(x) >= POINTS_PER_COEF * n_coefs(dim, k)]
        if not fits:
            return None
        kind = fits[0]
        design = features((x - center) / scale, kind)
        # least squares by QR (cheaper than an SVD, and unlike the normal equations it does not
        # square the condition number, which matters near an ill-conditioned optimum)
        q, r = np.linalg.qr(design)
        try:
            coef = np.linalg.solve(r, q.T @ y)
        except np.linalg.LinAlgError:
            return None  # points in a lower-dimensional subspace: no surrogate this time
        if not np.all(np.isfinite(coef)):
            return None  # values too large for the fit: no surrogate this time
        return cls(center=center, scale=scale, kind=kind, coef=coef)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return features((np.atleast_2d(x) - self.center) / self.scale, self.kind) @ self.coef


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a between two equally long vectors (ties count as neither)."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    n = len(a)
    return float((da * db).sum() / max(n * (n - 1), 1))
