"""Real H5MD files in the layout `fix superionic/h5md` writes (docs/conventions.md), from arrays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np


def write_h5md(
    path: Path,
    unwrapped: np.ndarray,
    cell: np.ndarray,
    symbols: Sequence[str],
    timestep_ps: float,
    charges: np.ndarray | None = None,
    steps_per_frame: int = 1,
) -> Path:
    """Unwrapped positions [T, N, 3] (Å) in a fixed cell (rows a, b, c), stored wrapped + images.

    Float64 positions, so the file round-trips the walk to round-off (image · cell ≲ 1e-13 Å).
    """
    n_frames, n_atoms, _ = unwrapped.shape
    fractional = unwrapped @ np.linalg.inv(cell)
    images = np.floor(fractional)
    wrapped = (fractional - images) @ cell
    names = sorted(set(symbols), key=list(symbols).index)
    types = np.array([names.index(s) + 1 for s in symbols], dtype=np.int32)
    with h5py.File(path, "w") as f:
        f["h5md"] = h5py.Empty("f")
        f["h5md"].attrs["version"] = np.array([1, 1])
        group = f.create_group("particles/all")
        step = np.arange(n_frames, dtype=np.int64) * steps_per_frame
        time = np.arange(n_frames) * timestep_ps
        position = group.create_group("position")
        position["step"] = step
        position["time"] = time
        position["value"] = wrapped
        image = group.create_group("image")
        image["step"] = position["step"]
        image["time"] = position["time"]
        image["value"] = images.astype(np.int32)
        edges = group.create_group("box/edges")
        edges["step"] = position["step"]
        edges["time"] = position["time"]
        edges["value"] = np.broadcast_to(cell, (n_frames, 3, 3)).copy()
        group["species"] = types
        group["id"] = np.arange(1, n_atoms + 1, dtype=np.int64)
        if charges is not None:
            group["charge"] = np.asarray(charges, dtype=np.float64)
        params = f.create_group("parameters/superionic")
        params.attrs["type_names"] = np.array([n.encode() for n in names])
        params.attrs["units"] = "metal"
        params.attrs["timestep_ps"] = timestep_ps / steps_per_frame
    return path
