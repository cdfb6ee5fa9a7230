"""Trajectory readers: formats agree with each other, and bad files give one clear error each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from superionic.analysis.readers import TrajectoryError, load_ion_positions, open_trajectory

from ._h5md import write_h5md

CELL = np.array([[9.0, 0.0, 0.0], [1.0, 9.5, 0.0], [-0.5, 0.8, 10.0]])


def walk(n_frames: int = 40, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Unwrapped positions of a small Li/S system random-walking through a periodic cell."""
    rng = np.random.default_rng(seed)
    symbols = ["Li"] * 6 + ["S"] * 4
    start = rng.uniform(0, 1, (len(symbols), 3)) @ CELL
    steps = rng.normal(0, 0.3, (n_frames, len(symbols), 3))
    steps[0] = 0
    return start + np.cumsum(steps, axis=0), symbols


def write_extxyz(
    path: Path,
    positions: np.ndarray,
    symbols: list[str],
    wrap: bool,
    dt: float = 0.1,
    times: np.ndarray | None = None,
) -> None:
    frames = []
    for k, pos in enumerate(positions):
        atoms = Atoms(symbols, positions=pos, cell=CELL, pbc=True)
        if wrap:
            atoms.wrap()
        atoms.info["time_ps"] = float(times[k] if times is not None else k * dt)
        frames.append(atoms)
    write(path, frames)


def write_dump(path: Path, positions: np.ndarray, symbols: list[str], every: int = 10) -> None:
    types = {"Li": 1, "S": 2}
    lx, ly, lz = CELL[0, 0], CELL[1, 1], CELL[2, 2]
    xy, xz, yz = CELL[1, 0], CELL[2, 0], CELL[2, 1]
    lines = []
    for k, pos in enumerate(positions):
        lines += [
            "ITEM: TIMESTEP",
            str(k * every),
            "ITEM: NUMBER OF ATOMS",
            str(len(symbols)),
            "ITEM: BOX BOUNDS xy xz yz pp pp pp",
            f"{min(0, xy, xz, xy + xz)} {lx + max(0, xy, xz, xy + xz)} {xy}",
            f"{min(0, yz)} {ly + max(0, yz)} {xz}",
            f"0 {lz} {yz}",
            "ITEM: ATOMS id type xu yu zu",
        ]
        order = np.arange(len(symbols))[::-1]  # unsorted on purpose: readers sort by id
        lines += [
            f"{i + 1} {types[symbols[i]]} {pos[i, 0]:.10f} {pos[i, 1]:.10f} {pos[i, 2]:.10f}" for i in order
        ]
    path.write_text("\n".join(lines) + "\n")


def test_wrapped_extxyz_and_dump_custom_give_the_same_ions(tmp_path: Path) -> None:
    positions, symbols = walk()
    write_extxyz(tmp_path / "wrapped.extxyz", positions, symbols, wrap=True)
    write_dump(tmp_path / "run.dump", positions, symbols)
    wrapped = load_ion_positions(open_trajectory(tmp_path / "wrapped.extxyz"), "Li")
    dumped = load_ion_positions(open_trajectory(tmp_path / "run.dump", ["Li", "S"], timestep_ps=0.01), "Li")
    assert wrapped.unwrapped_by == "minimum-image jumps"
    np.testing.assert_allclose(wrapped.positions, dumped.positions, atol=1e-6)
    np.testing.assert_allclose(wrapped.times_ps, dumped.times_ps, atol=1e-12)
    assert wrapped.positions.shape == (40, 6, 3)


def test_too_fast_wrapped_motion_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    positions = rng.uniform(0, 9, (5, 10, 3))  # uncorrelated frames: any unwrap would be a guess
    write_extxyz(tmp_path / "jumpy.extxyz", positions, ["Li"] * 6 + ["S"] * 4, wrap=True)
    with pytest.raises(TrajectoryError, match=r"image flags \(ix iy iz\) or unwrapped coordinates"):
        load_ion_positions(open_trajectory(tmp_path / "jumpy.extxyz"), "Li")


