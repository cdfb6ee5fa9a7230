"""`superionic study architecture`: two model configs on one data section, errors, transport and cost."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read, write

from superionic.data.dataset import split_indices
from superionic.md.speed import MIN_TIMED_S
from superionic.studies.architecture import (
    ArchitectureError,
    architecture_study,
    d_change,
    per_core,
    two_rank_steps,
)
from superionic.train.config import load_config
from superionic.validation.metrics import evaluate_model

LGPS = Path(__file__).resolve().parents[2] / "data" / "LGPS"
REFERENCE = LGPS / "reference_md_sevennet_1500K.extxyz.gz"


def _config(tmp_path: Path, name: str, model: dict, val_fraction: float = 0.25) -> Path:
    config = {
        "data": {"train": ["frames.extxyz"], "val_fraction": val_fraction},
        "model": model,
        "training": {"epochs": 2, "batch_size": 4, "threads": 1},
        "output": "unused",
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_two_sprinters_compared_on_errors_transport_and_cost(tmp_path: Path) -> None:
    frames = read(LGPS / "sevennet.extxyz.gz", ":16")
    write(tmp_path / "frames.extxyz", frames)
    small = _config(
        tmp_path, "small", {"hidden": [8], "radial_channels": 4, "angular_channels": 2, "l_max": 0}
    )
    large = _config(
        tmp_path, "large", {"hidden": [24, 24], "radial_channels": 6, "angular_channels": 3, "l_max": 3}
    )
    configs = [(p.stem, load_config(p)) for p in (small, large)]
    cell = read(REFERENCE, index=0)
    result = architecture_study(
        configs, [REFERENCE], cell, tmp_path / "study", production_ps=2.0, timing_steps=40
    )

    a, b = result.rows
    assert (a.name, b.name) == ("small", "large")
    # More descriptors and a wider MLP: more parameters, and a costlier force call in LAMMPS.
    assert b.parameters > a.parameters
    assert b.speed.cpu_atom_steps_per_s < a.speed.cpu_atom_steps_per_s
    for row in result.rows:
        s = row.speed
        # At least the steps asked; more when 40 steps were too short for LAMMPS's CPU clock.
        assert s.atoms == 50 and s.steps >= 40 and (s.steps == 40 or s.wall_s >= MIN_TIMED_S)
        assert s.wall_atom_steps_per_s == pytest.approx(50 * s.steps / s.wall_s, rel=1e-12)
        assert 0 < s.cpu_share <= 1.0 + 1e-9
        assert s.cpu_atom_steps_per_s >= s.wall_atom_steps_per_s
        # The same cell on two ranks, timed for about TWO_RANK_TIMING_S at the one-rank speed.
        two = row.speed_2ranks
        assert two is not None and (two.atoms, two.ranks) == (50, 2)
        assert two.steps >= two_rank_steps(s, 40) >= 10
        assert per_core(two) == pytest.approx(two.cpu_atom_steps_per_s / 2, rel=1e-12)
    # Both models are scored on the same held-out frames: `superionic evaluate` of the exported file
    # on exactly those frames gives the study's RMSE.
    _, val_idx = split_indices(len(frames), 0.25, 0)
    write(tmp_path / "val.extxyz", [frames[i] for i in val_idx])
    for row in result.rows:
        again = evaluate_model(row.model, [tmp_path / "val.extxyz"], tmp_path / f"eval_{row.name}")
        assert row.val_force_rmse_eV_per_A == pytest.approx(again.metrics["force_rmse_eV_per_A"], rel=1e-6)
    # The verdict's cost factor and D change are the rows' numbers.
    cost = a.speed.cpu_atom_steps_per_s / b.speed.cpu_atom_steps_per_s
    assert f"costs {cost:.1f}×" in result.verdict
    two_cost = per_core(a.speed_2ranks) / per_core(b.speed_2ranks)
    assert f"{two_cost:.1f}× per core on 2 ranks" in result.verdict
    change = d_change(a.transport, b.transport, 0)
    da, db = a.transport.D_cm2_per_s[0], b.transport.D_cm2_per_s[0]
    if change is None:
        assert da is None or db is None
    else:
        assert change[0] == pytest.approx(100 * (db / da - 1), rel=1e-12)
        la = np.log(a.transport.D_ci95_cm2_per_s[0])
        lb = np.log(b.transport.D_ci95_cm2_per_s[0])
        s = math.hypot((la[1] - la[0]) / 3.92, (lb[1] - lb[0]) / 3.92)
        assert change[1] == pytest.approx(100 * db / da * s, rel=1e-2)  # 3.92 vs 2·1.95996
    saved = json.loads(Path(result.outputs["json"]).read_text())
    assert [r["name"] for r in saved["rows"]] == ["small", "large"]
    assert Path(result.outputs["png"]).stat().st_size > 10_000
    # A rerun reuses the finished rows.
    again = architecture_study(configs, [REFERENCE], cell, tmp_path / "study", production_ps=2.0)
    assert again.rows == result.rows
    # A run killed after a model's training (its row not yet written) reuses that training.
    checkpoint = Path(b.model).parent / "train" / "best.ckpt"
    stamp = checkpoint.stat().st_mtime_ns
    (Path(b.model).parent / "row.json").unlink()
    resumed = architecture_study(
        configs, [REFERENCE], cell, tmp_path / "study", production_ps=2.0, timing_steps=10
    )
    assert checkpoint.stat().st_mtime_ns == stamp
    assert resumed.rows[1].val_force_rmse_eV_per_A == b.val_force_rmse_eV_per_A
    assert resumed.rows[1].train_wall_s == b.train_wall_s and resumed.rows[1].speed.steps >= 10
    assert resumed.rows[1].speed_2ranks.steps >= 10


def test_configs_with_different_data_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "frames.extxyz", read(LGPS / "sevennet.extxyz.gz", ":4"))
    one = _config(tmp_path, "one", {"l_max": 0})
    two = _config(tmp_path, "two", {"l_max": 0}, val_fraction=0.5)
    configs = [(p.stem, load_config(p)) for p in (one, two)]
    with pytest.raises(ArchitectureError, match=r"two: data.val_fraction differs from one's"):
        architecture_study(configs, [REFERENCE], read(REFERENCE, index=0), tmp_path / "study")
