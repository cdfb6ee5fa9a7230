"""Bad inputs to ``pair_style superionic`` stop LAMMPS with one clear ERROR line.

Every case runs the real ``lmp`` on a deck that differs from a working one (see
``test_control_runs_cleanly``) in exactly one fault, so an error test cannot pass because the deck
was broken in some other way.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from superionic.data.examples import jittered_lattice
from superionic.export import METADATA_NAME, export_model, metadata_for
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsRun, run_lammps
from superionic.models import ReferencePotential

SPECIES = ["Li", "Ge", "P", "S"]
SPECIES_LIST = " ".join(SPECIES)
# A hung lmp (e.g. an MPI abort that never returns) must fail the test, not stall the suite.
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Deck:
    """A minimal ``run 0`` input; each test replaces one field with a fault."""

    model: str
    data: str
    elements: str = SPECIES_LIST
    pair_style: str = "superionic"
    units: str = "metal"
    newton: str = "on"

    def text(self) -> str:
        # newton must precede read_data: LAMMPS forbids changing newton bond once the box exists.
        return "\n".join(
            [
                f"units {self.units}",
                "atom_style atomic",
                f"newton {self.newton}",
                f"read_data {self.data}",
                f"pair_style {self.pair_style}",
                f"pair_coeff * * {self.model} {self.elements}",
                "run 0",
                "",
            ]
        )


@dataclass(frozen=True)
class Assets:
    model: Path
    data: Path
    atoms: Atoms

    def deck(self) -> Deck:
        return Deck(model=str(self.model), data=str(self.data))


@pytest.fixture(scope="session")
def reference() -> ReferencePotential:
    return ReferencePotential(SPECIES)


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory, reference: ReferencePotential) -> Assets:
    root = tmp_path_factory.mktemp("lammps_errors")
    atoms = jittered_lattice((3, 3, 3), spacing=2.6, seed=0)
    write_lammps_data(root / "d.data", atoms, SPECIES)
    export_model(reference, root / "m.pt")
    return Assets(model=root / "m.pt", data=root / "d.data", atoms=atoms)


def run_deck(deck: Deck, workdir: Path) -> LammpsRun:
    input_file = workdir / "in.lmp"
    input_file.write_text(deck.text())
    return run_lammps(input_file, workdir, nprocs=1, timeout=TIMEOUT_S, check=False)


def error_lines(run: LammpsRun) -> list[str]:
    return [line.strip() for line in run.output.splitlines() if line.startswith("ERROR")]


def assert_clear_error(run: LammpsRun, *words: str) -> str:
    """lmp failed with exactly one ERROR line containing every one of ``words``; returns it."""
    errors = error_lines(run)
    assert run.returncode != 0, f"lmp exited 0 despite the fault:\n{run.output[-3000:]}"
    assert len(errors) == 1, f"expected one ERROR line, got {errors}:\n{run.output[-3000:]}"
    missing = [word for word in words if word not in errors[0]]
    assert not missing, f"ERROR line lacks {missing}: {errors[0]}"
    return errors[0]


def test_control_runs_cleanly(assets: Assets, tmp_path: Path) -> None:
    run = run_deck(assets.deck(), tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    assert error_lines(run) == []
    rows = run.thermo()
    assert len(rows) == 1 and np.isfinite(rows[0]["E_pair"]), run.output[-3000:]


def test_missing_model_file(assets: Assets, tmp_path: Path) -> None:
    absent = tmp_path / "no_such_model.pt"
    run = run_deck(dataclasses.replace(assets.deck(), model=str(absent)), tmp_path)
    assert_clear_error(run, "cannot open model file", str(absent), "pair_coeff")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        # The file is identified from its bytes before libtorch reads it (cpp/model_file.cpp).
        ("junk.pt", ("is not a superionic model", "text file", "not a zip archive", "superionic export")),
        ("junk.pt2", ("is not a superionic model", "text file", "not a zip archive", "superionic export")),
        ("junk.txt", ("is not a superionic model", "text file", "superionic export")),
    ],
)
def test_file_that_is_not_a_model(assets: Assets, tmp_path: Path, name: str, words: tuple[str, ...]) -> None:
    junk = tmp_path / name
    junk.write_text("this is a text file, not a model\n")
    run = run_deck(dataclasses.replace(assets.deck(), model=str(junk)), tmp_path)
    assert_clear_error(run, str(junk), *words)


def test_model_without_metadata(assets: Assets, reference: ReferencePotential, tmp_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(reference.eval()), str(bare))
    run = run_deck(dataclasses.replace(assets.deck(), model=str(bare)), tmp_path)
    assert_clear_error(run, str(bare), METADATA_NAME, "superionic export")


def test_metadata_from_newer_format(assets: Assets, reference: ReferencePotential, tmp_path: Path) -> None:
    future = tmp_path / "future.pt"
    meta = dataclasses.replace(metadata_for(reference), format_version=99)
    torch.jit.save(
        torch.jit.script(reference.eval()), str(future), _extra_files={METADATA_NAME: meta.to_json()}
    )
    run = run_deck(dataclasses.replace(assets.deck(), model=str(future)), tmp_path)
    assert_clear_error(run, str(future), "format version 99", "newer", "upgrade superionic")


def test_element_not_in_model(assets: Assets, tmp_path: Path) -> None:
    run = run_deck(dataclasses.replace(assets.deck(), elements="Li Ge P Xx"), tmp_path)
    assert_clear_error(run, "'Xx'", "atom type 4", SPECIES_LIST)


@pytest.mark.parametrize("elements", ["Li Ge P", "Li Ge P S S"], ids=["too_few", "too_many"])
def test_wrong_number_of_elements(assets: Assets, tmp_path: Path, elements: str) -> None:
    run = run_deck(dataclasses.replace(assets.deck(), elements=elements), tmp_path)
    assert_clear_error(run, "pair_coeff", f"{len(SPECIES)} element names")


def test_units_not_metal(assets: Assets, tmp_path: Path) -> None:
    run = run_deck(dataclasses.replace(assets.deck(), units="real"), tmp_path)
    assert_clear_error(run, "units real", "units metal")


# "off" switches newton pair and bond off; "off on" switches off newton pair alone.
@pytest.mark.parametrize("newton", ["off", "off on"], ids=["pair_and_bond_off", "pair_off"])
def test_newton_pair_off(assets: Assets, tmp_path: Path, newton: str) -> None:
    run = run_deck(dataclasses.replace(assets.deck(), newton=newton), tmp_path)
    assert_clear_error(run, "newton pair on")


def test_overlapping_atoms(assets: Assets, tmp_path: Path) -> None:
    atoms = assets.atoms.copy()
    atoms.positions[1] = atoms.positions[0] + np.array([0.05, 0.0, 0.0])
    data = tmp_path / "overlap.data"
    write_lammps_data(data, atoms, SPECIES)
    run = run_deck(dataclasses.replace(assets.deck(), data=str(data)), tmp_path)
    line = assert_clear_error(run, "0.05", "0.1 A")
    # LAMMPS tags are 1-based: positions[0] and positions[1] are atoms 1 and 2, in either order.
    assert re.search(r"atoms (1 and 2|2 and 1)\b", line), line
    assert not re.search(r"\bnan\b", run.output, re.IGNORECASE), run.output[-3000:]


@pytest.mark.parametrize(
    ("pair_style", "words"),
    [
        ("superionic bogus 1", ("'bogus'", "device, threads, debug/edges")),
        ("superionic device tpu", ("'tpu'", "cpu, cuda or auto")),
        ("superionic device", ("'device'", "needs a value")),
    ],
    ids=["unknown_keyword", "bad_device", "keyword_without_value"],
)
def test_bad_pair_style_arguments(
    assets: Assets, tmp_path: Path, pair_style: str, words: tuple[str, ...]
) -> None:
    run = run_deck(dataclasses.replace(assets.deck(), pair_style=pair_style), tmp_path)
    assert_clear_error(run, "pair_style superionic", *words)
