"""Mean-squared displacements: windowed (all time origins) by FFT, single-origin, and collective.

Positions are unwrapped and drift-corrected, shape [T, N, 3] in Å, frames equally spaced in time.
Every result is per Cartesian component (last axis x, y, z) so anisotropic conductors (LGPS
conducts along c) can be fitted per direction; sum the last axis for the 3D MSD.

The windowed MSD of one coordinate x(k), k = 0 … T−1, at lag m is

    MSD(m) = 1/(T−m) Σ_{k=0}^{T−1−m} [x(k+m) − x(k)]²  =  S1(m) − 2 S2(m)

    S1(m) = 1/(T−m) Σ_{k=0}^{T−1−m} [x(k)² + x(k+m)²]   (a running sum, O(T))
    S2(m) = 1/(T−m) Σ_{k=0}^{T−1−m} x(k) x(k+m)          (an autocorrelation, by FFT with zero padding)

which costs O(T log T) per coordinate instead of O(T²) (Calandrini, Pellegrini, Calligari, Hinsen,
Kneller, "nMoldyn — Interfacing spectroscopic experiments, molecular dynamics simulations and
models for time correlation functions", École thématique de la Société Française de la Neutronique
12, 201 (2011); the algorithm behind MDAnalysis's ``EinsteinMSD(fft=True)``, via tidynamics).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft

from superionic.analysis._checks import check_charges, check_positions
from superionic.analysis.errors import AnalysisError

#: Default bound on the temporary arrays of one chunk of atoms in the FFT (bytes).
DEFAULT_CHUNK_BYTES = 64 * 2**20


def _centred(series: np.ndarray) -> np.ndarray:
    # The MSD is invariant under a constant shift of each series; removing the mean keeps S1 and
    # 2 S2 small so their difference does not lose digits when coordinates are ~100 Å.
    x = np.array(series, dtype=np.float64, order="C")  # a float64 copy, whatever the storage
    x -= x.mean(axis=-1, keepdims=True)
    return x


def _s1_sums(squares: np.ndarray) -> np.ndarray:
    """T·S1(m)·(T−m)/T, i.e. Σ_{k=0}^{T−1−m} [x(k)² + x(k+m)²], along the last axis, from ONE cumsum:
    the terms that leave the sum as m grows are the first m squares (head) and the last m (tail)."""
    n_frames = squares.shape[-1]
    csum = np.cumsum(squares, axis=-1)
    total = csum[..., -1:]
    sums = np.empty_like(squares)
    sums[..., 0] = 2.0 * total[..., 0]
    head = csum[..., :-1]  # Σ_{j<m} x(j)², m = 1 … T−1
    tail = total - csum[..., n_frames - 2 :: -1]  # Σ_{j<m} x(T−1−j)² = total − Σ_{j≤T−1−m} x(j)²
    sums[..., 1:] = 2.0 * total - head - tail
    return sums


def _windowed_msd_series(series: np.ndarray) -> np.ndarray:
    """Windowed MSD along the last axis of ``series`` [..., T], by S1 − 2 S2 (see the module docstring)."""
    n_frames = series.shape[-1]
    x = _centred(series)  # C order: time last in memory, the FFT and cumsum run on contiguous data
    n_fft = sp_fft.next_fast_len(2 * n_frames, real=True)  # ≥ 2T: zero padding avoids wrap-around
    spectrum = sp_fft.rfft(x, n=n_fft, axis=-1)
    autocorrelation = sp_fft.irfft(spectrum.real**2 + spectrum.imag**2, n=n_fft, axis=-1)[..., :n_frames]
    n_origins = n_frames - np.arange(n_frames)
    msd = (_s1_sums(x * x) - 2.0 * autocorrelation) / n_origins
    msd[..., 0] = 0.0  # exactly zero by definition; the FFT leaves ~1e-16 there
    return msd


def _summed_windowed_msd(series: np.ndarray) -> np.ndarray:
    """Σ over the leading axis of the windowed MSDs of ``series`` [n, 3, T] -> [3, T].

    The autocorrelation is linear in the power spectrum, so the sum over atoms takes one inverse
    FFT per component instead of one per atom (half the transforms of the per-atom route).
    """
    n_frames = series.shape[-1]
    x = _centred(series)
    n_fft = sp_fft.next_fast_len(2 * n_frames, real=True)
    spectrum = sp_fft.rfft(x, n=n_fft, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).sum(axis=0)  # [3, F]
    autocorrelation = sp_fft.irfft(power, n=n_fft, axis=-1)[..., :n_frames]
    msd = (_s1_sums((x * x).sum(axis=0)) - 2.0 * autocorrelation) / (n_frames - np.arange(n_frames))
    msd[..., 0] = 0.0
    return msd


def _atom_chunks(n_atoms: int, n_frames: int, chunk_bytes: int) -> range:
    """Start indices of atom chunks whose FFT temporaries stay below ``chunk_bytes``."""
    n_fft = sp_fft.next_fast_len(2 * n_frames, real=True)
    # Per atom and component: x, squares, cumsums (~5 × 8 B × T) + spectrum and its square (2 × 16 B ×
    # n_fft/2) + inverse transform (8 B × n_fft): a generous ~10 × 8 B × n_fft in all.
    bytes_per_atom = 3 * 10 * 8 * n_fft
    step = max(1, int(chunk_bytes // bytes_per_atom))
    return range(0, n_atoms, step)


def msd_per_atom_components_fft(
    positions: np.ndarray, *, max_lag: int | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> np.ndarray:
    """Windowed MSD of each atom per component, shape [N, L, 3] in Å², L = max_lag + 1 (default T).

    ``max_lag`` (in frames) truncates the output only, to bound memory when the per-atom curves are
    kept (e.g. for a bootstrap over atoms that only needs the lags of the fit window).
    """
    array = check_positions(positions)
    n_frames, n_atoms, _ = array.shape
    n_lags = n_frames if max_lag is None else int(max_lag) + 1
    if not 1 <= n_lags <= n_frames:
        raise AnalysisError(f"max_lag = {max_lag} is outside 0 … {n_frames - 1}: pass a lag in frames")
    out = np.empty((n_atoms, n_lags, 3))
    chunks = _atom_chunks(n_atoms, n_frames, chunk_bytes)
    for start in chunks:
        stop = min(start + chunks.step, n_atoms)
        series = np.moveaxis(array[:, start:stop, :], 0, -1)  # [n, 3, T]: time last for the FFT
        out[start:stop] = np.moveaxis(_windowed_msd_series(series)[..., :n_lags], 1, 2)
    return out


def msd_per_atom_fft(
    positions: np.ndarray, *, max_lag: int | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> np.ndarray:
    """Windowed 3D MSD of each atom, [N, L] in Å² (components summed); see ``msd_per_atom_components_fft``."""
    return msd_per_atom_components_fft(positions, max_lag=max_lag, chunk_bytes=chunk_bytes).sum(axis=-1)


def msd_fft(positions: np.ndarray, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> np.ndarray:
    """Tracer MSD per component averaged over atoms, windowed over all time origins: [T, 3] in Å².

    MSD_α(m) = (1/N) Σ_i MSD_{i,α}(m), each MSD_{i,α} by the FFT algorithm of the module docstring.
    Atoms are processed in chunks so memory stays O(chunk · T) whatever N is.
    """
    array = check_positions(positions)
    n_frames, n_atoms, _ = array.shape
    total = np.zeros((n_frames, 3))
    chunks = _atom_chunks(n_atoms, n_frames, chunk_bytes)
    for start in chunks:
        series = np.moveaxis(array[:, start : start + chunks.step, :], 0, -1)  # [n, 3, T]
        total += _summed_windowed_msd(series).T
    return total / n_atoms


def msd_single_origin(positions: np.ndarray) -> np.ndarray:
    """MSD from frame 0 only, per component averaged over atoms: [T, 3] in Å².

    MSD_α(t) = (1/N) Σ_i [r_{i,α}(t) − r_{i,α}(0)]². Noisier than the windowed MSD at every lag, but
    free of the origin averaging; useful as a cross-check and for non-stationary trajectories.
    """
    array = check_positions(positions)
    return ((array - array[0]).astype(np.float64) ** 2).mean(axis=1)


def collective_msd_fft(positions: np.ndarray, charges_e: np.ndarray) -> np.ndarray:
    """Windowed charge MSD ⟨|M(t+τ) − M(t)|²⟩ per component, [T, 3] in e²·Å², M(t) = Σ_i q_i r_i(t).

    This is not divided by N: σ = (1 / (6 V k_B T)) d/dt of its sum over components. ``charges_e`` is
    one formal charge per atom (or one number for all). For independent ions its expectation is
    Σ_i q_i² · MSD_tracer,i; the cross terms (ion–ion correlations) make the Haven ratio differ from 1.
    """
    array = check_positions(positions)
    charges = check_charges(charges_e, array.shape[1])
    dipole = np.einsum("tni,n->it", array, charges.astype(np.float64))  # [3, T], float64
    return _windowed_msd_series(dipole).T
