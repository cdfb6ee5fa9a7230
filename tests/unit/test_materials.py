"""The three built-in electrolytes (CIF files shipped with the package): published parents,
ordered cells of the nominal formula."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import spglib

from superionic.data.materials import (
    MATERIALS,
    MaterialError,
    build_parent,
    build_structure,
    formal_charge,
    get_material,
    minimum_distance,
)

NAMES = sorted(MATERIALS)

# Space groups of the refinements (Kamaya 2011, Awaka 2011, Asano 2018).
SPACEGROUPS = {"LGPS": 137, "LLZO": 230, "LYC": 164}
# Wyckoff multiplicities of each CIF site label, from the same papers.
MULTIPLICITY = {
    "LGPS": {"Li1": 16, "Li2": 4, "Li3": 8, "Ge1_P(Ge/P)": 4, "P2": 2, "S1": 8, "S2": 8, "S3": 8},
    "LLZO": {"La1": 24, "Zr1": 16, "O1": 96, "Li1": 24, "Li2": 96},
    "LYC": {"Y1": 1, "Y2": 2, "Cl1": 6, "Cl2": 6, "Cl3": 6, "Li1": 6, "Li2": 6},
}

# Conventional cells of the nominal formula (LGPS Z = 2, LLZO Z = 8, LYC Z = 3).
EXPECTED = {
    "LGPS": {"Li": 20, "Ge": 2, "P": 4, "S": 24},
    "LLZO": {"Li": 56, "La": 24, "Zr": 16, "O": 96},
    "LYC": {"Li": 9, "Y": 3, "Cl": 18},
}


def _spacegroup(atoms, symprec: float = 1e-3) -> int:
    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    return spglib.get_symmetry_dataset(cell, symprec=symprec).number


@pytest.mark.parametrize("name", NAMES)
def test_parent_has_the_published_space_group(name: str) -> None:
    from superionic.data.structure_input import load_site_table

    parent = build_parent(name)
    assert _spacegroup(parent) == SPACEGROUPS[name]
    # Each family's orbit size is its Wyckoff multiplicity.
    table = load_site_table(name)
    sizes = {label: int((table.family == i).sum()) for i, label in enumerate(table.family_labels)}
    assert sizes == MULTIPLICITY[name]


@pytest.mark.parametrize("name", NAMES)
def test_ordered_cell_is_nominal_and_neutral(name: str) -> None:
    atoms = build_structure(name, seed=0)
    assert dict(Counter(atoms.get_chemical_symbols())) == EXPECTED[name]
    assert formal_charge(atoms, name) == 0
    assert atoms.info["material"] == name and atoms.info["citation"] == MATERIALS[name].citation


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_no_pair_closer_than_1p5_angstrom(name: str, seed: int) -> None:
    assert minimum_distance(build_structure(name, seed=seed)) > 1.5


@pytest.mark.parametrize("name", NAMES)
def test_ordering_is_deterministic_per_seed(name: str) -> None:
    a, b = build_structure(name, seed=3), build_structure(name, seed=3)
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    np.testing.assert_array_equal(a.positions, b.positions)


def test_seeds_give_different_orderings() -> None:
    layouts = {build_structure("LGPS", seed=s).positions.round(6).tobytes() for s in range(4)}
    assert len(layouts) > 1


def test_supercell_scales_composition() -> None:
    atoms = build_structure("LGPS", seed=0, supercell=(2, 1, 1))
    assert len(atoms) == 100
    assert formal_charge(atoms, "LGPS") == 0
    assert minimum_distance(atoms) > 1.5
    np.testing.assert_allclose(atoms.cell.lengths(), [2 * 8.69407, 8.69407, 12.5994])


def test_lgps_parent_matches_pymatgen_copy_of_kamaya() -> None:
    """The site table reproduces the Kamaya et al. refinement shipped with pymatgen."""
    pytest.importorskip("pymatgen")
    from importlib.resources import files

    from pymatgen.core import Structure

    path = files("pymatgen.util") / "structures" / "Li10GeP2S12.json"
    if not path.is_file():
        pytest.skip("pymatgen's bundled test structures are not installed")
    reference = Structure.from_file(str(path))
    # That file uses an inverted axis frame (lattice -a, -b, -c): same crystal, fractional x -> -x.
    ref = (-reference.frac_coords) % 1.0
    ours = build_parent("LGPS").get_scaled_positions() % 1.0
    diff = (ours[:, None, :] - ref[None, :, :] + 0.5) % 1.0 - 0.5
    assert len(ours) == len(ref)
    assert np.abs(diff).max(axis=-1).min(axis=1).max() < 1e-6


def test_llzo_respects_the_split_site_exclusion() -> None:
    atoms = build_structure("LLZO", seed=2)
    li = atoms.positions[np.array(atoms.get_chemical_symbols()) == "Li"]
    from ase.geometry import get_distances

    _, d = get_distances(li, li, cell=atoms.cell, pbc=True)
    np.fill_diagonal(d, np.inf)
    # builtin.json: LLZO's 96h twins (0.67 Å) and 24d-96h pairs (1.68 Å) are excluded by 2.0 Å.
    assert d.min() >= 2.0 - 1e-9


def test_lookup_by_formula_and_case() -> None:
    assert get_material("li10gep2s12").name == "LGPS"
    assert get_material("llzo").name == "LLZO"


def test_unknown_material_lists_valid_names() -> None:
    with pytest.raises(MaterialError, match="valid: LGPS"):
        get_material("LiCoO2")


@pytest.mark.parametrize("name", ["LGPS", "LLZO"])
def test_2x2x2_supercells_build_neutral_and_nominal(name: str) -> None:
    atoms = build_structure(name, seed=0, supercell=(2, 2, 2), draws=1)
    assert dict(Counter(atoms.get_chemical_symbols())) == {e: 8 * n for e, n in EXPECTED[name].items()}
    assert formal_charge(atoms, name) == 0


def test_bad_supercell_is_rejected() -> None:
    with pytest.raises(MaterialError, match="supercell"):
        build_structure("LYC", supercell=(0, 1, 1))
