"""`superionic md` killed mid-run and resumed against the same run left alone, same seed.

LAMMPS restart files carry positions, velocities, image flags and the Nosé–Hoover thermostat's
state (fix nvt writes it), so a resumed run continues the same trajectory. What can differ is the
order of floating-point sums: the resumed run rebuilds its neighbour list (and atom sort) at the
restart step, where the uninterrupted run kept an older one, so forces differ in the last bit and
MD's chaos amplifies that. The comparison is therefore bitwise up to and including the resume step,
and to a stated tolerance after it. The trajectory holds every frame exactly once.
"""

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

SUPERIONIC = [sys.executable, "-m", "superionic.cli"]
STEPS, EQ_STEPS, DUMP_EVERY, RESTART_EVERY = 500, 100, 20, 100
KILL_AFTER = 300  # the kill waits for this restart file, so at most STEPS − KILL_AFTER steps follow the seam
FRAMES = list(range(EQ_STEPS, STEPS + 1, DUMP_EVERY))
# After the seam the runs differ by summation order only: the velocities first differ by ~3e-14 Å/ps
# (a few ulps of ~10 Å/ps) and that grows about tenfold per 100 steps (a Lyapunov time of ~0.09 ps
# at 1200 K). Measured with this model: 4.8e-11 Å/ps 200 steps after a resume at step 300 on this
# cell, 1.7e-8 Å/ps 500 steps after one on a 64-atom cell. 1e-5 Å/ps leaves a margin of 500 even
# over 500 steps of growth (≤ 200 here), while a resume that lost the velocities or the thermostat
# state, or redrew them from the seed, is off by ~1 Å/ps.
VELOCITY_TOL = 1e-5  # Å/ps
# Positions are stored in float32 (the writer's default): the chaos-grown difference (≲ 1e-10 Å)
# stays below their resolution, a few ulps of ~10 Å ≈ 1e-6 Å.
POSITION_TOL = 1e-5  # Å


def md_args(structure: Path, model: Path, output: Path) -> list[str]:
    return [
        *SUPERIONIC, "md", str(structure), str(model), "-T", "1200",
        "--steps", str(STEPS), "--eq-steps", str(EQ_STEPS), "--dump-every", str(DUMP_EVERY),
        "--restart-every", str(RESTART_EVERY), "--np", "1", "--seed", "4711", "-o", str(output),
    ]  # fmt: skip


