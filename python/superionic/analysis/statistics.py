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


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS slope and intercept of y = a + b x along axis 0 of ``y`` ([K] or [K, ...])."""
    x = np.asarray(x, dtype=np.float64)
    weights = slope_weights(x)
    slope = np.tensordot(weights, y, axes=(0, 0))
    intercept = np.mean(y, axis=0) - slope * np.mean(x)
    return slope, intercept


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
