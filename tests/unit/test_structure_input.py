"""Structure files written by other programs, and bad structure input: one line each, no traceback."""

from __future__ import annotations

import gzip
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from superionic.data.materials import MaterialError, build_cell
from superionic.data.structure_input import load_site_table

ROOT = Path(__file__).resolve().parents[2]
ARGYRODITE = ROOT / "data" / "examples" / "Li6PS5Cl.cif"
SUPERIONIC = Path(sys.executable).with_name("superionic")


def _rocksalt_li_na_cl(a: float = 5.4) -> Atoms:
    from ase.build import bulk

    atoms = bulk("NaCl", "rocksalt", a=a, cubic=True)
    return atoms


def test_pymatgen_written_disordered_cif_is_ordered(tmp_path: Path) -> None:
    """A CIF written by pymatgen's CifWriter from a disordered structure (Li/Na mixed on 4a)."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    disordered = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.4), [{"Li": 0.5, "Na": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    path = tmp_path / "lina_cl.cif"
    CifWriter(disordered).write_file(str(path))
    atoms, report = build_cell(path, supercell=(2, 2, 1), draws=3)
    assert Counter(atoms.get_chemical_symbols()) == {"Li": 8, "Na": 8, "Cl": 16}
    assert report.oxidation_states == {"Li": 1, "Na": 1, "Cl": -1}


def test_ase_written_poscar_extxyz_and_cif_of_an_ordered_cell(tmp_path: Path) -> None:
    atoms = _rocksalt_li_na_cl()
    sodium = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Na"]
    atoms.symbols[sodium[:2]] = "Li"
    for name, fmt in (("POSCAR", "vasp"), ("cell.extxyz", "extxyz"), ("cell.cif", "cif")):
        write(tmp_path / name, atoms, format=fmt)
        built, report = build_cell(tmp_path / name, supercell=(1, 1, 2))
        assert report.disordered is False and report.criterion_values_eV == []
        assert Counter(built.get_chemical_symbols()) == {"Li": 4, "Na": 4, "Cl": 8}
        np.testing.assert_allclose(built.cell.lengths(), [5.4, 5.4, 10.8], atol=1e-6)


def test_builtin_names_are_cif_files_like_any_other() -> None:
    table = load_site_table("LGPS")
    assert table.source.startswith("built-in LGPS") and table.disordered
    assert set(table.elements) == {"Li", "Ge", "P", "S"}


def _cif_lines() -> list[str]:
    return ARGYRODITE.read_text().splitlines()


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, dict, str]]:
    lines = _cif_lines()
    atom_loop = next(i for i, line in enumerate(lines) if line.strip().startswith("Li1 "))
    over = [line.replace(" 0.5", " 1.3") if line.strip().startswith("Li1 ") else line for line in lines]
    unknown = [line.replace("  P1  P ", "  Xq1 Xq ") for line in lines]
    truncated = "\n".join(lines[: atom_loop - 3]) + "\n"
    overlap = Atoms("LiLiCl", positions=[[0, 0, 0], [0.2, 0, 0], [2.5, 2.5, 2.5]], cell=[5, 5, 5], pbc=True)
    write(tmp_path / "overlap.extxyz", overlap)
    molecule = Atoms("LiCl", positions=[[0, 0, 0], [2.1, 0, 0]])
    write(tmp_path / "molecule.xyz", molecule)
    packed = gzip.compress(ARGYRODITE.read_bytes())
    damaged = packed[:200] + bytes(b ^ 0x5A for b in packed[200:400]) + packed[400:]
    write(tmp_path / "cell.extxyz", _rocksalt_li_na_cl())
    xyz_packed = gzip.compress((tmp_path / "cell.extxyz").read_bytes())
    return {
        "missing file": (tmp_path / "none.cif", {}, "no such structure file"),
        "empty file": (_write(tmp_path, "empty.cif", ""), {}, "the file is empty"),
        "directory": (tmp_path, {}, "is a directory"),
        "random bytes": (_write(tmp_path, "junk.cif", bytes(range(256)) * 4), {}, "binary data, not text"),
        "damaged gzip CIF": (_write(tmp_path, "bad.cif.gz", damaged), {}, "the gzip data is damaged"),
        "truncated gzip CIF": (
            _write(tmp_path, "cut.cif.gz", packed[: len(packed) // 2]),
            {},
            "the gzip stream ends before its end marker: the file is truncated",
        ),
        "truncated gzip extxyz": (
            _write(tmp_path, "cut.extxyz.gz", xyz_packed[: len(xyz_packed) - 40]),
            {},
            "the file is truncated",
        ),
        "truncated CIF": (_write(tmp_path, "cut.cif", truncated), {}, "not a readable CIF"),
        "occupancy above 1": (_write(tmp_path, "over.cif", "\n".join(over)), {}, "not a readable CIF"),
        "unknown element": (_write(tmp_path, "xq.cif", "\n".join(unknown)), {}, "Xq"),
        "overlapping atoms": (tmp_path / "overlap.extxyz", {}, "0.20 Å apart"),
        "not periodic": (tmp_path / "molecule.xyz", {}, "not periodic"),
        "unrealisable in 1x1x1": (ARGYRODITE, {}, "smallest cell that works is --supercell 1x1x2"),
        "non-neutral charges": (
            ARGYRODITE,
            {"supercell": (1, 1, 2), "oxidation_states": {"Li": 1, "P": 5, "S": -2, "Cl": 1}},
            "make no neutral compound: check the occupancies of Li, or the oxidation states",
        ),
        "oxidation state missing": (
            ARGYRODITE,
            {"supercell": (1, 1, 2), "oxidation_states": {"Li": 1, "P": 5}},
            "--oxidation-states: no value for S, Cl",
        ),
        "exclusion too large": (
            ARGYRODITE,
            {"supercell": (1, 1, 2), "min_distance": 4.5},
            "lower --min-distance",
        ),
        "negative exclusion": (ARGYRODITE, {"min_distance": -1.0}, "--min-distance must be >= 0"),
        "zero supercell": (ARGYRODITE, {"supercell": (0, 1, 1)}, "three positive integers"),
        "zero draws": (ARGYRODITE, {"supercell": (1, 1, 2), "draws": 0}, "--draws must be >= 1"),
        "negative min width": (ARGYRODITE, {"min_width": -3.0}, "--min-width must be > 0"),
        "both supercell and width": (
            ARGYRODITE,
            {"supercell": (1, 1, 2), "min_width": 10.0},
            "either --supercell or --min-width",
        ),
    }


CASES = [
    "missing file",
    "empty file",
    "directory",
    "random bytes",
    "damaged gzip CIF",
    "truncated gzip CIF",
    "truncated gzip extxyz",
    "truncated CIF",
    "occupancy above 1",
    "unknown element",
    "overlapping atoms",
    "not periodic",
    "unrealisable in 1x1x1",
    "non-neutral charges",
    "oxidation state missing",
    "exclusion too large",
    "negative exclusion",
    "zero supercell",
    "zero draws",
    "negative min width",
    "both supercell and width",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_structure_input_is_one_line(tmp_path: Path, case: str) -> None:
    path, options, words = _bad_files(tmp_path)[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(MaterialError) as error:
            build_cell(path, **options)
    message = str(error.value)
    assert "\n" not in message, message
    assert words in message, message


def test_cli_gives_the_same_line_and_exit_2(tmp_path: Path) -> None:
    """Through the real command line: exit 2, one line, no traceback, the output file not created."""
    output = tmp_path / "out.extxyz.gz"
    result = subprocess.run(
        [str(SUPERIONIC), "data", "generate", str(ARGYRODITE), "--frames", "4", "-o", str(output)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = [x for x in result.stderr.splitlines() if x.startswith("superionic:")]
    assert len(line) == 1 and "--supercell 1x1x2" in line[0]
    assert not output.exists() and not output.with_name(output.name + ".partial").exists()


@pytest.mark.slow
def test_an_element_the_labeller_does_not_cover_is_named_before_any_md(tmp_path: Path) -> None:
    """SevenNet-0's training set has no Po (its type_map lists 89 elements): one line, exit 2."""
    pytest.importorskip("sevenn")
    from ase.build import bulk

    write(tmp_path / "POSCAR", bulk("Po", "sc", a=3.35).repeat(3), format="vasp")
    output = tmp_path / "po.extxyz.gz"
    result = subprocess.run(
        [str(SUPERIONIC), "data", "generate", str(tmp_path / "POSCAR"), "--frames", "2", "-o", str(output)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "SevenNet-0 does not cover Po" in result.stderr
    assert not output.exists() and not output.with_name(output.name + ".partial").exists()


def test_md_refuses_a_cell_narrower_than_twice_the_receptive_field(tmp_path: Path, exported) -> None:
    from superionic.data.examples import jittered_lattice
    from superionic.export import read_metadata
    from superionic.md.driver import MdConfig, MdError, run_md

    model = exported.path("local")
    needed = 2 * read_metadata(model).receptive_field
    write(tmp_path / "small.extxyz", jittered_lattice((3, 3, 2), seed=3))  # 7.8 x 7.8 x 5.2 Å
    config = MdConfig(structure=str(tmp_path / "small.extxyz"), model=str(model), temperatures=[600.0])
    with pytest.raises(MdError) as error:
        run_md(config)
    message = str(error.value)
    assert f"needs >= {needed:g} Å" in message and f"--min-width {needed:g}" in message
    assert not (tmp_path / "runs").exists()