def read(trajectory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(trajectory, "r") as f:
        g = f["particles/all"]
        steps = g["position/step"][:]
        n = len(steps)
        edges = g["box/edges/value"][:n]
        unwrapped = g["position/value"][:n].astype(np.float64) + np.einsum(
            "fni,fij->fnj", g["image/value"][:n].astype(np.float64), edges
        )
        return steps, unwrapped, g["velocity/value"][:n]


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, mpirun and the lmp rank
    proc.wait()
    gone_by = time.monotonic() + 30
    while time.monotonic() < gone_by:  # until every killed rank (and its HDF5 file lock) is gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@pytest.mark.slow  # three 500-step runs of 125 atoms through the CLI: ~1–2 min on a busy 2-core machine
def test_killed_and_resumed_run_equals_the_uninterrupted_one(tmp_path: Path, exported) -> None:
    structure = tmp_path / "cell.extxyz"
    # 125 sites (13 Å wide: more than twice the model's 5 Å receptive field) holding five formula
    # units of Li10GeP2S12, so the cell is charge neutral for `superionic md`'s structure checks.
    atoms = jittered_lattice((5, 5, 5), seed=21)
    symbols = ["Li"] * 50 + ["Ge"] * 5 + ["P"] * 10 + ["S"] * 60
    atoms.set_chemical_symbols(list(np.random.default_rng(21).permutation(symbols)))
    write(structure, atoms)
    model = exported.path("local")

    reference = md_args(structure, model, tmp_path / "straight")
    subprocess.run(reference, capture_output=True, text=True, check=True)
    steps_ref, pos_ref, vel_ref = read(tmp_path / "straight" / "T1200K" / "traj.h5")
    assert list(steps_ref) == FRAMES

    args = md_args(structure, model, tmp_path / "killed")
    directory = tmp_path / "killed" / "T1200K"
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (directory / f"restart.{KILL_AFTER}.lammps").exists():
            break
        time.sleep(0.02)
    kill_group(proc)
    assert not (directory / "restart.final.lammps").exists(), "the kill should land mid-run"
    steps_killed, pos_killed, _ = read(directory / "traj.h5")
    assert 0 < len(steps_killed) < len(FRAMES)

    finished = subprocess.run(args, capture_output=True, text=True, check=True)
    resumed_from = int(finished.stdout.split("resumed from step ")[1].split(";")[0])
    assert KILL_AFTER <= resumed_from < STEPS and resumed_from % RESTART_EVERY == 0
    steps, pos, vel = read(directory / "traj.h5")
    # Each frame exactly once, in order, no gap at the seam.
    assert list(steps) == FRAMES, "gap or duplicate after resume"
    # Up to and including the resume step the files are the same run: bit for bit.
    seam = FRAMES.index(resumed_from)
    np.testing.assert_array_equal(pos[: seam + 1], pos_ref[: seam + 1])
    np.testing.assert_array_equal(vel[: seam + 1], vel_ref[: seam + 1])
    # What the killed run had written before the seam was kept, not rewritten.
    np.testing.assert_array_equal(pos[:seam], pos_killed[:seam])
    # After it: the same trajectory up to the chaos-grown round-off stated above.
    position_error = np.abs(pos - pos_ref).max()
    velocity_error = np.abs(vel - vel_ref).max()
    print(
        f"\n[resume] from step {resumed_from}: max |Δr| {position_error:.2e} Å, "
        f"max |Δv| {velocity_error:.2e} Å/ps"
    )
    assert position_error < POSITION_TOL and velocity_error < VELOCITY_TOL
    # And the run is not frozen: atoms move far more than the tolerance over the run.
    assert np.abs(pos_ref[-1] - pos_ref[seam]).max() > 0.1


@pytest.mark.slow
def test_a_finished_run_extended_equals_the_longer_run(tmp_path: Path, exported) -> None:
    """`superionic md --extend --steps 500` on a finished 300-step run continues it from its final
    restart: the trajectory gains the frames 300…500 once each, bit for bit up to step 300 and to the
    same round-off as a resume after it; without --extend the finished run is refused."""
    structure = tmp_path / "cell.extxyz"
    atoms = jittered_lattice((5, 5, 5), seed=21)
    symbols = ["Li"] * 50 + ["Ge"] * 5 + ["P"] * 10 + ["S"] * 60
    atoms.set_chemical_symbols(list(np.random.default_rng(21).permutation(symbols)))
    write(structure, atoms)
    model = exported.path("local")
    subprocess.run(
        md_args(structure, model, tmp_path / "straight"), capture_output=True, text=True, check=True
    )
    _, pos_ref, vel_ref = read(tmp_path / "straight" / "T1200K" / "traj.h5")

    short = [a if a != str(STEPS) else "300" for a in md_args(structure, model, tmp_path / "short")]
    subprocess.run(short, capture_output=True, text=True, check=True)
    refused = subprocess.run(md_args(structure, model, tmp_path / "short"), capture_output=True, text=True)
    assert refused.returncode == 2 and "--extend" in refused.stderr
    extended = subprocess.run(
        [*md_args(structure, model, tmp_path / "short"), "--extend"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "resumed from step 300" in extended.stdout
    steps, pos, vel = read(tmp_path / "short" / "T1200K" / "traj.h5")
    assert list(steps) == FRAMES
    seam = FRAMES.index(300)
    np.testing.assert_array_equal(pos[: seam + 1], pos_ref[: seam + 1])
    assert np.abs(pos - pos_ref).max() < POSITION_TOL and np.abs(vel - vel_ref).max() < VELOCITY_TOL
