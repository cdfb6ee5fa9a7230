"""Structures for every command: a built-in name or any structure file → an ordered cell.

:func:`build_cell` is the one entry point: it reads the site table
(:mod:`superionic.data.structure_input`: CIF with partial/mixed occupancies, POSCAR/CONTCAR,
extxyz, anything ase.io reads, or LGPS/LLZO/LYC, which are CIF files shipped with the package),
orders it by the seeded rule of :mod:`superionic.data.ordering`, and returns the cell with the
report that every command's JSON summary records. :func:`build_structure` is the same with the
report left out, for scripts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from superionic.data.ordering import CellRequest, OrderingReport, order_cell
from superionic.data.structure_input import (
    BUILTIN,
    SiteTable,
    StructureError,
    _builtin_key,
    load_site_table,
)

__all__ = [
    "MATERIALS",
    "BuiltinMaterial",
    "MaterialError",
    "build_cell",
    "build_parent",
    "build_structure",
    "formal_charge",
    "get_material",
    "minimum_distance",
    "structure_name",
]

MaterialError = StructureError


@dataclass(frozen=True)
class BuiltinMaterial:
    """A shipped structure: its name, nominal formula and literature source."""

    name: str
    formula: str
    citation: str


MATERIALS: dict[str, BuiltinMaterial] = {
    name: BuiltinMaterial(name, entry["formula"], entry["citation"]) for name, entry in BUILTIN.items()
}


def get_material(material: str) -> BuiltinMaterial:
    """The built-in material for a name ("LGPS") or formula ("Li10GeP2S12"), case-insensitive."""
    key = _builtin_key(str(material))
    if key is None:
        valid = ", ".join(f"{m.name} ({m.formula})" for m in MATERIALS.values())
        raise MaterialError(f"unknown material {material!r}; valid: {valid}, or a structure file")
    return MATERIALS[key]


def structure_name(source: str | Path | Atoms) -> str:
    """What outputs are named after: the built-in name, or the file's stem."""
    if isinstance(source, Atoms):
        return source.get_chemical_formula()
    key = _builtin_key(str(source)) if not Path(str(source)).exists() else None
    if key is not None:
        return key
    name = Path(str(source)).name
    for suffix in (".gz", ".cif", ".vasp", ".extxyz", ".xyz", ".poscar"):
        name = name.removesuffix(suffix)
    return name or "structure"


def _check_supercell(supercell: Iterable[int] | None) -> tuple[int, int, int] | None:
    if supercell is None:
        return None
    reps = tuple(supercell)
    if len(reps) != 3 or any(int(r) != r or r < 1 for r in reps):
        raise MaterialError(f"supercell must be three positive integers such as 2x2x1, got {reps!r}")
    return (int(reps[0]), int(reps[1]), int(reps[2]))


def build_cell(
    source: str | Path | Atoms,
    seed: int = 0,
    supercell: Iterable[int] | None = None,
    min_width: float | None = None,
    draws: int = 10,
    oxidation_states: dict[str, int] | None = None,
    balance: str | None = None,
    min_distance: float | None = None,
) -> tuple[Atoms, OrderingReport]:
    """An ordered, charge-neutral cell of ``source`` and the report of how it was ordered."""
    table = load_site_table(source, min_distance=min_distance)
    request = CellRequest(
        seed=int(seed),
        supercell=_check_supercell(supercell),
        min_width=min_width,
        draws=int(draws),
        oxidation_states=oxidation_states,
        balance=balance,
    )
    return order_cell(table, request)


def build_structure(
    material: str | Path | Atoms, seed: int = 0, supercell: tuple[int, int, int] = (1, 1, 1), draws: int = 10
) -> Atoms:
    """:func:`build_cell` without the report; ``atoms.info`` records source, seed and supercell."""
    atoms, report = build_cell(material, seed=seed, supercell=supercell, draws=draws)
    atoms.info["formula"] = (
        get_material(material).formula if _is_builtin(material) else atoms.get_chemical_formula()
    )
    atoms.info["ordering_criterion_eV"] = report.criterion_values_eV[report.chosen_draw]
    return atoms


def _is_builtin(material: str | Path | Atoms) -> bool:
    return (
        not isinstance(material, Atoms)
        and not Path(str(material)).exists()
        and _builtin_key(str(material)) is not None
    )


def build_parent(material: str | Path, supercell: tuple[int, int, int] = (1, 1, 1)) -> Atoms:
    """Every site of the (disordered) structure, each labelled with its majority element.

    ``atoms.arrays["site_family"]`` holds each atom's family index and ``atoms.arrays["occupancy"]``
    its total occupancy; the parent has the full space-group symmetry of the file.
    """
    table = load_site_table(material)
    reps = _check_supercell(supercell) or (1, 1, 1)
    return _parent_atoms(table).repeat(reps)


def _parent_atoms(table: SiteTable) -> Atoms:
    symbols = [max(occ, key=lambda e: occ[e]) for occ in table.occupancy]
    atoms = Atoms(symbols, scaled_positions=table.frac, cell=table.cell, pbc=True)
    atoms.arrays["site_family"] = table.family.copy()
    atoms.arrays["occupancy"] = np.array([sum(occ.values()) for occ in table.occupancy])
    return atoms


def formal_charge(atoms: Atoms, material: str | Path) -> int:
    """Sum of formal oxidation states (those the ordering used); zero for a neutral cell."""
    from superionic.data.ordering import _oxidation_states

    states, _ = _oxidation_states(load_site_table(material), CellRequest())
    return int(sum(states[s] for s in atoms.get_chemical_symbols()))


def minimum_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance under periodic boundary conditions (minimum image)."""
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    return float(distances.min())
