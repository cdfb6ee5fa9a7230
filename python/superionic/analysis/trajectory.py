"""Trajectory preparation before the MSD: unwrapping and centre-of-mass drift removal.

Readers do this for real data (they often have image flags, which are exact); these pure functions
exist for data without image flags and so that the preparation itself is tested.
"""

from __future__ import annotations

import warnings

import numpy as np

from superionic.analysis._checks import check_positions
from superionic.analysis.errors import AnalysisError, NonFiniteInputError

# A consecutive-frame jump this close to half a cell (in fractional units) means the minimum-image
# rule may have picked the wrong image: the frames are too far apart in time for unwrapping.
_JUMP_WARNING_FRACTION = 0.45


def _cell_matrix(cell: np.ndarray) -> np.ndarray:
    """A 3×3 matrix whose rows are the lattice vectors, from [3], [3, 3] or a constant [T, 3, 3]."""
    array = np.asarray(cell, dtype=np.float64)
    if array.ndim == 3 and array.shape[1:] == (3, 3):
        # H5MD stores a box per frame; unwrapping by minimum image needs one fixed cell.
        if not np.allclose(array, array[0], rtol=1e-8, atol=1e-10):
            raise AnalysisError(
                "the cell changes between frames (NPT): unwrap with the image flags in the reader instead"
            )
        array = array[0]
    if array.shape == (3,):
        array = np.diag(array)
    if array.shape != (3, 3):
        raise AnalysisError(
            f"cell has shape {array.shape}: pass box lengths [3] or a 3×3 matrix whose rows are a, b, c"
        )
    if not np.isfinite(array).all():
        raise NonFiniteInputError("cell contains NaN or inf: pass the simulation box in Å")
    if abs(np.linalg.det(array)) < 1e-12:
        raise AnalysisError("cell is singular (zero volume): pass the three lattice vectors as rows")
    return array


def unwrap(wrapped_positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Unwrapped Cartesian positions [T, N, 3] (Å) from positions wrapped into a fixed periodic cell.

    Minimum-image jumps between consecutive frames: with fractional coordinates s = r · C⁻¹ (rows of
    C are the lattice vectors, docs/conventions.md), each step Δs is replaced by Δs − round(Δs) and
    the steps are summed from frame 0. Valid when no atom moves more than half the cell's
    perpendicular width along any lattice direction between two saved frames; a RuntimeWarning is
    issued when some step comes within 10 % of that limit. Frame 0 is left where it is.
    """
    positions = check_positions(wrapped_positions, min_frames=1, name="wrapped_positions")
    matrix = _cell_matrix(cell)
    fractional = positions @ np.linalg.inv(matrix)
    steps = np.diff(fractional, axis=0)
    steps -= np.round(steps)
    if steps.size and np.abs(steps).max() > _JUMP_WARNING_FRACTION:
        warnings.warn(
            "an atom moves almost half a cell between consecutive frames; unwrapping may pick the wrong "
            "image: save frames more often",
            RuntimeWarning,
            stacklevel=2,
        )
    unwrapped = np.concatenate([fractional[:1], fractional[:1] + np.cumsum(steps, axis=0)], axis=0)
    return unwrapped @ matrix


def remove_drift(positions: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """Positions [T, N, 3] with the centre-of-mass displacement of the given atoms removed.

    r_i'(t) = r_i(t) − [R(t) − R(0)], R(t) = Σ_j m_j r_j(t) / Σ_j m_j (equal weights if ``masses`` is
    None). Pass the whole system (framework and mobile ions, unwrapped) and then select the ions: a
    thermostat or a net force lets the total momentum drift, which would otherwise add a ballistic
    term to every MSD. Removing the centre of mass of the mobile ions alone would instead remove
    part of their own collective motion (MSD × (1 − 1/N) for N independent ions).
    """
    array = check_positions(positions, min_frames=1)
    n_atoms = array.shape[1]
    if masses is None:
        weights = np.full(n_atoms, 1.0 / n_atoms)
    else:
        mass = np.asarray(masses, dtype=np.float64)
        if mass.shape != (n_atoms,) or not np.isfinite(mass).all() or (mass <= 0).any():
            raise AnalysisError(
                f"masses has shape {mass.shape} or non-positive entries: pass one positive mass per atom"
            )
        weights = mass / mass.sum()
    centre = np.einsum("tni,n->ti", array, weights)
    return array - (centre - centre[0])[:, None, :]
