"""A material that is none of the built-ins, from a CIF with partial occupancies, end to end:
``data generate`` (real SevenNet-0) → ``train`` → ``export`` → ``md`` (2 MPI ranks, real LAMMPS)
→ ``analyze``, on a budget small enough for CI. The numbers are not physics (a handful of frames,
a few hundred steps); the test checks that every stage runs on the new material and that what
each stage writes is what the next one needs and what the summary says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.io import read

ROOT = Path(__file__).resolve().parents[2]
CIF = ROOT / "data" / "examples" / "Li6PS5Cl.cif"
SUPERIONIC = Path(sys.executable).with_name("superionic")

pytestmark = pytest.mark.slow


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(SUPERIONIC), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"superionic {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.skipif(
    shutil.which("mpirun", path=str(SUPERIONIC.parent)) is None, reason="mpirun not installed"
)
def test_li6ps5cl_from_cif_to_diffusion(tmp_path: Path) -> None:
    pytest.importorskip("sevenn")
    data = tmp_path / "li6ps5cl.extxyz.gz"
    _run(
        "data", "generate", str(CIF),
        "--supercell", "1x1x2", "--draws", "2", "--labeller", "sevennet",
        "--frames", "8", "--temperatures", "900", "--sample-every", "3",
        "--equilibration-steps", "3", "--strain-fraction", "0.25", "--threads", "1",
        "-o", str(data),
        cwd=tmp_path,
    )  # fmt: skip
    frames = read(data, ":")
    summary = json.loads(data.with_name("li6ps5cl.json").read_text())
    assert len(frames) == summary["frames"] == 8
    assert Counter(frames[0].get_chemical_symbols()) == {"Li": 48, "P": 8, "S": 40, "Cl": 8}
    ordering = summary["orderings"][0]
    assert ordering["supercell"] == [1, 1, 2] and ordering["composition"]["Cl"] == 8
    assert ordering["criterion_values_eV"][ordering["chosen_draw"]] == min(ordering["criterion_values_eV"])
    assert summary["formula"] == "Li6PS5Cl" and "Angew" in summary["source"]
    assert all(np.isfinite(f.get_forces()).all() for f in frames)

    config = tmp_path / "train.yaml"
    config.write_text(
        f"data: {{train: [{data}], val_fraction: 0.25}}\n"
        "model: {kind: sprinter, cutoff: 5.0, n_basis: 6, radial_channels: 4, angular_channels: 2, "
        "l_max: 2, hidden: [16]}\n"
        "training: {epochs: 3, batch_size: 2, threads: 1}\n"
        "output: run\n"
    )
    _run("train", str(config), cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and np.isfinite(metrics["val_metrics"]["force_rmse_eV_per_A"])
    assert set(json.loads((tmp_path / "run" / "metrics.json").read_text())["val_metrics"]) >= {
        "force_rmse_Li_eV_per_A",
        "force_rmse_Cl_eV_per_A",
    }
    model = tmp_path / "li6ps5cl.pt"
    _run("export", str(tmp_path / "run" / "best.ckpt"), "-o", str(model), cwd=tmp_path)

    # The CIF again: md orders it itself, 2x2x2 (19.7 Å) because the cell must be >= 2 x 5 Å wide.
    _run(
        "md", str(CIF), str(model), "-T", "1200", "--min-width", "10", "--steps", "300",
        "--eq-steps", "100", "--dump-every", "2", "--restart-every", "300", "--np", "2",
        "-o", "md",
        cwd=tmp_path,
    )  # fmt: skip
    md_summary = json.loads((tmp_path / "md" / "md_summary.json").read_text())
    assert md_summary["ranks"] == 2 and md_summary["atoms"] == 416
    assert md_summary["ordering"]["supercell"] == [2, 2, 2]
    trajectory = tmp_path / "md" / "T1200K" / "traj.h5"
    with h5py.File(trajectory, "r") as h5:
        positions = h5["particles/all/position/value"]
        assert positions.shape[1:] == (416, 3) and positions.shape[0] == 101  # steps 100..300 every 2

    # A 3-epoch model on 8 frames holds no framework: this tests the route from a CIF, so the
    # framework check is switched off, and the report says so.
    _run(
        "analyze", str(trajectory), "--ion", "Li", "--slope-tolerance", "0.9", "--floors", "off",
        "-o", "analysis",
        cwd=tmp_path,
    )  # fmt: skip
    result = json.loads((tmp_path / "analysis" / "transport_Li.json").read_text())
    assert any("--floors off" in note for note in result["notes"])
    assert result["temperature_K"] == 1200
    assert result["n_ions"] == 192
