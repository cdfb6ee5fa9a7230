"""The framework check of the analysis (analysis.integrity, docs/guard.md) on files with known answers.

Li random walks with a known D move through a rigid S framework on a lattice; from a chosen frame on,
two S atoms are pushed to 1.6 Å of each other (the framework "breaks"). The floors come from an intact
reference trajectory written by ASE (extxyz, as the teacher's MD is stored). `superionic analyze` must
report D from the intact frames only, within its own interval of the truth, name the pair and the
time of the break, and refuse a file broken from its first frame in one line. The per-frame closest
approach is checked against a brute-force minimum-image computation (ASE's get_all_distances).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from superionic.analysis.errors import AnalysisError
from superionic.analysis.integrity import (
    BrokenDynamicsError,
    PairScan,
    PrefixReader,
    check_integrity,
    floors_for,
    floors_from_trajectories,
    pair_key,
)
from superionic.analysis.readers import open_trajectory
from superionic.analysis.report import analyze_trajectory
from superionic.analysis.units import CM2_PER_S_PER_A2_PER_PS
from superionic.cli import main

from ._h5md import write_h5md
from ._synthetic import random_walk

CELL = np.diag([12.0, 12.0, 12.0])
N_LI = 40
TIMESTEP_PS = 0.1
D_A2_PER_PS = 0.05
N_FRAMES = 1201
BREAK_AT = 700  # first broken frame


def framework() -> np.ndarray:
    """27 S atoms on a 4 Å simple cubic lattice."""
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return 4.0 * grid + 2.0


def trajectory(seed: int, break_at: int | None) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    li = random_walk(rng, N_LI, N_FRAMES - 1, TIMESTEP_PS, D_A2_PER_PS)
    s = np.broadcast_to(framework(), (N_FRAMES, 27, 3)).copy()
    s += rng.normal(0.0, 0.05, s.shape)  # thermal rattle, far from any floor
    if break_at is not None:
        s[break_at:, 1] = s[break_at:, 0] + np.array([1.6, 0.0, 0.0])
    # The framework recoils so that the centre of mass stays put and drift removal is a no-op.
    return np.concatenate([li, s], axis=1), ["Li"] * N_LI + ["S"] * 27


def floors_model(tmp: Path) -> Path:
    """A model file whose floors judge only the framework: the walkers are ideal (they pass through
    each other and through S), so their pairs get floors far below anything they reach."""
    from superionic.export import export_model
    from superionic.models import ReferencePotential

    path = tmp / "floors.pt"
    closest = [[1e-4, 1e-4], [1e-4, 3.6]]  # Li-Li, Li-S; S-S: the lattice's 4 Å less its rattle
    export_model(ReferencePotential(["Li", "S"]), path, pair_closest=closest)
    return path


def reference_file(tmp: Path) -> Path:
    """An intact run of the same system, as ASE writes the teacher's MD (unwrapped, time_ps)."""
    positions, symbols = trajectory(seed=99, break_at=None)
    frames = []
    for k in range(0, 50):
        atoms = Atoms(symbols, positions=positions[k], cell=CELL, pbc=True)
        atoms.info["time_ps"] = k * TIMESTEP_PS
        frames.append(atoms)
    path = tmp / "reference.extxyz"
    write(path, frames)
    return path


def test_closest_approach_matches_brute_force(tmp_path: Path):
    positions, symbols = trajectory(seed=3, break_at=5)
    path = write_h5md(tmp_path / "t.h5", positions[:12], CELL, symbols, TIMESTEP_PS)
    reader = open_trajectory(path)
    scan = PairScan(reader.header.symbols, 6.0)
    minima = np.concatenate([scan.block_minima(b) for b in reader.blocks()])
    kinds = np.array(symbols)
    for frame in range(12):
        atoms = Atoms(symbols, positions=positions[frame], cell=CELL, pbc=True)
        d = atoms.get_all_distances(mic=True)
        np.fill_diagonal(d, np.inf)
        for a, b in (("Li", "Li"), ("Li", "S"), ("S", "S")):
            expected = d[np.ix_(kinds == a, kinds == b)].min()
            got = minima[frame, scan.pairs.index(pair_key(a, b))]
            assert got == pytest.approx(expected if expected < 6.0 else np.inf, abs=1e-9)


