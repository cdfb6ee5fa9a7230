"""The physical-sanity guard of pair_style superionic (docs/guard.md) in real LAMMPS runs.

A deliberately weakened model (the analytic reference potential with one pair's well moved to
0.6 of its radius and made ten times deeper) pulls Ge atoms onto each other; its file carries the
floors of the honest structure it starts from (0.85 × the closest distance of each pair there).
The guard must stop the run cleanly with one line naming the pair, the distance and the step, on
one rank and on two; in warn mode it must count, and its closest approach per pair must equal
what an independent Python scan of the trajectory (vesin, every frame) finds. `superionic analyze`
must refuse the broken trajectory, and an honest model on the same cell must pass untouched.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.io import write

from superionic.analysis.errors import AnalysisError
from superionic.analysis.integrity import PairScan, check_integrity, floors_from_model
from superionic.analysis.readers import open_trajectory
from superionic.analysis.report import analyze_trajectory
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.driver import MdConfig, MdError, run_md
from superionic.models import ReferencePotential

SPECIES = ["Li", "Ge", "P", "S"]


def honest_cell() -> Atoms:
    return jittered_lattice((5, 5, 5), spacing=2.7, seed=11)


def weakened(model: ReferencePotential, pair: tuple[str, str]) -> ReferencePotential:
    a, b = (SPECIES.index(s) for s in pair)
    with torch.no_grad():
        for i, j in ((a, b), (b, a)):
            model.r0_sq[i, j] *= 0.36
            model.eps[i, j] *= 10.0
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The honest model's own MD (300 K, 2 ps, another velocity seed than the tests) plays the
    training data: the floors are 0.85 × the closest approach of each pair there."""
    root = tmp_path_factory.mktemp("guard_models")
    out = {"no_floors": root / "no_floors.pt"}
    export_model(ReferencePotential(SPECIES), out["no_floors"])
    teacher = run_md(md(root / "teacher", out["no_floors"], steps=2000, seed=7, guard_every=0)).runs[0]
    reader = open_trajectory(teacher.trajectory)
    scan = PairScan(reader.header.symbols, 5.0)
    minima = np.concatenate([scan.block_minima(b) for b in reader.blocks()]).min(axis=0)
    seen = dict(zip(scan.pairs, minima, strict=True))
    closest = [[seen.get("-".join(sorted((a, b))), None) for b in SPECIES] for a in SPECIES]
    out["honest"] = root / "honest.pt"
    export_model(ReferencePotential(SPECIES), out["honest"], pair_closest=closest)
    out["weak"] = root / "weak.pt"
    export_model(weakened(ReferencePotential(SPECIES), ("Ge", "Ge")), out["weak"], pair_closest=closest)
    return out


def md(tmp: Path, model: Path, **kwargs) -> MdConfig:
    tmp.mkdir(parents=True, exist_ok=True)
    structure = tmp / "cell.extxyz"
    write(structure, honest_cell())
    settings = dict(
        structure=str(structure),
        model=str(model),
        temperatures=[300.0],
        steps=3000,
        eq_steps=0,
        timestep_ps=0.001,
        dump_every=10,
        restart_every=1000,
        output=str(tmp / "md"),
        guard_every=10,
    )
    settings.update(kwargs)
    return MdConfig(**settings)  # type: ignore[arg-type]


STOP_LINE = re.compile(
    r"^pair superionic: guard stop: (\S+) atoms (\d+) and (\d+) are ([\d.]+) A apart at step (\d+), "
    r"below the floor ([\d.]+) A .*; stopping the run.*$",
    re.M,
)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_guard_stops_a_collapsing_model_with_one_line(tmp_path: Path, models: dict[str, Path], nprocs: int):
    summary = run_md(md(tmp_path, models["weak"], guard_action="stop", nprocs=nprocs))
    run = summary.runs[0]
    log = (Path(run.directory) / "lammps.out").read_text()
    stops = STOP_LINE.findall(log)
    assert len(stops) == 1, log[-3000:]
    pair, _, _, distance, step, floor = stops[0]
    assert pair == "Ge-Ge"
    floors = floors_from_model(models["weak"])
    assert floors is not None
    assert float(floor) == pytest.approx(floors.floor_A["Ge-Ge"], abs=1e-3)
    assert float(distance) < float(floor)
    assert 0 < int(step) < 3000 and int(step) % 10 == 0
    # A clean stop: restart files written, run.json and stopped.json say where and why.
    directory = Path(run.directory)
    assert (directory / "restart.final.lammps").is_file()
    assert run.guard is not None and run.guard["stopped_at_step"] == int(step)
    assert json.loads((directory / "stopped.json").read_text())["reason"] == "guard"
    # Rerunning the same command does not pass the stopped run off as finished.
    with pytest.raises(MdError, match="stopped by the guard at step"):
        run_md(md(tmp_path, models["weak"], guard_action="stop", nprocs=nprocs))


