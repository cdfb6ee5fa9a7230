"""Small statistical helpers: least-squares line weights, bootstrap and block-average intervals.

References:
- B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap* (Chapman & Hall, 1993):
  resampling with replacement, bootstrap standard error (ch. 6) and percentile interval (ch. 13).
- H. Flyvbjerg and H. G. Petersen, "Error estimates on averages of correlated data",
  J. Chem. Phys. 91, 461 (1989): block averaging of a correlated time series.
"""

from __future__ import annotations

import numpy as np
from scipy import special

#: Two-sided 95 % quantile of the standard normal distribution (1.959964…).
Z95: float = float(special.ndtri(0.975))


def t95(dof: int) -> float:
    """Two-sided 95 % quantile of Student's t distribution with ``dof`` degrees of freedom."""
    return float(special.stdtrit(dof, 0.975))


def slope_weights(x: np.ndarray) -> np.ndarray:
    """Weights w with OLS slope = Σ_k w_k y_k for the line y = a + b x (w_k = (x_k − x̄) / Σ (x − x̄)²).

    The slope is linear in y, so the slope of an average of curves is the average of their slopes:
    the bootstrap over atoms resamples per-atom slopes instead of refitting every resample.
    """
    centred = np.asarray(x, dtype=np.float64) - np.mean(x)
    return centred / np.dot(centred, centred)


def brownian_msd_covariance(lags: np.ndarray) -> np.ndarray:
    """The shape of the covariance of a time-averaged MSD at ``lags`` for a Brownian walk.

    For lags t_i ≤ t_j much shorter than the run T, Cov[MSD(t_i), MSD(t_j)] ∝ t_i² (3 t_j − t_i) / T
    (from the overlap of the two displacement windows; the variance (4/3)(t/T) MSD² is the diagonal,
    Qian, Sheetz & Elson, Biophys. J. 60, 910 (1991)). Only the shape matters for the fit's weights,
    so the scale (D², 1/T, the number of atoms) is left out and the matrix is normalised.
    """
    t = np.asarray(lags, dtype=np.float64)
    short, long = np.minimum.outer(t, t), np.maximum.outer(t, t)
    covariance = short * short * (3.0 * long - short)
    return covariance / np.mean(np.diag(covariance))


def line_weights(x: np.ndarray, covariance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weights (w_b, w_a) with slope b = Σ_k w_b,k y_k and intercept a = Σ_k w_a,k y_k for y = a + b x.

    Without ``covariance``: ordinary least squares. With it: generalised least squares,
    (Xᵀ Σ⁻¹ X)⁻¹ Xᵀ Σ⁻¹, the minimum-variance linear fit when the y_k have covariance ∝ Σ.
    Either way the fit is linear in y, so the fit of an average of curves is the average of the fits.
    """
    x = np.asarray(x, dtype=np.float64)
    if covariance is None:
        slope = slope_weights(x)
        return slope, np.full_like(x, 1.0 / x.shape[0]) - slope * np.mean(x)
    design = np.stack([x, np.ones_like(x)], axis=1)  # [K, 2]
    # Cholesky with a jitter far below the matrix's scale (normalised to a mean diagonal of 1): the
    # Brownian shape is positive definite but ill-conditioned for many closely spaced lags.
    factor = np.linalg.cholesky(covariance + 1e-12 * np.eye(x.shape[0]))
    whitened = np.linalg.solve(factor, design)  # L⁻¹ X
    weights = np.linalg.solve(factor.T, np.linalg.solve(whitened.T @ whitened, whitened.T).T).T  # [2, K]
    return weights[0], weights[1]


def fit_line(
    x: np.ndarray, y: np.ndarray, covariance: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of y = a + b x along axis 0 of ``y`` ([K] or [K, ...]): OLS, or GLS with
    ``covariance`` [K, K] (see ``line_weights``)."""
    slope_w, intercept_w = line_weights(x, covariance)
    y = np.asarray(y, dtype=np.float64)
    return np.tensordot(slope_w, y, axes=(0, 0)), np.tensordot(intercept_w, y, axes=(0, 0))


def bootstrap_mean_interval(
    samples: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap of the mean over axis 0 of ``samples`` [N, ...] (Efron & Tibshirani 1993).

    Resamples the N rows with replacement ``n_resamples`` times. Returns the replicate means
    [B, ...], their standard deviation (the bootstrap standard error) and the 2.5/97.5 % percentile
    interval as an array [2, ...].
    """
    n = samples.shape[0]
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)  # [B, N] resample multiplicities
    replicates = np.tensordot(counts / n, samples, axes=(1, 0))
    stderr = replicates.std(axis=0, ddof=1)
    interval = np.percentile(replicates, [2.5, 97.5], axis=0)
    return replicates, stderr, interval


def block_mean_interval(block_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 of per-block estimates, its standard error and a Student-t 95 % interval.

    With n blocks long enough to be independent (Flyvbjerg & Petersen 1989), the block estimates are
    i.i.d.: stderr = s / √n (s the sample standard deviation), interval = mean ± t_{0.975, n−1} · stderr.
    Returns mean [...], stderr [...] and the interval [2, ...].
    """
    n = block_values.shape[0]
    mean = block_values.mean(axis=0)
    stderr = block_values.std(axis=0, ddof=1) / np.sqrt(n)
    half = t95(n - 1) * stderr
    return mean, stderr, np.stack([mean - half, mean + half])
