"""Gaussian-process regression over the unit cube, numpy/scipy only (used by ``GPTuner``).

Model (Rasmussen & Williams 2006, "Gaussian Processes for Machine Learning", ch. 2 and 5):

* Kernel: Matern-5/2 with automatic relevance determination (R&W Eq. 4.17),
  ``k(r) = s (1 + sqrt(5) r + 5/3 r^2) exp(-sqrt(5) r)``, where the squared distance sums
  ``((x_j - x'_j) / l_j)^2`` over ordered dimensions and ``[x_j != x'_j] / l_j^2`` over
  categorical ones (a Hamming-type distance: every two distinct choices are equally far apart).
* Hyper-parameters ``theta = (log l_1..l_d, log s, log noise)`` maximise the log marginal
  likelihood (R&W Eq. 5.8, gradient Eq. 5.9) plus priors, fitted with L-BFGS-B to a loose
  tolerance: on each length scale (unit cube) the penalty ``0.1 (l^2 + 1/l^2)``, a barrier
  around the cube's width that keeps the model from being either flat or wiggly on 10-100
  points (the shape of the prior of Optuna's GPSampler, which puts the same penalty on the
  inverse squared length scales); on the signal variance ``log s ~ N(0, 1)``; on the noise
  variance ``log noise ~ N(-11, 1)`` (outputs are standardised). On Hartmann-6 and Levy-5 at 60
  trials (16 seeds outside the benchmark's) it beat the log-normal length-scale prior of
  Hvarfner et al. 2024 ("Vanilla Bayesian Optimization Performs Great in High Dimensions"),
  which is centred on long length scales (l = 10 in 6 dimensions) and made Levy-5 2x worse.
* Cost: the cross-covariance of m candidates with n points is one (m, d) x (d, n) matrix
  product (``|a|^2 + |b|^2 - 2 a.b``); the training covariance is inverted with LAPACK
  potrf/potri; the log-EI gradient's sums over the training points are (m, n) x (n, d) matrix
  products (no (m, n, d) array: Hartmann-6 at 60 trials went from 22 to 15 ms per suggestion).
* Acquisition: the logarithm of expected improvement, computed stably for very negative
  z-scores (Ament et al. 2023, "Unexpected Improvements to Expected Improvement for Bayesian
  Optimization", Eq. 9), with its gradient in the continuous coordinates for polishing.
"""

from __future__ import annotations

import math

import numpy as np

_SQRT5 = math.sqrt(5.0)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_LOG_NOISE_BOUNDS = (math.log(1e-6), 0.0)
_LOG_SCALE_BOUNDS = (math.log(1e-2), math.log(1e2))
_LOG_LS_BOUNDS = (math.log(1e-2), math.log(1e2))
# mean and variance of the normal prior on log(noise variance): nearly noise-free by default
# (BoTorch's N(-4, 1) over-smooths deterministic objectives: on Branin, 20 trials, the median
# best was 0.92 vs 0.41 with this prior), the bounds still allow up to unit noise
_NOISE_PRIOR = (-11.0, 1.0)
# weight w of the length-scale prior w (l^2 + 1/l^2), see _prior: on Hartmann-6 and Levy-5
# (60 trials, 16 seeds) it beat the log-normal prior of Hvarfner et al. 2024 (centred on
# l = 10 in 6 dimensions: too smooth for 60 trials), and a weaker w = 0.03 was worse on Hartmann-6
_LS_PENALTY = 0.1


def _per_dim_sq(a: np.ndarray, b: np.ndarray, cat: np.ndarray) -> np.ndarray:
    """Per-dimension squared differences, shape (d, len(a), len(b)); 0/1 for categoricals."""
    diff = a.T[:, :, None] - b.T[:, None, :]
    sq = diff * diff
    if cat.any():
        sq[cat] = (np.abs(diff[cat]) > 1e-9).astype(float)
    return sq


def _scaled_r2(a: np.ndarray, b: np.ndarray, inv_ls2: np.ndarray, cat: np.ndarray) -> np.ndarray:
    """Squared scaled distances between the rows of a and b, shape (len(a), len(b)).

    The ordered part is expanded as ``|a|^2 + |b|^2 - 2 a.b`` (one matrix product instead of a
    (d, m, n) array: the cost of scoring thousands of candidates); categoricals add Hamming terms.
    In-place arithmetic: on (2208, 60) arrays every temporary costs about 0.1 ms.
    """
    w = np.sqrt(np.where(cat, 0.0, inv_ls2))
    aw, bw = a * w, b * w
    r2 = aw @ bw.T
    r2 *= -2.0
    r2 += (aw * aw).sum(axis=1)[:, None]
    r2 += (bw * bw).sum(axis=1)[None, :]
    np.maximum(r2, 0.0, out=r2)
    for j in np.flatnonzero(cat):
        r2 += inv_ls2[j] * (np.abs(a[:, j, None] - b[None, :, j]) > 1e-9)
    return r2


