"""Multivariate Parzen estimator on the unit cube, the density model inside TPE.

Numeric dimensions use Gaussian kernels truncated to [0, 1] with one bandwidth per dimension
(shared by all kernels, as in the multivariate TPE of Falkner et al. 2018, "BOHB", Sec. 3.1);
categorical dimensions use an Aitchison-Aitken kernel. A uniform prior component keeps every
point of the cube possible. Kernels are multiplied across dimensions, so samples keep the
correlations between parameters (Bergstra et al. 2011 is the univariate original).
"""

from __future__ import annotations

import math

import numpy as np

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class ParzenEstimator:
    """A mixture of product kernels centred on observations, plus a uniform prior.

    Args:
        points: observations in the unit cube, shape (n, d); categorical columns hold bin centres.
        n_cats: per dimension, the number of categories (0 for a numeric dimension).
        min_bw: per numeric dimension, the smallest bandwidth (e.g. one int bin).
        weights: per observation weight (defaults to 1).
        prior_weight: weight of the uniform prior component.
        bw_factor: bandwidth scale (times ``n ** (-1 / (d + 4))``).
    """

    def __init__(
        self,
        points: np.ndarray,
        n_cats: np.ndarray,
        min_bw: np.ndarray,
        *,
        weights: np.ndarray | None = None,
        prior_weight: float = 1.0,
        bw_factor: float = 0.3,
    ) -> None:
        n, d = points.shape
        self.d = d
        self.num = np.flatnonzero(n_cats == 0)
        self.cat = np.flatnonzero(n_cats > 0)
        self.n_cats = n_cats
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        w = np.append(w, prior_weight)
        self.log_w = np.log(w / w.sum())
        self.n = n
        scale = bw_factor * max(n, 1) ** (-1.0 / (d + 4))
        if len(self.num) and n > 1:
            # per-dimension spread of the observations, floored so kernels never collapse
            spread = np.clip(points[:, self.num].std(axis=0) * 2.0, 0.25, 1.0)
        else:
            spread = np.ones(len(self.num))
        self.sigma = np.clip(scale * spread, min_bw[self.num], 1.0)
        self.mu = points[:, self.num]
        from scipy.special import ndtr  # (here: importing the tuners loads no scipy.special)

        # log of the truncation mass of each kernel in each numeric dimension, summed over dims
        a = (0.0 - self.mu) / self.sigma
        b = (1.0 - self.mu) / self.sigma
        mass = np.clip(ndtr(b) - ndtr(a), 1e-12, 1.0)
        self.log_z = np.log(mass).sum(axis=1) if len(self.num) else np.zeros(n)
        self.log_sigma_sum = float(np.log(self.sigma).sum())
        # categorical kernels: index of the observed category per dimension
        self.cat_idx = [
            np.minimum((points[:, j] * n_cats[j]).astype(int), n_cats[j] - 1) for j in self.cat
        ]
        self.lam = [min(0.5, 0.8 * scale) * (n_cats[j] - 1) / n_cats[j] for j in self.cat]

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` points from the mixture."""
        from scipy.special import ndtr, ndtri  # (here: importing the tuners loads no scipy)

        comp = rng.choice(self.n + 1, size=size, p=np.exp(self.log_w))
        out = np.empty((size, self.d))
        from_prior = comp == self.n
        out[from_prior] = rng.random((int(from_prior.sum()), self.d))
        k = comp[~from_prior]
        m = len(k)
        if m:
            if len(self.num):
                mu = self.mu[k]
                a = ndtr((0.0 - mu) / self.sigma)
                b = ndtr((1.0 - mu) / self.sigma)
                u = a + rng.random(mu.shape) * (b - a)
                x = mu + self.sigma * ndtri(np.clip(u, 1e-12, 1 - 1e-12))
                out[np.ix_(~from_prior, self.num)] = np.clip(x, 0.0, 1.0)
            for col, j in enumerate(self.cat):
                nc = int(self.n_cats[j])
                own = self.cat_idx[col][k]
                switch = rng.random(m) < self.lam[col]
                other = (own + rng.integers(1, max(nc, 2), size=m)) % nc
                idx = np.where(switch & (nc > 1), other, own)
                out[~from_prior, j] = (idx + 0.5) / nc
        return out

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """Log density of each row of ``x`` (shape (m, d))."""
        m = x.shape[0]
        comp = np.zeros((m, self.n))
        if len(self.num) and self.n:
            xs = x[:, self.num] / self.sigma
            mus = self.mu / self.sigma
            sq = (xs**2).sum(1)[:, None] + (mus**2).sum(1)[None, :] - 2.0 * xs @ mus.T
            comp += -0.5 * np.maximum(sq, 0.0)
            comp -= len(self.num) * _LOG_SQRT_2PI + self.log_sigma_sum + self.log_z[None, :]
        for col, j in enumerate(self.cat):
            nc = int(self.n_cats[j])
            xi = np.minimum((x[:, j] * nc).astype(int), nc - 1)
            lam = self.lam[col]
            same = xi[:, None] == self.cat_idx[col][None, :]
            log_other = math.log(lam / (nc - 1)) if nc > 1 else 0.0
            comp += np.where(same, math.log(1.0 - lam), log_other)
        # the prior component is uniform on the cube: density 1 numeric, 1/nc categorical
        prior = -float(sum(math.log(self.n_cats[j]) for j in self.cat))
        all_comp = np.concatenate([comp, np.full((m, 1), prior)], axis=1) + self.log_w[None, :]
        mx = all_comp.max(axis=1, keepdims=True)
        return (mx + np.log(np.exp(all_comp - mx).sum(axis=1, keepdims=True)))[:, 0]
