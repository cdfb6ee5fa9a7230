"""Small statistical helpers: least-squares line weights, bootstrap and block-average intervals.

References:
- B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap* (Chapman & Hall, 1993):
  resampling with replacement, bootstrap standard error (ch. 6) and percentile interval (ch. 13).
- H. Flyvbjerg and H. G. Petersen, "Error estimates on averages of correlated data",
  J. Chem. Phys. 91, 461 (1989): block averaging of a correlated time series.
"""

from __future__ import annotations

import math
from typing import Literal

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


#: What a line fit assumes about the covariance of its y values: None (OLS), a matrix (GLS with it),
#: or "brownian" (GLS with ``brownian_msd_covariance``, solved in O(K) by ``brownian_line_weights``).
Covariance = np.ndarray | Literal["brownian"] | None


def brownian_line_weights(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GLS weights (w_b, w_a) for y = a + b x under ``brownian_msd_covariance(x)``, exactly, in O(K).

    That shape, s² (3 t − s) for s ≤ t, is 6 × the covariance of integrated Brownian motion
    X(t) = ∫₀ᵗ W(u) du (W a standard Wiener process). The pair (X, W) is Markov: over a step Δ,
    X' = X + Δ W + ξ and W' = W + η with Cov(ξ, η) = [[Δ³/3, Δ²/2], [Δ²/2, Δ]], and at the first lag
    t₁ it has covariance [[t₁³/3, t₁²/2], [t₁²/2, t₁]]. A Kalman filter that observes X exactly therefore
    turns y into its innovations e = L⁻¹ y (Σ = L D Lᵀ, L unit lower triangular) with variances D in
    one pass, and GLS is OLS on e / √D. The weights are (Xᵀ Σ⁻¹ X)⁻¹ Xᵀ L⁻ᵀ D⁻¹ L⁻¹: the filter applied
    to the two design columns, then its adjoint (one backward pass) applied to the result. This equals
    the dense Cholesky solve of ``line_weights(x, brownian_msd_covariance(x))`` without forming the
    K × K matrix (a 1 ns run at 50 fs frames has ~7000 lags in its window: 0.1 s instead of a minute).
    ``x`` must be strictly increasing and positive (lags, t > 0).
    """
    t = np.asarray(x, dtype=np.float64)
    if t.ndim != 1 or t.shape[0] < 2 or not (t[0] > 0 and np.all(np.diff(t) > 0)):
        raise ValueError("brownian_line_weights needs at least 2 strictly increasing positive lags")
    n = t.shape[0]
    step = np.diff(t)
    # The filter's gains and innovation variances do not depend on the data: compute them once.
    gain = np.empty(n - 1)
    variance = np.empty(n)
    variance[0] = t[0] ** 3 / 3.0
    w_variance = t[0] / 4.0  # Var(W(t₁) | X(t₁)) = t₁ − (t₁²/2)² / (t₁³/3)
    for k in range(n - 1):
        d = step[k]
        innovation = d * d * w_variance + d**3 / 3.0  # Var(X_{k+1} | X_1 … X_k)
        cross = d * w_variance + d * d / 2.0  # Cov(X_{k+1}, W_{k+1} | X_1 … X_k)
        gain[k] = cross / innovation
        variance[k + 1] = innovation
        w_variance = w_variance + d - gain[k] * cross
    first_gain = 1.5 / t[0]  # E[W(t₁) | X(t₁)] = (t₁²/2) / (t₁³/3) · X(t₁)

    # Forward: innovations of the design columns (x, 1), both at once.
    design = np.stack([t, np.ones(n)], axis=1)
    innovations = np.empty_like(design)
    innovations[0] = design[0]
    w_mean = first_gain * design[0]
    for k in range(n - 1):
        innovations[k + 1] = design[k + 1] - design[k] - step[k] * w_mean
        w_mean = w_mean + gain[k] * innovations[k + 1]
    scaled = innovations / variance[:, None]
    coefficients = scaled @ np.linalg.inv(scaled.T @ innovations)  # [K, 2]: the weights on e

    # Backward (adjoint of the filter): weights on y of Σ_k coefficients_k e_k. adjoint[k] is the
    # derivative of that sum with respect to the filter's W estimate after lag k.
    adjoint = np.zeros((n, 2))
    for k in range(n - 2, -1, -1):
        adjoint[k] = -step[k] * coefficients[k + 1] + (1.0 - gain[k] * step[k]) * adjoint[k + 1]
    weights = coefficients.copy()
    weights[:-1] -= coefficients[1:]  # e_{k+1} = y_{k+1} − y_k − …
    weights[1:] += gain[:, None] * adjoint[1:]  # W estimate after lag k+1 gains K_k (y_{k+1} − y_k)
    weights[:-1] -= gain[:, None] * adjoint[1:]
    weights[0] += first_gain * adjoint[0]
    return weights[:, 0], weights[:, 1]


def line_weights(x: np.ndarray, covariance: Covariance = None) -> tuple[np.ndarray, np.ndarray]:
    """Weights (w_b, w_a) with slope b = Σ_k w_b,k y_k and intercept a = Σ_k w_a,k y_k for y = a + b x.

    Without ``covariance``: ordinary least squares. With it: generalised least squares,
    (Xᵀ Σ⁻¹ X)⁻¹ Xᵀ Σ⁻¹, the minimum-variance linear fit when the y_k have covariance ∝ Σ;
    ``covariance="brownian"`` is Σ = ``brownian_msd_covariance(x)`` by ``brownian_line_weights``.
    Either way the fit is linear in y, so the fit of an average of curves is the average of the fits.
    """
    x = np.asarray(x, dtype=np.float64)
    if covariance is None:
        slope = slope_weights(x)
        return slope, np.full_like(x, 1.0 / x.shape[0]) - slope * np.mean(x)
    if isinstance(covariance, str):
        if covariance != "brownian":
            raise ValueError(f"covariance = {covariance!r}: pass a matrix, 'brownian' or None")
        return brownian_line_weights(x)
    design = np.stack([x, np.ones_like(x)], axis=1)  # [K, 2]
    # Cholesky with a jitter far below the matrix's scale (normalised to a mean diagonal of 1): the
    # Brownian shape is positive definite but ill-conditioned for many closely spaced lags.
    factor = np.linalg.cholesky(covariance + 1e-12 * np.eye(x.shape[0]))
    whitened = np.linalg.solve(factor, design)  # L⁻¹ X
    weights = np.linalg.solve(factor.T, np.linalg.solve(whitened.T @ whitened, whitened.T).T).T  # [2, K]
    return weights[0], weights[1]


def fit_line(x: np.ndarray, y: np.ndarray, covariance: Covariance = None) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of y = a + b x along axis 0 of ``y`` ([K] or [K, ...]): OLS, or GLS with
    ``covariance`` [K, K] or "brownian" (see ``line_weights``)."""
    slope_w, intercept_w = line_weights(x, covariance)
    y = np.asarray(y, dtype=np.float64)
    return np.tensordot(slope_w, y, axes=(0, 0)), np.tensordot(intercept_w, y, axes=(0, 0))


def expanded_percentile(n: int) -> float:
    """Lower percentile (in %) of the expanded percentile interval of a mean of ``n`` values.

    The plain percentile interval of a bootstrapped mean is too narrow for small n: the bootstrap
    distribution has the plug-in spread s·√((n−1)/n) and normal tails where the t distribution's
    are wider. Hesterberg ("What teachers should know about the bootstrap", Am. Stat. 69, 371
    (2015)) widens it by taking the percentiles at α'/2 = Φ(−√(n/(n−1)) · t_{0.975, n−1}) instead of
    2.5 % (n = 20: 1.6 %; n = 80: 2.3 %; → 2.5 % as n grows).
    """
    if n < 2:
        raise ValueError(f"n = {n}: a bootstrap of a mean needs at least 2 values")
    return float(100.0 * special.ndtr(-math.sqrt(n / (n - 1)) * t95(n - 1)))


def bootstrap_mean_interval(
    samples: np.ndarray, n_resamples: int, rng: np.random.Generator, *, expanded: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap of the mean over axis 0 of ``samples`` [N, ...] (Efron & Tibshirani 1993).

    Resamples the N rows with replacement ``n_resamples`` times. Returns the replicate means
    [B, ...], their standard deviation (the bootstrap standard error) and the 2.5/97.5 % percentile
    interval as an array [2, ...]. ``expanded``: the expanded percentile interval
    (``expanded_percentile``) and the standard error × √(N/(N−1)), the usual s/√N, to go with
    N − 1 degrees of freedom.
    """
    n = samples.shape[0]
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)  # [B, N] resample multiplicities
    replicates = np.tensordot(counts / n, samples, axes=(1, 0))
    stderr = replicates.std(axis=0, ddof=1)
    if expanded:
        lower = expanded_percentile(n)
        return (
            replicates,
            stderr * math.sqrt(n / (n - 1)),
            np.percentile(replicates, [lower, 100 - lower], axis=0),
        )
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
