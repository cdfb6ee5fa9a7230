"""Frames appended to an H5MD file (an extended run) are seen by the next analysis in the same
process, although the previous analysis' reader was still open in a reference cycle: HDF5 would
otherwise hand the new open that handle's cached view (the demo's precision run once fitted a
50 ps view of 86 ps runs this way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from superionic.analysis.readers import open_trajectory

from ._synthetic import random_walk

FRAMES, ATOMS = 400, 16
CELL = np.eye(3) * 12.0


def _write_resizable(path: Path, positions: np.ndarray) -> None:
    n = positions.shape[0]
    with h5py.File(path, "w") as f:
        f["h5md"] = h5py.Empty("f")
        f["h5md"].attrs["version"] = np.array([1, 1])
        group = f.create_group("particles/all")
        for name, data in (
            ("position", positions),
            ("image", np.zeros(positions.shape, dtype=np.int32)),
            ("box/edges", np.broadcast_to(CELL, (n, 3, 3)).copy()),
        ):
            sub = group.create_group(name)
            sub.create_dataset("value", data=data, maxshape=(None, *data.shape[1:]), chunks=True)
            sub.create_dataset("step", data=np.arange(n, dtype=np.int64), maxshape=(None,), chunks=True)
            sub.create_dataset("time", data=np.arange(n) * 0.05, maxshape=(None,), chunks=True)
        group["species"] = np.ones(positions.shape[1], dtype=np.int32)
        params = f.create_group("parameters/superionic")
        params.attrs["type_names"] = np.array([b"Li"])
        params.attrs["units"] = "metal"
        params.attrs["timestep_ps"] = 0.05


APPEND = """
import sys, h5py, numpy as np
path, extra = sys.argv[1], np.load(sys.argv[2])
with h5py.File(path, "a") as f:
    group = f["particles/all"]
    n = group["position/value"].shape[0]
    m = n + extra.shape[0]
    for name in ("position", "image", "box/edges"):
        sub = group[name]
        for key in ("value", "step", "time"):
            sub[key].resize(m, axis=0)
        sub["step"][n:] = np.arange(n, m)
        sub["time"][n:] = np.arange(n, m) * 0.05
    group["position/value"][n:] = extra
    group["image/value"][n:] = 0
    group["box/edges/value"][n:] = group["box/edges/value"][0]
"""


TWICE = """
import gc, subprocess, sys
from pathlib import Path
from superionic.analysis.readers import open_trajectory
from superionic.analysis.report import analyze_trajectory
gc.disable()  # as between two collections
path, extra, append, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
print(analyze_trajectory(path, "Li", out / "a", temperature_K=900.0).duration_ps)
reader = open_trajectory(path)
reader.cycle = reader  # a reader left in a reference cycle, as the demo's first analysis left one
del reader
subprocess.run([sys.executable, "-c", append, str(path), extra], check=True)
print(analyze_trajectory(path, "Li", out / "b", temperature_K=900.0).duration_ps)
"""


def test_an_extended_file_is_read_whole_after_an_earlier_analysis(tmp_path: Path) -> None:
    walk = random_walk(np.random.default_rng(3), ATOMS, FRAMES - 1, 0.05, 0.5)
    path = tmp_path / "traj.h5"
    _write_resizable(path, walk[: FRAMES // 2])  # unwrapped, images 0
    extra = tmp_path / "extra.npy"
    np.save(extra, walk[FRAMES // 2 :])
    # Between the two analyses another process appends in place, as LAMMPS does when a run is
    # extended, while a reader of the first view is still alive in a reference cycle.
    result = subprocess.run(
        [sys.executable, "-c", TWICE, str(path), str(extra), APPEND, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    first, second = (float(x) for x in result.stdout.split())
    assert first == pytest.approx((FRAMES // 2 - 1) * 0.05)
    assert second == pytest.approx((FRAMES - 1) * 0.05)
    assert open_trajectory(path).header.n_frames == FRAMES
