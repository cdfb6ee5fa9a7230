"""pair_style superionic runs sprinter models through the native kernel by default, and that path
equals the libtorch path (`backend torch`) to 1e-10 in float64 on 1, 2 and 4 ranks: energy, per-atom
energy, forces, global and per-atom virial, every l_max and species count, core repulsion included.

Both runs read the same data file, so they see bit-identical coordinates and edges; what remains is
the kernel's summation order, i.e. round-off (see tests/unit/test_native_kernel.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from superionic.calculator import evaluate
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from tests.lammps.singlepoint import SinglePoint, single_point
from tests.unit.test_native_kernel import SPECIES, random_sprinter

TOL = 1e-10


def cell(n_species: int):
    return jittered_lattice(
        (5, 5, 5), jitter=0.25, tilt=(0.9, -0.5, 0.4), species=SPECIES[:n_species], seed=7 + n_species
    )


def assert_same(got: SinglePoint, ref: SinglePoint, tol: float = TOL) -> None:
    assert got.energy == pytest.approx(ref.energy, rel=tol, abs=tol)
    for name in ("atom_energy", "forces", "atom_virial", "virial"):
        a, b = getattr(got, name), getattr(ref, name)
        scale = max(1.0, float(np.abs(b).max()))
        assert float(np.abs(a - b).max()) <= tol * scale, name


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("native-lmp")

    def get(l_max: int, n_species: int) -> Path:
        path = root / f"l{l_max}-s{n_species}.pt"
        if not path.exists():
            export_model(random_sprinter(l_max, n_species, seed=3 * l_max + n_species), path)
        return path

    return get


def run(tmp: Path, path: Path, n_species: int, nprocs: int, backend: str | None) -> SinglePoint:
    style = "superionic" if backend is None else f"superionic backend {backend}"
    return single_point(
        tmp, cell(n_species), path, type_names=SPECIES[:n_species], nprocs=nprocs, pair_style=style
    )


@pytest.mark.parametrize(
    ("l_max", "n_species", "nprocs"),
    [(4, 4, 1), (4, 4, 2), (4, 4, 4), (0, 4, 2), (1, 2, 4), (2, 3, 1), (3, 4, 2), (4, 1, 2), (2, 2, 2)],
)
def test_native_equals_torch_in_lammps(tmp_path: Path, model_file, l_max: int, n_species: int, nprocs: int):
    path = model_file(l_max, n_species)
    native = run(tmp_path / "native", path, n_species, nprocs, None)
    assert "native sprinter kernel (float64" in native.output, "the kernel is the default for sprinters"
    torch_path = run(tmp_path / "torch", path, n_species, nprocs, "torch")
    assert "torch threads per rank" in torch_path.output
    assert_same(native, torch_path)


def test_ranks_and_threads_do_not_change_the_result(tmp_path: Path, model_file) -> None:
    path = model_file(4, 4)
    one = run(tmp_path / "one", path, 4, 1, "native")
    four = run(tmp_path / "four", path, 4, 4, "native")
    assert_same(four, one)
    threads = single_point(
        tmp_path / "threads", cell(4), path, nprocs=1, pair_style="superionic backend native threads 2"
    )
    assert_same(threads, one)


def test_native_equals_python(tmp_path: Path, model_file) -> None:
    """Against the eager module on ASE's neighbour list (a third, independent path); 1e-8 as in
    test_parity: the data file rounds coordinates at the 1e-15 relative level."""
    path = model_file(3, 3)
    atoms = cell(3)
    lmp = run(tmp_path, path, 3, 2, None)
    model = random_sprinter(3, 3, seed=3 * 3 + 3)
    ref = evaluate(model, atoms, model.cutoff, SPECIES[:3])
    assert lmp.energy == pytest.approx(ref.energy, rel=1e-8)
    np.testing.assert_allclose(lmp.forces, ref.forces, rtol=0, atol=1e-8 * np.abs(ref.forces).max())


def test_native_backend_refuses_other_models(tmp_path: Path, exported) -> None:
    from superionic.md.runner import LammpsError

    with pytest.raises(LammpsError, match=r"no native kernel for .*sprinter models only; use backend torch"):
        single_point(tmp_path, cell(4), exported.path("local"), pair_style="superionic backend native")


def test_bad_backend_is_one_line(tmp_path: Path, model_file) -> None:
    from superionic.md.runner import LammpsError

    with pytest.raises(LammpsError, match="backend must be auto, native or torch, not 'gpu'"):
        single_point(tmp_path, cell(4), model_file(4, 4), pair_style="superionic backend gpu")


def test_float32_kernel_in_lammps(tmp_path: Path, model_file) -> None:
    """precision float32: single-precision arithmetic, float64 energy sums, against float64."""
    path = model_file(4, 4)
    f64 = run(tmp_path / "f64", path, 4, 2, None)
    f32 = single_point(
        tmp_path / "f32", cell(4), path, nprocs=2, pair_style="superionic backend native precision float32"
    )
    assert "native sprinter kernel (float32" in f32.output
    # ~1e3 float32 operations per edge at eps 6e-8 (measured: ~1e-6 relative)
    assert f32.energy == pytest.approx(f64.energy, rel=1e-5)
    assert np.abs(f32.forces - f64.forces).max() <= 2e-5 * np.abs(f64.forces).max()


def test_precision_needs_the_kernel(tmp_path: Path, model_file) -> None:
    from superionic.md.runner import LammpsError

    with pytest.raises(LammpsError, match="precision float32: applies to the native kernel only"):
        single_point(
            tmp_path, cell(4), model_file(4, 4), pair_style="superionic backend torch precision float32"
        )
