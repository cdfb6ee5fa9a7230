"""The forces and stresses the trainer fits (`predict`) against the contract's `assemble`, against
finite differences of the energy, and the Voigt conversion of the labels in both directions.

A sign error or a yz/xy swap here trains the wrong stress silently (`stress_weight` 0.1 by default):
nothing downstream of training compares a stress with anything.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from superionic.calculator import evaluate
from superionic.data.dataset import _voigt_to_matrix, collate, load_frames, to_frame
from superionic.models.assemble import VOIGT_ASE
from superionic.models.prediction import predict
from superionic.models.sprinter import Sprinter

REPO = Path(__file__).resolve().parents[2]
LGPS = REPO / "data" / "LGPS" / "sevennet.extxyz.gz"
SPECIES = ["Li", "Ge", "P", "S"]
# Frames 0 (300 K MD), 150 (hot MD) and 299 (a strained cell, last of the plan): three cells, three
# temperatures, all with SevenNet-0 stress labels.
FRAMES = "0:300:149"
CUTOFF = 5.0
# Finite-difference steps: central differences err by O(h²·E''') ≈ 1e-10 and by round-off
# ε·|E|/h ≈ 2e-16 · 200 eV / 1e-5 Å ≈ 4e-9; both sit far under the tolerances below.
H_POSITION = 1e-5  # Å
H_STRAIN = 1e-6
FD_FORCE_TOL = 1e-6  # eV/Å: ≥ 100× the FD error bound above, ≥ 1e4× below a typical force (0.1–1 eV/Å)
FD_STRESS_TOL = 1e-7  # eV/Å³: the same bound divided by V ≈ 1000 Å³, × 100 margin
# predict and assemble sum the same per-edge terms in different orders: float64 round-off over ~5000
# edges of magnitude ≤ 10 eV/Å is ≤ 5000 · 2e-16 · 10 ≈ 1e-11.
ROUNDOFF = 1e-10


@pytest.fixture(scope="module")
def model() -> Sprinter:
    torch.manual_seed(0)
    net = Sprinter(SPECIES, cutoff=CUTOFF, seed=7, dtype=torch.float64)
    # Non-trivial normalisation and shifts, as after training: every buffer on the path is exercised.
    with torch.no_grad():
        net.descriptor_mean.uniform_(-0.5, 0.5)
        net.descriptor_std.uniform_(0.5, 2.0)
        net.energy_shift.copy_(torch.tensor([-1.9, -4.5, -5.4, -4.1], dtype=torch.float64))
        net.energy_scale.fill_(0.7)
    return net


@pytest.fixture(scope="module")
def atoms_list() -> list:
    frames = read(str(LGPS), index=FRAMES)
    assert len(frames) == 3 and all("stress" in a.calc.results for a in frames)
    return frames


@pytest.fixture(scope="module")
def prediction(model: Sprinter, atoms_list: list):
    batch = collate([to_frame(a, CUTOFF, SPECIES, "lgps") for a in atoms_list], torch.float64)
    return batch, predict(model, batch, create_graph=False)


def _frame_slices(atoms_list: list) -> list[slice]:
    starts = np.cumsum([0] + [len(a) for a in atoms_list])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(starts)]


def _energy(model: Sprinter, atoms) -> float:
    return evaluate(model, atoms, CUTOFF, SPECIES).energy


def test_predict_equals_the_contract_assembly(model: Sprinter, atoms_list: list, prediction) -> None:
    batch, pred = prediction
    for k, (atoms, rows) in enumerate(zip(atoms_list, _frame_slices(atoms_list), strict=True)):
        reference = evaluate(model, atoms, CUTOFF, SPECIES)  # the pair style's algebra, in numpy
        volume = atoms.cell.volume
        assert float(pred.energy[k].detach()) == pytest.approx(reference.energy, rel=1e-14, abs=ROUNDOFF)
        np.testing.assert_allclose(
            pred.forces[rows].detach().numpy(), reference.forces, rtol=0, atol=ROUNDOFF
        )
        # σ = −W / V, ASE sign (tensile positive): the sign the labels carry.
        np.testing.assert_allclose(
            pred.stress[k].detach().numpy(), -reference.virial / volume, rtol=0, atol=ROUNDOFF / volume
        )
        assert float(batch.volume[k]) == pytest.approx(volume, rel=1e-14)


def test_predicted_forces_are_minus_the_position_gradient(
    model: Sprinter, atoms_list: list, prediction
) -> None:
    _, pred = prediction
    for atoms, rows in zip(atoms_list, _frame_slices(atoms_list), strict=True):
        forces = pred.forces[rows].detach().numpy()
        for index in (0, 21, len(atoms) - 1):  # a Li, a Ge/P, an S
            for axis in range(3):
                energies = []
                for sign in (1.0, -1.0):
                    moved = atoms.copy()
                    moved.positions[index, axis] += sign * H_POSITION
                    energies.append(_energy(model, moved))
                numeric = -(energies[0] - energies[1]) / (2 * H_POSITION)
                assert abs(numeric - forces[index, axis]) < FD_FORCE_TOL, (index, axis, numeric)
    assert np.abs(pred.forces.detach().numpy()).max() > 0.05  # the check is not on vanishing forces


def test_predicted_stress_is_the_strain_derivative(model: Sprinter, atoms_list: list, prediction) -> None:
    _, pred = prediction
    for k, atoms in enumerate(atoms_list):
        volume = atoms.cell.volume
        stress = pred.stress[k].detach().numpy()
        # The six Voigt components in ASE's order, each from a symmetric strain ε_ab = ε_ba = h/2.
        for a, b in VOIGT_ASE:
            energies = []
            for sign in (1.0, -1.0):
                strain = np.eye(3)
                if a == b:
                    strain[a, a] += sign * H_STRAIN
                else:
                    strain[a, b] += sign * H_STRAIN / 2
                    strain[b, a] += sign * H_STRAIN / 2
                deformed = atoms.copy()
                deformed.set_cell(atoms.cell.array @ strain.T, scale_atoms=True)
                energies.append(_energy(model, deformed))
            numeric = (energies[0] - energies[1]) / (2 * H_STRAIN) / volume
            assert abs(numeric - stress[a, b]) < FD_STRESS_TOL, (k, a, b, numeric, stress[a, b])
        np.testing.assert_allclose(stress, stress.T, rtol=0, atol=ROUNDOFF / volume)
        # Distinct off-diagonal components, so a yz/xy swap could not pass by symmetry of the numbers.
        off = [stress[1, 2], stress[0, 2], stress[0, 1]]
        assert min(abs(x - y) for x, y in [(off[0], off[2]), (off[0], off[1]), (off[1], off[2])]) > 1e-5


def test_voigt_conversion_both_ways_agrees_with_ase() -> None:
    # Six distinct numbers: every permutation of the Voigt order gives a different matrix.
    voigt = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # xx yy zz yz xz xy
    matrix = _voigt_to_matrix(voigt)
    np.testing.assert_array_equal(matrix, voigt_6_to_full_3x3_stress(voigt))
    assert matrix[1, 2] == 4.0 and matrix[0, 2] == 5.0 and matrix[0, 1] == 6.0
    np.testing.assert_array_equal(full_3x3_to_voigt_6_stress(matrix), voigt)
    np.testing.assert_array_equal([matrix[a, b] for a, b in VOIGT_ASE], voigt)


def test_labels_written_by_the_model_are_fitted_exactly(
    model: Sprinter, atoms_list: list, tmp_path: Path
) -> None:
    """Model → ASE Voigt stress → extxyz → load_frames → batch labels → predict: residual zero.

    The whole label path in both directions: a label written in ASE's order by one convention and
    read back by another would leave a residual of the size of the stress itself.
    """
    # extxyz keeps 8 decimals of positions and forces: label the positions as they read back, so the
    # frames the trainer sees are the ones the labels belong to.
    write(tmp_path / "positions.extxyz", [a.copy() for a in atoms_list])
    labelled = []
    for atoms in read(tmp_path / "positions.extxyz", index=":"):
        result = evaluate(model, atoms, CUTOFF, SPECIES)
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(
            copy, energy=result.energy, forces=result.forces, stress=result.stress_ase(atoms.cell.volume)
        )
        labelled.append(copy)
    path = tmp_path / "labels.extxyz"
    write(path, labelled)
    frames, species = load_frames([path], CUTOFF, SPECIES)
    assert species == SPECIES
    batch = collate(frames, torch.float64)
    pred = predict(model, batch, create_graph=False)
    assert bool(batch.has_stress.all())
    scale = float(batch.stress.abs().max())
    assert scale > 1e-4  # eV/Å³ (16 MPa): real stresses, not zeros
    # extxyz stores the stress and energy to 16 significant digits (exact to ~1e-16 relative) and the
    # forces to 8 decimals (half a unit of the last: 5e-9 eV/Å).
    np.testing.assert_allclose(pred.stress.detach(), batch.stress, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(pred.forces.detach(), batch.forces, rtol=0, atol=5e-9 + ROUNDOFF)
    np.testing.assert_allclose(pred.energy.detach(), batch.energy, rtol=1e-14)
