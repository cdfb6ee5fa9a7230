"""fix superionic/h5md and `superionic md`: H5MD files checked against LAMMPS's own dump,
a third-party reader, a killed run, a resumed run, triclinic boxes and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.io import write

from superionic.data.examples import jittered_lattice
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps

ELEMENTS = ["Li", "Ge", "P", "S"]
SUPERIONIC = [sys.executable, "-m", "superionic.cli"]


def md_input(model: Path, fix_line: str, extra: str = "", steps: int = 100, ensemble: str = "nvt") -> str:
    thermostat = {
        "nvt": "fix md all nvt temp 1200 1200 0.2",
        "npt": "fix md all npt temp 1200 1200 0.2 tri 0 0 1.0",
    }[ensemble]
    return f"""units metal
atom_style atomic
read_data structure.data
pair_style superionic
pair_coeff * * {model} {" ".join(ELEMENTS)}
velocity all create 1200 8271 loop all
timestep 0.002
{thermostat}
{fix_line}
{extra}
thermo 50
run {steps}
"""


def read_dump(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-atom rows and the box (lx, ly, lz, xy, xz, yz) of every frame of a dump custom file."""
    frames, boxes = [], []
    for block in path.read_text().split("ITEM: TIMESTEP\n")[1:]:
        lines = block.splitlines()
        bounds = np.array([[float(x) for x in lines[k].split()] for k in (4, 5, 6)])
        if bounds.shape[1] == 3:
            (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo, zhi, yz) = bounds
            xlo = xlo_b - min(0.0, xy, xz, xy + xz)
            xhi = xhi_b - max(0.0, xy, xz, xy + xz)
            ylo, yhi = ylo_b - min(0.0, yz), yhi_b - max(0.0, yz)
        else:
            (xlo, xhi), (ylo, yhi), (zlo, zhi) = bounds
            xy = xz = yz = 0.0
        boxes.append(np.array([xhi - xlo, yhi - ylo, zhi - zlo, xy, xz, yz]))
        frames.append(np.array([[float(x) for x in row.split()] for row in lines[8:]]))
    return np.array(frames), boxes


def unwrapped(h5: Path, group: str = "all") -> np.ndarray:
    with h5py.File(h5, "r") as f:
        g = f[f"particles/{group}"]
        pos = g["position/value"][:].astype(np.float64)
        return pos + np.einsum("fni,fij->fnj", g["image/value"][:], g["box/edges/value"][:])


@pytest.fixture()
def cell(tmp_path: Path) -> Path:
    write_lammps_data(
        tmp_path / "structure.data", jittered_lattice((5, 5, 5), tilt=(0.9, -0.6, 0.4), seed=7), ELEMENTS
    )
    return tmp_path


def test_two_ranks_equal_dump_custom_and_one_rank(cell: Path, exported) -> None:
    model = exported.path("local")
    runs = {}
    for nprocs in (1, 2):
        work = cell / f"np{nprocs}"
        work.mkdir()
        (work / "structure.data").write_bytes((cell / "structure.data").read_bytes())
        dump = "dump d all custom 10 atoms.dump id xu yu zu\ndump_modify d sort id format float %.17g"
        text = md_input(model, "fix traj all superionic/h5md 10 traj.h5", dump)
        (work / "in.lmp").write_text(text)
        run_lammps("in.lmp", work, nprocs=nprocs)
        runs[nprocs] = unwrapped(work / "traj.h5")
        reference, _ = read_dump(work / "atoms.dump")
        with h5py.File(work / "traj.h5") as f:
            assert list(f["particles/all/position/step"][:]) == list(range(0, 101, 10))
            np.testing.assert_array_equal(f["particles/all/id"][:], reference[0, :, 0])
            assert f["particles/all/position/value"].dtype == np.float32
        # float32 positions (images keep them exact): agreement to single precision of the box size
        np.testing.assert_allclose(runs[nprocs], reference[:, :, 1:4], rtol=0, atol=2e-5)
    np.testing.assert_allclose(runs[2], runs[1], rtol=0, atol=2e-5)


