"""The Python and C++ evaluations of the contract against each other and against calculus."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from superionic._core import Model

from superionic.calculator import SuperionicCalculator, evaluate, load_exported, run_contract
from superionic.data.graph import GraphError, build_graph
from superionic.models.assemble import assemble
from tests.conftest import SPECIES, make_model, structure

KINDS = ["local", "mp"]


def energy_of(model, atoms) -> float:
    return evaluate(model, atoms, model.cutoff, SPECIES).energy


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["small", "triclinic"])
def test_forces_are_minus_energy_gradient(kind: str, name: str) -> None:
    model = make_model(kind)
    atoms = structure(name)
    forces = evaluate(model, atoms, model.cutoff, SPECIES).forces
    h = 1e-5
    for index in (0, 5, len(atoms) - 1):
        for axis in range(3):
            shifted = []
            for sign in (1.0, -1.0):
                moved = atoms.copy()
                moved.positions[index, axis] += sign * h
                shifted.append(energy_of(model, moved))
            numeric = -(shifted[0] - shifted[1]) / (2 * h)
            assert abs(numeric - forces[index, axis]) < 1e-6, (index, axis, numeric, forces[index, axis])


@pytest.mark.parametrize("kind", KINDS)
def test_stress_is_strain_derivative(kind: str) -> None:
    model = make_model(kind)
    atoms = structure("triclinic")
    result = evaluate(model, atoms, model.cutoff, SPECIES)
    volume = atoms.cell.volume
    stress = -result.virial / volume  # ASE sign: (1/V) dE/d(strain)
    h = 1e-6
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]:
        energies = []
        for sign in (1.0, -1.0):
            strain = np.eye(3)
            strain[a, b] += sign * h / (1 if a == b else 2)
            strain[b, a] += 0 if a == b else sign * h / 2
            deformed = atoms.copy()
            deformed.set_cell(atoms.cell.array @ strain.T, scale_atoms=True)
            energies.append(energy_of(model, deformed))
        numeric = (energies[0] - energies[1]) / (2 * h) / volume
        assert abs(numeric - stress[a, b]) < 1e-6 * max(1.0, abs(stress[a, b])) + 1e-9, (a, b)
    assert np.allclose(result.virial, result.virial.T, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["orthorhombic", "triclinic", "small", "isolated"])
def test_cpp_matches_python(exported, kind: str, name: str) -> None:
    model = make_model(kind)
    atoms = structure(name)
    graph = build_graph(atoms, model.cutoff, SPECIES)
    python = run_contract(model, graph, torch.float64)
    cpp = assemble(
        graph,
        *Model(str(exported.path(kind)), "cpu").compute(
            graph.edge_vec, graph.edge_src, graph.edge_dst, graph.species, graph.n_local
        ),
    )
    assert cpp.energy == pytest.approx(python.energy, rel=1e-12)
    scale = max(1.0, np.abs(python.forces).max())
    np.testing.assert_allclose(cpp.forces, python.forces, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(cpp.atom_energy, python.atom_energy, rtol=1e-12)
    np.testing.assert_allclose(cpp.atom_virial, python.atom_virial, rtol=0, atol=1e-12 * scale)


def test_isolated_atom_has_species_energy_and_no_force() -> None:
    model = make_model("local")
    result = evaluate(model, structure("isolated"), model.cutoff, SPECIES)
    assert result.energy == pytest.approx(float(model.e0[SPECIES.index("Ge")]), rel=1e-15)
    assert np.all(result.forces == 0.0)


def test_receptive_field_reaches_two_cutoffs() -> None:
    """The message-passing model feels an atom between one and two cutoffs away; the local one does not."""
    from ase import Atoms

    for kind, expect_coupling in [("local", False), ("mp", True)]:
        model = make_model(kind)
        rc = model.cutoff
        # A chain 0 - 1 - 2 with 0-2 beyond the cutoff but within two cutoffs.
        chain = Atoms("LiSP", positions=[[0, 0, 0], [0.6 * rc, 0, 0], [1.2 * rc, 0, 0]], pbc=False)
        energies = evaluate(model, chain, rc, SPECIES).atom_energy
        moved = chain.copy()
        moved.positions[2, 1] += 0.3
        moved_energies = evaluate(model, moved, rc, SPECIES).atom_energy
        assert (abs(moved_energies[0] - energies[0]) > 1e-8) == expect_coupling, kind


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_pt_and_pt2_agree(exported, kind: str) -> None:
    atoms = structure("triclinic")
    model = make_model(kind)
    graph = build_graph(atoms, model.cutoff, SPECIES)
    args = (graph.edge_vec, graph.edge_src, graph.edge_dst, graph.species, graph.n_local)
    pt = assemble(graph, *Model(str(exported.path(kind, ".pt")), "cpu").compute(*args))
    pt2 = assemble(graph, *Model(str(exported.path(kind, ".pt2")), "cpu").compute(*args))
    assert pt2.energy == pytest.approx(pt.energy, rel=1e-10)
    scale = np.abs(pt.forces).max()
    np.testing.assert_allclose(pt2.forces, pt.forces, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(pt2.virial, pt.virial, rtol=0, atol=1e-10 * np.abs(pt.virial).max())
    # and the Python-side AOTInductor runner agrees with the C++ one
    py_pt2 = run_contract(load_exported(exported.path(kind, ".pt2")), graph, torch.float64)
    assert py_pt2.energy == pytest.approx(pt2.energy, rel=1e-12)


def test_float32_model_tracks_float64(exported) -> None:
    atoms = structure("orthorhombic")
    f64 = SuperionicCalculator(exported.path("local", dtype=torch.float64))
    f32 = SuperionicCalculator(exported.path("local", dtype=torch.float32))
    atoms.calc = f64
    e64, forces64 = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = f32
    e32, forces32 = atoms.get_potential_energy(), atoms.get_forces()
    assert e32 == pytest.approx(e64, rel=1e-5)
    assert np.abs(forces32 - forces64).max() < 1e-4 * np.abs(forces64).max()
    cpp32 = Model(str(exported.path("local", dtype=torch.float32)), "cpu")
    assert cpp32.dtype == "float32"


def test_overlapping_atoms_are_refused() -> None:
    atoms = structure("small")
    atoms.positions[1] = atoms.positions[0] + [0.05, 0.0, 0.0]
    with pytest.raises(GraphError, match=r"0\.05 Å apart"):
        build_graph(atoms, 5.0, SPECIES)


def test_unknown_element_is_refused() -> None:
    atoms = structure("small")
    atoms.symbols[0] = "Cl"
    with pytest.raises(GraphError, match=r"Cl not in the model's species \[Li, Ge, P, S\]"):
        build_graph(atoms, 5.0, SPECIES)
