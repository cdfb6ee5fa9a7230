"""A cell that is not in LAMMPS's lower-triangular form: `write_lammps_data` rotates it, LAMMPS
evaluates the rotated copy, and the forces and virial rotated back must equal the Python evaluation
of the structure as given.

Every other parity cell is already lower-triangular, where the rotation is the identity and a
missing or transposed rotation could not show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from superionic.calculator import evaluate
from superionic.md.lammps_data import write_lammps_data
from superionic.models.assemble import VOIGT_LAMMPS
from tests.conftest import SPECIES, make_model, structure
from tests.lammps.singlepoint import single_point

# Parity tolerance of the suite (test_parity.py): LAMMPS and Python run the same float64 model on the
# same edges; the data file holds 17 significant digits, the dump prints %.17g, so differences are
# round-off of sums over ~10⁴ edges (≲ 1e-11) plus the rotation's own round-off (~1e-15 relative).
TOL = 1e-8


def rotated_triclinic() -> tuple:
    atoms = structure("triclinic")
    # A generic proper rotation (all three Euler angles non-zero): a, b, c all leave their planes.
    q = Rotation.from_euler("zyx", [37.0, -23.0, 61.0], degrees=True).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    rotated.positions = atoms.positions @ q.T
    return atoms, rotated


@pytest.mark.parametrize("kind", ["local", "mp"])
def test_rotated_cell_forces_and_virial_rotate_back(tmp_path: Path, exported, kind: str) -> None:
    original, atoms = rotated_triclinic()
    cell = atoms.cell.array
    assert np.abs(cell[np.triu_indices(3, 1)]).max() > 1.0  # far from lower-triangular
    model = make_model(kind)
    ref = evaluate(model, atoms, model.cutoff, SPECIES, torch.float64)

    rotation = write_lammps_data(tmp_path / "probe.data", atoms, SPECIES)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-14)  # orthogonal ...
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-14)  # ... and proper (no mirror)
    assert np.abs(rotation - np.eye(3)).max() > 0.1  # a real rotation is applied
    lammps_frame = cell @ rotation.T
    np.testing.assert_allclose(lammps_frame[np.triu_indices(3, 1)], 0.0, atol=1e-12)

    lmp = single_point(tmp_path, atoms, exported.path(kind))
    # Energy is invariant under rotation; forces are vectors (old = new @ R); the virial a tensor
    # (W_old = Rᵀ W_new R), per atom as well as in total.
    assert lmp.energy == pytest.approx(ref.energy, rel=TOL, abs=TOL)
    np.testing.assert_allclose(lmp.atom_energy, ref.atom_energy, rtol=TOL, atol=TOL)
    forces = lmp.forces @ rotation
    scale = max(1.0, np.abs(ref.forces).max())
    np.testing.assert_allclose(forces, ref.forces, rtol=0, atol=TOL * scale)

    def tensor(voigt: np.ndarray) -> np.ndarray:
        out = np.zeros((3, 3))
        for value, (a, b) in zip(voigt, VOIGT_LAMMPS, strict=True):
            out[a, b] = out[b, a] = value
        return out

    virial = rotation.T @ tensor(lmp.virial) @ rotation
    np.testing.assert_allclose(virial, ref.virial, rtol=0, atol=TOL * max(1.0, np.abs(ref.virial).max()))
    # A per-atom virial is not symmetric (each edge's r ⊗ g split between its ends) and LAMMPS reports
    # only six of its nine components, so the reference goes into LAMMPS's frame instead.
    atom_virial = np.array(
        [[w[a, b] for a, b in VOIGT_LAMMPS] for w in rotation @ ref.atom_virial @ rotation.T]
    )
    np.testing.assert_allclose(
        lmp.atom_virial, atom_virial, rtol=0, atol=TOL * max(1.0, np.abs(atom_virial).max())
    )
    # The rotated-back virial really is off-diagonal-rich in the original frame: a forgotten
    # rotation (comparing lmp.virial directly) would differ by far more than TOL.
    assert np.abs(tensor(lmp.virial) - ref.virial).max() > 1e3 * TOL * max(1.0, np.abs(ref.virial).max())
    # And the unrotated structure gives the same energy in Python: the test geometry is one crystal.
    assert evaluate(model, original, model.cutoff, SPECIES).energy == pytest.approx(ref.energy, rel=1e-12)
