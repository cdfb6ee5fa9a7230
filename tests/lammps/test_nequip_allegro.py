"""An Allegro model compiled by nequip (`.nequip.pt2`, pair_allegro target) in pair_style superionic.

LAMMPS `run 0` on 1 and 2 MPI ranks against nequip's own ASE calculator on the same weights
(tests/fixtures/nequip/reference.json, made by make_reference.py there in a separate nequip
environment): energy, forces and the global virial.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from superionic.md.lammps_data import write_lammps_data
from superionic.models.assemble import VOIGT_ASE
from tests.lammps.singlepoint import single_point

FIXTURE = Path(__file__).parents[1] / "fixtures" / "nequip"
MODEL = FIXTURE / "tiny_allegro.nequip.pt2"
# Both sides run the same float64 weights; the compiled and eager nequip paths already agree to
# ~1e-15 eV/A (reference.json), so 1e-8 leaves room for summation order over ranks and still sits
# 100x inside the 1e-6 eV/A the interoperability promise states.
TOL = 1e-8
# AOTInductor compiles for the building machine's vector ISA; names as /proc/cpuinfo spells them.
CPU_FLAGS = {"AVX2": "avx2", "AVX512": "avx512f", "AVX512_VNNI": "avx512_vnni", "AMX_TILE": "amx_tile"}


def compiled_metadata(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("wrapper_metadata.json"))
        return json.loads(archive.read(name))


def missing_cpu_isa() -> list[str]:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return ["an x86-64 Linux CPU"]
    wanted = compiled_metadata(MODEL).get("AOTI_CPU_ISA", "").split()
    return [isa for isa in wanted if CPU_FLAGS.get(isa, isa.lower()) not in flags]


pytestmark = pytest.mark.skipif(
    bool(missing_cpu_isa()),
    reason=f"the fixture's compiled code needs CPU features {missing_cpu_isa()} this machine lacks",
)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((FIXTURE / "reference.json").read_text())


@pytest.mark.parametrize(
    ("nprocs", "type_order"),
    [(1, ("Li", "Ge", "P", "S")), (2, ("Li", "Ge", "P", "S")), (1, ("S", "P", "Ge", "Li"))],
)
def test_run0_matches_nequip_calculator(
    tmp_path: Path, reference: dict, nprocs: int, type_order: tuple[str, ...]
) -> None:
    """The last case numbers the LAMMPS types unlike the model's type_names: the names map them."""
    atoms = read(FIXTURE / reference["structure"])
    lmp = single_point(tmp_path, atoms, MODEL, type_names=type_order, nprocs=nprocs)
    forces = np.array(reference["forces"])
    assert lmp.energy == pytest.approx(reference["energy"], rel=0, abs=TOL * len(atoms))
    np.testing.assert_allclose(lmp.forces, forces, rtol=0, atol=TOL)
    # ASE stress is (1/V) dE/d(strain) = -W/V (docs/conventions.md): W = -stress * V in LAMMPS order.
    stress6 = np.array(reference["stress"])
    stress = np.zeros((3, 3))
    for k, (a, b) in enumerate(VOIGT_ASE):
        stress[a, b] = stress[b, a] = stress6[k]
    virial = -stress * atoms.get_volume()
    expected = np.array([virial[0, 0], virial[1, 1], virial[2, 2], virial[0, 1], virial[0, 2], virial[1, 2]])
    np.testing.assert_allclose(lmp.virial, expected, rtol=0, atol=TOL * max(1.0, np.abs(expected).max()))
    # The fixture must exercise ghosts: with 2 ranks every rank owns part of the cell.
    assert lmp.nlocal_min > 0
    assert np.abs(forces).max() > 0.01  # a model whose forces vanish would compare nothing


def test_allegro_model_is_described_in_the_log(tmp_path: Path) -> None:
    atoms = read(FIXTURE / "lgps_frame100.extxyz")
    lmp = single_point(tmp_path, atoms, MODEL, nprocs=1)
    assert "nequip-allegro" in lmp.output


def test_element_missing_from_type_names(tmp_path: Path) -> None:
    from tests.lammps.test_errors import Deck, assert_clear_error, run_deck

    atoms = read(FIXTURE / "lgps_frame100.extxyz")
    write_lammps_data(tmp_path / "d.data", atoms, ["Li", "Ge", "P", "S"])
    deck = Deck(model=str(MODEL), data=str(tmp_path / "d.data"), elements="Li Ge P Cl")
    run = run_deck(deck, tmp_path)
    assert_clear_error(run, "element 'Cl'", "atom type 4", "Li Ge P S")


@pytest.mark.slow
def test_package_without_nequip_metadata(tmp_path: Path, exported) -> None:
    """A superionic .pt2 renamed to *.nequip.pt2 is named as not nequip-compiled, in one line."""
    from tests.lammps.test_errors import Deck, assert_clear_error, run_deck

    fake = tmp_path / "renamed.nequip.pt2"
    shutil.copyfile(exported.path("local", ".pt2"), fake)
    atoms = read(FIXTURE / "lgps_frame100.extxyz")
    write_lammps_data(tmp_path / "d.data", atoms, ["Li", "Ge", "P", "S"])
    run = run_deck(Deck(model=str(fake), data=str(tmp_path / "d.data")), tmp_path)
    assert_clear_error(run, str(fake), "nequip_aoti_inputs", "nequip-compile --mode aotinductor")
