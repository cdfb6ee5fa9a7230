"""The paper's three electrolytes, built from published crystallographic data.

Each material is its space group, lattice parameters and asymmetric unit (Wyckoff positions with
occupancies), expanded with :func:`ase.spacegroup.crystal`. The refined structures are disordered
(Li, and Ge/P in LGPS, share sites with partial occupancy), and a force field needs one atom per
site, so :func:`build_structure` resolves the disorder into an ordered, charge-neutral cell by a
seeded procedure:

1. Expand every site family of the (super)cell. Families with occupancy 1 are kept as they are.
2. Give every partially occupied family an integer number of atoms: its occupancy times its
   multiplicity, apportioned by largest remainder so that each element's total is exactly the
   nominal formula (a material may fix these counts instead where the occupancies cannot be met
   by any ordered arrangement, see LLZO).
3. Draw the sites family by family in a random order from ``numpy.random.default_rng(seed)``,
   accepting a site only if it keeps every cation–cation distance involving a newly placed atom
   at or above the material's exclusion distance. A family that cannot be completed rejects the
   whole configuration and the draw restarts with the same generator (so the result is still a
   function of the seed alone).

The exclusion distance encodes the crystallographic fact that split or neighbouring partially
occupied sites closer than ~2 Å are alternatives, never simultaneously occupied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.geometry import get_distances
from ase.spacegroup import crystal

__all__ = [
    "MATERIALS",
    "MaterialError",
    "MaterialSpec",
    "WyckoffSite",
    "build_parent",
    "build_structure",
    "formal_charge",
    "get_material",
    "minimum_distance",
]

MAX_ORDERING_ATTEMPTS = 20_000


class MaterialError(ValueError):
    """A material that is unknown or cannot be built as asked."""


@dataclass(frozen=True)
class WyckoffSite:
    """One site family of the asymmetric unit.

    ``occupancy`` maps element to site occupancy; a sum below 1 means vacancies, more than one
    element means substitutional disorder (Ge/P in LGPS).
    """

    label: str
    wyckoff: str
    frac: tuple[float, float, float]
    occupancy: Mapping[str, float]

    @property
    def fully_occupied(self) -> bool:
        return len(self.occupancy) == 1 and abs(next(iter(self.occupancy.values())) - 1.0) < 1e-9


@dataclass(frozen=True)
class MaterialSpec:
    """A material's refined structure plus the rules that order it."""

    name: str
    formula: str
    spacegroup: int
    setting: int
    cellpar: tuple[float, float, float, float, float, float]
    sites: tuple[WyckoffSite, ...]
    cell_counts: Mapping[str, int]  # atoms of each element in one ordered conventional cell
    formula_units: int
    oxidation_states: Mapping[str, int]
    citation: str
    cation_exclusion: float  # Å: no two cations closer than this after ordering
    # Extra exclusions between site families (label pairs), e.g. LLZO's tetrahedra sharing a cage.
    family_exclusion: Mapping[tuple[str, str], float] = field(default_factory=dict)
    # Per-family atom counts in one conventional cell that override occupancy apportionment.
    fixed_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    notes: str = ""

    @property
    def li_per_cell(self) -> int:
        return self.cell_counts.get("Li", 0)

    @property
    def atoms_per_cell(self) -> int:
        return sum(self.cell_counts.values())


