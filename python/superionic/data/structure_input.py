"""Structure input: any CIF (partial and mixed occupancies included), POSCAR/CONTCAR, extxyz or
other file ase.io reads, and the three built-in names, as one site table.

A :class:`SiteTable` is a periodic cell plus every crystallographic site (fractional position,
occupancy per element, the label of its site family). Disordered files keep their occupancies;
ordered files become a table whose sites are all fully occupied, so ordering leaves them as they
are. The built-in names (LGPS, LLZO, LYC) are ordinary CIF files shipped in
``superionic/data/structures`` with their ordering rules in ``builtin.json``.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np
from ase import Atoms

from superionic.data.file_faults import file_fault

__all__ = [
    "BUILTIN",
    "OrderingRules",
    "SiteTable",
    "StructureError",
    "builtin_names",
    "load_site_table",
]


class StructureError(ValueError):
    """A structure that cannot be read or ordered as asked; the message names file, field and fix."""


@dataclass(frozen=True)
class OrderingRules:
    """How partial occupancies become an ordered cell (see :mod:`superionic.data.ordering`).

    ``min_distance`` (Å): no two atoms of the same charge sign closer than this where at least one
    sits on a partially occupied site (split-site alternatives lie closer than this and are never
    occupied together). ``family_min_distance``: extra bounds between two site families, by label.
    ``fixed_counts``: atoms per element on a family per conventional cell, replacing
    occupancy x multiplicity where a material's rules require it.
    """

    min_distance: float = 1.6
    family_min_distance: tuple[tuple[str, str, float], ...] = ()
    fixed_counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class SiteTable:
    """A periodic cell and its sites, disordered or not."""

    name: str
    source: str
    citation: str
    cell: np.ndarray  # rows are the lattice vectors (Å)
    frac: np.ndarray  # [n_sites, 3]
    occupancy: list[dict[str, float]]
    family: np.ndarray  # [n_sites] index into family_labels
    family_labels: list[str]
    oxidation_states: dict[str, int] | None = None
    formula: str = ""  # nominal formula where known (the built-ins)
    # The file's own _chemical_formula_sum, checked against the occupancies and the ordered cell.
    declared_formula: str = ""
    oxidation_states_from: str = ""  # which part of the file gave ``oxidation_states``
    rules: OrderingRules = field(default_factory=OrderingRules)
    notes: str = ""

    @property
    def elements(self) -> list[str]:
        """Elements in order of first appearance in the table."""
        seen: dict[str, None] = {}
        for occ in self.occupancy:
            for element in occ:
                seen.setdefault(element, None)
        return list(seen)

    @property
    def disordered(self) -> bool:
        return any(_is_partial(occ) for occ in self.occupancy)

    def ideal_counts(self) -> dict[str, float]:
        """Atoms of each element per cell implied by the occupancies."""
        totals: dict[str, float] = {}
        for occ in self.occupancy:
            for element, value in occ.items():
                totals[element] = totals.get(element, 0.0) + value
        return totals


def _is_partial(occ: dict[str, float]) -> bool:
    return len(occ) > 1 or abs(next(iter(occ.values())) - 1.0) > 1e-6


BUILTIN_DIR = files("superionic.data") / "structures"


def _builtin_table() -> dict[str, dict]:
    return json.loads((BUILTIN_DIR / "builtin.json").read_text())


BUILTIN: dict[str, dict] = _builtin_table()


def builtin_names() -> list[str]:
    return list(BUILTIN)


def _builtin_key(text: str) -> str | None:
    key = text.strip()
    for name, entry in BUILTIN.items():
        if key.upper() == name.upper() or key.lower() == entry["formula"].lower():
            return name
    return None


def _rules_from_json(entry: dict) -> OrderingRules:
    return OrderingRules(
        min_distance=float(entry.get("min_distance", OrderingRules.min_distance)),
        family_min_distance=tuple((a, b, float(d)) for a, b, d in entry.get("family_min_distance", [])),
        fixed_counts={k: {e: int(n) for e, n in v.items()} for k, v in entry.get("fixed_counts", {}).items()},
    )


def load_site_table(source: str | Path | Atoms, min_distance: float | None = None) -> SiteTable:
    """The site table of a built-in name, a structure file, or an ASE ``Atoms``."""
    if isinstance(source, Atoms):
        return _from_atoms(source, name=source.get_chemical_formula(), origin="ase.Atoms")
    text = str(source)
    key = _builtin_key(text) if not Path(text).exists() else None
    if key is not None:
        entry = BUILTIN[key]
        path = Path(str(BUILTIN_DIR / f"{key}.cif"))
        table = _from_cif(path, name=key)
        table.source = f"built-in {key} ({path.name})"
        table.citation = entry["citation"]
        table.formula = entry["formula"]
        table.rules = _rules_from_json(entry.get("ordering", {}))
        table.notes = entry.get("notes", "")
    else:
        path = Path(text)
        if not path.exists():
            names = ", ".join(f"{n} ({BUILTIN[n]['formula']})" for n in BUILTIN)
            raise StructureError(
                f"{text}: no such structure file and not a built-in name; give a CIF, POSCAR or extxyz "
                f"file, or one of {names}"
            )
        if path.is_dir():
            raise StructureError(f"{path}: is a directory; give a structure file (CIF, POSCAR, extxyz)")
        if path.stat().st_size == 0:
            raise StructureError(f"{path}: the file is empty; give a structure file (CIF, POSCAR, extxyz)")
        table = _from_cif(path, name=path.stem) if _is_cif(path) else _from_ase_file(path)
    if min_distance is not None:
        if min_distance < 0:
            raise StructureError(f"--min-distance must be >= 0 Å, got {min_distance}")
        table.rules = OrderingRules(
            min_distance=float(min_distance),
            family_min_distance=table.rules.family_min_distance,
            fixed_counts=table.rules.fixed_counts,
        )
    _check_table(table)
    return table


def _is_cif(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".cif", ".mcif", ".cif.gz"))


def _from_ase_file(path: Path) -> SiteTable:
    from ase.io import read

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms = read(str(path), index=0)
    except Exception as error:  # ase raises many kinds; all mean "not a structure we can read"
        fault = file_fault(path)
        if fault:
            raise StructureError(f"{path}: {fault}") from error
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StructureError(
            f"{path}: ASE cannot read it as a structure ({reason}); give a CIF, POSCAR/CONTCAR or extxyz file"
        ) from error
    if isinstance(atoms, list):  # some readers ignore index
        atoms = atoms[0]
    return _from_atoms(atoms, name=path.stem, origin=str(path))


def _from_atoms(atoms: Atoms, name: str, origin: str) -> SiteTable:
    if len(atoms) == 0:
        raise StructureError(f"{origin}: the structure holds no atoms")
    if not all(atoms.pbc) or atoms.cell.rank < 3:
        pbc = [bool(p) for p in atoms.pbc]
        raise StructureError(
            f"{origin}: the structure is not periodic in three dimensions (pbc={pbc}); "
            "give a bulk crystal with a full cell"
        )
    symbols = atoms.get_chemical_symbols()
    labels = list(dict.fromkeys(symbols))
    family = np.array([labels.index(s) for s in symbols])
    return SiteTable(
        name=name,
        source=origin,
        citation=str(atoms.info.get("citation", atoms.info.get("source", origin))),
        cell=atoms.cell.array.copy(),
        frac=atoms.get_scaled_positions(wrap=True),
        occupancy=[{s: 1.0} for s in symbols],
        family=family,
        family_labels=labels,
    )


_CITATION_KEYS = (
    "_citation_journal_full",
    "_citation_journal_abbrev",
    "_journal_name_full",
    "_citation_year",
    "_journal_year",
    "_citation_journal_volume",
    "_journal_volume",
    "_citation_page_first",
    "_journal_page_first",
)


def _from_cif(path: Path, name: str) -> SiteTable:
    from pymatgen.io.cif import CifParser

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parser = CifParser(str(path), occupancy_tolerance=1.05)
            structures = parser.parse_structures(primitive=False)
    except Exception as error:  # pymatgen raises ValueError/KeyError/IndexError on broken files
        fault = file_fault(path)
        if fault:
            raise StructureError(f"{path}: {fault}") from error
        reasons = [str(w.message).splitlines()[0] for w in caught] if "caught" in locals() else []
        reason = (
            reasons[-1] if reasons else (str(error).splitlines()[0] if str(error) else type(error).__name__)
        )
        raise StructureError(
            f"{path}: not a readable CIF ({reason}); check the cell, symmetry and _atom_site loop"
        ) from error
    if not structures:
        raise StructureError(f"{path}: no structure in the CIF; it needs a cell and an _atom_site loop")
    structure = structures[0]
    block = next(iter(parser.as_dict().values()), {})
    citation = " ".join(
        str(block[k]) for k in _CITATION_KEYS if k in block and str(block[k]) not in ("?", ".")
    )
    occupancy: list[dict[str, float]] = []
    labels: list[str] = []
    oxidation: dict[str, int] = {}
    for site in structure:
        occ: dict[str, float] = {}
        for species, amount in site.species.items():
            element = species.symbol if hasattr(species, "symbol") else str(species)
            occ[element] = occ.get(element, 0.0) + float(amount)
            state = getattr(species, "oxi_state", None)
            if state not in (None, 0):
                oxidation[element] = round(state)
        total = sum(occ.values())
        if total > 1.0 + 1e-6:  # within pymatgen's tolerance: scale back to a full site
            occ = {e: v / total for e, v in occ.items()}
        occupancy.append(occ)
        label = re.sub(r"\s+", "", str(getattr(site, "label", None) or ""))
        # pymatgen keeps one CIF label for a mixed site; name the family by its elements too.
        if len(occ) > 1 or not label:
            label = f"{label}({'/'.join(occ)})" if label else "/".join(occ)
        labels.append(label)
    family_labels = list(dict.fromkeys(labels))
    oxidation_from = "its _atom_type_oxidation_number" if oxidation else ""
    if not oxidation:
        oxidation = _type_symbol_states(path, block)
        oxidation_from = "its charged _atom_site_type_symbol values" if oxidation else ""
    formula = block.get("_chemical_formula_sum")
    declared = formula.strip() if isinstance(formula, str) else ""
    declared = "" if declared in ("?", ".") else declared
    return SiteTable(
        name=name,
        source=str(path),
        citation=citation or str(path),
        cell=structure.lattice.matrix.copy(),
        frac=np.mod(structure.frac_coords, 1.0),
        occupancy=occupancy,
        family=np.array([family_labels.index(x) for x in labels]),
        family_labels=family_labels,
        oxidation_states=oxidation or None,
        declared_formula=declared,
        oxidation_states_from=oxidation_from,
    )


# A charged type symbol as CIF writers spell it: Li1+, Li+, S2-, O-2 (pymatgen writes Na+ and P5+).
_CHARGED_SYMBOL = re.compile(r"^([A-Z][a-z]?)(\d*)([+-])(\d*)$")


def _type_symbol_states(path: Path, block: dict) -> dict[str, int]:
    """Oxidation states from charged ``_atom_site_type_symbol`` values (``Li1+``, ``S2-``), which
    pymatgen reads only together with an ``_atom_type_oxidation_number`` loop. Empty when the file
    has no charged symbols; an element given two different states is refused (one state per element
    is what the ordering's charge balance and Ewald criterion use)."""
    symbols = block.get("_atom_site_type_symbol") or []
    states: dict[str, set[int]] = {}
    for raw in [symbols] if isinstance(symbols, str) else symbols:
        match = _CHARGED_SYMBOL.match(str(raw).strip())
        if not match:
            continue
        element, before, sign, after = match.groups()
        if before and after:
            continue  # "Li1+1" is not a charge notation
        magnitude = int(before or after or 1)
        states.setdefault(element, set()).add(magnitude if sign == "+" else -magnitude)
    mixed = {e: sorted(v) for e, v in states.items() if len(v) > 1}
    if mixed:
        element, values = next(iter(mixed.items()))
        shown = " and ".join(f"{v:+d}" for v in values)
        raise StructureError(
            f"{path}: _atom_site_type_symbol gives {element} the states {shown}; the ordering uses one "
            f"state per element: give every element's with --oxidation-states ({element}=N,...)"
        )
    return {e: next(iter(v)) for e, v in states.items()}


def _check_table(table: SiteTable) -> None:
    from ase.data import atomic_numbers

    unknown = sorted({e for occ in table.occupancy for e in occ if e not in atomic_numbers or e == "X"})
    if unknown:
        raise StructureError(
            f"{table.source}: unknown element symbol(s) {', '.join(unknown)}; "
            "use element symbols (Li, S, ...)"
        )
    for occ, label in zip(table.occupancy, (table.family_labels[f] for f in table.family), strict=True):
        total = sum(occ.values())
        if any(v <= 0 for v in occ.values()) or total <= 0:
            raise StructureError(
                f"{table.source}: site {label} has occupancy {total:g}; occupancies must be > 0"
            )
    _check_overlaps(table)


# Below this two fully occupied sites are one atom typed twice (no bond is shorter than H2's 0.74 Å).
OVERLAP_DISTANCE = 0.5


def _check_overlaps(table: SiteTable) -> None:
    full = np.array([not _is_partial(occ) for occ in table.occupancy])
    if full.sum() < 2:
        return
    from vesin import NeighborList

    positions = table.frac[full] @ table.cell
    i, j, d = NeighborList(cutoff=OVERLAP_DISTANCE, full_list=False).compute(
        points=positions, box=table.cell, periodic=True, quantities="ijd"
    )
    if len(d):
        k = int(np.argmin(d))
        index = np.where(full)[0]
        a, b = int(index[i[k]]), int(index[j[k]])
        names = [table.family_labels[table.family[x]] for x in (a, b)]
        raise StructureError(
            f"{table.source}: sites {a + 1} ({names[0]}) and {b + 1} ({names[1]}) are {d[k]:.2f} Å apart, "
            "both fully occupied; fix the coordinates, or give the occupancies if they are alternatives"
        )
