"""Ordering of partial occupancies into a periodic cell, by a stated, seeded rule.

For a (super)cell of the site table (see :mod:`superionic.data.structure_input`):

1. **Counts.** Each element's total is its occupancy sum over all sites, rounded to the nearest
   integer. If the formal charges (oxidation states from the file, the user, or pymatgen's guess)
   do not then add up to zero, the *balancing element* (``balance``, default the partially
   occupied element of smallest |oxidation state| with the most atoms, Li in every electrolyte
   here) takes up the difference. Each element's total is apportioned over its partially occupied
   site families by largest remainder on occupancy x multiplicity. Rounding and balancing are
   reported; a family whose realised occupancy differs from the given one by more than
   ``occupancy_tolerance`` (absolute) or an element whose total differs by more than
   ``composition_tolerance`` (relative) is refused with the smallest supercell that works.
2. **Draws.** ``draws`` independent seeded draws (generator ``SeedSequence([seed, k])``) place the
   atoms family by family in random site order, accepting a site only if it keeps every distance
   to an atom of the same charge sign at or above ``min_distance`` (and the family bounds); a draw
   that cannot complete a family restarts with its own generator.
3. **Criterion.** The draw with the lowest Ewald energy of the formal charges is kept (ties: the
   lower draw index). Every draw's energy goes into the report.

Why this and not pymatgen's ``OrderDisorderedStructureTransformation``: that transformation
enumerates or greedily builds orderings by Ewald energy alone, without any bound on the distance
between split sites, and its cost grows combinatorially with the number of partial sites (a
2x2x2 LLZO cell has 960 partial Li sites); the seeded draws scale linearly and keep the
crystallographic exclusions. ``tests/unit/test_ordering.py`` compares both on one structure.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from superionic.data.ewald import ewald_energy, ewald_matrix
from superionic.data.structure_input import SiteTable, StructureError, _is_partial

__all__ = [
    "CellRequest",
    "OrderingReport",
    "check_formula",
    "choose_supercell",
    "order_cell",
    "perpendicular_widths",
]

MAX_ATTEMPTS_PER_DRAW = 5


@dataclass(frozen=True)
class CellRequest:
    """What the user asked for: a supercell, or a minimum width, and the ordering knobs."""

    seed: int = 0
    supercell: tuple[int, int, int] | None = None
    min_width: float | None = None  # Å
    draws: int = 10
    oxidation_states: dict[str, int] | None = None
    balance: str | None = None
    relax: bool = True  # lower each draw's Ewald energy by exclusion-respecting swaps
    occupancy_tolerance: float = 0.05
    composition_tolerance: float = 0.02


@dataclass
class FamilyCount:
    label: str
    sites: int
    occupancy: dict[str, float]
    atoms: dict[str, int]
    realised_occupancy: dict[str, float]


@dataclass
class OrderingReport:
    """The chosen ordering, as the JSON summary of every command that made it records it."""

    source: str
    citation: str
    seed: int
    supercell: list[int]
    atoms: int
    composition: dict[str, int]
    composition_from_occupancies: dict[str, float]
    oxidation_states: dict[str, int]
    oxidation_states_from: str
    adjustments: list[str]
    families: list[FamilyCount]
    min_distance_rule_A: float
    family_min_distance_rules: list[list[Any]]
    draws: int
    chosen_draw: int
    criterion: str
    criterion_values_eV: list[float]
    shortest_distances_A: dict[str, float]
    cell_widths_A: list[float]
    disordered: bool = True
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # The file's _chemical_formula_sum and what the ordered cell was held against (empty: none given).
    declared_formula: str = ""
    formula_check: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    """Distance between opposite faces of the cell along each lattice direction (Å)."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    return np.array(
        [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    )


def choose_supercell(cell: np.ndarray, min_width: float) -> tuple[int, int, int]:
    """The smallest repetition (fewest cells, then widest) whose every width is ≥ ``min_width``."""
    if min_width <= 0:
        raise StructureError(f"--min-width must be > 0 Å, got {min_width}")
    widths = perpendicular_widths(cell)
    reps = tuple(max(1, math.ceil(min_width / w - 1e-9)) for w in widths)
    return (int(reps[0]), int(reps[1]), int(reps[2]))


