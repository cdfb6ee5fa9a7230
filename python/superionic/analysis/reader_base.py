"""What every trajectory reader shares: frame blocks, the header, the error type, and the rules that
turn what a file stores (elements, integer types, or nothing) plus the user's --types/--structure
into one element per atom.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from superionic.analysis.errors import AnalysisError

FRAME_BLOCK = 256

# Unit strings seen in H5MD files (H5MD 1.1 leaves them free-form) and their factor to Å or ps.
LENGTH_UNITS = {
    "angstrom": 1.0,
    "a": 1.0,
    "å": 1.0,
    "ang": 1.0,
    "nm": 10.0,
    "pm": 0.01,
    "bohr": 0.529177210903,
}
TIME_UNITS = {"ps": 1.0, "fs": 1e-3, "ns": 1e3, "as": 1e-6}


class TrajectoryError(AnalysisError):
    """A trajectory that cannot be analysed; the message names the file and the fix."""


@dataclass
class Block:
    """Consecutive frames: positions [F, N, 3] (Å), images [F, N, 3] or None, cells [F, 3, 3]."""

    times_ps: np.ndarray
    positions: np.ndarray
    images: np.ndarray | None
    cells: np.ndarray


@dataclass
class TrajectoryHeader:
    path: str
    format: str
    n_frames: int
    symbols: list[str]  # per atom
    charges: np.ndarray | None = None  # per atom, elementary charges, if the file stores them
    notes: list[str] = field(default_factory=list)


class Reader:
    header: TrajectoryHeader

    def blocks(self, size: int = FRAME_BLOCK) -> Iterator[Block]:
        raise NotImplementedError


def unit_factor(path: Path | str, where: str, unit: str | bytes | None, table: dict[str, float]) -> float:
    """Factor from the file's unit to Å or ps; no attribute means the project's units (metal)."""
    if unit is None:
        return 1.0
    if isinstance(unit, bytes):
        unit = unit.decode(errors="replace")
    if not isinstance(unit, str):  # h5py hands a one-element array for a string array attribute
        unit = str(np.asarray(unit).ravel()[0])
    key = unit.strip().lower()
    if key not in table:
        known = ", ".join(sorted(table))
        raise TrajectoryError(
            f"{path}: {where} has unit '{unit}', which is not one of {known}; convert the file"
        )
    return table[key]


def check_elements(path: Path | str, names: Sequence[str], source: str) -> list[str]:
    """Element symbols as given, or a one-line refusal naming the first that is not an element."""
    out = []
    for name in names:
        text = name.strip() if isinstance(name, str) else str(name)
        if text not in atomic_numbers or text == "X":
            raise TrajectoryError(
                f"{path}: '{text}' from {source} is not an element symbol; give elements such as Li S "
                "(capitalised as in the periodic table)"
            )
        out.append(text)
    return out


def structure_symbols(path: Path | str, structure: str | Path) -> list[str]:
    """Element of each atom, in file order, of a structure file (anything ase.io reads; LAMMPS data)."""
    from ase.io import read

    source = Path(structure)
    if not source.exists():
        raise TrajectoryError(f"{path}: --structure {source} does not exist")
    name = source.name.lower()
    lammps_data = name.endswith((".data", ".lmp")) or name.startswith("data.")
    if lammps_data and "Masses" not in source.read_text(errors="replace"):
        # Without masses ase numbers the types 1, 2, ... as H, He, ...: a silent wrong answer.
        raise TrajectoryError(
            f"{path}: --structure {source} is a LAMMPS data file without a Masses section, so its "
            "elements are unknown; add Masses or pass --types"
        )
    try:
        if lammps_data:
            atoms = read(source, format="lammps-data", atom_style="atomic")
        else:
            atoms = read(source)
    except Exception as err:  # ase.io raises many exception types for unreadable input
        raise TrajectoryError(
            f"{path}: --structure {source} is not a structure ase.io can read ({type(err).__name__}); "
            "give a POSCAR, CIF, extxyz or LAMMPS data file with the trajectory's atoms"
        ) from err
    symbols = atoms.get_chemical_symbols()
    if "X" in symbols:
        raise TrajectoryError(f"{path}: --structure {source} gives no element for some atoms; use --types")
    return symbols


def resolve_symbols(
    path: Path | str,
    n_atoms: int,
    *,
    stored_names: Sequence[str] | None = None,
    types: np.ndarray | None = None,
    type_names: Sequence[str] | None = None,
    structure: str | Path | None = None,
    notes: list[str] | None = None,
) -> list[str]:
    """One element per atom from what the file stores and what the user passed.

    ``stored_names``: elements per atom stored in the file (ASE, vasprun), or per type (ours, in
    ``parameters/superionic``) when ``types`` is given. ``types``: integer type per atom (LAMMPS
    types start at 1; a file whose types include 0 counts from 0). ``type_names`` (--types): one
    element per type, or, for files with no types, one per atom. ``structure`` (--structure): a
    structure file with the same atoms in the same order.
    """
    notes = notes if notes is not None else []
    if types is not None:
        types = np.asarray(types).astype(np.int64, copy=False).ravel()
        if len(types) != n_atoms:
            raise TrajectoryError(
                f"{path}: {len(types)} species entries for {n_atoms} atoms; the file is damaged"
            )
        names = list(type_names) if type_names else list(stored_names or [])
        if names:
            names = check_elements(path, names, "--types" if type_names else "the file's type names")
            if len(types) and types.min() < 0:
                raise TrajectoryError(f"{path}: negative atom type {types.min()}; the file is damaged")
            base = 0 if (len(types) and types.min() == 0) else 1
            if base == 0:
                notes.append("species numbered from 0: --types gives the element of type 0 first")
            if len(types) and types.max() - base >= len(names):
                raise TrajectoryError(
                    f"{path}: type {types.max()} has no element among {names}; pass one element per type "
                    f"({types.max() - base + 1} types) with --types"
                )
            return [names[t - base] for t in types]
        if structure is not None:
            return _from_structure(path, n_atoms, structure, notes)
        raise TrajectoryError(
            f"{path}: the file stores atom types but not their elements; pass the element of each type "
            "in order (--types Li Ge P S) or a structure file with the same atoms (--structure FILE)"
        )
    if stored_names:
        return check_elements(path, stored_names, "the file")
    if structure is not None:
        return _from_structure(path, n_atoms, structure, notes)
    if type_names and len(type_names) == n_atoms:
        return check_elements(path, type_names, "--types")
    raise TrajectoryError(
        f"{path}: the file stores no species; pass a structure file with the same atoms in the same order "
        f"(--structure POSCAR) or one element per atom ({n_atoms}) with --types"
    )


def _from_structure(path: Path | str, n_atoms: int, structure: str | Path, notes: list[str]) -> list[str]:
    symbols = structure_symbols(path, structure)
    if len(symbols) != n_atoms:
        raise TrajectoryError(
            f"{path}: --structure {structure} has {len(symbols)} atoms, the trajectory {n_atoms}; give the "
            "structure the run started from"
        )
    notes.append(f"elements from {structure} (atom order assumed to be the trajectory's)")
    return symbols
