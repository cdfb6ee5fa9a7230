"""LAMMPS `run 0` through pair_style superionic against the Python evaluation, at 1e-8 (float64).

Compared: total energy, per-atom energies (compute pe/atom), forces, global virial (compute
pressure NULL virial) and per-atom virial (compute stress/atom), on 1, 2 and 4 MPI ranks, for the
strictly local model and the model whose receptive field is twice its cutoff.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from superionic.calculator import evaluate
from superionic.models.assemble import VOIGT_LAMMPS, Evaluation
from tests.conftest import SPECIES, make_model, structure
from tests.lammps.singlepoint import SinglePoint, single_point

TOL = 1e-8


def python_reference(kind: str, name: str) -> Evaluation:
    model = make_model(kind)
    return evaluate(model, structure(name), model.cutoff, SPECIES, torch.float64)


def assert_matches(lmp: SinglePoint, ref: Evaluation, periodic: bool = True) -> None:
    assert lmp.energy == pytest.approx(ref.energy, rel=TOL, abs=TOL)
    np.testing.assert_allclose(lmp.atom_energy, ref.atom_energy, rtol=TOL, atol=TOL)
    force_scale = max(1.0, np.abs(ref.forces).max())
    np.testing.assert_allclose(lmp.forces, ref.forces, rtol=0, atol=TOL * force_scale)
    atom_virial = np.array([[w[a, b] for a, b in VOIGT_LAMMPS] for w in ref.atom_virial])
    virial_scale = max(1.0, np.abs(atom_virial).max())
    np.testing.assert_allclose(lmp.atom_virial, atom_virial, rtol=0, atol=TOL * virial_scale)
    if periodic:
        total = ref.virial_lammps()
        np.testing.assert_allclose(lmp.virial, total, rtol=0, atol=TOL * max(1.0, np.abs(total).max()))


@pytest.mark.parametrize("nprocs", [1, 2, 4])
@pytest.mark.parametrize("kind", ["local", "mp"])
@pytest.mark.parametrize("name", ["orthorhombic", "triclinic", "small"])
def test_run0_matches_python(tmp_path: Path, exported, name: str, kind: str, nprocs: int) -> None:
    lmp = single_point(tmp_path, structure(name), exported.path(kind), nprocs=nprocs)
    assert_matches(lmp, python_reference(kind, name))


@pytest.mark.parametrize("kind", ["local", "mp"])
def test_isolated_atom(tmp_path: Path, exported, kind: str) -> None:
    lmp = single_point(tmp_path, structure("isolated"), exported.path(kind))
    ref = python_reference(kind, "isolated")
    assert_matches(lmp, ref, periodic=False)
    assert np.all(lmp.forces == 0.0)


@pytest.mark.parametrize("kind", ["local", "mp"])
def test_rank_without_atoms(tmp_path: Path, exported, kind: str) -> None:
    """A 2x1x1 grid over a half-empty box: one rank owns nothing and the results do not change."""
    lmp = single_point(tmp_path, structure("slab"), exported.path(kind), nprocs=2, processors="2 1 1")
    assert lmp.nlocal_min == 0, "the test structure no longer leaves a rank empty"
    assert_matches(lmp, python_reference(kind, "slab"))


@pytest.mark.parametrize("kind", ["local", "mp"])
def test_type_map_permutation(tmp_path: Path, exported, kind: str) -> None:
    atoms = structure("triclinic")
    natural = single_point(tmp_path / "a", atoms, exported.path(kind))
    order = ["S", "P", "Li", "Ge"]
    permuted = single_point(tmp_path / "b", atoms, exported.path(kind), type_names=order, nprocs=2)
    assert permuted.energy == pytest.approx(natural.energy, rel=1e-12)
    np.testing.assert_allclose(permuted.forces, natural.forces, rtol=0, atol=1e-10)
    np.testing.assert_allclose(permuted.atom_virial, natural.atom_virial, rtol=0, atol=1e-10)


def test_edge_list_matches_python_neighbour_list(tmp_path: Path, exported) -> None:
    """debug/edges dumps each rank's edges; together they are exactly ASE's neighbour list."""
    from superionic.data.graph import build_graph

    atoms = structure("small")
    model = exported.path("local")
    single_point(tmp_path, atoms, model, nprocs=2, pair_style="superionic debug/edges edges")
    rows = np.concatenate([np.loadtxt(tmp_path / f"edges.{rank}", ndmin=2) for rank in range(2)])
    lammps_edges = sorted((int(i), int(j), round(float(np.linalg.norm(v)), 9)) for i, j, *v in rows)
    graph = build_graph(atoms, make_model("local").cutoff, SPECIES)
    python_edges = sorted(
        (int(i) + 1, int(j) + 1, round(float(np.linalg.norm(v)), 9))
        for i, j, v in zip(graph.edge_src, graph.edge_dst, graph.edge_vec, strict=True)
    )
    assert len(lammps_edges) == len(python_edges) > 300
    assert lammps_edges == python_edges


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "mp"])
def test_pt2_in_lammps_matches_pt(tmp_path: Path, exported, kind: str) -> None:
    atoms = structure("triclinic")
    pt = single_point(tmp_path / "pt", atoms, exported.path(kind, ".pt"), nprocs=2)
    pt2 = single_point(tmp_path / "pt2", atoms, exported.path(kind, ".pt2"), nprocs=2)
    assert pt2.energy == pytest.approx(pt.energy, rel=1e-10)
    np.testing.assert_allclose(pt2.forces, pt.forces, rtol=0, atol=1e-10 * np.abs(pt.forces).max())
    np.testing.assert_allclose(pt2.virial, pt.virial, rtol=0, atol=1e-10 * np.abs(pt.virial).max())


def test_float32_model_in_lammps(tmp_path: Path, exported) -> None:
    atoms = structure("orthorhombic")
    lmp = single_point(tmp_path, atoms, exported.path("local", dtype=torch.float32), nprocs=2)
    model = make_model("local", torch.float32)
    ref = evaluate(model, atoms, model.cutoff, SPECIES, torch.float32)
    assert lmp.energy == pytest.approx(ref.energy, rel=1e-6)
    np.testing.assert_allclose(lmp.forces, ref.forces, rtol=0, atol=1e-5 * np.abs(ref.forces).max())


@pytest.mark.parametrize("kind", ["local", "mp"])
def test_null_type_is_invisible_to_the_model(tmp_path: Path, exported, kind: str) -> None:
    """Under hybrid/overlay, atoms of a NULL-mapped type are not part of the model's graph at all:
    the result equals the Python evaluation of the structure with those atoms deleted."""
    atoms = structure("orthorhombic")
    # lj/cut with zero depth covers the Ge-Ge pairs LAMMPS insists on, and adds nothing.
    style = "hybrid/overlay superionic lj/cut 5.0"
    coeffs = [f"pair_coeff * * superionic {exported.path(kind)} Li NULL P S", "pair_coeff * * lj/cut 0.0 1.0"]
    lmp = single_point(tmp_path, atoms, exported.path(kind), pair_style=style, pair_coeffs=coeffs, nprocs=2)
    without_ge = atoms[[s != "Ge" for s in atoms.get_chemical_symbols()]]
    model = make_model(kind)
    ref = evaluate(model, without_ge, model.cutoff, SPECIES)
    assert 0 < len(without_ge) < len(atoms)
    assert lmp.energy == pytest.approx(ref.energy, rel=TOL)
    kept = np.array([s != "Ge" for s in atoms.get_chemical_symbols()])
    np.testing.assert_allclose(lmp.forces[kept], ref.forces, rtol=0, atol=TOL * np.abs(ref.forces).max())
    assert np.all(lmp.forces[~kept] == 0.0)
