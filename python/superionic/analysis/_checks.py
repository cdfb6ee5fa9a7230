"""Input validation shared by the analysis functions; raises the errors of ``errors.py``."""

from __future__ import annotations

import numpy as np

from superionic.analysis.errors import (
    AnalysisError,
    EmptySelectionError,
    NonFiniteInputError,
    NonUniformTimeError,
    TrajectoryTooShortError,
)

# Relative tolerance on the frame interval. Times written as float32 (or accumulated in float64
# over 10^7 steps) jitter by far less than this; a skipped or duplicated frame shows up as 100 %.
_TIME_RTOL = 1e-4


# Frames per finiteness check: bounds the temporary boolean array on long, wide trajectories.
_FRAMES_PER_CHECK = 512


def check_positions(positions: np.ndarray, *, min_frames: int = 2, name: str = "positions") -> np.ndarray:
    """Return ``positions`` as a float [T, N, 3] array after checking shape, size and finiteness.

    float32 and float64 pass through without a copy (a large trajectory may be a float32 memmap of
    gigabytes); anything else is converted to float64. Consumers cast chunks to float64 themselves.
    """
    array = np.asarray(positions)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    if array.ndim != 3 or array.shape[2] != 3:
        raise AnalysisError(
            f"{name} has shape {array.shape}, expected [frames, atoms, 3]: pass one frame per row "
            "(add a leading axis for a single atom)"
        )
    n_frames, n_atoms, _ = array.shape
    if n_atoms == 0:
        raise EmptySelectionError(
            f"{name} holds no atoms: the ion selection is empty, check the species or indices given to "
            "the reader"
        )
    if n_frames < min_frames:
        raise TrajectoryTooShortError(
            f"{name} has {n_frames} frame(s), at least {min_frames} are needed: pass a longer trajectory"
        )
    finite = all(
        np.isfinite(array[k : k + _FRAMES_PER_CHECK]).all() for k in range(0, n_frames, _FRAMES_PER_CHECK)
    )
    if not finite:
        bad_frame = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise NonFiniteInputError(
            f"{name} contains NaN or inf (first in frame {bad_frame}): drop or repair the corrupt frames "
            "before the analysis"
        )
    return array


def check_times(times_ps: np.ndarray, n_frames: int) -> float:
    """Return the frame interval (ps) of equally spaced, increasing ``times_ps`` of length ``n_frames``."""
    times = np.asarray(times_ps, dtype=np.float64)
    if times.ndim != 1 or times.shape[0] != n_frames:
        raise AnalysisError(
            f"times_ps has shape {times.shape} but the trajectory has {n_frames} frames: pass one time "
            "per frame"
        )
    if not np.isfinite(times).all():
        raise NonFiniteInputError("times_ps contains NaN or inf: pass the frame times in ps")
    if n_frames < 2:
        raise TrajectoryTooShortError("one frame has no time lag: pass at least two frames")
    steps = np.diff(times)
    interval = (times[-1] - times[0]) / (n_frames - 1)
    if interval <= 0 or (steps <= 0).any():
        raise NonUniformTimeError("times_ps must increase strictly: sort the frames and drop duplicates")
    if np.abs(steps - interval).max() > _TIME_RTOL * interval:
        worst = int(np.argmax(np.abs(steps - interval)))
        raise NonUniformTimeError(
            f"frames are not equally spaced (step {steps[worst]:.6g} ps after frame {worst}, mean "
            f"{interval:.6g} ps): resample to a constant interval or split the trajectory at the gap"
        )
    return float(interval)


def check_charges(charges_e: np.ndarray, n_atoms: int) -> np.ndarray:
    """Return ``charges_e`` as float64 [N] after checking length and finiteness."""
    charges = np.asarray(charges_e, dtype=np.float64)
    if charges.ndim == 0:
        charges = np.full(n_atoms, float(charges))
    if charges.shape != (n_atoms,):
        raise AnalysisError(
            f"charges_e has shape {charges.shape} but there are {n_atoms} atoms: pass one charge per atom"
        )
    if not np.isfinite(charges).all():
        raise NonFiniteInputError("charges_e contains NaN or inf: pass formal charges in units of e")
    return charges


def check_positive(value: float, name: str, fix: str) -> float:
    """Return ``value`` as float if finite and > 0, else raise with ``fix`` as the advice."""
    number = float(value)
    if not np.isfinite(number) or number <= 0:
        raise AnalysisError(f"{name} = {value!r} must be a positive finite number: {fix}")
    return number