def _matern(r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matern-5/2 at squared distance r2 (unit scale) and ``-2 dk/d(r2)`` for the gradients."""
    t = np.sqrt(np.maximum(r2, 0.0))
    t *= _SQRT5
    e = np.negative(t)
    np.exp(e, out=e)
    t += 1.0  # 1 + sqrt(5) r
    k = r2 * (5.0 / 3.0)
    k += t
    k *= e
    t *= e
    t *= 5.0 / 3.0  # -2 dk/d(r^2) = -dk/dr / r = 5/3 (1 + sqrt(5) r) exp(-sqrt(5) r)
    return k, t


def _matern_k(r2: np.ndarray) -> np.ndarray:
    """Matern-5/2 at squared distance r2 (unit scale), without the gradient factor: the
    formula of :func:`_matern` with one (m, n) array fewer, for scoring 2208 candidates."""
    t = np.sqrt(np.maximum(r2, 0.0))
    t *= _SQRT5
    k = r2 * (5.0 / 3.0)
    k += t
    k += 1.0
    np.negative(t, out=t)
    np.exp(t, out=t)
    k *= t
    return k


def _chol_inv(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factor and inverse of a small SPD matrix (LAPACK potri: cheaper than solves)."""
    from scipy.linalg import lapack

    L, info = lapack.dpotrf(K, lower=1, clean=1)  # clean: the upper triangle is zeroed
    if info != 0:
        raise np.linalg.LinAlgError(f"potrf failed with info={info}")
    inv, info = lapack.dpotri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed with info={info}")
    inv += np.tril(inv, -1).T  # potri fills the lower triangle only
    return L, inv


def default_theta(dim: int) -> np.ndarray:
    """A smooth start for the marginal-likelihood fit: long length scales (the prior mode of
    Hvarfner et al. 2024), unit signal variance, the noise prior's mode."""
    return np.array([math.sqrt(2) + 0.5 * math.log(dim)] * dim + [0.0, _NOISE_PRIOR[0]])


def _prior(theta: np.ndarray, dim: int) -> tuple[float, np.ndarray]:
    """Negative log prior (up to a constant) and its gradient.

    Length scales: ``w (l^2 + 1 / l^2)`` per dimension, i.e. ``2 w cosh(2 log l)``, a barrier
    around the width of the unit cube (about 1 nat at l = 0.3 or 3, 10 nats at 0.1 or 10).
    Signal and noise variance: normal in the logarithm.
    """
    t = theta[:dim]
    up, down = np.exp(2.0 * t), np.exp(-2.0 * t)
    mean = np.array([0.0, _NOISE_PRIOR[0]])
    var = np.array([1.0, _NOISE_PRIOR[1]])
    dev = theta[dim:] - mean
    val = _LS_PENALTY * float((up + down).sum()) + 0.5 * float((dev * dev / var).sum())
    return val, np.concatenate([2.0 * _LS_PENALTY * (up - down), dev / var])


def neg_log_posterior(theta: np.ndarray, sq: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood + prior (R&W Eq. 5.8) and its gradient (Eq. 5.9)."""
    d, n = sq.shape[0], len(y)
    inv_ls2 = np.exp(-2.0 * theta[:d])
    s, noise = math.exp(theta[d]), math.exp(theta[d + 1])
    kr, g = _matern((inv_ls2 @ sq.reshape(d, -1)).reshape(n, n))
    kf = s * kr
    try:
        L, Kinv = _chol_inv(kf + (noise + 1e-8) * np.eye(n))
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = Kinv @ y
    nll = 0.5 * y @ alpha + np.log(np.diag(L)).sum() + n * _LOG_SQRT_2PI
    W = Kinv - np.outer(alpha, alpha)  # dNLL/dtheta_i = 1/2 tr(W dK/dtheta_i)
    grad = np.empty_like(theta)
    # dK/dlog(l_j) = s * g * sq_j / l_j^2
    grad[:d] = 0.5 * s * (sq.reshape(d, -1) @ (W * g).reshape(-1)) * inv_ls2
    grad[d] = 0.5 * (W * kf).sum()
    grad[d + 1] = 0.5 * noise * np.trace(W)
    p, dp = _prior(theta, d)
    return float(nll) + p, grad + dp


def fit_theta(
    X: np.ndarray, y: np.ndarray, cat: np.ndarray, starts: list[np.ndarray], maxiter: int = 60
) -> np.ndarray:
    """MAP hyper-parameters from the best of several L-BFGS-B starts."""
    from scipy.optimize import minimize

    sq = _per_dim_sq(X, X, cat)
    d = X.shape[1]
    bounds = [_LOG_LS_BOUNDS] * d + [_LOG_SCALE_BOUNDS, _LOG_NOISE_BOUNDS]
    lo, hi = np.array(bounds).T
    best_theta, best_val = np.clip(starts[0], lo, hi), math.inf
    for start in starts:
        res = minimize(
            neg_log_posterior,
            np.clip(start, lo, hi),
            args=(sq, y),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            # a loose tolerance: the fit only has to be good to a few digits
            options={"maxiter": maxiter, "ftol": 1e-6, "gtol": 1e-3},
        )
        if res.fun < best_val and np.all(np.isfinite(res.x)):
            best_theta, best_val = res.x, float(res.fun)
    return np.asarray(best_theta, dtype=float)


def log_h(z: np.ndarray) -> np.ndarray:
    """``log(phi(z) + z Phi(z))``, the log of EI / sigma, stable for z << 0 (Ament et al. Eq. 9)."""
    from scipy.special import erfcx, ndtr

    z = np.asarray(z, dtype=float)
    if z.min(initial=0.0) > -1.0:  # the common case while polishing: no tail to handle
        return np.log(np.exp(-0.5 * z * z - _LOG_SQRT_2PI) + z * ndtr(z))
    out = np.empty_like(z)
    hi = z > -1.0
    zh = z[hi]
    out[hi] = np.log(np.exp(-0.5 * zh * zh - _LOG_SQRT_2PI) + zh * ndtr(zh))
    zl = z[~hi]
    mid = zl > -1e3
    az = -zl[mid]
    tail = np.log1p(-az * math.sqrt(math.pi / 2) * erfcx(az / math.sqrt(2)))
    lo_vals = np.empty_like(zl)
    lo_vals[mid] = -0.5 * az * az - _LOG_SQRT_2PI + tail
    far = -zl[~mid]  # asymptote: phi(z) / z^2
    lo_vals[~mid] = -0.5 * far * far - _LOG_SQRT_2PI - 2.0 * np.log(far)
    out[~hi] = lo_vals
    return out


class GaussianProcess:
    """The posterior of a zero-mean GP given training points, with fixed hyper-parameters.

    ``add_believer(Xp)`` appends points with their own posterior mean as observations
    ("kriging believer", Ginsbourger et al. 2010): the mean is unchanged, the variance at those
    points collapses, so expected improvement there vanishes and parallel workers spread out.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, theta: np.ndarray, cat: np.ndarray) -> None:
        d = X.shape[1]
        self.cat = cat
        self.inv_ls2 = np.exp(-2.0 * theta[:d])
        self.scale = math.exp(theta[d])
        self.noise = math.exp(theta[d + 1])
        self._set(X, y)

    def _set(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X, self.y = X, y
        kr = _matern_k(np.tensordot(self.inv_ls2, _per_dim_sq(X, X, self.cat), axes=1))
        jitter = 1e-8
        while True:  # duplicated points with tiny noise: add jitter until K is positive
            try:
                _, self.Kinv = _chol_inv(self.scale * kr + (self.noise + jitter) * np.eye(len(y)))
                break
            except np.linalg.LinAlgError:
                if jitter > 1e-2:
                    raise
                jitter *= 100
        self.alpha = self.Kinv @ y

    def add_believer(self, Xp: np.ndarray) -> None:
        if len(Xp):
            mean, _ = self.predict(Xp)
            self._set(np.concatenate([self.X, Xp]), np.concatenate([self.y, mean]))

    def _cross(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cross-covariances with the training points and their ``-2 dk/d(r2)`` factors."""
        kr, g = _matern(_scaled_r2(Xs, self.X, self.inv_ls2, self.cat))
        kr *= self.scale
        g *= self.scale
        return kr, g

    def predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function at the rows of Xs."""
        ks = _matern_k(_scaled_r2(Xs, self.X, self.inv_ls2, self.cat))
        ks *= self.scale
        mean = ks @ self.alpha
        var = self.scale - ((ks @ self.Kinv) * ks).sum(axis=1)
        return mean, np.maximum(var, 1e-12)

    def log_ei(self, Xs: np.ndarray, best: float) -> np.ndarray:
        """log expected improvement below ``best`` at the rows of Xs."""
        mean, var = self.predict(Xs)
        sd = np.sqrt(var)
        return np.log(sd) + log_h((best - mean) / sd)

    def log_ei_grad(
        self, Xs: np.ndarray, best: float, free: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """log EI at the rows of Xs and its gradient in the ``free`` (ordered) coordinates."""
        from scipy.special import log_ndtr

        ks, gs = self._cross(Xs)
        mean = ks @ self.alpha
        v_sol = ks @ self.Kinv
        var = np.maximum(self.scale - (v_sol * ks).sum(axis=1), 1e-12)
        sd = np.sqrt(var)
        z = (best - mean) / sd
        lh = log_h(z)
        # dk/dx_j = -s g (x_j - X_j) / l_j^2 for each free coordinate j; the sums over the
        # training points are matrix products (no (m, n, d) array)
        xf, Xf, il = Xs[:, free], self.X[:, free], self.inv_ls2[free]
        ga, gv = gs * self.alpha, gs * v_sol
        dmean = -il * (xf * ga.sum(axis=1)[:, None] - ga @ Xf)
        dsd = il * (xf * gv.sum(axis=1)[:, None] - gv @ Xf) / sd[:, None]
        dlh = np.exp(log_ndtr(z) - lh)  # d log h / dz = Phi(z) / h(z)
        dz = (-dmean - z[:, None] * dsd) / sd[:, None]
        grad = dsd / sd[:, None] + dlh[:, None] * dz
        return np.log(sd) + lh, grad
