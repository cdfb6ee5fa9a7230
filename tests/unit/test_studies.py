"""The data-size study: nested subsets, one validation set, a learning curve that goes down."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from ase.io import write

from superionic.studies.data_size import learning_curve
from superionic.train.config import load_config
from tests.unit.test_training import labelled_frames


def test_learning_curve_decreases_with_more_frames(tmp_path: Path) -> None:
    write(tmp_path / "data.extxyz", labelled_frames(52))
    config = {
        "data": {"train": ["data.extxyz"], "val_fraction": 0.25},
        "model": {"hidden": [16, 16], "radial_channels": 6, "angular_channels": 3, "l_max": 3},
        "training": {"epochs": 20, "batch_size": 2, "threads": 1, "lr": 0.005},
        "output": "unused",
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    points = learning_curve(load_config(tmp_path / "config.yaml"), [4, 12, 36], tmp_path / "study")
    rmse = [p.val_force_rmse_eV_per_A for p in points]
    assert rmse[0] > rmse[1] > rmse[2], rmse
    table = json.loads((tmp_path / "study" / "learning_curve.json").read_text())
    assert [row["frames"] for row in table] == [4, 12, 36]
    assert (tmp_path / "study" / "learning_curve.png").stat().st_size > 5000
