"""The reference data committed under data/: valid training input, and consistent with its summary.

Everything here is what tests, the demo and users train on without a generation step, so a file
that stopped being readable, lost its labels or disagrees with its JSON must fail loudly.
"""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest

from superionic.data.dataset import read_structures, validate
from superionic.data.generate import summary_path
from superionic.data.materials import get_material

DATA = Path(__file__).resolve().parents[2] / "data"
LABELLED = sorted(p for p in DATA.glob("*/*.extxyz.gz") if not p.name.startswith("reference_md_"))
REFERENCE_MD = sorted(DATA.glob("*/reference_md_*.extxyz.gz"))


def test_every_material_has_data_and_the_total_stays_small() -> None:
    assert {p.parent.name for p in LABELLED} == {"LGPS", "LLZO", "LYC"}
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 20 * 2**20, f"committed data is {total / 2**20:.1f} MiB; the budget is 20 MB"
    assert len(REFERENCE_MD) >= 2


@pytest.mark.parametrize("path", LABELLED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_labelled_file_is_valid_training_data_and_matches_its_summary(path: Path) -> None:
    frames = read_structures(path)
    validate(frames, str(path))  # forces, energies, finite, one unit system, no overlaps
    summary = json.loads(summary_path(path).read_text())
    spec = get_material(path.parent.name)
    assert len(frames) == summary["frames"] and summary["material"] == spec.name
    assert all(f.info["labeller"] == summary["labeller"] for f in frames)
    # Each frame is the ordered cell: a whole number of formula units of the nominal formula, and
    # the same composition in every frame.
    from ase.formula import Formula

    unit = Formula(spec.formula).count()
    symbols = frames[0].get_chemical_symbols()
    units = len(symbols) / sum(unit.values())
    assert units == int(units) and {s: symbols.count(s) for s in set(symbols)} == {
        s: int(n * units) for s, n in unit.items()
    }, "each frame is the ordered conventional cell"
    assert all(f.get_chemical_formula() == frames[0].get_chemical_formula() for f in frames)
    stress = np.array([f.get_stress() for f in frames])
    assert np.isfinite(stress).all() and stress.shape[1] == 6
    kinds = {f.info["sampling"] for f in frames}
    if summary.get("sampling") == "active_learning":
        # Frames superionic learn picked: each one says where it came from and why it was picked.
        assert kinds == {"active_learning"}
        low, high = summary["config"]["lo"], summary["config"]["hi"]
        for f in frames:
            assert low <= f.info["max_devi_f"] <= high, "only frames inside the deviation band are labelled"
            assert f.info["md_step"] >= 0 and f.info["temperature_K"] in summary["config"]["temperatures"]
        return
    assert kinds == {"md", "strain"}, "MD at several temperatures plus strained cells"


@pytest.mark.parametrize("path", REFERENCE_MD, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reference_trajectory_is_unwrapped_and_its_d_is_stated_with_an_interval(path: Path) -> None:
    frames = read_structures(path)
    summary = json.loads(summary_path(path).read_text())
    assert len(frames) == summary["frames"]
    positions = np.array([f.positions for f in frames])
    # A wrapped coordinate jumps by about a cell length between frames; an unwrapped one moves at
    # most a few Å in one frame interval even at 1500 K (Li thermal speed ~23 Å/ps, 50 fs frames), so
    # half the smallest cell width separates the two cases with a wide margin either side.
    half_width = 0.5 * min(np.linalg.norm(frames[0].cell.array, axis=1))
    assert np.abs(np.diff(positions, axis=0)).max() < half_width, "stored positions must be unwrapped"
    times = np.array([f.info["time_ps"] for f in frames])
    np.testing.assert_allclose(np.diff(times), summary["frame_interval_fs"] / 1000.0, rtol=1e-9)
    assert summary["temperature_mean_K"] == pytest.approx(summary["temperature_K"], rel=0.05)
    if summary["D_Li_cm2_per_s"] is None:
        # The stated window rule found no diffusive regime: said so, never a guessed window.
        assert summary["D_Li_note"].startswith("not determined")
        return
    low, high = summary["D_Li_ci95_cm2_per_s"]
    assert 0 < low < summary["D_Li_cm2_per_s"] < high
    assert "bootstrap" in summary["method"]


def test_the_demo_check_has_a_reference_d_at_1200_k() -> None:
    summary = json.loads((DATA / "LGPS" / "reference_md_sevennet_1200K.json").read_text())
    low, high = summary["D_Li_ci95_cm2_per_s"]
    assert low < summary["D_Li_cm2_per_s"] < high


def _li_positions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Li positions [T, N_Li, 3] with the whole-system centre of mass removed (ASE masses) and the
    frame times, read with ase.io alone: no superionic reader involved."""
    from ase.io import read

    frames = read(path, index=":")
    positions = np.array([f.positions for f in frames])  # stored unwrapped
    masses = frames[0].get_masses()
    com = np.einsum("n,tnk->tk", masses, positions) / masses.sum()
    li = np.array(frames[0].get_chemical_symbols()) == "Li"
    times = np.array([f.info["time_ps"] for f in frames])
    return (positions - (com - com[0])[:, None, :])[:, li], times


def _direct_D(li: np.ndarray, dt: float, window_ps: tuple[float, float]) -> np.ndarray:
    """Per-component D (cm²/s) by O(T²) windowed MSD and OLS over the window: no FFT, no library fit."""
    first, last = (round(w / dt) for w in window_ps)
    lags = np.arange(first, last + 1)
    msd = np.array([((li[k:] - li[:-k]) ** 2).mean(axis=(0, 1)) for k in lags])  # [L, 3]
    slopes = np.polyfit(lags * dt, msd, 1)[0]  # Å²/ps per component
    return slopes / 2 * 1e-4  # MSD_α = 2 D_α t; 1 Å²/ps = 1e-4 cm²/s


# The references with a stated D (the 900 K run is sub-diffusive by the stated rule and says so).
WITH_D = [p for p in REFERENCE_MD if json.loads(summary_path(p).read_text())["D_Li_cm2_per_s"] is not None]


@pytest.mark.slow  # reading 401 extxyz frames with ase takes ~40 s on a busy 2-core machine
@pytest.mark.parametrize("path", WITH_D, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reference_D_is_recomputed_from_its_committed_trajectory(path: Path) -> None:
    """The D the demo compares with is what the committed trajectory gives: the library's estimator
    with the stated rule on positions read independently, and a by-hand MSD fit."""
    from superionic.analysis import tracer_diffusion
    from superionic.data.reference_md import REFERENCE_WINDOW

    summary = json.loads(summary_path(path).read_text())
    li, times = _li_positions(path)
    assert li.shape[1] == summary["li_atoms"] and len(times) == summary["frames"]
    tracer = tracer_diffusion(li, times, rule=REFERENCE_WINDOW, n_bootstrap=1000)
    # The same estimator on the same stored numbers (centre of mass removed here by ase's masses):
    # equal to float64 round-off of the FFT sums (~1e-13 relative), 1e-9 with margin. The seeded
    # bootstrap replays the same resamples, so the interval is reproduced too.
    assert tracer.window_ps == pytest.approx(summary["fit_window_ps"], rel=1e-9)
    assert tracer.diffusion_cm2_per_s == pytest.approx(summary["D_Li_cm2_per_s"], rel=1e-9)
    assert tracer.stderr_cm2_per_s == pytest.approx(summary["D_Li_uncertainty_cm2_per_s"], rel=1e-9)
    assert tracer.ci95_cm2_per_s == pytest.approx(summary["D_Li_ci95_cm2_per_s"], rel=1e-9)
    # By hand over the stated window: direct sums agree with the FFT to ~1e-12 relative and
    # np.polyfit's OLS is the same estimator, so 1e-8 is round-off with margin.
    components = _direct_D(li, summary["frame_interval_fs"] / 1000.0, tuple(summary["fit_window_ps"]))
    np.testing.assert_allclose(components, summary["D_Li_components_cm2_per_s"], rtol=1e-8)
    assert components.mean() == pytest.approx(summary["D_Li_cm2_per_s"], rel=1e-8)


def test_reference_start_cell_is_where_the_reference_trajectories_begin() -> None:
    """The demo's cell: same atoms in the same order as the reference runs' first frame, which is
    2 ps of 1200 K Langevin equilibration away (thermal displacements, median < 1.5 Å; a few Li hop)."""
    start = ase.io.read(DATA / "LGPS" / "reference_md_start.extxyz")
    frame = ase.io.read(DATA / "LGPS" / "reference_md_sevennet_1200K.extxyz.gz", index=0)
    assert start.get_chemical_symbols() == frame.get_chemical_symbols()
    np.testing.assert_allclose(start.cell.array, frame.cell.array)
    fractional = (frame.positions - start.positions) @ np.linalg.inv(start.cell.array)
    fractional -= np.round(fractional)
    displacement = np.linalg.norm(fractional @ start.cell.array, axis=1)
    assert np.median(displacement) < 1.5
