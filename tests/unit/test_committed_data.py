"""The reference data committed under data/: valid training input, and consistent with its summary.

Everything here is what tests, the demo and users train on without a generation step, so a file
that stopped being readable, lost its labels or disagrees with its JSON must fail loudly.
"""

from __future__ import annotations

import json
from pathlib import Path

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
    counts = {s: frames[0].get_chemical_symbols().count(s) for s in spec.cell_counts}
    assert counts == dict(spec.cell_counts), "each frame is the ordered conventional cell"
    stress = np.array([f.get_stress() for f in frames])
    assert np.isfinite(stress).all() and stress.shape[1] == 6
    kinds = {f.info["sampling"] for f in frames}
    assert kinds == {"md", "strain"}, "MD at several temperatures plus strained cells"


@pytest.mark.parametrize("path", REFERENCE_MD, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reference_trajectory_is_unwrapped_and_its_d_is_stated_with_an_interval(path: Path) -> None:
    frames = read_structures(path)
    summary = json.loads(summary_path(path).read_text())
    assert len(frames) == summary["frames"]
    positions = np.array([f.positions for f in frames])
    assert np.abs(np.diff(positions, axis=0)).max() < 2.0, "stored positions must be unwrapped"
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
