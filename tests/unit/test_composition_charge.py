"""Composition and charge sanity before any expensive step (issue 25, part 1).

Every CIF here is written by another program (pymatgen's CifWriter, ASE's CIF writer) or is a real
file: ``fixtures/Na3PS4_cubic.cif`` (cubic Na3PS4, I-43m, a material not among the built-ins, as
pymatgen wrote it) and ``data/examples/Li6PS5Cl.cif``. Each case either builds a cell whose
composition equals the formula the file declares, or is refused in one line naming the file, what
contradicts what, and the fix. The numbers in the messages are checked against pymatgen's own
reading of the same file (its ``Structure.composition``) and the formula times its units.

``CASES`` is also the table of the closing note: ``python tests/unit/test_composition_charge.py``
prints it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from superionic.data.materials import MaterialError, build_cell

ROOT = Path(__file__).resolve().parents[2]
ARGYRODITE = ROOT / "data" / "examples" / "Li6PS5Cl.cif"
NA3PS4 = Path(__file__).parent / "fixtures" / "Na3PS4_cubic.cif"
SUPERIONIC = Path(sys.executable).with_name("superionic")
CHARGED = {"Li": "Li1+", "P": "P5+", "S": "S2-", "Cl": "Cl1-"}


def _pymatgen_structure(path: Path):
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CifParser(str(path)).parse_structures(primitive=False)[0]


def _argyrodite(tmp: Path, li_occupancy: str = "0.5", formula: bool = True, charges: bool = False) -> Path:
    """The example argyrodite, edited as a user's file might be: Li occupancy, formula line, and
    charged type symbols (Li1+, S2-) with no _atom_type loop."""
    lines = []
    for line in ARGYRODITE.read_text().splitlines():
        if line.startswith("_chemical_formula_sum") and not formula:
            continue
        parts = line.split()
        if len(parts) == 8 and parts[0][:2] in ("Li", "P1", "S1", "S2", "S3", "Cl"):
            if parts[0] == "Li1":
                parts[7] = li_occupancy
            if charges:
                parts[1] = CHARGED[parts[1]]
            line = "  " + " ".join(parts)
        lines.append(line)
    name = (
        f"argyrodite_li{li_occupancy}_{'formula' if formula else 'noformula'}_{'ch' if charges else 'noch'}"
    )
    path = tmp / f"{name}.cif"
    path.write_text("\n".join(lines) + "\n")
    return path


def pymatgen_argyrodite_with_charges(tmp: Path) -> Path:
    from pymatgen.io.cif import CifWriter

    structure = _pymatgen_structure(ARGYRODITE)
    structure.add_oxidation_state_by_element({"Li": 1, "P": 5, "S": -2, "Cl": -1})
    path = tmp / "argyrodite_pymatgen.cif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels repeat per site, as CifWriter writes them
        CifWriter(structure).write_file(str(path))
    return path


def pymatgen_overfilled(tmp: Path) -> Path:
    """pymatgen writes the formula of what the occupancies say (Li43.2 P4 S20 Cl4): consistent
    with itself, so only the charges can tell that no such compound exists."""
    from pymatgen.io.cif import CifWriter

    path = tmp / "overfilled_pymatgen.cif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CifWriter(_pymatgen_structure(_argyrodite(tmp, "0.9", formula=False))).write_file(str(path))
    return path


def ase_half_sodium(tmp: Path, formula: bool = True) -> Path:
    """ASE's CIF writer takes _chemical_formula_sum from the atoms (Na6 P2 S8), not from the
    occupancies it writes beside them (Na half-occupied): the file contradicts itself."""
    from ase.io import read, write

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms = read(NA3PS4)
    atoms.set_tags([{"Na": 0, "P": 1, "S": 2}[s] for s in atoms.get_chemical_symbols()])
    atoms.info["occupancy"] = {"0": {"Na": 0.5}, "1": {"P": 1.0}, "2": {"S": 1.0}}
    path = tmp / f"na3ps4_half_na_ase{'' if formula else '_noformula'}.cif"
    write(path, atoms, format="cif")
    if not formula:
        text = "\n".join(x for x in path.read_text().splitlines() if not x.startswith("_chemical_formula"))
        path.write_text(text + "\n")
    return path


def mixed_valence(tmp: Path) -> Path:
    path = _argyrodite(tmp, charges=True)
    text = path.read_text().replace("  S3 S2- ", "  S3 S1- ")
    path = tmp / "argyrodite_mixed_valence.cif"
    path.write_text(text)
    return path


def foreign_element_in_formula(tmp: Path) -> Path:
    path = tmp / "argyrodite_br_formula.cif"
    path.write_text(ARGYRODITE.read_text().replace("'Li6 P1 S5 Cl1'", "'Li6 P1 S5 Br1'"))
    return path


# (id, file maker, build_cell keywords, expected: dict of composition, or words of the refusal)
Maker = Callable[[Path], Path]
CASES: list[tuple[str, str, Maker, dict, dict[str, int] | tuple[str, ...]]] = [
    (
        "Na3PS4, pymatgen CifWriter, charges and formula (real, not built in)",
        "accepted",
        lambda tmp: NA3PS4,
        {},
        {"Na": 6, "P": 2, "S": 8},
    ),
    (
        "Li6PS5Cl example, formula, no charges",
        "accepted",
        lambda tmp: ARGYRODITE,
        {"supercell": (1, 1, 2)},
        {"Li": 48, "P": 8, "S": 40, "Cl": 8},
    ),
    (
        "Li6PS5Cl, charged type symbols (Li1+, S2-), formula",
        "accepted",
        lambda tmp: _argyrodite(tmp, charges=True),
        {"supercell": (1, 1, 2)},
        {"Li": 48, "P": 8, "S": 40, "Cl": 8},
    ),
    (
        "Li6PS5Cl, pymatgen CifWriter with oxidation states",
        "accepted",
        pymatgen_argyrodite_with_charges,
        {"supercell": (1, 1, 2)},
        {"Li": 48, "P": 8, "S": 40, "Cl": 8},
    ),
    (
        "Li 0.9 on 48h (43.2 Li), formula Li6PS5Cl",
        "refused",
        lambda tmp: _argyrodite(tmp, "0.9"),
        {"supercell": (1, 1, 2)},
        (
            "occupancies' composition disagrees",
            "'Li6 P1 S5 Cl1'",
            "43.2 Li where it says 24",
            "occupancies of Li",
        ),
    ),
    (
        "Li 0.9 on 48h, no formula, no charges",
        "refused",
        lambda tmp: _argyrodite(tmp, "0.9", formula=False),
        {"supercell": (1, 1, 2)},
        (
            "guessed",
            "P=0",
            "give P the state 0",
            "Li43.2 P4 S20 Cl4",
            "--oxidation-states Li=1,P=?,S=-2,Cl=-1",
        ),
    ),
    (
        "Li 0.9 on 48h, no formula, charged type symbols",
        "refused",
        lambda tmp: _argyrodite(tmp, "0.9", formula=False, charges=True),
        {"supercell": (1, 1, 2)},
        ("Li: 48 atoms against 86.40 from the occupancies", "charge neutrality with Li=+1,P=+5,S=-2,Cl=-1"),
    ),
    (
        "Li 0.9 on 48h, no formula, --oxidation-states given",
        "refused",
        lambda tmp: _argyrodite(tmp, "0.9", formula=False),
        {"supercell": (1, 1, 2), "oxidation_states": {"Li": 1, "P": 5, "S": -2, "Cl": -1}},
        ("Li: 48 atoms against 86.40 from the occupancies", "charge neutrality"),
    ),
    (
        "Li 0.9 on 48h, pymatgen CifWriter (formula follows the occupancies)",
        "refused",
        pymatgen_overfilled,
        {"supercell": (1, 1, 2)},
        ("give P the state 0", "Li43.2 P4 S20 Cl4"),
    ),
    (
        "Na3PS4 with Na half-occupied, ASE CIF writer (formula from the atoms)",
        "refused",
        ase_half_sodium,
        {},
        ("'Na6 P2 S8'", "3 Na where it says 6", "occupancies of Na"),
    ),
    (
        "Na3PS4 with Na half-occupied, ASE CIF writer, formula removed",
        "refused",
        lambda tmp: ase_half_sodium(tmp, formula=False),
        {},
        ("give P +4, not one of its common states (-3, +3, +5)", "Na3 P2 S8", "Na=1,P=?,S=-2"),
    ),
    (
        "Li6PS5Cl, formula names Br",
        "refused",
        foreign_element_in_formula,
        {"supercell": (1, 1, 2)},
        ("the sites hold Cl, which _chemical_formula_sum 'Li6 P1 S5 Br1' does not name",),
    ),
    (
        "Li6PS5Cl, S given as S2- and S1-",
        "refused",
        mixed_valence,
        {"supercell": (1, 1, 2)},
        ("gives S the states -2 and -1", "--oxidation-states"),
    ),
]


@pytest.mark.parametrize(("name", "verdict", "make", "kwargs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_composition_and_charge_case(
    name: str, verdict: str, make: Maker, kwargs: dict, expected, tmp_path: Path
) -> None:
    path = make(tmp_path)
    if verdict == "accepted":
        atoms, report = build_cell(path, draws=2, **kwargs)
        composition = Counter(atoms.get_chemical_symbols())
        assert composition == expected
        # Independently: pymatgen's composition of the file, times the cells, is what was built.
        cells = 1
        for r in kwargs.get("supercell", (1, 1, 1)):
            cells *= r
        reference = _pymatgen_structure(path).composition
        for element, n in expected.items():
            assert n == pytest.approx(reference[element] * cells, abs=1e-6)
        assert report.formula_check["expected"] == {e: float(n) for e, n in expected.items()}
        assert sum(report.oxidation_states.get(e, 0) * n for e, n in composition.items()) == 0
        return
    with pytest.raises(MaterialError) as refused:
        build_cell(path, draws=2, **kwargs)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(str(path))
    missing = [w for w in expected if w not in message]
    assert not missing, f"message lacks {missing}: {message}"


def test_the_overfilled_count_is_what_pymatgen_reads(tmp_path: Path) -> None:
    """The 43.2 Li of the refusal is the file's own composition, and 24 its formula's."""
    from pymatgen.core import Composition

    path = _argyrodite(tmp_path, "0.9")
    composition = _pymatgen_structure(path).composition
    assert composition["Li"] == pytest.approx(43.2)
    units = composition["P"] / Composition("Li6 P1 S5 Cl1")["P"]
    assert units == 4 and Composition("Li6 P1 S5 Cl1")["Li"] * units == 24


def test_charges_come_from_the_type_symbols(tmp_path: Path) -> None:
    _, report = build_cell(_argyrodite(tmp_path, charges=True), supercell=(1, 1, 2), draws=1)
    assert report.oxidation_states == {"Li": 1, "P": 5, "S": -2, "Cl": -1}
    assert "_atom_site_type_symbol" in report.oxidation_states_from
    _, guessed = build_cell(ARGYRODITE, supercell=(1, 1, 2), draws=1)
    assert guessed.oxidation_states_from.startswith("guessed")


def test_data_generate_refuses_before_the_labeller_starts(tmp_path: Path) -> None:
    """One line, exit 2, and no output written: the labeller never ran."""
    path = _argyrodite(tmp_path, "0.9")
    out = tmp_path / "out" / "frames.extxyz.gz"
    run = subprocess.run(
        [str(SUPERIONIC), "data", "generate", str(path), "--supercell", "1x1x2", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [x for x in run.stderr.splitlines() if x.strip()]
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert "43.2 Li where it says 24" in lines[0] and "Traceback" not in run.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())


def _table(tmp: Path) -> str:
    rows = ["| file | verdict | composition or message |", "|---|---|---|"]
    for name, verdict, make, kwargs, _expected in CASES:
        try:
            atoms, report = build_cell(make(tmp), draws=2, **kwargs)
            counts = Counter(atoms.get_chemical_symbols())
            text = (
                " ".join(f"{e}{n}" for e, n in counts.items())
                + f"; states {report.oxidation_states or 'not needed'} ({report.oxidation_states_from})"
            )
        except MaterialError as error:
            text = re.sub(r"^\S+/", "", str(error))
        rows.append(f"| {name} | {verdict} | {text} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        print(_table(Path(folder)))
