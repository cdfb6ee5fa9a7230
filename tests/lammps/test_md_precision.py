"""`superionic md -T ... --target-ea`: the plan and its extensions in real LAMMPS.

A sprinter trained 20 epochs on 160 committed LGPS frames (its framework holds at 1000–1200 K) runs
the 50-atom LGPS cell at 1000 and 1200 K with 4 ps pilots and a 20 ps budget: far too little for a
0.03 eV Ea. What must hold whatever the trajectories: every production run is as long as the round
that ran it says; each extension lengthens runs and none passes the budget; the precision reported
is the Arrhenius fit's own (recomputed from the per-temperature D in the transport JSON files); and
with the targets missed at the budget, the advice names --max-md-ns.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import h5py
import pytest

from superionic.analysis.arrhenius import fit_arrhenius
from superionic.cli import main
from superionic.export import checkpoint_export_args, export_model
from superionic.train.checkpoint import model_from_checkpoint
from superionic.train.config import config_from_dict
from superionic.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
BUDGET_NS = 0.02
EQ_STEPS = 500
DUMP_EVERY = 25  # 50 fs


def _model(work: Path) -> Path:
    config = config_from_dict(
        {
            "data": {"train": [str(REPO / "data" / "LGPS" / "sevennet.extxyz.gz")], "max_frames": 160},
            "model": {
                "cutoff": 5.0,
                "hidden": [16, 16],
                "radial_channels": 6,
                "angular_channels": 3,
                "l_max": 2,
            },
            "training": {"epochs": 20, "batch_size": 4, "lr": 0.003, "threads": 1},
            "output": str(work / "train"),
        },
        "precision",
    )
    result = Trainer(config, overwrite=True).run()
    model, config, payload = model_from_checkpoint(result.checkpoint)
    path = work / "model.pt"
    export_model(model, path, **checkpoint_export_args(payload, config))
    return path


@pytest.mark.slow
def test_md_to_precision_plans_extends_and_reports_the_fit(tmp_path: Path, capsys) -> None:
    model = _model(tmp_path)
    out = tmp_path / "md"
    args = [
        "md", "LGPS", str(model), "-T", "1000", "1200", "--allow-small-cell",
        "--eq-steps", str(EQ_STEPS), "--dump-every", str(DUMP_EVERY), "--restart-every", "2500",
        "--target-ea", "0.03", "--max-md-ns", str(BUDGET_NS), "--pilot-ps", "4", "--threads", "1",
        "--slope-tolerance", "0.2", "-o", str(out),
    ]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    body = json.loads((out / "precision.json").read_text())
    plan = body["plan"]
    assert sorted(plan["temperatures_K"]) == [1000.0, 1200.0]  # the user's temperatures are kept
    budget_ps = BUDGET_NS * 1000.0
    rounds = body["rounds"]
    assert 1 <= len(rounds) <= 4
    for before, after in itertools.pairwise(rounds):
        for t, length in after["lengths_ps"].items():
            assert before["lengths_ps"][t] - 1e-9 <= length <= budget_ps + 1e-9
    # Each production trajectory is as long as the last round asked (to a whole frame).
    last = rounds[-1]["lengths_ps"]
    for t, length in last.items():
        # locking=False: this process may still hold the file through an analysis reader (HDF5
        # refuses a second handle with other locking flags).
        with h5py.File(out / "production" / f"T{float(t):g}K" / "traj.h5", "r", locking=False) as h5:
            times = h5["particles/all/position/time"][()]
        assert times[-1] - times[0] == pytest.approx(length, abs=DUMP_EVERY * 0.002 + 1e-9)

    targets = body["targets"]
    transports = [json.loads(p.read_text()) for p in sorted((out / "analysis").glob("T*K/transport_Li.json"))]
    if len(transports) >= 2:
        fit = fit_arrhenius(
            [t["temperature_K"] for t in transports],
            [t["tracer"]["diffusion_cm2_per_s"] for t in transports],
            [t["tracer"]["stderr_cm2_per_s"] for t in transports],
        )
        lo, hi = fit.activation_energy_ci95_eV
        assert rounds[-1]["ea_half_width_eV"] == pytest.approx((hi - lo) / 2, rel=1e-9)
        assert targets["ea_met"] == (targets["ea_half_width_eV"] <= 0.03)
        assert f"± {targets['ea_half_width_eV']:.3f}" in printed
    if not (targets["ea_met"] and targets["sigma_met"]):
        capped = [t for t, length in last.items() if length >= budget_ps * 0.999]
        assert targets["advice"]
        assert ("--max-md-ns" in targets["advice"]) == bool(capped)
        assert "to reach the targets:" in printed
