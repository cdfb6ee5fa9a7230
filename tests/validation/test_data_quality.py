"""`superionic study data-quality` end to end on LGPS frames, with the real CHGNet as the second labeller.

Checked against independent evaluations: the label gap against CHGNet's own calculator on the same
frames, each model's RMSE against `superionic evaluate` of the exported file, the transport rows
against the validation JSON, and a killed relabelling that resumes to the same labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read, write

from superionic.data.labellers import make_labeller
from superionic.studies.data_quality import DataQualityError, data_quality_study, relabel
from superionic.train.config import load_config
from superionic.validation.metrics import evaluate_model

REPO = Path(__file__).resolve().parents[2]
LGPS = REPO / "data" / "LGPS"
FRAMES = 16


def _config(tmp_path: Path, **data: object) -> Path:
    write(tmp_path / "frames.extxyz", read(LGPS / "sevennet.extxyz.gz", f":{FRAMES}"))
    config = {
        "data": {"train": ["frames.extxyz"], "val_fraction": 0.25, **data},
        "model": {"hidden": [8], "radial_channels": 4, "angular_channels": 2, "l_max": 2},
        "training": {"epochs": 2, "batch_size": 4, "threads": 1},
        "output": "unused",
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_data_quality_study_on_lgps_frames(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    reference = LGPS / "reference_md_sevennet_1500K.extxyz.gz"
    result = data_quality_study(config, "chgnet", [reference], tmp_path / "study", production_ps=2.0)

    # The label gap, recomputed with CHGNet's calculator on three of the frames.
    high = read(tmp_path / "frames.extxyz", ":")
    chgnet = make_labeller("chgnet").calculator
    diffs = []
    for atoms in high[:3]:
        copy = atoms.copy()
        copy.calc = chgnet
        diffs.append(copy.get_forces() - atoms.get_forces())
    low = read(tmp_path / "study" / "labels_chgnet.extxyz", ":")
    np.testing.assert_allclose(
        np.concatenate([lo.get_forces() - hi.get_forces() for hi, lo in zip(high[:3], low[:3], strict=True)]),
        np.concatenate(diffs),
        atol=1e-5,  # CHGNet evaluates in float32: repeated calls agree to ~1e-6 eV/Å
    )
    gap = result.label_gap
    assert gap.frames == FRAMES
    all_df = np.concatenate([lo.get_forces() - hi.get_forces() for hi, lo in zip(high, low, strict=True)])
    assert gap.force_rmse_eV_per_A == pytest.approx(float(np.sqrt(np.mean(all_df**2))), rel=1e-9)
    # Two different universal potentials on a sulfide: the gap is real, not a copy of the labels.
    assert gap.force_rmse_eV_per_A > 0.05

    high_row, low_row = result.rows
    assert (high_row.labels, low_row.labels) == ("high", "low")
    assert low_row.labeller == "chgnet"
    # The RMSE on the high-fidelity validation labels equals `superionic evaluate` of the same file.
    val = tmp_path / "study" / "val_high.extxyz"
    assert len(read(val, ":")) == FRAMES // 4
    for row in result.rows:
        again = evaluate_model(row.model, [val], tmp_path / f"again_{row.labels}")
        expected = again.metrics["force_rmse_eV_per_A"]
        assert row.high_val_force_rmse_eV_per_A == pytest.approx(expected, rel=1e-9)
    # The high-fidelity model's own validation labels are the high-fidelity ones.
    own = high_row.own_val_force_rmse_eV_per_A
    assert own == pytest.approx(high_row.high_val_force_rmse_eV_per_A, rel=1e-6)

    # Transport rows are the validation report's numbers.
    report = json.loads(Path(low_row.transport.validation_json).read_text())
    assert low_row.transport.temperatures_K == [1500.0]
    assert low_row.transport.reference_D_cm2_per_s[0] == pytest.approx(
        report["temperatures"][0]["reference"]["D_cm2_per_s"], rel=1e-12
    )
    quantities = {v["quantity"] for v in low_row.transport.verdicts}
    assert quantities >= {"D_Li", "framework"}
    # A run broken from its first frames is judged on the breach alone (docs/guard.md).
    broken_at_once = report["temperatures"][0]["model"]["duration_ps"] == 0
    assert ("MSD_Li" in quantities) == (not broken_at_once)

    outputs = result.outputs
    table = json.loads(Path(outputs["json"]).read_text())
    assert table["rows"][1]["labeller"] == "chgnet"
    assert Path(outputs["png"]).stat().st_size > 10_000
    assert "RMSE on each model's own reference" in result.verdict

    # A rerun reuses every stage (no relabelling, no training): the rows come back unchanged.
    again = data_quality_study(config, "chgnet", [reference], tmp_path / "study", production_ps=2.0)
    assert again.rows == result.rows


@pytest.mark.slow
def test_relabelling_resumes_after_a_kill(tmp_path: Path) -> None:
    frames = read(LGPS / "sevennet.extxyz.gz", ":3")
    whole = relabel(frames, "chgnet", tmp_path / "whole.extxyz")
    # A run killed after its first frame leaves the partial file; the rerun labels only the rest.
    partial = tmp_path / "resumed.extxyz.partial"
    write(partial, read(whole, "0"), format="extxyz")
    resumed = relabel(frames, "chgnet", tmp_path / "resumed.extxyz")
    assert not partial.exists()
    for a, b in zip(read(whole, ":"), read(resumed, ":"), strict=True):
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-5)


def test_a_separate_validation_file_is_refused(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, val=["frames.extxyz"]))
    with pytest.raises(DataQualityError, match=r"data.val: .* remove data.val"):
        data_quality_study(
            config, "chgnet", [LGPS / "reference_md_sevennet_1500K.extxyz.gz"], tmp_path / "study"
        )