def test_double_precision_is_exact_and_third_party_reader_agrees(cell: Path, exported) -> None:
    from MDAnalysis.coordinates.H5MD import H5MDReader

    dump = "dump d all custom 20 atoms.dump id xu yu zu vx vy vz\ndump_modify d sort id format float %.17g"
    fix = "fix traj all superionic/h5md 20 traj.h5 positions double velocity yes force yes"
    (cell / "in.lmp").write_text(md_input(exported.path("local"), fix, dump))
    run_lammps("in.lmp", cell, nprocs=2)
    reference, _ = read_dump(cell / "atoms.dump")
    np.testing.assert_array_equal(unwrapped(cell / "traj.h5"), reference[:, :, 1:4])
    with h5py.File(cell / "traj.h5") as f:
        np.testing.assert_array_equal(f["particles/all/velocity/value"][:], reference[:, :, 4:7])
        positions = f["particles/all/position/value"][:]
        edges = f["particles/all/box/edges/value"][:]
        assert f["h5md"].attrs["version"].tolist() == [1, 1]
    reader = H5MDReader(str(cell / "traj.h5"), convert_units=False)
    assert reader.n_frames == len(positions) == 6 and reader.n_atoms == 125
    for k, ts in enumerate(reader):
        np.testing.assert_allclose(ts.positions, positions[k], atol=1e-5)
        a, b, c = edges[k]
        lengths = [np.linalg.norm(v) for v in (a, b, c)]
        np.testing.assert_allclose(ts.dimensions[:3], lengths, rtol=1e-6)


def test_triclinic_box_round_trips_every_frame(cell: Path, exported) -> None:
    dump = "dump d all custom 10 atoms.dump id xu yu zu\ndump_modify d sort id format float %.17g"
    fix = "fix traj all superionic/h5md 10 traj.h5 positions double"
    (cell / "in.lmp").write_text(md_input(exported.path("local"), fix, dump, steps=60, ensemble="npt"))
    run_lammps("in.lmp", cell, nprocs=2)
    reference, boxes = read_dump(cell / "atoms.dump")
    with h5py.File(cell / "traj.h5") as f:
        edges = f["particles/all/box/edges/value"][:]
    assert len({tuple(np.round(b, 6)) for b in boxes}) > 3, "the barostat should change the box"
    for k, (lx, ly, lz, xy, xz, yz) in enumerate(boxes):
        np.testing.assert_allclose(edges[k], [[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]], atol=1e-9)
    np.testing.assert_allclose(unwrapped(cell / "traj.h5"), reference[:, :, 1:4], atol=1e-9)


def test_group_subset_and_charges(cell: Path, exported) -> None:
    fix = "group li type 1\nfix traj li superionic/h5md 25 li.h5 types Li Ge P S charges 1 4 5 -2"
    (cell / "in.lmp").write_text(md_input(exported.path("local"), fix, steps=50))
    run_lammps("in.lmp", cell)
    with h5py.File(cell / "li.h5") as f:
        g = f["particles/li"]
        assert set(g["species"][:]) == {1}
        assert np.all(g["charge"][:] == 1.0)
        assert g["position/value"].shape[1] == len(g["id"][:]) > 10
        assert list(f["parameters/superionic"].attrs["type_names"]) == ELEMENTS


def test_killed_run_keeps_frames_and_md_resumes_without_gap(tmp_path: Path, exported) -> None:
    write(tmp_path / "cell.extxyz", jittered_lattice((5, 5, 5), seed=9))
    args = [
        *SUPERIONIC,
        "md",
        str(tmp_path / "cell.extxyz"),
        str(exported.path("local")),
        "-T",
        "900",
        "--steps",
        "3000",
        "--eq-steps",
        "100",
        "--dump-every",
        "20",
        "--restart-every",
        "250",
        "--np",
        "2",
        "-o",
        str(tmp_path / "md"),
    ]
    trajectory = tmp_path / "md" / "T900K" / "traj.h5"
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    frames = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        restarts = list((tmp_path / "md" / "T900K").glob("restart.[0-9]*.lammps"))
        if len(restarts) >= 2:
            break
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job: the driver, mpirun and both lmp ranks
    proc.wait()
    # Only the driver is our child; wait until every killed rank is gone (and its file lock with it).
    gone_by = time.monotonic() + 30
    while time.monotonic() < gone_by:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    with h5py.File(trajectory, "r") as f:
        steps = f["particles/all/position/step"][:]
        frames = len(steps)
        values = f["particles/all/position/value"][:frames]
    assert 0 < frames < (3000 - 100) // 20 + 1, "the kill should land mid-run"
    assert np.all(np.isfinite(values)) and np.all(np.diff(steps) == 20)
    before = unwrapped(trajectory)[:frames]

    finished = subprocess.run(args, capture_output=True, text=True, check=True)
    assert "resumed from step" in finished.stdout
    with h5py.File(trajectory, "r") as f:
        steps = f["particles/all/position/step"][:]
    assert list(steps) == list(range(100, 3001, 20)), "gap or duplicate after resume"
    after = unwrapped(trajectory)
    resumed_from = int(finished.stdout.split("resumed from step ")[1].split(";")[0])
    kept = int(np.searchsorted(np.arange(100, 3001, 20), resumed_from))
    np.testing.assert_array_equal(after[:kept], before[:kept])


