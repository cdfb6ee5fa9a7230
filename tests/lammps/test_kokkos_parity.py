"""pair_style superionic/kk (Kokkos, `-k on t 1 -sf kk`) against pair_style superionic, at 1e-10.

Both runs evaluate the same float64 model on the same edges; only the order of the edges (the Kokkos
neighbour list may order neighbours differently) and of the force sums can differ, which moves
results by ~1e-13 relative. Compared on 1 and 2 MPI ranks: total energy, per-atom energies, forces,
global and per-atom virial; the Kokkos run must also match the Python evaluation at the plain style's
1e-8. The reference models take the libtorch path (Model::evaluate on the views' memory, the code a
GPU build runs with another ArraySpace); a float32 model checks the cast of its outputs, and a
sprinter both the native kernel and libtorch. Runs only against a LAMMPS built with KOKKOS (the image
of docker/test_image.sh); elsewhere skipped.

The Kokkos-native sprinter (cpp/kokkos/sprinter_kokkos.h, what `backend auto` runs for a sprinter
under -sf kk) is held to the CPU kernel and to libtorch at 1e-10 in float64: energy, forces, global
and per-atom virial and energy, on 1 and 2 ranks with 1 and 2 OpenMP threads, on a triclinic cell
with ghosts, with a NULL type (hybrid/overlay), with a rank that owns no atom, and over 20 NVE steps.
Kokkos::Serial, which the CPU image's Kokkos lacks, is checked outside LAMMPS: the stand-alone
driver cpp/kokkos/sprinter_kokkos_check.cpp, built against Debian's Trilinos Kokkos (Serial) when
it is installed, against the CPU kernel and libtorch on the same graphs. Each comparison prints one
row of the parity table (pytest -s).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from superionic import plugin_dir
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsRun, lammps_command
from superionic.models.sprinter import Sprinter
from tests.conftest import SPECIES, structure
from tests.lammps.singlepoint import SinglePoint, read_single_point, single_point, write_single_point_input
from tests.lammps.test_parity import assert_matches, python_reference
from tests.unit.test_native_kernel import random_sprinter

# Same model, same edges, float64; only summation order differs (see the module docstring).
KK_TOL = 1e-10


@cache
def lammps_packages() -> str:
    help_text = subprocess.run(
        [*lammps_command(1), "-h"], capture_output=True, text=True, check=False, timeout=60
    ).stdout
    match = re.search(r"Installed packages:\s*\n(.*?)\n\s*\n", help_text, re.S)
    return match.group(1) if match else ""


needs_kokkos = pytest.mark.skipif(
    "KOKKOS" not in lammps_packages().split(),
    reason="this LAMMPS has no KOKKOS package (lmp -h); superionic/kk is tested in docker/test_image.sh",
)


def kokkos_single_point(
    workdir: Path,
    atoms: Atoms,
    model: Path,
    nprocs: int,
    threads: int,
    pair_style: str = "superionic",
    **kwargs: object,
) -> SinglePoint:
    """single_point's input and read-back, run with `-k on t <threads> -sf kk`."""
    write_single_point_input(workdir, atoms, model, pair_style=pair_style, **kwargs)
    cmd = [*lammps_command(nprocs), "-k", "on", "t", str(threads), "-sf", "kk", "-in", "in.lmp"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False, timeout=600)
    run = LammpsRun(proc.returncode, proc.stdout + proc.stderr)
    assert run.returncode == 0 and run.error_line is None, run.error_line or run.output[-2000:]
    # The Kokkos style, not the plain one, computed the forces.
    assert "pair superionic/kk: model" in run.output
    return read_single_point(workdir, run)


def assert_same(kk: SinglePoint, plain: SinglePoint, label: str, tol: float = KK_TOL) -> None:
    d_energy = abs(kk.energy - plain.energy)
    d_force = float(np.abs(kk.forces - plain.forces).max())
    # Shown with pytest -s: the figures the docker log reports.
    print(f"superionic/kk vs superionic, {label}: |dE| {d_energy:.3g} eV, max |dF| {d_force:.3g} eV/A")
    assert d_energy <= tol * max(1.0, abs(plain.energy))
    assert d_force <= tol * max(1.0, float(np.abs(plain.forces).max()))
    np.testing.assert_allclose(kk.atom_energy, plain.atom_energy, rtol=0, atol=tol)
    scale = max(1.0, float(np.abs(plain.atom_virial).max()))
    np.testing.assert_allclose(kk.atom_virial, plain.atom_virial, rtol=0, atol=tol * scale)
    virial_scale = max(1.0, float(np.abs(plain.virial).max()))
    np.testing.assert_allclose(kk.virial, plain.virial, rtol=0, atol=tol * virial_scale)


