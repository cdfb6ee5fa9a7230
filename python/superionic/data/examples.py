"""Seeded example structures: test fixtures and the shipped demo cell.

A jittered simple-cubic lattice with a seeded random species assignment: dense enough that every
atom has tens of neighbours within 5 Å, disordered enough that no force vanishes by symmetry.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

DEMO_SPECIES = ("Li", "Ge", "P", "S")


def jittered_lattice(
    repeats: tuple[int, int, int],
    spacing: float = 2.6,
    species: Sequence[str] = DEMO_SPECIES,
    jitter: float = 0.08,
    tilt: tuple[float, float, float] = (0.0, 0.0, 0.0),
    seed: int = 0,
) -> Atoms:
    """Periodic cell of repeats[0]×repeats[1]×repeats[2] sites; ``tilt`` = (xy, xz, yz) in Å.

    The cell is lower triangular (LAMMPS's restricted triclinic form), so LAMMPS and Python see the
    same coordinates without rotation.
    """
    rng = np.random.default_rng(seed)
    nx, ny, nz = repeats
    cell = np.diag([nx * spacing, ny * spacing, nz * spacing])
    cell[1, 0], cell[2, 0], cell[2, 1] = tilt
    frac = np.stack(np.meshgrid(*[np.arange(n) for n in repeats], indexing="ij"), -1).reshape(-1, 3)
    frac = (frac + 0.5) / np.array(repeats)
    positions = frac @ cell + rng.normal(0.0, jitter, frac.shape)
    symbols = [species[k] for k in rng.integers(0, len(species), len(frac))]
    return Atoms(symbols, positions=positions, cell=cell, pbc=True)