def test_guard_counts_and_its_closest_approach_matches_python(tmp_path: Path, models: dict[str, Path]):
    """Warn mode runs on; with checks and frames on the same steps, the pair style's closest approach
    of each pair over the run equals a vesin scan of the float64 trajectory frames."""
    config = md(tmp_path, models["weak"], steps=600, dump_every=10, guard_every=10)
    run = run_md(config).runs[0]
    guard = run.guard
    assert guard is not None and guard["stopped_at_step"] is None
    assert guard["checks"] == 61  # steps 0, 10, ..., 600
    assert 0 < guard["breached_checks"] <= guard["checks"]
    log = (Path(run.directory) / "lammps.out").read_text()
    assert log.count("WARNING: pair superionic: guard:") == 1  # one line at the first breach, then counts
    reader = open_trajectory(run.trajectory)
    scan = PairScan(reader.header.symbols, 5.0)
    minima = np.concatenate([scan.block_minima(b) for b in reader.blocks()]).min(axis=0)
    python = {p: float(v) for p, v in zip(scan.pairs, minima, strict=True) if np.isfinite(v)}
    for pair, value in guard["closest_A"].items():
        # The trajectory stores positions in float32 (1e-6 relative); the guard prints 4 decimals.
        assert value == pytest.approx(python[pair], abs=2e-4), pair
    # The first frame after the guard's first breach is broken in the Python check too.
    floors = floors_from_model(models["weak"])
    assert floors is not None
    report = check_integrity(open_trajectory(run.trajectory), floors)
    assert report.first_breach is not None and report.first_breach["pair"] == "Ge-Ge"
    first_frame_step = 10 * (report.first_broken_frame or 0)
    assert first_frame_step == guard["first_breach_step"]
    # analyze refuses what is left: the few intact frames before the collapse give no D.
    with pytest.raises(AnalysisError, match=r"framework broken in \d+ of \d+ frames .* Ge-Ge"):
        analyze_trajectory(run.trajectory, "Li", tmp_path / "analysis")


def test_honest_model_passes_and_a_model_without_floors_runs_unguarded(tmp_path: Path, models):
    run = run_md(md(tmp_path / "honest", models["honest"], steps=500)).runs[0]
    assert run.guard is not None and run.guard["breached_checks"] == 0 and run.guard["checks"] == 51
    plain = run_md(md(tmp_path / "plain", models["no_floors"], steps=100)).runs[0]
    assert plain.guard is None
    assert "guard off: model" in (Path(plain.directory) / "lammps.out").read_text()


def test_guard_keyword_on_a_model_without_floors_is_one_line(tmp_path: Path, models):
    from superionic.md.lammps_data import write_lammps_data
    from superionic.md.runner import LammpsError, run_lammps

    write_lammps_data(tmp_path / "structure.data", honest_cell(), SPECIES)
    (tmp_path / "in.lmp").write_text(
        "units metal\natom_style atomic\nread_data structure.data\n"
        "pair_style superionic guard 5 guard_action stop\n"
        f"pair_coeff * * {models['no_floors']} Li Ge P S\nrun 0\n"
    )
    with pytest.raises(LammpsError) as failure:
        run_lammps("in.lmp", tmp_path)
    message = str(failure.value)
    assert "carries no distance floors" in message and "superionic export" in message
    assert "Traceback" not in message