# --- Li10GeP2S12 ------------------------------------------------------------------------------
# Kamaya et al., "A lithium superionic conductor", Nat. Mater. 10, 682 (2011): tetragonal
# P4_2/nmc (No. 137, origin choice 1), Z = 2, refined from neutron/X-ray powder data. The numbers
# below are that refinement as distributed with pymatgen (util/structures/Li10GeP2S12.json, the
# ICSD entry of the paper; there in an inverted axis frame, here mapped back by x -> -x), and agree
# in site model and to <0.01 in coordinates with the LGPS-type neutron refinements of Iwasaki et
# al., Acta Cryst. B (2015, CCDC 1438232-7). Occupancies: Li 16*0.691 + 4 + 8*0.643 = 20.2 per
# cell; the ordered cell takes the nominal Li20Ge2P4S24.
LGPS = MaterialSpec(
    name="LGPS",
    formula="Li10GeP2S12",
    spacegroup=137,
    setting=1,
    cellpar=(8.69407, 8.69407, 12.5994, 90.0, 90.0, 90.0),
    sites=(
        WyckoffSite("Li1", "16h", (0.2563, 0.2718, 0.1832), {"Li": 0.691}),
        WyckoffSite("Li2", "4d", (0.0, 0.5, 0.9446), {"Li": 1.0}),
        WyckoffSite("Li3", "8f", (0.2463, 0.2463, 0.0), {"Li": 0.643}),
        WyckoffSite("Ge1", "4d", (0.0, 0.5, 0.6907), {"Ge": 0.515, "P": 0.485}),
        WyckoffSite("P2", "2b", (0.0, 0.0, 0.5), {"P": 1.0}),
        WyckoffSite("S1", "8g", (0.0, 0.1843, 0.4103), {"S": 1.0}),
        WyckoffSite("S2", "8g", (0.0, 0.2991, 0.0950), {"S": 1.0}),
        WyckoffSite("S3", "8g", (0.0, 0.6990, 0.7914), {"S": 1.0}),
    ),
    cell_counts={"Li": 20, "Ge": 2, "P": 4, "S": 24},
    formula_units=2,
    oxidation_states={"Li": 1, "Ge": 4, "P": 5, "S": -2},
    citation="N. Kamaya et al., Nat. Mater. 10, 682 (2011); P4_2/nmc, a = 8.694 Å, c = 12.599 Å",
    cation_exclusion=1.6,
)

# --- cubic Li7La3Zr2O12 -----------------------------------------------------------------------
# Awaka et al., "Crystal structure of fast lithium-ion-conducting cubic Li7La3Zr2O12",
# Chem. Lett. 40, 60 (2011): garnet Ia-3d (No. 230), Z = 8, a = 12.9682 Å; La 24c, Zr 16a, O 96h,
# Li1 tetrahedral 24d (occupancy 0.564), Li2 96h (occupancy 0.442; the split of the octahedral 48g
# site). O and Li2 coordinates are given to three decimals (the garnet framework of the refinement;
# Zr-O = 2.11 Å, La-O = 2.51/2.58 Å as reported for cubic LLZO) and are the part of this entry least
# tied to one refinement; MD relaxes them anyway. This is the Al/Ga-free cubic model.
#
# Ordering: the 96h half-sites sit 0.67 Å from their twin and 1.68 Å from the nearer 24d site,
# pairs that are never simultaneously occupied; hence a 2.0 Å Li-Li exclusion. Under it, and with
# no octahedral cage between two occupied tetrahedra (family exclusion Li1-Li1 < 4 Å), an ordered
# cell can hold at most 12 tetrahedral Li next to 44 octahedral ones; the refined 13.5 : 42.4 split
# is therefore not realisable, and we fix 12 (24d, occupancy 0.500) + 44 (96h, 0.458), the ordered
# arrangement closest to the refinement.
LLZO = MaterialSpec(
    name="LLZO",
    formula="Li7La3Zr2O12",
    spacegroup=230,
    setting=1,
    cellpar=(12.9682, 12.9682, 12.9682, 90.0, 90.0, 90.0),
    sites=(
        WyckoffSite("La1", "24c", (0.125, 0.0, 0.25), {"La": 1.0}),
        WyckoffSite("Zr1", "16a", (0.0, 0.0, 0.0), {"Zr": 1.0}),
        WyckoffSite("O1", "96h", (0.281, 0.100, 0.195), {"O": 1.0}),
        WyckoffSite("Li1", "24d", (0.375, 0.0, 0.25), {"Li": 0.564}),
        WyckoffSite("Li2", "96h", (0.100, 0.684, 0.575), {"Li": 0.442}),
    ),
    cell_counts={"Li": 56, "La": 24, "Zr": 16, "O": 96},
    formula_units=8,
    oxidation_states={"Li": 1, "La": 3, "Zr": 4, "O": -2},
    citation="J. Awaka et al., Chem. Lett. 40, 60 (2011); cubic Ia-3d, a = 12.968 Å (Al/Ga-free model)",
    cation_exclusion=2.0,
    family_exclusion={("Li1", "Li1"): 4.0},
    fixed_counts={"Li1": {"Li": 12}, "Li2": {"Li": 44}},
)