@needs_kokkos
def test_kokkos_plugin_is_installed() -> None:
    assert (Path(plugin_dir()) / "superionickkplugin.so").exists()


# 1 and 2 ranks with one thread each (the acceptance runs), and 2 OpenMP threads on one rank, where
# the edge kernels run concurrently and the atomic force sums land in varying order.
@needs_kokkos
@pytest.mark.parametrize(("nprocs", "threads"), [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("kind", ["local", "mp"])
@pytest.mark.parametrize("name", ["orthorhombic", "triclinic"])
def test_kokkos_matches_plain(
    tmp_path: Path, exported, name: str, kind: str, nprocs: int, threads: int
) -> None:
    model = exported.path(kind)
    plain = single_point(tmp_path / "plain", structure(name), model, nprocs=nprocs)
    kk = kokkos_single_point(tmp_path / "kk", structure(name), model, nprocs, threads)
    assert_same(kk, plain, f"{name} {kind} np={nprocs} t={threads}")
    assert_matches(kk, python_reference(kind, name))


@needs_kokkos
@pytest.mark.parametrize("nprocs", [1, 2])
def test_kokkos_float32_model(tmp_path: Path, exported, nprocs: int) -> None:
    """A float32 model: the torch outputs are cast to float64 on their device before the force kernels."""
    model = exported.path("local", dtype=torch.float32)
    plain = single_point(tmp_path / "plain", structure("orthorhombic"), model, nprocs=nprocs)
    kk = kokkos_single_point(tmp_path / "kk", structure("orthorhombic"), model, nprocs, 1)
    # Same float32 model on the same edges; were the edges ordered differently, float32 sums over ~50
    # neighbours would differ by ~50 x 6e-8 relative: 1e-5 bounds that, far below a wrong cast.
    assert_same(kk, plain, f"float32 local np={nprocs}", tol=1e-5)


@needs_kokkos
@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("nprocs", [1, 2])
def test_kokkos_sprinter(tmp_path: Path, backend: str, nprocs: int) -> None:
    """A sprinter through both model paths of the Kokkos style: the Kokkos-native kernel, and
    libtorch handing back its own output tensors; each against the plain style's same backend."""
    model = tmp_path / "sprinter.pt"
    export_model(random_sprinter(3, 4, seed=11), model)
    atoms = jittered_lattice((5, 5, 5), jitter=0.25, tilt=(0.9, -0.5, 0.4), species=SPECIES, seed=11)
    style = f"superionic backend {backend}"
    plain = single_point(tmp_path / "plain", atoms, model, nprocs=nprocs, pair_style=style)
    kk = kokkos_single_point(tmp_path / "kk", atoms, model, nprocs, 1, pair_style=style)
    assert_same(kk, plain, f"sprinter backend {backend} np={nprocs}")
    # The log names the path taken: the kernel's views, or libtorch reading the edge views in place.
    where = (
        "the Kokkos-native sprinter kernel (float64"
        if backend == "native"
        else "host memory, read and written in place"
    )
    assert f"the model call on {where}" in kk.output


# --- the Kokkos-native sprinter ---------------------------------------------------------------------

NATIVE_TOL = 1e-10  # float64: the same maths in another summation order
FLOAT32_TOL = 2e-5  # float32 arithmetic against float64, relative to the largest value (the CPU kernel's bar)
NVE_TOL = 1e-9  # positions (A) and energies (eV) after 20 NVE steps (test_folded_graph's bar)


def parity_row(label: str, got: SinglePoint, ref: SinglePoint) -> dict[str, float]:
    """The largest differences of one comparison, printed as a row of the parity table."""
    row = {
        "dE": abs(got.energy - ref.energy),
        "dF": float(np.abs(got.forces - ref.forces).max()),
        "dW": float(np.abs(got.virial - ref.virial).max()),
        "dE_i": float(np.abs(got.atom_energy - ref.atom_energy).max()),
        "dW_i": float(np.abs(got.atom_virial - ref.atom_virial).max()),
    }
    print(
        f"kokkos-native parity | {label} | max|dE| {row['dE']:.2e} eV | max|dF| {row['dF']:.2e} eV/A"
        f" | max|dvirial| {row['dW']:.2e} eV | max|dE_i| {row['dE_i']:.2e} eV"
        f" | max|dW_i| {row['dW_i']:.2e} eV"
    )
    return row


def assert_within(got: SinglePoint, ref: SinglePoint, label: str, tol: float) -> None:
    """Every figure within tol of the reference, relative to the reference's largest value (>= 1)."""
    row = parity_row(label, got, ref)
    scales = {
        "dE": abs(ref.energy),
        "dF": float(np.abs(ref.forces).max()),
        "dW": float(np.abs(ref.virial).max()),
        "dE_i": float(np.abs(ref.atom_energy).max()),
        "dW_i": float(np.abs(ref.atom_virial).max()),
    }
    for key, value in row.items():
        assert value <= tol * max(1.0, scales[key]), f"{label}: {key} {value:.3g}"


@pytest.fixture(scope="module")
def sprinter_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trainer's default sizes (the kernel's unrolled shape), with core repulsion acting."""
    model = Sprinter(SPECIES, seed=5)
    with torch.no_grad():
        model.core_radius_sq.fill_(2.35**2)
        model.descriptor_std.fill_(3.0)
    path = tmp_path_factory.mktemp("kk-native") / "sprinter.pt"
    export_model(model, path)
    return path


def sprinter_cell() -> Atoms:
    """A tilted 250-atom cell (13 x 13 x 13 A): two ranks split it, each with a ghost shell."""
    return jittered_lattice((5, 5, 5), jitter=0.25, tilt=(0.9, -0.5, 0.4), species=SPECIES, seed=13)


@needs_kokkos
@pytest.mark.parametrize(("nprocs", "threads"), [(1, 1), (2, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("model", ["default", "generic"])
def test_kokkos_native_matches_cpu_kernel_and_torch(
    tmp_path: Path, sprinter_file: Path, model: str, nprocs: int, threads: int
) -> None:
    path = sprinter_file
    if model == "generic":  # l_max 3, 3 species: the kernel's runtime-sized instantiation
        path = tmp_path / "generic.pt"
        export_model(random_sprinter(3, 4, seed=21), path)
    atoms = sprinter_cell()
    kk = kokkos_single_point(tmp_path / "kk", atoms, path, nprocs, threads)
    assert "the Kokkos-native sprinter kernel (float64" in kk.output
    assert f"{'default' if model == 'default' else 'generic'} shape" in kk.output
    cpu = single_point(tmp_path / "cpu", atoms, path, nprocs=nprocs)
    assert "native sprinter kernel (float64" in cpu.output
    lib = single_point(tmp_path / "torch", atoms, path, nprocs=nprocs, pair_style="superionic backend torch")
    label = f"OpenMP | {model} | triclinic | np={nprocs} t={threads} | float64"
    assert_within(kk, cpu, f"{label} | vs CPU kernel", NATIVE_TOL)
    assert_within(kk, lib, f"{label} | vs libtorch", NATIVE_TOL)


@needs_kokkos
@pytest.mark.parametrize("nprocs", [1, 2])
def test_kokkos_native_float32(tmp_path: Path, sprinter_file: Path, nprocs: int) -> None:
    """precision float32: float32 arithmetic, float64 sums; against float64 at the CPU kernel's bar,
    and against the CPU kernel's own float32 at the same bar."""
    atoms = sprinter_cell()
    style = "superionic precision float32"
    kk32 = kokkos_single_point(tmp_path / "kk32", atoms, sprinter_file, nprocs, 1, pair_style=style)
    assert "the Kokkos-native sprinter kernel (float32 arithmetic, float64 sums" in kk32.output
    cpu64 = single_point(tmp_path / "cpu64", atoms, sprinter_file, nprocs=nprocs)
    cpu32 = single_point(tmp_path / "cpu32", atoms, sprinter_file, nprocs=nprocs, pair_style=style)
    label = f"OpenMP | default | triclinic | np={nprocs} t=1 | float32"
    assert_within(kk32, cpu64, f"{label} | vs CPU kernel float64", FLOAT32_TOL)
    assert_within(kk32, cpu32, f"{label} | vs CPU kernel float32", FLOAT32_TOL)


@needs_kokkos
def test_kokkos_native_null_type_and_empty_rank(tmp_path: Path, sprinter_file: Path) -> None:
    """A NULL type under hybrid/overlay (its atoms outside the model's graph), and a 2 x 1 x 1 grid
    over a half-empty box, where one rank owns no atom."""
    atoms = sprinter_cell()
    style = "hybrid/overlay superionic lj/cut 5.0"
    coeffs = [f"pair_coeff * * superionic {sprinter_file} Li NULL P S", "pair_coeff * * lj/cut 0.0 1.0"]
    kk = kokkos_single_point(
        tmp_path / "kk", atoms, sprinter_file, 2, 1, pair_style=style, pair_coeffs=coeffs
    )
    cpu = single_point(tmp_path / "cpu", atoms, sprinter_file, nprocs=2, pair_style=style, pair_coeffs=coeffs)
    assert_within(kk, cpu, "OpenMP | default | NULL type | np=2 t=1 | float64 | vs CPU kernel", NATIVE_TOL)
    ge = np.array([s == "Ge" for s in atoms.get_chemical_symbols()])
    assert ge.any() and np.all(kk.forces[ge] == 0.0)

    slab = structure("slab")
    kk = kokkos_single_point(tmp_path / "kk-slab", slab, sprinter_file, 2, 1, processors="2 1 1")
    assert kk.nlocal_min == 0, "the slab no longer leaves a rank empty"
    assert "the Kokkos-native sprinter kernel" in kk.output
    cpu = single_point(tmp_path / "cpu-slab", slab, sprinter_file, nprocs=2, processors="2 1 1")
    lib = single_point(
        tmp_path / "torch-slab", slab, sprinter_file, nprocs=1, pair_style="superionic backend torch"
    )
    assert_within(kk, cpu, "OpenMP | default | empty rank | np=2 t=1 | float64 | vs CPU kernel", NATIVE_TOL)
    assert_within(
        kk, lib, "OpenMP | default | empty rank | np=2 t=1 | float64 | vs libtorch np=1", NATIVE_TOL
    )


def nve_run(workdir: Path, model: Path, nprocs: int, kokkos: bool) -> tuple[np.ndarray, np.ndarray]:
    """20 NVE steps (neighbour lists rebuilt every step, atoms re-sorted every 5); returns the final
    [id, x, y, z, vx, vy, vz, fx, fy, fz] by id and the [step, pe, ke] rows."""
    workdir.mkdir(parents=True)
    write_lammps_data(workdir / "structure.data", sprinter_cell(), SPECIES)
    lines = [
        "units metal",
        "atom_style atomic",
        "atom_modify sort 5 0.0",
        "read_data structure.data",
        "pair_style superionic",
        f"pair_coeff * * {model} {' '.join(SPECIES)}",
        "neigh_modify every 1 delay 0 check no",
        "velocity all create 1200.0 4928459 loop geom",
        "fix 1 all nve",
        "timestep 0.001",
        "thermo 1",
        "thermo_style custom step pe ke",
        "thermo_modify format float %.17g",
        "run 20",
        "write_dump all custom final.dump id xu yu zu vx vy vz fx fy fz modify format float %.17g sort id",
    ]
    (workdir / "in.lmp").write_text("\n".join(lines) + "\n")
    extra = ["-k", "on", "t", "1", "-sf", "kk"] if kokkos else []
    proc = subprocess.run(
        [*lammps_command(nprocs), *extra, "-in", "in.lmp"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    run = LammpsRun(proc.returncode, proc.stdout + proc.stderr)
    assert run.returncode == 0 and run.error_line is None, run.error_line or run.output[-2000:]
    if kokkos:
        assert "the Kokkos-native sprinter kernel" in run.output
    thermo = np.array([[row["Step"], row["PotEng"], row["KinEng"]] for row in run.thermo()])
    return np.loadtxt(workdir / "final.dump", skiprows=9, ndmin=2), thermo


@needs_kokkos
@pytest.mark.parametrize("nprocs", [1, 2])
def test_kokkos_native_nve(tmp_path: Path, sprinter_file: Path, nprocs: int) -> None:
    """20 NVE steps under -sf kk (the Kokkos-native kernel, fix nve/kk) follow the plain style's."""
    kk_final, kk_thermo = nve_run(tmp_path / "kk", sprinter_file, nprocs, kokkos=True)
    cpu_final, cpu_thermo = nve_run(tmp_path / "cpu", sprinter_file, nprocs, kokkos=False)
    assert kk_thermo.shape == cpu_thermo.shape == (21, 3)
    d_pos = float(np.abs(kk_final[:, 1:4] - cpu_final[:, 1:4]).max())
    d_energy = float(np.abs(kk_thermo[:, 1:] - cpu_thermo[:, 1:]).max())
    d_force = float(np.abs(kk_final[:, 7:10] - cpu_final[:, 7:10]).max())
    drift = abs((kk_thermo[-1, 1] + kk_thermo[-1, 2]) - (kk_thermo[0, 1] + kk_thermo[0, 2]))
    print(
        f"kokkos-native NVE | OpenMP | np={nprocs} t=1 | 20 steps vs CPU kernel | max|dx| {d_pos:.2e} A"
        f" | max|d(pe, ke)| {d_energy:.2e} eV | max|dF| {d_force:.2e} eV/A | |E(20) - E(0)| {drift:.2e} eV"
    )
    assert d_pos <= NVE_TOL
    assert d_energy <= NVE_TOL * max(1.0, float(np.abs(cpu_thermo[:, 1:]).max()))
    assert d_force <= NVE_TOL * max(1.0, float(np.abs(cpu_final[:, 7:10]).max()))


# --- Kokkos::Serial, outside LAMMPS -------------------------------------------------------------------

# Debian's Trilinos Kokkos, installed (libtrilinos-kokkos-dev) or unpacked under a prefix with
# dpkg-deb -x where it cannot be installed beside another Kokkos (the CPU image: docker/test_image.sh).
SERIAL_KOKKOS = Path(os.environ.get("SUPERIONIC_SERIAL_KOKKOS", "/"))
TRILINOS_KOKKOS = SERIAL_KOKKOS / "usr" / "include" / "trilinos" / "Kokkos_Core.hpp"
TRILINOS_LIB = SERIAL_KOKKOS / "usr" / "lib" / "x86_64-linux-gnu"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def serial_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cpp/kokkos/sprinter_kokkos_check.cpp built against Debian's Trilinos Kokkos (Serial)."""
    if not TRILINOS_KOKKOS.exists() or shutil.which("g++") is None:
        pytest.skip("no Kokkos with a Serial backend here (apt-get install libtrilinos-kokkos-dev)")
    exe = tmp_path_factory.mktemp("serial") / "sprinter_kokkos_check"
    cmd = [
        "g++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror",
        f"-I{REPO / 'cpp'}", f"-I{REPO / 'cpp' / 'kokkos'}", "-isystem", str(TRILINOS_KOKKOS.parent),
        str(REPO / "cpp" / "kokkos" / "sprinter_kokkos_check.cpp"), "-o", str(exe),
        f"-L{TRILINOS_LIB}", f"-Wl,-rpath,{TRILINOS_LIB}",
        "-ltrilinos_kokkoscore", "-ltrilinos_kokkoscontainers",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    return exe


def write_records(path: Path, records: dict[str, object]) -> None:
    with path.open("w") as out:
        for name, values in records.items():
            flat = np.asarray(values, dtype=np.float64).ravel()
            out.write(f"{name} {flat.size} " + " ".join(repr(float(v)) for v in flat) + "\n")


def read_records(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    header, records = "", {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            header = line[1:].strip()
            continue
        name, _, *values = line.split()
        records[name] = np.array(values, dtype=np.float64)
    return header, records


def sprinter_records(model: Sprinter) -> dict[str, object]:
    """The model's SprinterParams, as cpp/model.cpp reads them from an exported file."""
    state = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    widths = [model.layers[0].weight.shape[1], *(layer.weight.shape[2] for layer in model.layers)]
    records: dict[str, object] = {
        "n_species": [len(model.species_names)],
        "n_basis": [model.radial_coeff.shape[3]],
        "radial_channels": [model.radial_coeff.shape[2]],
        "angular_channels": [model.angular_coeff.shape[2]],
        "l_max": [model.l_max],
        "cutoff": state["cutoff_t"],
        "cutoff_sq": state["cutoff_sq"],
        "energy_scale": state["energy_scale"],
        "core_strength": state["core_strength"],
        "widths": widths,
    }
    for name in ("basis_freq", "radial_coeff", "angular_coeff", "descriptor_mean", "descriptor_std"):
        records[name] = state[name]
    records["energy_shift"] = state["energy_shift"]
    records["core_radius_sq"] = state["core_radius_sq"]
    for k in range(len(model.layers)):
        records[f"layer_weight_{k}"] = state[f"layers.{k}.weight"]
        records[f"layer_bias_{k}"] = state[f"layers.{k}.bias"]
    return records


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("case", ["default", "l0", "l2-s2", "l4-ghosts"])
def test_serial_kernel_matches_cpu_kernel_and_torch(
    tmp_path: Path, serial_driver: Path, case: str, precision: str
) -> None:
    """The Kokkos kernel on Kokkos::Serial, on the model contract's graph: owned atoms and ghosts
    (the last 20 atoms of the l4 case play ghosts, with edges leaving them), a triclinic cell."""
    from superionic._core import Model

    from superionic.data.graph import build_graph

    if case == "default":
        model = Sprinter(SPECIES, seed=5)
        with torch.no_grad():
            model.core_radius_sq.fill_(2.35**2)
    else:
        l_max, n_species = {"l0": (0, 4), "l2-s2": (2, 2), "l4-ghosts": (4, 3)}[case]
        model = random_sprinter(l_max, n_species, seed=31 + l_max)
    names = model.species_names
    atoms = jittered_lattice((4, 4, 4), jitter=0.25, tilt=(0.7, -0.4, 0.3), species=names, seed=3)
    graph = build_graph(atoms, model.cutoff, names)
    n_local = graph.n_local - 20 if case == "l4-ghosts" else graph.n_local
    args = (graph.edge_vec, graph.edge_src, graph.edge_dst, graph.species, n_local)
    write_records(
        tmp_path / "in.txt",
        sprinter_records(model)
        | {
            "edge_vec": graph.edge_vec,
            "edge_src": graph.edge_src,
            "edge_dst": graph.edge_dst,
            "species": graph.species,
            "n_local": [n_local],
        },
    )
    subprocess.run(
        [str(serial_driver), "in.txt", "out.txt", precision], cwd=tmp_path, check=True, timeout=300
    )
    space, got = read_records(tmp_path / "out.txt")
    assert space.startswith("Serial")
    export_model(model, tmp_path / "m.pt")
    loaded = Model(str(tmp_path / "m.pt"))
    grad = got["edge_grad"].reshape(-1, 3)
    forces = got["forces"].reshape(-1, 3)
    # The kernel's own force sums equal the contract's: F_i += g, F_j -= g over the owned edges.
    owned = graph.edge_src < n_local
    expected = np.zeros_like(forces)
    np.add.at(expected, graph.edge_src[owned], grad[owned])
    np.subtract.at(expected, graph.edge_dst[owned], grad[owned])
    np.testing.assert_allclose(forces, expected, rtol=0, atol=1e-12 * max(1.0, np.abs(expected).max()))
    assert got["energy"][0] == pytest.approx(got["atom_energy"].sum(), rel=1e-14)
    tol = NATIVE_TOL if precision == "float64" else FLOAT32_TOL
    references = {
        "CPU kernel": loaded.compute_native(*args, precision=precision),
        "libtorch": loaded.compute(*args),
    }
    for name, (energy, edge_grad) in references.items():
        d_e = float(np.abs(got["atom_energy"] - energy).max())
        d_g = float(np.abs(grad - edge_grad).max())
        print(
            f"kokkos-native parity | {space} | {case} | graph, {n_local} owned of {graph.n_local}"
            f" | {precision} | vs {name} | max|dE_i| {d_e:.2e} eV | max|dgrad| {d_g:.2e} eV/A"
        )
        assert d_e <= tol * max(1.0, float(np.abs(energy).max()))
        assert d_g <= tol * max(1.0, float(np.abs(edge_grad).max()))
        assert np.all(grad[~owned] == 0.0)


@needs_kokkos
def test_kokkos_refuses_the_guard(tmp_path: Path, sprinter_file: Path) -> None:
    """pair_style superionic's distance guard runs in its compute(), which superionic/kk replaces:
    asking for it under -sf kk is refused in one line rather than silently not checked."""
    write_single_point_input(tmp_path, sprinter_cell(), sprinter_file, pair_style="superionic guard 5")
    cmd = [*lammps_command(1), "-k", "on", "t", "1", "-sf", "kk", "-in", "in.lmp"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300)
    run = LammpsRun(proc.returncode, proc.stdout + proc.stderr)
    assert run.error_line is not None
    assert "the distance guard is not available in the Kokkos style yet" in run.error_line
