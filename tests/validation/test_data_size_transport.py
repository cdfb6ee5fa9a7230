"""`superionic study data-size --reference …`: every training size is also judged on transport."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from ase.io import read, write

from superionic.studies.data_size import TransportSettings, learning_curve
from superionic.train.config import load_config

LGPS = Path(__file__).resolve().parents[2] / "data" / "LGPS"


@pytest.mark.slow
def test_each_size_carries_its_validation(tmp_path: Path) -> None:
    write(tmp_path / "frames.extxyz", read(LGPS / "sevennet.extxyz.gz", ":16"))
    config = {
        "data": {"train": ["frames.extxyz"], "val_fraction": 0.25},
        "model": {"hidden": [8], "radial_channels": 4, "angular_channels": 2, "l_max": 2},
        "training": {"epochs": 2, "batch_size": 4, "threads": 1},
        "output": "unused",
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    reference = LGPS / "reference_md_sevennet_1500K.extxyz.gz"
    points = learning_curve(
        load_config(tmp_path / "config.yaml"),
        [4, 12],
        tmp_path / "study",
        transport=TransportSettings([reference], production_ps=2.0),
    )
    rows = list(csv.DictReader((tmp_path / "study" / "learning_curve.csv").open()))
    assert [int(r["frames"]) for r in rows] == [4, 12]
    for point, row in zip(points, rows, strict=True):
        t = point.transport
        assert t is not None and t.temperatures_K == [1500.0]
        report = json.loads(Path(t.validation_json).read_text())
        entry = report["temperatures"][0]
        # The reference D is the committed summary's, recomputed by validate.
        summary = json.loads((LGPS / "reference_md_sevennet_1500K.json").read_text())
        assert t.reference_D_cm2_per_s[0] == pytest.approx(summary["D_Li_cm2_per_s"], rel=1e-3)
        model_d = (entry.get("model") or {}).get("D_cm2_per_s")
        assert t.D_cm2_per_s[0] == model_d
        if model_d is not None:  # a 2 ps run of a 2-epoch model may never turn diffusive: then no ratio
            expected = model_d / t.reference_D_cm2_per_s[0]
            assert float(row["D_ratio_1500K"]) == pytest.approx(expected, rel=1e-9)
        else:
            assert row["D_ratio_1500K"] == ""
    saved = json.loads((tmp_path / "study" / "learning_curve.json").read_text())
    assert saved[1]["transport"]["validation_json"] == points[1].transport.validation_json
    assert (tmp_path / "study" / "learning_curve.png").stat().st_size > 10_000