# --- Li3YCl6 ----------------------------------------------------------------------------------
# Asano et al., "Solid halide electrolytes with high lithium-ion conductivity for application in
# 4 V class bulk-type all-solid-state batteries", Adv. Mater. 30, 1803075 (2018): trigonal P-3m1
# (No. 164), Z = 3, the Li3ErCl6 type of Bohnsack et al., Z. Anorg. Allg. Chem. 623, 1067 (1997)
# (which lists Li3YCl6 as isotypic). Cl forms hcp layers near z = 1/4, 3/4; cations fill octahedral
# holes at z = 0 (Y1 1a, Li 6g) and z = 1/2 (Y 2d, Li 6h at half occupancy). Simplification: the
# refinement's minority Y split position (2d near z = 0) is folded into the 2d site near z = 1/2,
# the ordered Li3YCl6 model used in most simulations. Lattice parameters and coordinates are given
# to the precision we could cross-check (Y-Cl = 2.53-2.65 Å, Li-Cl = 2.58-2.69 Å, Cl-Cl >= 3.57 Å).
LYC = MaterialSpec(
    name="LYC",
    formula="Li3YCl6",
    spacegroup=164,
    setting=1,
    cellpar=(11.20, 11.20, 6.03, 90.0, 90.0, 120.0),
    sites=(
        WyckoffSite("Y1", "1a", (0.0, 0.0, 0.0), {"Y": 1.0}),
        WyckoffSite("Y2", "2d", (1 / 3, 2 / 3, 0.488), {"Y": 1.0}),
        WyckoffSite("Cl1", "6i", (0.1105, -0.1105, 0.7628), {"Cl": 1.0}),
        WyckoffSite("Cl2", "6i", (0.2227, -0.2227, 0.2648), {"Cl": 1.0}),
        WyckoffSite("Cl3", "6i", (0.4413, -0.4413, 0.7581), {"Cl": 1.0}),
        WyckoffSite("Li1", "6g", (1 / 3, 0.0, 0.0), {"Li": 1.0}),
        WyckoffSite("Li2", "6h", (1 / 3, 0.0, 0.5), {"Li": 0.5}),
    ),
    cell_counts={"Li": 9, "Y": 3, "Cl": 18},
    formula_units=3,
    oxidation_states={"Li": 1, "Y": 3, "Cl": -1},
    citation="T. Asano et al., Adv. Mater. 30, 1803075 (2018); P-3m1 Li3ErCl6 type, a = 11.20 Å, c = 6.03 Å",
    cation_exclusion=2.5,
)

MATERIALS: dict[str, MaterialSpec] = {m.name: m for m in (LGPS, LLZO, LYC)}
_ALIASES = {m.formula.lower(): m.name for m in MATERIALS.values()}


def get_material(material: str | MaterialSpec) -> MaterialSpec:
    """The spec for a name ("LGPS") or formula ("Li10GeP2S12"), case-insensitive."""
    if isinstance(material, MaterialSpec):
        return material
    key = material.strip()
    for name, spec in MATERIALS.items():
        if key.upper() == name:
            return spec
    if key.lower() in _ALIASES:
        return MATERIALS[_ALIASES[key.lower()]]
    valid = ", ".join(f"{m.name} ({m.formula})" for m in MATERIALS.values())
    raise MaterialError(f"unknown material {material!r}; valid: {valid}")


def _expand(spec: MaterialSpec, site: WyckoffSite, supercell: tuple[int, int, int]) -> Atoms:
    """The orbit of one site family in the (super)cell; the dummy symbol is replaced later."""
    orbit = crystal(
        ["X"],
        [site.frac],
        spacegroup=spec.spacegroup,
        setting=spec.setting,
        cellpar=list(spec.cellpar),
        symprec=1e-4,
    )
    return orbit.repeat(supercell)


