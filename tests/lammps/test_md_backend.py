"""`superionic md --backend` reaches pair_style superionic: the same sprinter MD through the native
kernel and through TorchScript gives the same trajectory, and LAMMPS's own log names the path run.

Both runs start from the same data file and seed. Their forces differ by round-off (≤ 1e-10 in
float64, tests/lammps/test_native_kernel.py); over 60 steps the chaos of MD grows that by a few
orders of magnitude at most (a Lyapunov time of ~0.1 ps at 1200 K, tests/lammps/test_md_resume.py),
still far below the float32 resolution of the stored positions (~1e-6 Å at 10 Å).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.io import write

from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.driver import MdConfig, run_md
from tests.unit.test_native_kernel import random_sprinter

POSITION_TOL = 1e-5  # Å: float32 storage (a few ulps of ~10 Å) plus the chaos-grown round-off


def positions(trajectory: str) -> np.ndarray:
    with h5py.File(trajectory, "r") as f:
        return f["particles/all/position/value"][:].astype(np.float64)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("md-backend")
    model = root / "sprinter.pt"
    export_model(random_sprinter(2, 4, seed=11), model)
    # 125 sites (13 Å, over twice the 4.5 Å cutoff) holding five formula units of Li10GeP2S12, so the
    # cell is charge neutral for `superionic md`'s structure checks.
    atoms = jittered_lattice((5, 5, 5), seed=21)
    symbols = ["Li"] * 50 + ["Ge"] * 5 + ["P"] * 10 + ["S"] * 60
    atoms.set_chemical_symbols(list(np.random.default_rng(21).permutation(symbols)))
    structure = root / "cell.extxyz"
    write(structure, atoms)
    return structure, model


def md(structure: Path, model: Path, output: Path, backend: str):
    config = MdConfig(
        structure=str(structure), model=str(model), temperatures=[1200.0], steps=60, eq_steps=20,
        dump_every=10, restart_every=60, seed=4711, output=str(output), backend=backend,
    )  # fmt: skip
    return run_md(config).runs[0]


def test_torch_and_native_backends_run_the_same_md(tmp_path: Path, setup) -> None:
    structure, model = setup
    native = md(structure, model, tmp_path / "native", "native")
    torch_path = md(structure, model, tmp_path / "torch", "torch")
    log_native = (Path(native.directory) / "lammps.out").read_text()
    log_torch = (Path(torch_path.directory) / "lammps.out").read_text()
    assert "native sprinter kernel" in log_native and "torch threads per rank" not in log_native
    assert "torch threads per rank" in log_torch and "native sprinter kernel" not in log_torch
    a, b = positions(native.trajectory), positions(torch_path.trajectory)
    assert a.shape == b.shape == (5, 125, 3)
    difference = float(np.abs(a - b).max())
    print(f"\n[md backend] native vs torch, 60 steps: max |Δr| {difference:.2e} Å")
    assert difference < POSITION_TOL
    assert float(np.abs(a[-1] - a[0]).max()) > 10 * POSITION_TOL  # the atoms did move
