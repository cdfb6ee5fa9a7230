"""Many temperatures in one MPI allocation (md.ensemble): `mpirun -np N superionic md … -T T1 T2`.

Each group of ranks runs LAMMPS through its Python module on a sub-communicator of MPI_COMM_WORLD.
The trajectories must equal, bit for bit, those of `superionic md` run one temperature at a time
with the same seed and thread count: 2 ranks for 2 temperatures (one rank each), and 4 ranks for 2
temperatures (two ranks each, against `--np 2`). Under mpirun only rank 0 prints, and a bad request
is one line, once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.io import write

from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.models import ReferencePotential

SPECIES = ["Li", "Ge", "P", "S"]
MPIRUN = str(Path(sys.executable).parent / "mpirun")
SUPERIONIC = str(Path(sys.executable).parent / "superionic")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ensemble")
    structure = root / "cell.extxyz"
    write(structure, jittered_lattice((4, 4, 4), spacing=2.7, seed=5))
    model = root / "model.pt"
    export_model(ReferencePotential(SPECIES), model)
    return structure, model


def md(structure: Path, model: Path, output: Path, temperatures: list[str], *extra: str) -> list[str]:
    return [
        SUPERIONIC, "md", str(structure), str(model), "-T", *temperatures,
        "--steps", "300", "--eq-steps", "100", "--dump-every", "20", "--dt", "0.001",
        "-o", str(output), "--threads", "1", *extra,
    ]  # fmt: skip


def frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path) as f:
        group = f["particles/all"]
        return group["position/value"][()], group["velocity/value"][()]


@pytest.mark.parametrize(("ranks", "per_temperature"), [(2, 1), (4, 2)])
def test_ensemble_equals_one_temperature_at_a_time(tmp_path: Path, inputs, ranks: int, per_temperature: int):
    structure, model = inputs
    ensemble = subprocess.run(
        [MPIRUN, "-np", str(ranks), *md(structure, model, tmp_path / "ensemble", ["600", "900"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ensemble.returncode == 0, ensemble.stderr[-2000:]
    # Rank 0 alone prints: one summary line per temperature.
    assert ensemble.stdout.count("summary ") == 1 and ensemble.stdout.count(" K: 300 steps") == 2
    summary = json.loads((tmp_path / "ensemble" / "md_summary.json").read_text())
    assert [r["temperature_K"] for r in summary["runs"]] == [600.0, 900.0]
    assert summary["ranks"] == per_temperature
    for temperature in ("600", "900"):
        extra = ["--np", str(per_temperature)] if per_temperature > 1 else []
        alone = subprocess.run(
            md(structure, model, tmp_path / "alone", [temperature], *extra), capture_output=True, text=True
        )
        assert alone.returncode == 0, alone.stderr[-2000:]
        a = frames(tmp_path / "ensemble" / f"T{temperature}K" / "traj.h5")
        b = frames(tmp_path / "alone" / f"T{temperature}K" / "traj.h5")
        assert a[0].shape == b[0].shape == (11, 64, 3)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_a_bad_request_under_mpirun_is_one_line_once(tmp_path: Path, inputs):
    structure, model = inputs
    run = subprocess.run(
        [MPIRUN, "-np", "2", *md(structure, model, tmp_path / "bad", ["600", "900"], "--np", "2")],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode != 0
    assert len(lines) == 1 and "drop --np and --parallel" in lines[0], run.stderr