def build_parent(material: str | MaterialSpec, supercell: tuple[int, int, int] = (1, 1, 1)) -> Atoms:
    """Every site of the refined structure, each labelled with its majority element.

    ``atoms.arrays["site_family"]`` holds the family index (into ``spec.sites``) of each atom and
    ``atoms.arrays["occupancy"]`` its total occupancy; the parent has the full space-group symmetry
    (use it to check the asymmetric unit against the space group, not as a simulation cell).
    """
    spec = get_material(material)
    _check_supercell(supercell)
    parts: list[Atoms] = []
    families: list[np.ndarray] = []
    for index, site in enumerate(spec.sites):
        orbit = _expand(spec, site, supercell)
        majority = max(site.occupancy, key=lambda element: site.occupancy[element])
        orbit.set_chemical_symbols([majority] * len(orbit))
        parts.append(orbit)
        families.append(np.full(len(orbit), index))
    parent = parts[0].copy()
    for part in parts[1:]:
        parent.extend(part)
    parent.arrays["site_family"] = np.concatenate(families)
    parent.arrays["occupancy"] = np.array(
        [sum(spec.sites[f].occupancy.values()) for f in parent.arrays["site_family"]]
    )
    parent.pbc = True
    return parent


def _check_supercell(supercell: Iterable[int]) -> None:
    reps = tuple(supercell)
    if len(reps) != 3 or any(int(r) != r or r < 1 for r in reps):
        raise MaterialError(f"supercell must be three positive integers, got {reps!r}")


def _multiplicity(spec: MaterialSpec, site: WyckoffSite) -> int:
    return len(_expand(spec, site, (1, 1, 1)))


def _family_counts(spec: MaterialSpec, ncells: int) -> dict[int, dict[str, int]]:
    """Atoms of each element to place on each partially occupied family (largest remainder)."""
    partial = [i for i, site in enumerate(spec.sites) if not site.fully_occupied]
    counts: dict[int, dict[str, int]] = {
        i: {el: n * ncells for el, n in spec.fixed_counts[spec.sites[i].label].items()}
        for i in partial
        if spec.sites[i].label in spec.fixed_counts
    }
    fixed_families = set(counts)
    for element in sorted({el for i in partial for el in spec.sites[i].occupancy}):
        on_full_sites = sum(
            _multiplicity(spec, site) * ncells
            for site in spec.sites
            if site.fully_occupied and element in site.occupancy
        )
        on_fixed = sum(counts[i].get(element, 0) for i in fixed_families)
        free = [i for i in partial if element in spec.sites[i].occupancy and i not in fixed_families]
        target = spec.cell_counts[element] * ncells - on_full_sites - on_fixed
        ideal = {
            i: spec.sites[i].occupancy[element] * _multiplicity(spec, spec.sites[i]) * ncells for i in free
        }
        floors = {i: int(np.floor(v)) for i, v in ideal.items()}
        remainder = target - sum(floors.values())
        if remainder < 0 or remainder > len(free):
            raise MaterialError(
                f"{spec.name}: site occupancies cannot give {spec.cell_counts[element]} {element} per cell; "
                "fix the site table or fixed_counts"
            )
        # Largest remainder; ties broken by family order so the counts never depend on the seed.
        for i in sorted(free, key=lambda i: (-(ideal[i] - floors[i]), i))[:remainder]:
            floors[i] += 1
        for i, n in floors.items():
            counts.setdefault(i, {})[element] = n
    return counts


