"""pair_style superionic/kk (Kokkos, `-k on t 1 -sf kk`) against pair_style superionic, at 1e-10.

Both runs evaluate the same float64 model on the same edges; only the order of the edges (the Kokkos
neighbour list may order neighbours differently) and of the force sums can differ, which moves
results by ~1e-13 relative. Compared on 1 and 2 MPI ranks: total energy, per-atom energies, forces,
global and per-atom virial; the Kokkos run must also match the Python evaluation at the plain style's
1e-8. The reference models take the libtorch path (Model::evaluate on the views' memory, the code a
GPU build runs with another ArraySpace); a float32 model checks the cast of its outputs, and a
sprinter both the native kernel and libtorch. Runs only against a LAMMPS built with KOKKOS (the image
of docker/test_image.sh); elsewhere skipped.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from superionic import plugin_dir
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.runner import LammpsRun, lammps_command
from tests.conftest import SPECIES, structure
from tests.lammps.singlepoint import SinglePoint, read_single_point, single_point, write_single_point_input
from tests.lammps.test_parity import assert_matches, python_reference
from tests.unit.test_native_kernel import random_sprinter

# Same model, same edges, float64; only summation order differs (see the module docstring).
KK_TOL = 1e-10


@cache
def lammps_packages() -> str:
    help_text = subprocess.run(
        [*lammps_command(1), "-h"], capture_output=True, text=True, check=False, timeout=60
    ).stdout
    match = re.search(r"Installed packages:\s*\n(.*?)\n\s*\n", help_text, re.S)
    return match.group(1) if match else ""


pytestmark = pytest.mark.skipif(
    "KOKKOS" not in lammps_packages().split(),
    reason="this LAMMPS has no KOKKOS package (lmp -h); superionic/kk is tested in docker/test_image.sh",
)


def kokkos_single_point(
    workdir: Path,
    atoms: Atoms,
    model: Path,
    nprocs: int,
    threads: int,
    pair_style: str = "superionic",
) -> SinglePoint:
    """single_point's input and read-back, run with `-k on t <threads> -sf kk`."""
    write_single_point_input(workdir, atoms, model, pair_style=pair_style)
    cmd = [*lammps_command(nprocs), "-k", "on", "t", str(threads), "-sf", "kk", "-in", "in.lmp"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False, timeout=600)
    run = LammpsRun(proc.returncode, proc.stdout + proc.stderr)
    assert run.returncode == 0 and run.error_line is None, run.error_line or run.output[-2000:]
    # The Kokkos style, not the plain one, computed the forces.
    assert "pair superionic/kk: model" in run.output
    return read_single_point(workdir, run)


def assert_same(kk: SinglePoint, plain: SinglePoint, label: str, tol: float = KK_TOL) -> None:
    d_energy = abs(kk.energy - plain.energy)
    d_force = float(np.abs(kk.forces - plain.forces).max())
    # Shown with pytest -s: the figures the docker log reports.
    print(f"superionic/kk vs superionic, {label}: |dE| {d_energy:.3g} eV, max |dF| {d_force:.3g} eV/A")
    assert d_energy <= tol * max(1.0, abs(plain.energy))
    assert d_force <= tol * max(1.0, float(np.abs(plain.forces).max()))
    np.testing.assert_allclose(kk.atom_energy, plain.atom_energy, rtol=0, atol=tol)
    scale = max(1.0, float(np.abs(plain.atom_virial).max()))
    np.testing.assert_allclose(kk.atom_virial, plain.atom_virial, rtol=0, atol=tol * scale)
    virial_scale = max(1.0, float(np.abs(plain.virial).max()))
    np.testing.assert_allclose(kk.virial, plain.virial, rtol=0, atol=tol * virial_scale)


def test_kokkos_plugin_is_installed() -> None:
    assert (Path(plugin_dir()) / "superionickkplugin.so").exists()


# 1 and 2 ranks with one thread each (the acceptance runs), and 2 OpenMP threads on one rank, where
# the edge kernels run concurrently and the atomic force sums land in varying order.
@pytest.mark.parametrize(("nprocs", "threads"), [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("kind", ["local", "mp"])
@pytest.mark.parametrize("name", ["orthorhombic", "triclinic"])
def test_kokkos_matches_plain(
    tmp_path: Path, exported, name: str, kind: str, nprocs: int, threads: int
) -> None:
    model = exported.path(kind)
    plain = single_point(tmp_path / "plain", structure(name), model, nprocs=nprocs)
    kk = kokkos_single_point(tmp_path / "kk", structure(name), model, nprocs, threads)
    assert_same(kk, plain, f"{name} {kind} np={nprocs} t={threads}")
    assert_matches(kk, python_reference(kind, name))


@pytest.mark.parametrize("nprocs", [1, 2])
def test_kokkos_float32_model(tmp_path: Path, exported, nprocs: int) -> None:
    """A float32 model: the torch outputs are cast to float64 on their device before the force kernels."""
    model = exported.path("local", dtype=torch.float32)
    plain = single_point(tmp_path / "plain", structure("orthorhombic"), model, nprocs=nprocs)
    kk = kokkos_single_point(tmp_path / "kk", structure("orthorhombic"), model, nprocs, 1)
    # Same float32 model on the same edges; were the edges ordered differently, float32 sums over ~50
    # neighbours would differ by ~50 x 6e-8 relative: 1e-5 bounds that, far below a wrong cast.
    assert_same(kk, plain, f"float32 local np={nprocs}", tol=1e-5)


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("nprocs", [1, 2])
def test_kokkos_sprinter(tmp_path: Path, backend: str, nprocs: int) -> None:
    """A sprinter through both model paths of the Kokkos style: the native kernel writing into the
    style's views, and libtorch handing back its own output tensors."""
    model = tmp_path / "sprinter.pt"
    export_model(random_sprinter(3, 4, seed=11), model)
    atoms = jittered_lattice((5, 5, 5), jitter=0.25, tilt=(0.9, -0.5, 0.4), species=SPECIES, seed=11)
    style = f"superionic backend {backend}"
    plain = single_point(tmp_path / "plain", atoms, model, nprocs=nprocs, pair_style=style)
    kk = kokkos_single_point(tmp_path / "kk", atoms, model, nprocs, 1, pair_style=style)
    assert_same(kk, plain, f"sprinter backend {backend} np={nprocs}")
    # The log names the path taken: the kernel's views, or libtorch reading the edge views in place.
    where = "in place (native kernel)" if backend == "native" else "read and written in place"
    assert f"the model call on host memory, {where}" in kk.output
