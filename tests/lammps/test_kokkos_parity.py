"""pair_style superionic/kk (Kokkos, `-k on t 1 -sf kk`) against pair_style superionic, at 1e-10.

Both runs evaluate the same float64 model on the same edges; only the order of the edges (the Kokkos
neighbour list orders neighbours differently) and of the force sums differs, which moves results
by ~1e-13 relative. Compared on 1 and 2 MPI ranks: total energy, per-atom energies, forces, global
and per-atom virial; the Kokkos run must also match the Python evaluation at the plain style's 1e-8.
Runs only against a LAMMPS built with KOKKOS (the image of docker/test_image.sh); elsewhere skipped.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from superionic import plugin_dir
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsRun, lammps_command
from tests.conftest import structure
from tests.lammps.singlepoint import NKTV2P_METAL, SinglePoint, single_point
from tests.lammps.test_parity import assert_matches, python_reference

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


def kokkos_single_point(workdir: Path, name: str, model: Path, nprocs: int, threads: int) -> SinglePoint:
    """single_point's input and read-back, run with `-k on t <threads> -sf kk`."""
    workdir.mkdir(parents=True, exist_ok=True)
    atoms = structure(name)
    write_lammps_data(workdir / "structure.data", atoms, ["Li", "Ge", "P", "S"])
    lines = [
        "units metal",
        "atom_style atomic",
        "atom_modify map yes",
        "read_data structure.data",
        "pair_style superionic",
        f"pair_coeff * * {model} Li Ge P S",
        "compute pe_atom all pe/atom",
        "compute virial_atom all stress/atom NULL virial",
        "compute press all pressure NULL virial",
        "thermo_style custom step pe c_press[1] c_press[2] c_press[3] c_press[4] c_press[5] c_press[6] vol",
        "thermo_modify format float %.17g",
        "dump out all custom 1 atoms.dump id fx fy fz c_pe_atom c_virial_atom[*]",
        "dump_modify out format float %.17g sort id",
        "run 0",
    ]
    (workdir / "in.lmp").write_text("\n".join(lines) + "\n")
    cmd = [*lammps_command(nprocs), "-k", "on", "t", str(threads), "-sf", "kk", "-in", "in.lmp"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False, timeout=600)
    run = LammpsRun(proc.returncode, proc.stdout + proc.stderr)
    assert run.returncode == 0 and run.error_line is None, run.error_line or run.output[-2000:]
    # The Kokkos style, not the plain one, computed the forces.
    assert "pair superionic/kk: model" in run.output
    row = run.thermo()[-1]
    pressure = np.array([row[f"c_press[{k}]"] for k in range(1, 7)])
    table = np.loadtxt(workdir / "atoms.dump", skiprows=9, ndmin=2)
    return SinglePoint(
        energy=row["PotEng"],
        forces=table[:, 1:4],
        atom_energy=table[:, 4],
        atom_virial=-table[:, 5:11] / NKTV2P_METAL,
        virial=pressure * row["Volume"] / NKTV2P_METAL,
        nlocal_min=-1,
        output=run.output,
    )


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
    kk = kokkos_single_point(tmp_path / "kk", name, model, nprocs, threads)
    d_energy = abs(kk.energy - plain.energy)
    d_force = float(np.abs(kk.forces - plain.forces).max())
    # Shown with pytest -s: the figures the docker log reports.
    label = f"{name} {kind} np={nprocs} t={threads}"
    print(f"superionic/kk vs superionic, {label}: |dE| {d_energy:.3g} eV, max |dF| {d_force:.3g} eV/A")
    assert d_energy <= KK_TOL * max(1.0, abs(plain.energy))
    assert d_force <= KK_TOL * max(1.0, float(np.abs(plain.forces).max()))
    np.testing.assert_allclose(kk.atom_energy, plain.atom_energy, rtol=0, atol=KK_TOL)
    scale = max(1.0, float(np.abs(plain.atom_virial).max()))
    np.testing.assert_allclose(kk.atom_virial, plain.atom_virial, rtol=0, atol=KK_TOL * scale)
    virial_scale = max(1.0, float(np.abs(plain.virial).max()))
    np.testing.assert_allclose(kk.virial, plain.virial, rtol=0, atol=KK_TOL * virial_scale)
    assert_matches(kk, python_reference(kind, name))