def build_structure(
    material: str | MaterialSpec, seed: int = 0, supercell: tuple[int, int, int] = (1, 1, 1)
) -> Atoms:
    """An ordered, charge-neutral (super)cell of the nominal composition; deterministic per seed.

    ``atoms.info`` records the material, formula, citation, seed and supercell.
    """
    spec = get_material(material)
    _check_supercell(supercell)
    parent = build_parent(spec, supercell)
    ncells = int(np.prod(supercell))
    counts = _family_counts(spec, ncells)
    family = parent.arrays["site_family"]
    cation = np.array([spec.oxidation_states[s] > 0 for s in parent.get_chemical_symbols()])
    fixed = np.array([spec.sites[f].fully_occupied for f in family])
    rng = np.random.default_rng(seed)

    for _attempt in range(MAX_ORDERING_ATTEMPTS):
        chosen = _draw(spec, parent, counts, cation & fixed, rng)
        if chosen is not None:
            break
    else:
        raise MaterialError(
            f"{spec.name}: no ordered arrangement found in {MAX_ORDERING_ATTEMPTS} draws "
            f"(seed {seed}, supercell {supercell}); try another seed or a smaller supercell"
        )

    keep = np.where(fixed)[0].tolist()
    symbols = parent.get_chemical_symbols()
    for index, element in chosen:
        keep.append(index)
        symbols[index] = element
    keep.sort()
    atoms = Atoms(
        [symbols[i] for i in keep],
        positions=parent.positions[keep],
        cell=parent.cell,
        pbc=True,
    )
    # Sort by element so every frame of a material lists species in the same order.
    order = np.argsort([_element_rank(spec, s) for s in atoms.get_chemical_symbols()], kind="stable")
    atoms = atoms[order]
    atoms.info.update(
        material=spec.name,
        formula=spec.formula,
        citation=spec.citation,
        ordering_seed=int(seed),
        supercell=list(supercell),
    )
    _verify(spec, atoms, ncells)
    return atoms


def _element_rank(spec: MaterialSpec, symbol: str) -> int:
    return list(spec.cell_counts).index(symbol)


def _draw(
    spec: MaterialSpec,
    parent: Atoms,
    counts: Mapping[int, Mapping[str, int]],
    fixed_cations: np.ndarray,
    rng: np.random.Generator,
) -> list[tuple[int, str]] | None:
    """One random sequential draw; None if some family cannot be completed."""
    family = parent.arrays["site_family"]
    placed_positions = [parent.positions[fixed_cations]]
    placed_families = [family[fixed_cations]]
    chosen: list[tuple[int, str]] = []
    for fam, per_element in counts.items():
        needed = sum(per_element.values())
        candidates = rng.permutation(np.where(family == fam)[0])
        picked: list[int] = []
        for index in candidates:
            if len(picked) == needed:
                break
            if _allowed(spec, parent, index, placed_positions, placed_families):
                picked.append(int(index))
                placed_positions.append(parent.positions[[index]])
                placed_families.append(family[[index]])
        if len(picked) < needed:
            return None
        # Which of the picked sites gets which element (Ge/P): a random permutation of the list.
        elements = [el for el, n in per_element.items() for _ in range(n)]
        elements = [elements[k] for k in rng.permutation(len(elements))]
        chosen.extend(zip(picked, elements, strict=True))
    return chosen


def _allowed(
    spec: MaterialSpec,
    parent: Atoms,
    index: int,
    placed_positions: list[np.ndarray],
    placed_families: list[np.ndarray],
) -> bool:
    positions = np.concatenate(placed_positions)
    if len(positions) == 0:
        return True
    _, distances = get_distances(parent.positions[[index]], positions, cell=parent.cell, pbc=True)
    distances = distances[0]
    if distances.min() < spec.cation_exclusion:
        return False
    own_label = spec.sites[parent.arrays["site_family"][index]].label
    families = np.concatenate(placed_families)
    for (first, second), limit in spec.family_exclusion.items():
        if own_label not in (first, second):
            continue
        other = second if own_label == first else first
        mask = np.array([spec.sites[f].label == other for f in families])
        if mask.any() and distances[mask].min() < limit:
            return False
    return True


def formal_charge(atoms: Atoms, material: str | MaterialSpec) -> int:
    """Sum of formal oxidation states; zero for a neutral cell."""
    spec = get_material(material)
    return int(sum(spec.oxidation_states[s] for s in atoms.get_chemical_symbols()))


def minimum_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance under periodic boundary conditions (minimum image)."""
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    return float(distances.min())


def _verify(spec: MaterialSpec, atoms: Atoms, ncells: int) -> None:
    symbols = atoms.get_chemical_symbols()
    for element, n in spec.cell_counts.items():
        if symbols.count(element) != n * ncells:
            raise MaterialError(
                f"{spec.name}: ordered cell has {symbols.count(element)} {element}, expected {n * ncells}; "
                "the site table is inconsistent with the nominal formula"
            )
    if formal_charge(atoms, spec) != 0:
        raise MaterialError(f"{spec.name}: ordered cell is not charge neutral; check oxidation states")
