"""LAMMPS data files from ASE structures, in full precision.

LAMMPS wants a restricted triclinic cell: a along x, b in the xy plane (a lower-triangular cell
matrix with positive diagonal). Structures in any other orientation are rotated into it; the
rotation is returned so callers can rotate forces and stresses back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers


def lammps_cell(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """(cell in LAMMPS orientation, rotation R) with new_vectors = old_vectors @ R.T."""
    cell, rotation = atoms.cell.standard_form()
    return np.asarray(cell), np.asarray(rotation)


def write_lammps_data(
    path: str | Path, atoms: Atoms, type_names: Sequence[str], box_margin: float = 50.0
) -> np.ndarray:
    """Write ``atoms`` with LAMMPS type k+1 = type_names[k]; returns the rotation applied.

    A non-periodic structure is placed in a box ``box_margin`` Å larger than its extent on every
    side (use ``boundary f f f`` or ``s s s`` in the input, or keep it periodic with the margin).
    """
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(type_names))
    if missing:
        raise ValueError(f"{path}: elements {missing} have no LAMMPS type among {list(type_names)}")
    if atoms.pbc.all():
        cell, rotation = lammps_cell(atoms)
        positions = atoms.positions @ rotation.T
    elif not atoms.pbc.any():
        rotation = np.eye(3)
        lo = atoms.positions.min(axis=0) - box_margin
        hi = atoms.positions.max(axis=0) + box_margin
        cell = np.diag(hi - lo)
        positions = atoms.positions - lo
    else:
        raise ValueError(f"{path}: mixed periodicity {atoms.pbc.tolist()} is not supported; use all or none")
    lines = [
        f"LAMMPS data file written by superionic ({atoms.get_chemical_formula()})",
        "",
        f"{len(atoms)} atoms",
        f"{len(type_names)} atom types",
        "",
        f"0.0 {cell[0, 0]:.17g} xlo xhi",
        f"0.0 {cell[1, 1]:.17g} ylo yhi",
        f"0.0 {cell[2, 2]:.17g} zlo zhi",
    ]
    if np.any(np.abs([cell[1, 0], cell[2, 0], cell[2, 1]]) > 0):
        lines.append(f"{cell[1, 0]:.17g} {cell[2, 0]:.17g} {cell[2, 1]:.17g} xy xz yz")
    lines += ["", "Masses", ""]
    for k, name in enumerate(type_names, start=1):
        lines.append(f"{k} {atomic_masses[atomic_numbers[name]]:.6f}  # {name}")
    lines += ["", "Atoms # atomic", ""]
    type_of = {name: k for k, name in enumerate(type_names, start=1)}
    for index, (symbol, pos) in enumerate(zip(symbols, positions, strict=True), start=1):
        lines.append(f"{index} {type_of[symbol]} {pos[0]:.17g} {pos[1]:.17g} {pos[2]:.17g}")
    Path(path).write_text("\n".join(lines) + "\n")
    return rotation
