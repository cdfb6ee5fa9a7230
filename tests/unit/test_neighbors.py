"""vesin's neighbour list against ASE's, an independent implementation, on awkward cells."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from superionic.data.neighbors import neighbor_list
from tests.conftest import structure


@pytest.mark.parametrize("name", ["small", "triclinic", "slab", "isolated"])
@pytest.mark.parametrize("cutoff", [3.0, 5.0, 8.0])
def test_matches_ase(name: str, cutoff: float) -> None:
    atoms = structure(name)
    ours = neighbor_list(atoms, cutoff)
    i, j, d = ase_neighbor_list("ijD", atoms, cutoff)
    key = lambda a, b, v: sorted(zip(a.tolist(), b.tolist(), np.round(v, 8).tolist(), strict=True))  # noqa: E731
    assert key(ours.src, ours.dst, ours.vectors) == key(i, j, d)
    cell = atoms.cell.array if atoms.pbc.all() else np.zeros((3, 3))
    rebuilt = atoms.positions[ours.dst] + ours.shifts @ cell - atoms.positions[ours.src]
    np.testing.assert_allclose(rebuilt, ours.vectors, atol=1e-12)


def test_mixed_periodicity_is_refused() -> None:
    atoms = Atoms("Li2", positions=[[0, 0, 0], [1.5, 0, 0]], cell=np.eye(3) * 5, pbc=[True, True, False])
    with pytest.raises(ValueError, match="mixed periodicity"):
        neighbor_list(atoms, 3.0)
