"""`pair_style superionic threads N`: the edge list and the force sums run on N OpenMP threads
(two passes over the neighbour list, per-thread force rows) and give what one thread gives, to
round-off, for the native kernel and the libtorch path, on 1 and 2 ranks, with and without the
ghost shell of message-passing models. Cells have at least 512 source atoms per rank, so the
threaded code runs (below 128 sources per thread it stays serial).

Two kinds of input: `single_point` asks for per-atom virials (the serial force sum); `forces_only`
asks for forces and the global virial alone, which is what MD asks for and takes the threaded sum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsError, run_lammps
from tests.lammps.singlepoint import single_point
from tests.lammps.test_native_kernel import assert_same
from tests.unit.test_native_kernel import SPECIES, random_sprinter

NKTV2P_METAL = 1.6021765e6
TOL = 1e-10


@pytest.fixture(scope="module")
def sprinter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("threaded") / "sprinter.pt"
    export_model(random_sprinter(4, 4, seed=11), path)
    return path


def big_cell(seed: int = 5) -> Atoms:
    """1000 atoms, tilted: 1000 sources on one rank, about 500 owned plus ghosts on each of two."""
    return jittered_lattice((10, 10, 10), jitter=0.25, tilt=(1.1, -0.7, 0.5), species=SPECIES, seed=seed)


@dataclass(frozen=True)
class ForcesOnly:
    energy: float
    virial: np.ndarray  # [6] eV
    forces: np.ndarray  # [N, 3] eV/A, by tag, after `steps` NVE steps
    positions: np.ndarray  # [N, 3] A, by tag, after `steps` NVE steps
    output: str


def forces_only(
    workdir: Path,
    atoms: Atoms,
    model: Path,
    pair_style: str,
    nprocs: int = 1,
    steps: int = 0,
    preamble: tuple[str, ...] = (),
) -> ForcesOnly:
    """No per-atom energy or virial is asked for: the pair style's threaded force sum runs."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_lammps_data(workdir / "structure.data", atoms, SPECIES)
    lines = [
        *preamble,
        "units metal",
        "atom_style atomic",
        "atom_modify map yes",
        "read_data structure.data",
        f"pair_style {pair_style}",
        f"pair_coeff * * {model} {' '.join(SPECIES)}",
        "compute press all pressure NULL virial",
        "thermo_style custom step pe c_press[1] c_press[2] c_press[3] c_press[4] c_press[5] c_press[6] vol",
        "thermo_modify format float %.17g",
        f"thermo {max(steps, 1)}",
        "velocity all create 600 4 loop geom",
        "fix nve all nve",
        f"dump out all custom {max(steps, 1)} atoms.dump id x y z fx fy fz",
        "dump_modify out format float %.17g sort id",
        f"run {steps}",
    ]
    (workdir / "in.lmp").write_text("\n".join(lines) + "\n")
    run = run_lammps("in.lmp", workdir, nprocs=nprocs)
    row = run.thermo()[-1]
    text = (workdir / "atoms.dump").read_text().split("ITEM: TIMESTEP")[-1]
    table = np.loadtxt(text.splitlines()[9:], ndmin=2)
    pressure = np.array([row[f"c_press[{k}]"] for k in range(1, 7)])
    return ForcesOnly(
        energy=row["PotEng"],
        virial=pressure * row["Volume"] / NKTV2P_METAL,
        forces=table[:, 4:7],
        positions=table[:, 1:4],
        output=run.output,
    )


def assert_close(got: ForcesOnly, ref: ForcesOnly, tol: float = TOL) -> None:
    assert got.energy == pytest.approx(ref.energy, rel=tol, abs=tol)
    for name in ("virial", "forces", "positions"):
        a, b = getattr(got, name), getattr(ref, name)
        assert float(np.abs(a - b).max()) <= tol * max(1.0, float(np.abs(b).max())), name


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("nprocs", [1, 2])
def test_threads_equal_one_thread_forces_only(
    tmp_path: Path, sprinter: Path, backend: str, nprocs: int
) -> None:
    atoms = big_cell()
    one = forces_only(tmp_path / "one", atoms, sprinter, f"superionic backend {backend} threads 1", nprocs)
    two = forces_only(tmp_path / "two", atoms, sprinter, f"superionic backend {backend} threads 2", nprocs)
    assert abs(one.forces).max() > 0.1, "the check needs forces well above round-off"
    assert "edge list and force sums on 2 threads per rank" in two.output
    assert "edge list and force sums on 1 thread per rank" in one.output
    assert_close(two, one)


def test_threaded_nve_follows_one_thread(tmp_path: Path, sprinter: Path) -> None:
    """20 NVE steps, where most steps ask for no virial at all; the trajectories stay together."""
    atoms = big_cell(seed=6)
    one = forces_only(tmp_path / "one", atoms, sprinter, "superionic threads 1", steps=20)
    two = forces_only(tmp_path / "two", atoms, sprinter, "superionic threads 2", steps=20)
    assert_close(two, one, tol=1e-9)


def test_threads_equal_one_thread_per_atom(tmp_path: Path, sprinter: Path) -> None:
    """Per-atom energies and virials (the serial force sum) over the threaded edge list."""
    atoms = big_cell(seed=7)
    one = single_point(tmp_path / "one", atoms, sprinter, nprocs=1, pair_style="superionic threads 1")
    two = single_point(tmp_path / "two", atoms, sprinter, nprocs=1, pair_style="superionic threads 2")
    assert_same(two, one)


def test_threads_with_the_ghost_shell(tmp_path: Path, exported) -> None:
    """A message-passing model on 2 ranks: ghosts are edge sources too (graph shell)."""
    atoms = jittered_lattice((6, 6, 6), seed=1)
    model = exported.path("mp")
    one = forces_only(tmp_path / "one", atoms, model, "superionic graph shell threads 1", nprocs=2)
    two = forces_only(tmp_path / "two", atoms, model, "superionic graph shell threads 2", nprocs=2)
    assert "edge list and force sums on 2 threads per rank" in two.output
    assert_close(two, one)


def test_overlap_is_reported_with_threads(tmp_path: Path, sprinter: Path) -> None:
    """The one-line error names the pair, as on one thread, from a threaded edge list."""
    atoms = big_cell(seed=8)
    atoms.positions[701] = atoms.positions[700] + np.array([0.0, 0.05, 0.0])
    with pytest.raises(LammpsError) as raised:
        forces_only(tmp_path, atoms, sprinter, "superionic threads 2")
    message = str(raised.value)
    assert re.search(r"atoms (701 and 702|702 and 701) are 0\.05 A apart \(< 0\.1 A\)", message), message


def test_lammps_threaded_neighbour_list(tmp_path: Path, sprinter: Path) -> None:
    """`package omp 2` (LAMMPS's OPENMP package) threads the neighbour-list build as well; the
    pair style takes that list like any other."""
    atoms = big_cell(seed=9)
    one = forces_only(tmp_path / "one", atoms, sprinter, "superionic threads 1", steps=20)
    omp = forces_only(
        tmp_path / "omp",
        atoms,
        sprinter,
        "superionic threads 2",
        steps=20,
        preamble=("package omp 2 neigh yes",),
    )
    assert "pair build: full/bin/atomonly/omp" in omp.output
    assert_close(omp, one, tol=1e-9)
