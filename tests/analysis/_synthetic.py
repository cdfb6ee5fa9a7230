"""Seeded synthetic trajectories with known transport coefficients."""

from __future__ import annotations

import numpy as np


def random_walk(
    rng: np.random.Generator,
    n_walkers: int,
    n_steps: int,
    timestep_ps: float,
    diffusion_A2_per_ps: tuple[float, float, float] | float,
) -> np.ndarray:
    """Gaussian random walks [n_steps + 1, n_walkers, 3] starting at random points in a 10 Å box.

    Each step along α is N(0, 2 D_α dt), so MSD_α(t) = 2 D_α t exactly in expectation at every lag.
    """
    d = np.broadcast_to(np.asarray(diffusion_A2_per_ps, dtype=np.float64), (3,))
    steps = rng.normal(size=(n_steps, n_walkers, 3)) * np.sqrt(2.0 * d * timestep_ps)
    start = rng.uniform(0.0, 10.0, size=(1, n_walkers, 3))
    return start + np.concatenate([np.zeros((1, n_walkers, 3)), np.cumsum(steps, axis=0)])


def times(n_frames: int, timestep_ps: float) -> np.ndarray:
    """Equally spaced frame times in ps."""
    return np.arange(n_frames) * timestep_ps


def direct_windowed_msd(series: np.ndarray) -> np.ndarray:
    """O(T²) windowed MSD of [T, ..., 3] series, averaged over every axis between time and component."""
    n = series.shape[0]
    out = np.zeros((n, 3))
    for lag in range(1, n):
        displacement = series[lag:] - series[:-lag]
        out[lag] = (displacement**2).reshape(n - lag, -1, 3).mean(axis=(0, 1))
    return out
