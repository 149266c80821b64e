"""Fréchet distance between two Gaussians fitted to feature sets (FID / FVD), StyleGAN-V convention.

- ``FrechetStats`` accumulates float64 sums (n, sum x, sum x x^T) so features can be streamed in any
  batching and partial statistics (shards, resumed runs) can be merged exactly.
- ``cov(biased=True)`` is StyleGAN-V's ``sum xx^T / n - mu mu^T`` (the original TF FVD uses the
  unbiased n-1 normalisation; pass ``biased=False`` for that).
- ``frechet_distance`` is ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))`` with ``scipy.linalg.sqrtm``
  and the real part taken, no epsilon added to the diagonal (as StyleGAN-V's FVD).
"""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError


class FrechetStats:
    """Streaming first and second moments of feature vectors in float64."""

    def __init__(self, dim: int | None = None):
        self.n = 0
        self.dim = dim
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None
        if dim is not None:
            self._alloc(dim)

    def _alloc(self, dim: int) -> None:
        self.dim = dim
        self._sum = np.zeros(dim, dtype=np.float64)
        self._outer = np.zeros((dim, dim), dtype=np.float64)

    def update(self, features: np.ndarray) -> "FrechetStats":
        """Add a batch of features [N, D] (a single vector [D] is one row)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise ArgumentError(f"features must be [N, D], got shape {x.shape}")
        if self._sum is None:
            self._alloc(x.shape[1])
        if x.shape[1] != self.dim:
            raise ArgumentError(f"features have dimension {x.shape[1]}, the statistics {self.dim}")
        if not np.all(np.isfinite(x)):
            raise ArgumentError("features contain NaN or inf")
        self.n += x.shape[0]
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x
        return self

    def merge(self, other: "FrechetStats") -> "FrechetStats":
        """Add another accumulator's sums into this one (in place; returns self)."""
        if other.n == 0:
            return self
        if self._sum is None:
            self._alloc(other.dim)
        if other.dim != self.dim:
            raise ArgumentError(f"cannot merge statistics of dimension {other.dim} into {self.dim}")
        self.n += other.n
        self._sum += other._sum
        self._outer += other._outer
        return self

    def mean(self) -> np.ndarray:
        if self.n < 1:
            raise ArgumentError("no features accumulated")
        return self._sum / self.n

    def cov(self, biased: bool = True) -> np.ndarray:
        """Covariance: biased (divide by n, StyleGAN-V) or unbiased (divide by n - 1)."""
        need = 1 if biased else 2
        if self.n < need:
            raise ArgumentError(f"covariance needs at least {need} feature vectors, have {self.n}")
        mu = self.mean()
        scatter = self._outer - self.n * np.outer(mu, mu)
        return scatter / (self.n if biased else self.n - 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)); real part of scipy's sqrtm, no epsilon."""
    import scipy.linalg

    mu1 = np.asarray(mu1, dtype=np.float64)
    mu2 = np.asarray(mu2, dtype=np.float64)
    s1 = np.asarray(sigma1, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ArgumentError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    m = float(np.square(mu1 - mu2).sum())
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.real(m + np.trace(s1 + s2 - 2.0 * root)))


def frechet_distance_symmetric(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                               sigma2: np.ndarray) -> float:
    """The same distance via symmetric eigendecompositions (fast; used for bootstrap replicates).

    For PSD S1, S2: Tr sqrtm(S1 S2) = sum sqrt(eig(R S2 R)), R = S1^(1/2) from ``eigh``; tiny negative
    eigenvalues from round-off are clipped to 0. Equal to ``frechet_distance`` in exact arithmetic; it
    differs by round-off (more where the covariances are rank-deficient, where sqrtm is least accurate).
    """
    mu1 = np.asarray(mu1, dtype=np.float64)
    mu2 = np.asarray(mu2, dtype=np.float64)
    s1 = np.asarray(sigma1, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(r @ s2 @ r)
    tr = float(np.sqrt(np.clip(ev, 0, None)).sum())
    return float(np.square(mu1 - mu2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr)


def frechet_from_stats(a: FrechetStats, b: FrechetStats, biased: bool = True) -> float:
    return frechet_distance(a.mean(), a.cov(biased), b.mean(), b.cov(biased))