def test_truncated_files(tmp_path: Path) -> None:
    positions, symbols = walk(6)
    write_dump(tmp_path / "run.dump", positions, symbols)
    text = (tmp_path / "run.dump").read_text()
    (tmp_path / "cut.dump").write_text(text[: len(text) - 60])
    with pytest.raises(TrajectoryError, match=r"cut\.dump: (truncated|frame at step)"):
        load_ion_positions(open_trajectory(tmp_path / "cut.dump", ["Li", "S"], timestep_ps=0.01), "Li")
    (tmp_path / "cut.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(TrajectoryError, match=r"cut\.h5: the HDF5 file is damaged or truncated \(HDF5: "):
        open_trajectory(tmp_path / "cut.h5")
    # A real H5MD file cut in half, as a copy that stopped: the message gives both sizes.
    whole = write_h5md(tmp_path / "whole.h5", positions, np.eye(3) * 10.0, symbols, 0.01).read_bytes()
    (tmp_path / "half.h5").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TrajectoryError) as cut:
        open_trajectory(tmp_path / "half.h5")
    assert f"the HDF5 file is truncated: {len(whole) // 2} of its {len(whole)} bytes are there" in str(
        cut.value
    )


def test_one_frame_absent_ion_and_uneven_times(tmp_path: Path) -> None:
    positions, symbols = walk(12)
    write_extxyz(tmp_path / "one.extxyz", positions[:1], symbols, wrap=False)
    with pytest.raises(TrajectoryError, match="1 frame"):
        load_ion_positions(open_trajectory(tmp_path / "one.extxyz"), "Li")
    write_extxyz(tmp_path / "ok.extxyz", positions, symbols, wrap=False)
    with pytest.raises(TrajectoryError, match="no Na atoms; the trajectory holds Li, S"):
        load_ion_positions(open_trajectory(tmp_path / "ok.extxyz"), "Na")
    times = np.arange(12) * 0.1
    times[7:] += 0.05
    write_extxyz(tmp_path / "uneven.extxyz", positions, symbols, wrap=False, times=times)
    with pytest.raises(TrajectoryError, match="not evenly spaced in time"):
        load_ion_positions(open_trajectory(tmp_path / "uneven.extxyz"), "Li")


def test_dump_without_types_or_timestep_is_refused(tmp_path: Path) -> None:
    positions, symbols = walk(3)
    write_dump(tmp_path / "run.dump", positions, symbols)
    with pytest.raises(TrajectoryError, match="--types"):
        open_trajectory(tmp_path / "run.dump", timestep_ps=0.01)
    with pytest.raises(TrajectoryError, match="--timestep-ps"):
        open_trajectory(tmp_path / "run.dump", ["Li", "S"])


def test_xdatcar_is_read_and_unwrapped(tmp_path: Path) -> None:
    positions, symbols = walk(15)
    frames = []
    for pos in positions:
        atoms = Atoms(symbols, positions=pos, cell=CELL, pbc=True)
        atoms.wrap()
        frames.append(atoms)
    write(tmp_path / "XDATCAR", frames, format="vasp-xdatcar")
    ions = load_ion_positions(open_trajectory(tmp_path / "XDATCAR", timestep_ps=0.1), "Li")
    reference = positions[:, :6] - positions[0, :6] + ions.positions[0]
    assert ions.unwrapped_by == "minimum-image jumps"
    com_shift = ions.positions - reference
    np.testing.assert_allclose(com_shift - com_shift[:, :1], 0, atol=1e-5)  # equal up to the removed drift


def test_large_trajectories_spill_to_float32_on_disk_and_give_the_same_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path a 10k x 10k file takes (float32 temporary file, per-atom slopes chunk by chunk),
    forced on a small file and checked against the in-memory float64 path."""
    from superionic.analysis import diffusion, readers
    from superionic.analysis.diffusion import tracer_diffusion
    from superionic.analysis.msd import msd_fft

    positions, symbols = walk(n_frames=400, seed=3)
    write_dump(tmp_path / "run.dump", positions, symbols)

    def analyse() -> tuple[np.ndarray, float, tuple[float, float], np.dtype, str | None]:
        ions = load_ion_positions(open_trajectory(tmp_path / "run.dump", ["Li", "S"], timestep_ps=0.01), "Li")
        msd = msd_fft(ions.positions)
        result = tracer_diffusion(ions.positions, ions.times_ps, window_ps=(0.2, 1.2), n_bootstrap=200)
        base = ions.positions.base
        spilled = getattr(base, "filename", None)
        dtype = ions.positions.dtype
        ions.close()
        return msd, result.diffusion_cm2_per_s, result.ci95_cm2_per_s, dtype, spilled

    msd, value, interval, dtype, spilled = analyse()
    assert dtype == np.float64 and spilled is None
    monkeypatch.setattr(readers, "MEMMAP_BYTES", 0)
    monkeypatch.setattr(diffusion, "_SINGLE_PASS_BYTES", 0)
    msd_large, value_large, interval_large, dtype_large, spilled_large = analyse()
    assert dtype_large == np.float32 and spilled_large is not None
    assert not Path(spilled_large).exists(), "close() removes the temporary file"
    np.testing.assert_allclose(msd_large, msd, rtol=1e-5, atol=1e-6)
    assert value_large == pytest.approx(value, rel=1e-5)
    np.testing.assert_allclose(interval_large, interval, rtol=1e-5)