def _supercell_table(
    table: SiteTable, reps: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell, fractional positions and site indices (into the table) of the repeated cell."""
    shifts = np.array(list(itertools.product(*[range(r) for r in reps])), dtype=float)
    frac = (table.frac[None, :, :] + shifts[:, None, :]) / np.array(reps, dtype=float)
    index = np.tile(np.arange(len(table.frac)), len(shifts))
    cell = table.cell * np.array(reps, dtype=float)[:, None]
    return cell, frac.reshape(-1, 3), index


def _oxidation_states(table: SiteTable, request: CellRequest) -> tuple[dict[str, int], str]:
    elements = table.elements
    if request.oxidation_states:
        missing = [e for e in elements if e not in request.oxidation_states]
        if missing:
            raise StructureError(
                f"--oxidation-states: no value for {', '.join(missing)}; give every element, "
                f"e.g. {','.join(f'{e}=?' for e in elements)}"
            )
        return {e: int(request.oxidation_states[e]) for e in elements}, "given by the user"
    if table.oxidation_states and all(e in table.oxidation_states for e in elements):
        where = table.oxidation_states_from or "the file"
        return {e: table.oxidation_states[e] for e in elements}, f"from {table.source} ({where})"
    from pymatgen.core import Composition

    ideal = table.ideal_counts()
    try:
        guesses = Composition({e: round(v, 3) for e, v in ideal.items()}).oxi_state_guesses(max_sites=-50)
    except Exception:  # pymatgen gives up on unusual compositions; same message as no guess
        guesses = []
    if not guesses:
        # Integer compositions are easier to guess; the ordered cell will be near-nominal anyway.
        try:
            rounded = Composition({e: max(1, round(v)) for e, v in ideal.items()})
            guesses = rounded.oxi_state_guesses()
        except Exception:
            guesses = []
    if not guesses:
        raise StructureError(
            f"{table.source}: could not guess oxidation states for {', '.join(elements)}; give them "
            f"with --oxidation-states {','.join(f'{e}=N' for e in elements)}"
        )
    best = {e: round(guesses[0][e]) for e in elements}
    _check_guess(table, best)
    return best, "guessed by pymatgen (Composition.oxi_state_guesses)"


def _check_guess(table: SiteTable, guess: dict[str, int]) -> None:
    """A guessed set that gives an element the state 0 or one outside its common states is what
    a wrong composition looks like (the guess absorbs the excess charge there): refused, with the
    guess and how to give the states."""
    from pymatgen.core import Element

    for element, state in guess.items():
        common = tuple(int(x) for x in Element(element).common_oxidation_states)
        if state != 0 and (not common or state in common):
            continue
        listed = ", ".join(f"{c:+d}" for c in common) or "none listed"
        why = (
            f"the state 0 (its common states: {listed})"
            if state == 0
            else f"{state:+d}, not one of its common states ({listed})"
        )
        template = ",".join(f"{e}={'?' if e == element else s}" for e, s in guess.items())
        counts = " ".join(f"{e}{v:.4g}" for e, v in table.ideal_counts().items())
        raise StructureError(
            f"{table.source}: the oxidation states guessed from the occupancies ({_format_states(guess)}) "
            f"give {element} {why}: the occupancies ({counts} per cell) are probably not a "
            f"real compound; check them, or if they are right give the states with --oxidation-states "
            f"{template}"
        )


# Beyond this the composition differs from the file's formula by more than its rounding.
FORMULA_TOLERANCE = 0.05


def _declared(table: SiteTable) -> dict[str, float] | None:
    """The CIF's _chemical_formula_sum as amounts per element, or None when it has none."""
    if not table.declared_formula:
        return None
    from pymatgen.core import Composition

    try:
        parsed = Composition(table.declared_formula)
    except Exception as error:  # pymatgen raises ValueError/KeyError on text it cannot parse
        raise StructureError(
            f"{table.source}: _chemical_formula_sum '{table.declared_formula}' is not a formula "
            "(e.g. 'Li6 P1 S5 Cl1'); correct it or remove the line"
        ) from error
    return {str(e): float(n) for e, n in parsed.get_el_amt_dict().items()}


def _formula_scale(table: SiteTable, declared: dict[str, float], counts: dict[str, float]) -> float:
    """How many formula units the counts hold: the median ratio over elements on fully occupied
    sites only (their counts are exact), else over every element. The median keeps one wrong
    element from moving the scale it is judged by."""
    exact = {e for occ in table.occupancy if not _is_partial(occ) for e in occ}
    exact -= {e for occ in table.occupancy if _is_partial(occ) for e in occ}
    pool = [e for e in declared if e in exact and counts.get(e, 0) > 0] or [
        e for e in declared if counts.get(e, 0) > 0
    ]
    return float(np.median([counts[e] / declared[e] for e in pool])) if pool else 0.0


def check_formula(table: SiteTable, counts: dict[str, float], what: str, absolute: float) -> dict[str, Any]:
    """Hold ``counts`` (atoms per element in a cell) against the file's _chemical_formula_sum.

    The formula fixes the ratios, not the number of formula units in the cell (writers disagree on
    what ``_cell_formula_units_Z`` counts), so the counts are scaled to it first. An element beyond
    ``FORMULA_TOLERANCE`` of its expected amount and more than ``absolute`` atoms from it, or an
    element only one side names, is refused in one line. Returns what the report records."""
    declared = _declared(table)
    if declared is None:
        return {}
    formula = table.declared_formula
    present = {e for e, n in counts.items() if n > 0}
    extra = sorted(present - set(declared))
    absent = sorted(set(declared) - present)
    if extra or absent:
        what_is_wrong = (
            f"the sites hold {', '.join(extra)}, which _chemical_formula_sum '{formula}' does not name"
            if extra
            else f"_chemical_formula_sum '{formula}' names {', '.join(absent)}, which no site holds"
        )
        raise StructureError(f"{table.source}: {what_is_wrong}; correct the atom sites or the formula")
    scale = _formula_scale(table, declared, counts)
    expected = {e: declared[e] * scale for e in declared}
    wrong = [
        e
        for e in declared
        if abs(counts[e] - expected[e]) > max(FORMULA_TOLERANCE * expected[e], absolute) + 1e-9
    ]
    if wrong:
        listed = "; ".join(f"{counts[e]:.4g} {e} where it says {expected[e]:.4g}" for e in wrong)
        units = f"{scale:.4g} formula unit{'' if scale == 1 else 's'}"
        raise StructureError(
            f"{table.source}: {what} disagrees with its _chemical_formula_sum '{formula}' ({units}): "
            f"{listed}; the file describes no real compound: check the occupancies of "
            f"{', '.join(wrong)} (or the formula)"
        )
    return {
        "formula": formula,
        "formula_units": round(scale, 6),
        "expected": {e: round(v, 4) for e, v in expected.items()},
        "tolerance": f"{100 * FORMULA_TOLERANCE:g} % and {absolute:g} atom",
    }


def _apportion(ideal: dict[int, float], total: int) -> dict[int, int]:
    """Largest-remainder apportionment of ``total`` atoms over families in proportion to ``ideal``."""
    weight = sum(ideal.values())
    if weight <= 0:
        return dict.fromkeys(ideal, 0)
    quota = {f: v * total / weight for f, v in ideal.items()}
    floors = {f: math.floor(q + 1e-9) for f, q in quota.items()}
    for f in sorted(quota, key=lambda f: (-(quota[f] - floors[f]), f))[: total - sum(floors.values())]:
        floors[f] += 1
    return floors


@dataclass
class _Plan:
    """Atoms per element on each partially occupied family of one (super)cell."""

    counts: dict[int, dict[str, int]]
    composition: dict[str, int]
    ideal: dict[str, float]
    adjustments: list[str]
    problem: str | None  # why the cell cannot realise the occupancies, or None


def _plan(
    table: SiteTable, reps: tuple[int, int, int], oxidation: dict[str, int], request: CellRequest
) -> _Plan:
    ncells = int(np.prod(reps))
    n_fam = len(table.family_labels)
    multiplicity = np.bincount(table.family, minlength=n_fam) * ncells
    fam_occ: list[dict[str, float]] = [{} for _ in range(n_fam)]
    for occ, f in zip(table.occupancy, table.family, strict=True):
        fam_occ[f] = occ  # every site of a family carries the same occupancy (CIF label)
    partial = [f for f in range(n_fam) if _is_partial(fam_occ[f])]
    vacancy_families = [f for f in partial if sum(fam_occ[f].values()) < 1 - 1e-6]
    fixed = {
        table.family_labels.index(label): per
        for label, per in table.rules.fixed_counts.items()
        if label in table.family_labels
    }

    ideal_total = {e: v * ncells for e, v in table.ideal_counts().items()}
    exact: dict[str, int] = {}
    for f in range(n_fam):
        if f not in partial:
            element = next(iter(fam_occ[f]))
            exact[element] = exact.get(element, 0) + int(multiplicity[f])
    for per in fixed.values():
        for element, n in per.items():
            exact[element] = exact.get(element, 0) + n * ncells
    free = [f for f in partial if f not in fixed]
    free_ideal: dict[str, float] = {}
    for f in free:
        for element, occ in fam_occ[f].items():
            free_ideal[element] = free_ideal.get(element, 0.0) + occ * multiplicity[f]
    composition = dict(exact)
    for element, value in free_ideal.items():
        composition[element] = composition.get(element, 0) + math.floor(value + 0.5)

    adjustments: list[str] = []
    for element, value in free_ideal.items():
        if abs(value - round(value)) > 1e-6:
            adjustments.append(
                f"{element}: {value:.3f} atoms on partial sites rounded to {math.floor(value + 0.5)}"
            )
    charge = sum(oxidation[e] * n for e, n in composition.items())
    if charge != 0:
        candidates = [e for e in free_ideal if oxidation.get(e, 0) != 0]
        if request.balance is not None:
            if request.balance not in free_ideal:
                raise StructureError(
                    f"--balance {request.balance}: not an element on a partially occupied site "
                    f"(those are {', '.join(free_ideal) or 'none'})"
                )
            balance = request.balance
        elif candidates:
            balance = min(candidates, key=lambda e: (abs(oxidation[e]), -free_ideal[e], e))
        else:
            balance = None
        if balance is None or charge % oxidation[balance] != 0:
            return _Plan(
                {},
                composition,
                ideal_total,
                adjustments,
                f"the cell is not charge neutral ({charge:+d} e with oxidation states "
                f"{_format_states(oxidation)}) and no partially occupied element can balance it",
            )
        change = -charge // oxidation[balance]
        composition[balance] += change
        adjustments.append(f"{balance}: {change:+d} for charge neutrality (formal charge was {charge:+d} e)")

    for element, value in ideal_total.items():
        if value > 0 and abs(composition[element] - value) > max(
            0.5 + 1e-9, request.composition_tolerance * value
        ):
            return _Plan(
                {},
                composition,
                ideal_total,
                adjustments,
                f"{element}: {composition[element]} atoms against {value:.2f} from the occupancies "
                f"(more than {100 * request.composition_tolerance:g} % and half an atom apart"
                + (
                    f"; charge neutrality with {_format_states(oxidation)} moved it)"
                    if any(a.startswith(f"{element}: ") and "neutrality" in a for a in adjustments)
                    else ")"
                ),
            )

    counts: dict[int, dict[str, int]] = {
        f: {e: n * ncells for e, n in per.items()} for f, per in fixed.items()
    }
    for element in free_ideal:
        target = composition[element] - exact.get(element, 0)
        families = {f: fam_occ[f][element] * multiplicity[f] for f in free if element in fam_occ[f]}
        if target < 0:
            return _Plan(
                {}, composition, ideal_total, adjustments, f"{element}: negative count on partial sites"
            )
        for f, n in _apportion(families, target).items():
            counts.setdefault(f, {})[element] = n
    for f in free:
        placed = sum(counts.get(f, {}).values())
        if placed > multiplicity[f]:
            return _Plan(
                {},
                composition,
                ideal_total,
                adjustments,
                f"site {table.family_labels[f]} ({multiplicity[f]} sites) would need {placed} atoms",
            )
        for element, occ in fam_occ[f].items():
            realised = counts[f].get(element, 0) / multiplicity[f]
            if abs(realised - occ) > request.occupancy_tolerance + 1e-9:
                return _Plan(
                    {},
                    composition,
                    ideal_total,
                    adjustments,
                    f"site {table.family_labels[f]} ({multiplicity[f] // ncells} per cell, {element} "
                    f"occupancy {occ:g}): {occ * multiplicity[f]:.2f} atoms cannot be realised within "
                    f"±{request.occupancy_tolerance:g} (nearest: {counts[f].get(element, 0)}, "
                    f"occupancy {realised:.3f})",
                )
    del vacancy_families
    return _Plan(counts, composition, ideal_total, adjustments, None)


def _format_states(oxidation: dict[str, int]) -> str:
    return ",".join(f"{e}={n:+d}" if n else f"{e}=0" for e, n in oxidation.items())


def _smallest_working(table: SiteTable, oxidation: dict[str, int], request: CellRequest) -> str:
    options = sorted(itertools.product(range(1, 5), repeat=3), key=lambda r: (r[0] * r[1] * r[2], -min(r), r))
    for reps in options:
        if _plan(table, reps, oxidation, request).problem is None:
            return "x".join(map(str, reps))
    return ""


def order_cell(table: SiteTable, request: CellRequest | None = None) -> tuple[Atoms, OrderingReport]:
    """An ordered, charge-neutral cell of ``table`` by the rule of this module, and its report."""
    request = request or CellRequest()
    if request.draws < 1:
        raise StructureError(f"--draws must be >= 1, got {request.draws}")
    if request.supercell is not None and request.min_width is not None:
        raise StructureError("give either --supercell or --min-width, not both")
    if request.supercell is not None:
        reps = tuple(int(r) for r in request.supercell)
        if len(reps) != 3 or min(reps) < 1:
            raise StructureError(f"--supercell must be three positive integers such as 2x2x1, got {reps}")
    elif request.min_width is not None:
        reps = choose_supercell(table.cell, request.min_width)
    else:
        reps = (1, 1, 1)
    reps = (reps[0], reps[1], reps[2])
    # Composition first, before charges and draws: a file whose occupancies contradict its own
    # formula describes no real compound, whatever the ordering would make of it.
    check_formula(table, table.ideal_counts(), "the occupancies' composition", absolute=0.5)
    if not table.disordered:
        return _ordered_input(table, request, reps)
    oxidation, oxidation_from = _oxidation_states(table, request)
    plan = _plan(table, reps, oxidation, request)
    if plan.problem is not None:
        if "charge neutrality with" in plan.problem:  # no cell size helps: the charges do not add up
            element = plan.problem.split(":")[0]
            states_from = oxidation_from.replace(f"from {table.source} ", "from the file, ")
            fix = (
                f"these occupancies and oxidation states ({states_from}) make no neutral compound: "
                f"check the occupancies of {element}, or the oxidation states"
            )
        else:
            working = _smallest_working(table, oxidation, request)
            fix = (
                f"the smallest cell that works is --supercell {working}"
                if working
                else "no supercell up to 4x4x4 works; check the occupancies or --oxidation-states"
            )
        raise StructureError(f"{table.source}: {plan.problem} in a {'x'.join(map(str, reps))} cell; {fix}")
    formula_check = check_formula(
        table, {e: float(n) for e, n in plan.composition.items()}, "the ordered cell", absolute=1.0
    )

    cell, frac, site_index = _supercell_table(table, reps)
    positions = frac @ cell
    family = table.family[site_index]
    occupancy = [table.occupancy[i] for i in site_index]
    sign = np.array([_sign(occ, oxidation) for occ in occupancy])
    partial_family = {f for f in range(len(table.family_labels)) if _is_partial(_family_occ(table, f))}
    full = np.array([f not in partial_family for f in family])

    every_site = {f for f, per in plan.counts.items() if sum(per.values()) == int((family == f).sum())}
    fixed = full | np.isin(family, list(every_site))
    counts = {f: per for f, per in plan.counts.items() if f not in every_site}
    neighbours, forbidden = _conflict_graph(table, cell, positions, family, sign, fixed)
    pair_matrix: np.ndarray | None = None
    draws: list[list[tuple[int, str]]] = []
    energies: list[float] = []
    for k in range(request.draws):
        rng = np.random.default_rng(np.random.SeedSequence([int(request.seed), k]))
        chosen = None
        for _attempt in range(MAX_ATTEMPTS_PER_DRAW):
            chosen = _draw(family, counts, neighbours, forbidden, rng)
            if chosen is not None:
                break
        if chosen is None:
            raise StructureError(
                f"{table.source}: no arrangement keeps atoms of equal charge sign ≥ "
                f"{table.rules.min_distance:g} Å apart (or the site-family bounds) in this cell; "
                "lower --min-distance or use a larger cell"
            )
        # Families with every site taken get their elements shuffled, nothing else.
        for f in every_site:
            sites = np.where(family == f)[0]
            elements = [el for el, n in plan.counts[f].items() for _ in range(n)]
            chosen = chosen + list(
                zip(sites.tolist(), [elements[i] for i in rng.permutation(len(elements))], strict=True)
            )
        if request.relax:
            if pair_matrix is None:
                pair_matrix = ewald_matrix(cell, positions)
            chosen = _relax(
                chosen, full, family, occupancy, oxidation, set(plan.counts), neighbours, pair_matrix, rng
            )
        draws.append(chosen)
        symbols, keep = _assemble(full, family, occupancy, chosen)
        charges = np.array([oxidation[s] for s in symbols], dtype=float)
        energies.append(float(ewald_energy(cell, positions[keep], charges)))
    best = int(np.argmin(energies))
    symbols, keep = _assemble(full, family, occupancy, draws[best])
    order = np.argsort([table.elements.index(s) for s in symbols], kind="stable")
    atoms = Atoms([symbols[i] for i in order], positions=positions[keep][order], cell=cell, pbc=True)
    report = OrderingReport(
        source=table.source,
        citation=table.citation,
        seed=int(request.seed),
        supercell=list(reps),
        atoms=len(atoms),
        composition={e: int(atoms.get_chemical_symbols().count(e)) for e in table.elements},
        composition_from_occupancies={e: round(v, 4) for e, v in plan.ideal.items()},
        oxidation_states=oxidation,
        oxidation_states_from=oxidation_from,
        adjustments=plan.adjustments,
        families=_family_report(table, reps, plan),
        min_distance_rule_A=table.rules.min_distance,
        family_min_distance_rules=[list(r) for r in table.rules.family_min_distance],
        draws=request.draws,
        chosen_draw=best,
        criterion=(
            "Ewald energy of the formal charges, each draw annealed and relaxed by exclusion-respecting "
            "swaps (lowest wins)"
            if request.relax
            else "Ewald energy of the formal charges (lowest wins)"
        ),
        criterion_values_eV=[round(e, 6) for e in energies],
        shortest_distances_A=shortest_distances(atoms),
        cell_widths_A=[round(float(w), 4) for w in perpendicular_widths(cell)],
        disordered=table.disordered,
        notes=table.notes,
        declared_formula=table.declared_formula,
        formula_check=formula_check,
    )
    atoms.info.update(
        material=table.name,
        formula=table.formula or _reduced_formula(report.composition),
        source=table.source,
        citation=table.citation,
        ordering_seed=int(request.seed),
        supercell=list(reps),
    )
    return atoms, report


def _ordered_input(
    table: SiteTable, request: CellRequest, reps: tuple[int, int, int]
) -> tuple[Atoms, OrderingReport]:
    """An ordered file is used as it is (repeated): no counts to choose, no charges needed, atoms
    in the file's order."""
    symbols = [next(iter(occ)) for occ in table.occupancy]
    atoms = Atoms(symbols, scaled_positions=table.frac, cell=table.cell, pbc=True).repeat(reps)
    composition = {e: int(atoms.get_chemical_symbols().count(e)) for e in table.elements}
    formula_check = check_formula(table, {e: float(n) for e, n in composition.items()}, "the cell", 0.5)
    report = OrderingReport(
        source=table.source,
        citation=table.citation,
        seed=int(request.seed),
        supercell=list(reps),
        atoms=len(atoms),
        composition=composition,
        composition_from_occupancies={e: float(n) for e, n in composition.items()},
        oxidation_states={},
        oxidation_states_from="not needed: every site is fully occupied",
        adjustments=[],
        families=[],
        min_distance_rule_A=table.rules.min_distance,
        family_min_distance_rules=[],
        draws=0,
        chosen_draw=0,
        criterion="none: the input is ordered",
        criterion_values_eV=[],
        shortest_distances_A=shortest_distances(atoms),
        cell_widths_A=[round(float(w), 4) for w in perpendicular_widths(atoms.cell.array)],
        disordered=False,
        notes=table.notes,
        declared_formula=table.declared_formula,
        formula_check=formula_check,
    )
    atoms.info.update(
        material=table.name,
        formula=table.formula or _reduced_formula(composition),
        source=table.source,
        citation=table.citation,
        ordering_seed=int(request.seed),
        supercell=list(reps),
    )
    return atoms, report


def _reduced_formula(composition: dict[str, int]) -> str:
    counts = {e: n for e, n in composition.items() if n}
    divisor = math.gcd(*counts.values()) if counts else 1
    return "".join(f"{e}{n // divisor if n // divisor != 1 else ''}" for e, n in counts.items())


def _family_occ(table: SiteTable, f: int) -> dict[str, float]:
    return table.occupancy[int(np.where(table.family == f)[0][0])]


def _sign(occ: dict[str, float], oxidation: dict[str, int]) -> int:
    majority = max(occ, key=lambda e: occ[e])
    return int(np.sign(oxidation.get(majority, 0)))


def _family_report(table: SiteTable, reps: tuple[int, int, int], plan: _Plan) -> list[FamilyCount]:
    ncells = int(np.prod(reps))
    out = []
    for f, label in enumerate(table.family_labels):
        sites = int((table.family == f).sum()) * ncells
        occ = _family_occ(table, f)
        atoms = plan.counts.get(f) if f in plan.counts else {e: round(v * sites) for e, v in occ.items()}
        out.append(
            FamilyCount(
                label=label,
                sites=sites,
                occupancy={e: round(v, 6) for e, v in occ.items()},
                atoms={e: int(n) for e, n in atoms.items()},
                realised_occupancy={e: round(n / sites, 6) for e, n in atoms.items()},
            )
        )
    return out


def _conflict_graph(
    table: SiteTable,
    cell: np.ndarray,
    positions: np.ndarray,
    family: np.ndarray,
    sign: np.ndarray,
    fixed: np.ndarray,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Which sites may not be occupied together (neighbour lists), and which sites a fixed atom
    already excludes. Fixed: fully occupied sites and families whose every site is taken."""
    from vesin import NeighborList

    rules = table.rules
    limits = [rules.min_distance] + [d for _, _, d in rules.family_min_distance]
    cutoff = max(limits)
    n = len(positions)
    forbidden = np.zeros(n, dtype=bool)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    if cutoff <= 0:
        return [np.array([], dtype=int) for _ in range(n)], forbidden
    i, j, d = NeighborList(cutoff=cutoff, full_list=True).compute(
        points=positions, box=cell, periodic=True, quantities="ijd"
    )
    labels = np.array(table.family_labels, dtype=object)
    clash = (sign[i] == sign[j]) & (sign[i] != 0) & (d < rules.min_distance)
    for first, second, limit in rules.family_min_distance:
        li, lj = labels[family[i]], labels[family[j]]
        pair = ((li == first) & (lj == second)) | ((li == second) & (lj == first))
        clash |= pair & (d < limit)
    clash &= i != j
    i, j = i[clash], j[clash]
    # A free site next to a fixed atom can never be used.
    hit = ~fixed[i] & fixed[j]
    forbidden[i[hit]] = True
    free_pair = ~fixed[i] & ~fixed[j]
    for a, b in zip(i[free_pair], j[free_pair], strict=True):
        neighbours[int(a)].append(int(b))
    return [np.unique(np.array(x, dtype=int)) for x in neighbours], forbidden


def _draw(
    family: np.ndarray,
    counts: dict[int, dict[str, int]],
    neighbours: list[np.ndarray],
    forbidden: np.ndarray,
    rng: np.random.Generator,
    max_moves: int = 200_000,
) -> list[tuple[int, str]] | None:
    """One seeded draw: random sequential filling of each family, then, if a family could not be
    completed without a clash, a local search that moves clashing atoms to vacant sites of their
    own family until no clash is left (random sequential filling jams well below the densest
    packing in large cells). None if clashes remain after ``max_moves``."""
    occupied = np.zeros(len(family), dtype=bool)
    clashes = np.zeros(len(family), dtype=int)  # occupied neighbours of every site

    def occupy(site: int) -> None:
        occupied[site] = True
        clashes[neighbours[site]] += 1

    def vacate(site: int) -> None:
        occupied[site] = False
        clashes[neighbours[site]] -= 1

    by_family: dict[int, np.ndarray] = {}
    for fam, per_element in counts.items():
        needed = sum(per_element.values())
        sites = np.where((family == fam) & ~forbidden)[0]
        if len(sites) < needed:
            return None
        sites = rng.permutation(sites)
        by_family[fam] = sites
        taken = 0
        for site in sites:
            if taken == needed:
                break
            if clashes[site] == 0:
                occupy(int(site))
                taken += 1
        while taken < needed:  # the least clashing vacant sites, to be repaired below
            vacant = sites[~occupied[sites]]
            site = int(vacant[np.argmin(clashes[vacant])])
            occupy(site)
            taken += 1
    bad = [int(s) for fam in by_family for s in by_family[fam] if occupied[s] and clashes[s] > 0]
    moves = 0
    while bad and moves < max_moves:
        moves += 1
        site = bad[int(rng.integers(len(bad)))]
        if not occupied[site] or clashes[site] == 0:
            bad = [s for s in bad if occupied[s] and clashes[s] > 0]
            continue
        sites = by_family[int(family[site])]
        target = int(sites[int(rng.integers(len(sites)))])
        if occupied[target]:
            continue
        before = clashes[site]
        vacate(site)
        after = clashes[target]
        # Downhill or level moves always; uphill rarely, so the search does not freeze.
        if after <= before or rng.random() < 0.01:
            occupy(target)
            if after > 0:
                bad.append(target)
            bad.extend(int(x) for x in neighbours[target] if occupied[x])
        else:
            occupy(site)
        if moves % 1000 == 0:
            bad = [s for s in set(bad) if occupied[s] and clashes[s] > 0]
    if any(occupied[s] and clashes[s] > 0 for fam in by_family for s in by_family[fam]):
        return None
    chosen: list[tuple[int, str]] = []
    for fam, per_element in counts.items():
        picked = [int(s) for s in np.sort(by_family[fam]) if occupied[s]]
        elements = [el for el, n in per_element.items() for _ in range(n)]
        elements = [elements[k] for k in rng.permutation(len(elements))]
        chosen.extend(zip(picked, elements, strict=True))
    return chosen


def _relax(
    chosen: list[tuple[int, str]],
    full: np.ndarray,
    family: np.ndarray,
    occupancy: list[dict[str, float]],
    oxidation: dict[str, int],
    families: set[int],
    neighbours: list[np.ndarray],
    pair_matrix: np.ndarray,
    rng: np.random.Generator,
    max_swaps: int | None = None,
) -> list[tuple[int, str]]:
    """Steepest descent of the Ewald energy over swaps of two sites of one family (an atom and a
    vacancy, or two elements), never creating a clash. With E = ½ qᵀMq and V = Mq, exchanging the
    charges of sites s and t (d = q_t - q_s) changes E by d (V_s - V_t) + ½ d² (M_ss + M_tt - 2 M_st)."""
    n = len(family)
    symbol = np.array([""] * n, dtype=object)
    for i in np.where(full)[0]:
        symbol[i] = next(iter(occupancy[i]))
    for i, element in chosen:
        symbol[i] = element
    charge = np.array([float(oxidation[x]) if x else 0.0 for x in symbol])
    potential = pair_matrix @ charge
    occupied = symbol != ""
    members = {f: np.where(family == f)[0] for f in families}
    conflict = {}
    for f, sites in members.items():
        local = {int(x): k for k, x in enumerate(sites)}
        matrix = np.zeros((len(sites), len(sites)), dtype=bool)
        for k, x in enumerate(sites):
            for y in neighbours[x]:
                if int(y) in local:
                    matrix[k, local[int(y)]] = True
        conflict[f] = matrix
    # Occupied neighbours of each site (only partial-family sites can clash; fixed ones are excluded).
    clashes = np.zeros(n, dtype=int)
    for x in np.where(occupied & ~full)[0]:
        clashes[neighbours[x]] += 1
    _anneal(symbol, charge, potential, clashes, members, conflict, neighbours, pair_matrix, rng)
    occupied = symbol != ""
    limit = max_swaps if max_swaps is not None else 20 * int(sum(len(v) for v in members.values()))
    for _ in range(limit):
        best = (-1e-9, None)
        for f, sites in members.items():
            q = charge[sites]
            d = q[None, :] - q[:, None]  # d[a, b] = q_t - q_s for s = sites[a], t = sites[b]
            if not np.any(d):
                continue
            m = pair_matrix[np.ix_(sites, sites)]
            diag = np.diag(m)
            v = potential[sites]
            delta = d * (v[:, None] - v[None, :]) + 0.5 * d**2 * (diag[:, None] + diag[None, :] - 2.0 * m)
            occ = occupied[sites]
            moves = occ[:, None] != occ[None, :]  # an atom moves into a vacancy
            c = clashes[sites]
            # The atom lands on the vacant site; it must not clash with anyone but the site it left.
            lands_ok = np.where(
                occ[:, None], (c[None, :] - conflict[f]) == 0, (c[:, None] - conflict[f]) == 0
            )
            allowed = (d != 0) & (~moves | lands_ok)
            delta = np.where(allowed, delta, np.inf)
            k = int(np.argmin(delta))
            if delta.flat[k] < best[0]:
                a, b = divmod(k, len(sites))
                best = (float(delta.flat[k]), (int(sites[a]), int(sites[b])))
        if best[1] is None:
            break
        _swap(*best[1], symbol, charge, potential, clashes, neighbours, pair_matrix)
        occupied = symbol != ""
    return [(int(i), str(symbol[i])) for f in families for i in members[f] if symbol[i]]


def _swap(
    s_site: int,
    t_site: int,
    symbol: np.ndarray,
    charge: np.ndarray,
    potential: np.ndarray,
    clashes: np.ndarray,
    neighbours: list[np.ndarray],
    pair_matrix: np.ndarray,
) -> None:
    """Exchange the contents of two sites, keeping V = Mq and the clash counts up to date."""
    d = charge[t_site] - charge[s_site]
    potential += d * (pair_matrix[:, s_site] - pair_matrix[:, t_site])
    charge[s_site], charge[t_site] = charge[t_site], charge[s_site]
    for site, now in ((s_site, symbol[t_site]), (t_site, symbol[s_site])):
        if symbol[site] and not now:
            clashes[neighbours[site]] -= 1
        if not symbol[site] and now:
            clashes[neighbours[site]] += 1
    symbol[s_site], symbol[t_site] = symbol[t_site], symbol[s_site]


def _anneal(
    symbol: np.ndarray,
    charge: np.ndarray,
    potential: np.ndarray,
    clashes: np.ndarray,
    members: dict[int, np.ndarray],
    conflict: dict[int, np.ndarray],
    neighbours: list[np.ndarray],
    pair_matrix: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Simulated annealing over the same swaps (in place), so that the descent that follows starts
    in a deep basin: single swaps alone stop in the first local minimum. The temperature falls
    geometrically from the median |ΔE| of random swaps to 1/1000 of it."""
    families = [f for f, sites in members.items() if len(set(symbol[sites])) > 1]
    if not families:
        return
    n_sites = sum(len(members[f]) for f in families)
    steps = int(min(60_000, 300 * n_sites))
    local_index = {f: {int(x): k for k, x in enumerate(members[f])} for f in families}
    diagonal = np.diag(pair_matrix).copy()

    def delta(s_site: int, t_site: int) -> float:
        d = charge[t_site] - charge[s_site]
        return d * (potential[s_site] - potential[t_site]) + 0.5 * d * d * (
            diagonal[s_site] + diagonal[t_site] - 2.0 * pair_matrix[s_site, t_site]
        )

    def allowed(f: int, s_site: int, t_site: int) -> bool:
        if bool(symbol[s_site]) == bool(symbol[t_site]):
            return True  # two elements trade places: occupation unchanged
        lands, leaves = (t_site, s_site) if symbol[s_site] else (s_site, t_site)
        k = local_index[f]
        return clashes[lands] - int(conflict[f][k[lands], k[leaves]]) == 0

    picks = [members[f] for f in families]
    weights = np.array([len(m) for m in picks], dtype=float)
    weights /= weights.sum()
    sample = []
    for _ in range(200):
        sites = picks[int(rng.choice(len(picks), p=weights))]
        a, b = rng.choice(sites, size=2, replace=False)
        if symbol[a] != symbol[b]:
            sample.append(abs(delta(int(a), int(b))))
    t_start = float(np.median(sample)) if sample else 0.0
    if t_start <= 0:
        return
    cooling = (1e-3) ** (1.0 / steps)
    temperature = t_start
    choices = rng.choice(len(picks), size=steps, p=weights)
    uniform = rng.random(steps)
    pairs = rng.random((steps, 2))
    for step in range(steps):
        temperature *= cooling
        k = int(choices[step])
        sites = picks[k]
        s_site = int(sites[int(pairs[step, 0] * len(sites))])
        t_site = int(sites[int(pairs[step, 1] * len(sites))])
        if symbol[s_site] == symbol[t_site] or not allowed(families[k], s_site, t_site):
            continue
        change = delta(s_site, t_site)
        if change > 0 and uniform[step] >= math.exp(-change / temperature):
            continue
        _swap(s_site, t_site, symbol, charge, potential, clashes, neighbours, pair_matrix)


def _assemble(
    full: np.ndarray, family: np.ndarray, occupancy: list[dict[str, float]], chosen: list[tuple[int, str]]
) -> tuple[list[str], np.ndarray]:
    symbols_by_index = {int(i): next(iter(occupancy[i])) for i in np.where(full)[0]}
    symbols_by_index.update(dict(chosen))
    keep = np.array(sorted(symbols_by_index))
    return [symbols_by_index[i] for i in keep], keep


def shortest_distances(atoms: Atoms) -> dict[str, float]:
    """Shortest distance for every element pair present (minimum image), e.g. ``{"Li-Li": 2.31}``."""
    from vesin import NeighborList

    symbols = np.array(atoms.get_chemical_symbols())
    widths = perpendicular_widths(atoms.cell.array)
    cutoff = float(min(6.0, 0.49 * widths.min() * 2))
    i, j, d = NeighborList(cutoff=cutoff, full_list=False).compute(
        points=atoms.positions, box=atoms.cell.array, periodic=True, quantities="ijd"
    )
    out: dict[str, float] = {}
    for a, b, dist in zip(symbols[i], symbols[j], d, strict=True):
        key = "-".join(sorted((str(a), str(b))))
        if dist < out.get(key, np.inf):
            out[key] = float(dist)
    return {k: round(v, 4) for k, v in sorted(out.items())}
