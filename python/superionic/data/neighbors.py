"""Neighbour lists through vesin (maintained, fast, correct for cells smaller than the cutoff)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vesin
from ase import Atoms


@dataclass(frozen=True)
class NeighborList:
    src: np.ndarray  # [E] int64, i
    dst: np.ndarray  # [E] int64, j
    shifts: np.ndarray  # [E, 3] int64, periodic image of j: r_j + shifts @ cell
    vectors: np.ndarray  # [E, 3] float64, r_j + shifts @ cell − r_i


def neighbor_list(atoms: Atoms, cutoff: float) -> NeighborList:
    """All ordered pairs (i, j, image) closer than ``cutoff``; a structure is periodic in all
    three directions or in none."""
    periodic = bool(atoms.pbc.all())
    if atoms.pbc.any() and not periodic:
        raise ValueError(f"mixed periodicity {atoms.pbc.tolist()} is not supported; use all or none")
    box = atoms.cell.array if periodic else np.zeros((3, 3))
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    src, dst, shifts, vectors = calculator.compute(
        points=np.ascontiguousarray(atoms.positions, dtype=np.float64),
        box=np.ascontiguousarray(box, dtype=np.float64),
        periodic=periodic,
        quantities="ijSD",
    )
    return NeighborList(
        src=src.astype(np.int64),
        dst=dst.astype(np.int64),
        shifts=shifts.astype(np.int64),
        vectors=np.ascontiguousarray(vectors, dtype=np.float64),
    )
