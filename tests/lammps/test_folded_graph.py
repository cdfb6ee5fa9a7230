"""The folded periodic graph of pair_style superionic (one MPI rank) against the ghost shell and Python.

On one rank every atom is owned, so a message-passing model can be given the periodic graph the
Python side builds: nodes are the owned atoms, and each neighbour within the cutoff, ghost image or
not, is an edge to the atom that owns it (docs/conventions.md, "Ghost atoms and the receptive
field"). It must give what the ghost-shell scheme gives (1 and 2 ranks) and what the Python
evaluation gives, for the analytic reference message-passing model and for a small marathon, on a
cell narrower than twice the cutoff (every atom sees several images of its neighbours and of
itself) and on a triclinic cell; and 20 NVE steps with neighbour lists rebuilt and atoms re-sorted
every few steps must follow the same trajectory.

Tolerances: both schemes and the Python evaluation run the same float64 operations on the same
edges, only summed in other orders, so they agree to round-off (~1e-14 relative); 1e-10 leaves room
for that and nothing else. Over 20 NVE steps the round-off differences are amplified by the
dynamics, by far less than 1e-9 in 20 fs.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.geometry import find_mic

from superionic.calculator import evaluate
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsError, run_lammps
from superionic.models.assemble import VOIGT_LAMMPS, Evaluation
from tests.conftest import SPECIES, make_model, structure
from tests.lammps.singlepoint import SinglePoint, single_point
from tests.lammps.test_marathon_parity import make_marathon

TOL = 1e-10  # round-off of float64 sums in another order, see the module docstring
MD_TOL = 1e-9  # the same after 20 NVE steps
GHOSTS_RE = re.compile(r"^Nghost:\s+(\S+) ave", re.MULTILINE)


def make(kind: str) -> torch.nn.Module:
    return make_marathon(channels=8, seed=3) if kind == "marathon" else make_model("mp")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, exported) -> dict[str, Path]:
    path = tmp_path_factory.mktemp("folded") / "marathon.pt"
    export_model(make("marathon"), path)
    return {"marathon": path, "mp": exported.path("mp")}


def assert_close(a: np.ndarray, b: np.ndarray, tol: float, what: str) -> None:
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale, err_msg=what)


def assert_same_point(lmp: SinglePoint, other: SinglePoint, tol: float = TOL) -> None:
    assert lmp.energy == pytest.approx(other.energy, rel=tol, abs=tol)
    for field in ("atom_energy", "forces", "atom_virial", "virial"):
        assert_close(getattr(lmp, field), getattr(other, field), tol, field)


def assert_matches_python(lmp: SinglePoint, ref: Evaluation) -> None:
    assert lmp.energy == pytest.approx(ref.energy, rel=TOL, abs=TOL)
    assert_close(lmp.atom_energy, ref.atom_energy, TOL, "atom_energy")
    assert_close(lmp.forces, ref.forces, TOL, "forces")
    atom_virial = np.array([[w[a, b] for a, b in VOIGT_LAMMPS] for w in ref.atom_virial])
    assert_close(lmp.atom_virial, atom_virial, TOL, "atom_virial")
    assert_close(lmp.virial, ref.virial_lammps(), TOL, "virial")


def ghosts(output: str) -> float:
    return float(GHOSTS_RE.search(output).group(1))


def check_folded_against_shell_and_python(tmp_path: Path, model: Path, kind: str, name: str) -> None:
    atoms = structure(name)
    module = make(kind)
    ref = evaluate(module, atoms, module.cutoff, SPECIES, torch.float64)
    assert np.abs(ref.forces).max() > 0.3, "the test model exerts no forces; the comparison would be empty"
    folded = single_point(tmp_path / "auto1", atoms, model, nprocs=1)
    shell = single_point(tmp_path / "shell1", atoms, model, nprocs=1, pair_style="superionic graph shell")
    two = single_point(tmp_path / "auto2", atoms, model, nprocs=2)
    # auto is the folded graph on one rank and the shell on two, and the log says which.
    assert "pair superionic: graph folded" in folded.output
    assert "pair superionic: graph shell" in shell.output and "pair superionic: graph shell" in two.output
    # The folded graph needs ghosts out to cutoff + skin only, not receptive field + skin.
    assert ghosts(folded.output) < ghosts(shell.output) / 2
    assert_matches_python(folded, ref)
    assert_same_point(folded, shell)
    assert_same_point(folded, two)


@pytest.mark.parametrize("name", ["small", "triclinic"])
def test_reference_mp_folded_equals_shell_and_python(
    tmp_path: Path, models: dict[str, Path], name: str
) -> None:
    check_folded_against_shell_and_python(tmp_path, models["mp"], "mp", name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["small", "triclinic"])
def test_marathon_folded_equals_shell_and_python(tmp_path: Path, models: dict[str, Path], name: str) -> None:
    check_folded_against_shell_and_python(tmp_path, models["marathon"], "marathon", name)


def test_explicit_folded_without_atom_map(tmp_path: Path, models: dict[str, Path]) -> None:
    """'graph folded' finds a ghost's owner without an atom map too (its own map of the owned atoms)."""
    atoms = structure("small")
    workdir = tmp_path / "nomap"
    workdir.mkdir()
    write_lammps_data(workdir / "structure.data", atoms, SPECIES)
    (workdir / "in.lmp").write_text(
        "\n".join(
            [
                "units metal",
                "atom_style atomic",
                "read_data structure.data",
                "pair_style superionic graph folded",
                f"pair_coeff * * {models['mp']} {' '.join(SPECIES)}",
                "thermo_style custom step pe",
                "thermo_modify format float %.17g",
                "dump out all custom 1 atoms.dump id fx fy fz",
                "dump_modify out format float %.17g sort id",
                "run 0",
                "",
            ]
        )
    )
    run = run_lammps("in.lmp", workdir)
    assert "pair superionic: graph folded" in run.output
    module = make_model("mp")
    ref = evaluate(module, atoms, module.cutoff, SPECIES, torch.float64)
    assert run.thermo()[-1]["PotEng"] == pytest.approx(ref.energy, rel=TOL, abs=TOL)
    assert_close(np.loadtxt(workdir / "atoms.dump", skiprows=9, ndmin=2)[:, 1:4], ref.forces, TOL, "forces")