@pytest.mark.parametrize(
    ("fix_line", "words"),
    [
        ("fix traj all superionic/h5md 10 /nonexistent_dir/traj.h5", ["cannot create", "nonexistent_dir"]),
        ("fix traj all superionic/h5md 10 traj.h5 bogus 1", ["unknown keyword 'bogus'"]),
        ("group none id 999999\nfix traj none superionic/h5md 10 traj.h5", ["group none has no atoms"]),
        (
            "fix traj all superionic/h5md 10 existing.h5",
            ["existing.h5 exists", "append yes", "overwrite yes"],
        ),
        ("fix traj all superionic/h5md 0 traj.h5", ["N must be a positive number"]),
    ],
    ids=["unwritable", "unknown_keyword", "empty_group", "existing_file", "bad_interval"],
)
def test_bad_input_is_one_clear_error(cell: Path, exported, fix_line: str, words: list[str]) -> None:
    (cell / "existing.h5").write_bytes(b"precious")
    (cell / "in.lmp").write_text(md_input(exported.path("local"), fix_line, steps=10))
    run = run_lammps("in.lmp", cell, nprocs=2, check=False)
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR")]
    assert run.returncode != 0 and len(errors) == 1, run.output[-2000:]
    for word in words:
        assert word in errors[0], errors[0]
    assert (cell / "existing.h5").read_bytes() == b"precious"


def test_md_refuses_unknown_species_before_lammps(tmp_path: Path, exported) -> None:
    atoms = jittered_lattice((3, 3, 3), seed=1)
    atoms.symbols[0] = "Cl"
    write(tmp_path / "cell.extxyz", atoms)
    out = tmp_path / "md"
    proc = subprocess.run(
        [
            *SUPERIONIC,
            "md",
            str(tmp_path / "cell.extxyz"),
            str(exported.path("local")),
            "-T",
            "600",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "element(s) Cl not in model" in proc.stderr and proc.stderr.count("\n") == 1
    assert not list(out.rglob("lammps.out")), "LAMMPS must not have started"


def test_temperatures_run_side_by_side_give_the_runs_of_one_at_a_time(tmp_path: Path, exported) -> None:
    from superionic.md.driver import MdConfig, run_md

    write(tmp_path / "cell.extxyz", jittered_lattice((3, 3, 3), seed=4))
    runs = {}
    for parallel in (1, 2):
        config = MdConfig(
            structure=str(tmp_path / "cell.extxyz"),
            model=str(exported.path("local")),
            temperatures=[700.0, 500.0],
            steps=120,
            eq_steps=20,
            dump_every=20,
            restart_every=60,
            parallel=parallel,
            output=str(tmp_path / f"parallel{parallel}"),
            allow_small_cell=True,  # 7.8 Å: cheap, and what is compared is the scheduling, not physics
        )
        summary = run_md(config)
        assert [r.temperature_K for r in summary.runs] == [700.0, 500.0], "summary in the order asked"
        runs[parallel] = {r.temperature_K: unwrapped(Path(r.trajectory)) for r in summary.runs}
        log = (tmp_path / f"parallel{parallel}" / "T700K" / "lammps.out").read_text()
        if parallel == 2 and (os.cpu_count() or 1) <= 2:
            assert "1 torch threads per rank" in log, "side-by-side runs share the cores"
    for temperature in (700.0, 500.0):
        # Same seeds, same dynamics; torch thread counts differ (1 vs auto), so round-off may differ.
        np.testing.assert_allclose(runs[2][temperature], runs[1][temperature], rtol=0, atol=1e-6)