def test_floors_from_a_reference_are_its_closest_approach(tmp_path: Path):
    reference = reference_file(tmp_path)
    floors = floors_from_trajectories([open_trajectory(reference)])
    positions, symbols = trajectory(seed=99, break_at=None)
    s = np.array(symbols) == "S"
    expected = min(
        Atoms("S27", positions=positions[k][s], cell=CELL, pbc=True)
        .get_all_distances(mic=True)[~np.eye(27, dtype=bool)]
        .min()
        for k in range(50)
    )
    assert floors.closest_A["S-S"] == pytest.approx(expected, abs=1e-6)
    assert floors.floor_A["S-S"] == pytest.approx(0.85 * expected, abs=1e-6)


def test_analyze_uses_the_intact_prefix_and_says_so(tmp_path: Path):
    positions, symbols = trajectory(seed=1, break_at=BREAK_AT)
    path = write_h5md(tmp_path / "traj.h5", positions, CELL, symbols, TIMESTEP_PS)
    model = floors_model(tmp_path)
    floors = floors_for(path, model)
    assert floors is not None
    report = check_integrity(open_trajectory(path), floors)
    assert report.first_broken_frame == BREAK_AT
    assert report.broken_frames == N_FRAMES - BREAK_AT
    assert report.breaches_by_pair == {"S-S": N_FRAMES - BREAK_AT}
    assert report.first_breach is not None and report.first_breach["pair"] == "S-S"
    assert report.first_breach["distance_A"] == pytest.approx(1.6, abs=0.2)
    assert report.first_broken_time_ps == pytest.approx(BREAK_AT * TIMESTEP_PS)

    result = analyze_trajectory(path, "Li", tmp_path / "out", temperature_K=800.0, floors=model)
    assert result.duration_ps == pytest.approx((BREAK_AT - 1) * TIMESTEP_PS)
    d = result.tracer
    truth = D_A2_PER_PS * CM2_PER_S_PER_A2_PER_PS
    assert d["ci95_cm2_per_s"][0] <= truth <= d["ci95_cm2_per_s"][1]
    assert any("framework broken" in n and "S-S" in n and "intact first 70 ps" in n for n in result.notes)
    body = json.loads((tmp_path / "out" / "transport_Li.json").read_text())
    assert body["integrity"]["first_broken_frame"] == BREAK_AT
    assert body["integrity"]["intact"] is False

    # The same through the command line, with the model file as --floors.
    out = str(tmp_path / "cli")
    assert main(["analyze", str(path), "--temperature", "800", "--floors", str(model), "-o", out]) == 0


def test_a_file_broken_from_the_start_is_refused_in_one_line(tmp_path: Path, capsys):
    positions, symbols = trajectory(seed=2, break_at=0)
    path = write_h5md(tmp_path / "traj.h5", positions, CELL, symbols, TIMESTEP_PS)
    reference = reference_file(tmp_path)
    with pytest.raises(BrokenDynamicsError, match=r"no intact frames to analyse"):
        analyze_trajectory(path, "Li", tmp_path / "out", temperature_K=800.0, floors=reference)
    code = main(
        [
            "analyze",
            str(path),
            "--temperature",
            "800",
            "--floors",
            str(reference),
            "-o",
            str(tmp_path / "cli"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "S-S" in err[0] and "Traceback" not in err[0]


def test_without_floors_the_report_says_the_framework_was_not_checked(tmp_path: Path):
    positions, symbols = trajectory(seed=4, break_at=None)
    path = write_h5md(tmp_path / "traj.h5", positions, CELL, symbols, TIMESTEP_PS)
    assert floors_for(path) is None
    result = analyze_trajectory(path, "Li", tmp_path / "out", temperature_K=800.0)
    assert result.integrity is None
    assert any("framework not checked" in n for n in result.notes)


def test_floors_argument_errors_are_one_line(tmp_path: Path):
    with pytest.raises(AnalysisError, match="no such file"):
        floors_for(tmp_path / "x.h5", tmp_path / "missing.pt")


def test_prefix_reader_stops_at_its_frame_count(tmp_path: Path):
    positions, symbols = trajectory(seed=5, break_at=None)
    path = write_h5md(tmp_path / "traj.h5", positions[:600], CELL, symbols, TIMESTEP_PS)
    prefix = PrefixReader(open_trajectory(path), 300)
    frames = sum(len(b.times_ps) for b in prefix.blocks(size=128))
    assert frames == prefix.header.n_frames == 300