def test_folded_on_two_ranks_is_refused(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(
        LammpsError, match=r"graph folded: needs one MPI rank .* this run has 2; use graph auto"
    ):
        single_point(
            tmp_path, structure("small"), models["mp"], nprocs=2, pair_style="superionic graph folded"
        )


def test_unknown_graph_value_is_refused(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(LammpsError, match=r"graph must be auto, folded or shell, not 'ring'"):
        single_point(tmp_path, structure("small"), models["mp"], pair_style="superionic graph ring")


def nve(workdir: Path, atoms: Atoms, model: Path, graph: str, nprocs: int) -> np.ndarray:
    """20 NVE steps from the same velocities; returns [id, x, y, z, vx, vy, vz, fx, fy, fz] by id."""
    workdir.mkdir(parents=True)
    write_lammps_data(workdir / "structure.data", atoms, SPECIES)
    (workdir / "in.lmp").write_text(
        "\n".join(
            [
                "units metal",
                "atom_style atomic",
                # Re-sorting atoms every 5 steps changes local indices: the owner lookup must follow.
                "atom_modify sort 5 0.0",
                "read_data structure.data",
                f"pair_style superionic graph {graph}",
                f"pair_coeff * * {model} {' '.join(SPECIES)}",
                # Neighbour lists and ghosts rebuilt every step: the folded map is rebuilt with them.
                "neigh_modify every 1 delay 0 check no",
                # loop geom: the same velocities on any number of ranks
                "velocity all create 1500.0 4928459 loop geom",
                "fix 1 all nve",
                "timestep 0.001",
                "thermo_style custom step pe ke",
                "thermo_modify format float %.17g",
                "run 20",
                "write_dump all custom final.dump id xu yu zu vx vy vz fx fy fz"
                " modify format float %.17g sort id",
                "",
            ]
        )
    )
    run = run_lammps("in.lmp", workdir, nprocs=nprocs)
    assert f"pair superionic: graph {'folded' if graph == 'folded' else 'shell'}" in run.output
    return np.loadtxt(workdir / "final.dump", skiprows=9, ndmin=2)


@pytest.mark.parametrize("kind", ["mp", pytest.param("marathon", marks=pytest.mark.slow)])
def test_nve_folded_follows_shell(tmp_path: Path, models: dict[str, Path], kind: str) -> None:
    atoms = structure("small")
    folded = nve(tmp_path / "folded", atoms, models[kind], "folded", 1)
    shell = nve(tmp_path / "shell", atoms, models[kind], "shell", 1)
    two = nve(tmp_path / "two", atoms, models[kind], "auto", 2)
    # read_data may wrap a starting position into the box: displacements by minimum image.
    _, moved = find_mic(folded[:, 1:4] - atoms.get_positions(), atoms.cell, pbc=True)
    assert moved.max() > 0.05, "the atoms hardly moved; the comparison would be empty"
    for other in (shell, two):
        np.testing.assert_array_equal(folded[:, 0], other[:, 0])
        assert_close(folded[:, 1:4], other[:, 1:4], MD_TOL, "positions")
        assert_close(folded[:, 4:7], other[:, 4:7], MD_TOL, "velocities")
        assert_close(folded[:, 7:10], other[:, 7:10], MD_TOL, "forces")
