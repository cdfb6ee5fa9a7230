"""`superionic learn` end to end on Li3YCl6 (LYC, 1x1x2, 60 atoms; not LGPS), on a CI budget.

Real SevenNet-0 labels, real committee training (K = 2), real LAMMPS committee MD. The numbers are
not physics: 20 committed LYC frames, 15 epochs, a few hundred steps, so the committee is barely
trained and its deviations are eV/Å; the band is set inside them so both of its edges matter. The
test checks that what each stage records is what an independent computation on its files gives:

* the frames added are exactly the trajectory frames whose recorded deviation lies in [lo, hi]
  (capped at max_frames), read back from LAMMPS's own model_devi.out;
* their recorded deviations equal a Python evaluation of the exported members on the saved frames
  (superionic.md.committee.force_deviation);
* their energies and forces equal SevenNet-0's on the same frames;
* the uncertain fraction in learn.json equals a count over model_devi.out;
* a run killed inside the MD resumes it from its restart file; one killed after a stage's marker
  does not redo that stage, and one killed after a stage's work but before its marker redoes only
  that stage (and labels nothing twice).
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.io import read, write

ROOT = Path(__file__).resolve().parents[2]
LYC_DATA = ROOT / "data" / "LYC" / "sevennet.extxyz.gz"

pytestmark = pytest.mark.slow


class Killed(Exception):
    """Stands in for a kill at a chosen point of the run."""


def _devi_file(path: Path) -> dict[int, float]:
    rows: dict[int, float] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            words = line.split()
            rows[int(words[0])] = float(words[1])  # the last line of a step wins
    return rows


def _starting_data(tmp_path: Path) -> Path:
    # Every 15th committed SevenNet-0 frame: MD at 300-1200 K and strained cells, 30 atoms each.
    data = tmp_path / "start.extxyz"
    write(data, read(LYC_DATA, "::15"), format="extxyz")
    return data


def test_learn_lyc_two_rounds_with_kills(tmp_path: Path) -> None:
    pytest.importorskip("sevenn")
    from superionic.data.labellers import make_labeller
    from superionic.md.committee import force_deviation, read_committee
    from superionic.workflows.learn import LearnProgress, learn
    from superionic.workflows.learn_config import load_learn_config
    from superionic.workflows.learn_state import EventLog

    labeller = make_labeller("sevennet")
    data = _starting_data(tmp_path)
    (tmp_path / "train.yaml").write_text(
        f"data: {{train: [{data}], val_fraction: 0.34}}\n"
        "model: {kind: sprinter, cutoff: 4.5, n_basis: 6, radial_channels: 4, angular_channels: 2, "
        "l_max: 2, hidden: [16]}\n"
        "training: {epochs: 15, batch_size: 2, threads: 1}\n"
        "output: unused\n"
    )
    lo, hi, cap = 3.0, 6.0, 3
    (tmp_path / "learn.yaml").write_text(
        "structure: LYC\nsupercell: [1, 1, 2]\ntraining: train.yaml\nmembers: 2\n"
        f"temperatures: [600]\nrounds: 2\nlo: {lo}\nhi: {hi}\ntarget_fraction: 0.0\n"
        f"max_frames: {cap}\nmin_gap_steps: 20\n"
        "md: {steps: 400, eq_steps: 100, dump_every: 20, devi_every: 10, restart_every: 200}\n"
        "finetune: {epochs: 2, lr_scale: 0.5}\noutput: learn\n"
    )
    config = load_learn_config(tmp_path / "learn.yaml")
    out = tmp_path / "learn"
    round0 = out / "round_000"

    def kill_at(where: tuple[int, str, str]):
        def hook(r: int, stage: str, phase: str) -> None:
            if (r, stage, phase) == where:
                raise Killed(where)

        return hook

    # Run 1 dies inside the MD (at step 300; restart files every 200 steps), run 2 right after the MD
    # stage's marker, run 3 after labelling but before its marker; run 4 finishes.
    def kill_in_md(temperature: float, step: int, total: int) -> None:
        if step >= 300:
            raise Killed("md")

    with pytest.raises(Killed):
        learn(config, LearnProgress(md_step=kill_in_md))
    md_dir = round0 / "md" / "T600K"
    assert (md_dir / "restart.200.lammps").exists() and not (md_dir / "restart.final.lammps").exists()
    with pytest.raises(Killed):
        learn(config, hook=kill_at((0, "md", "after_mark")))
    trajectory = md_dir / "traj.h5"
    md_mtime = trajectory.stat().st_mtime_ns
    with pytest.raises(Killed):
        learn(config, hook=kill_at((0, "labelled", "before_mark")))
    labelled = round0 / "labelled.extxyz"
    labelled_mtime = labelled.stat().st_mtime_ns
    result = learn(config)

    runs: dict[str, list[dict]] = {}
    for event in EventLog(out / "events.jsonl").read():
        runs.setdefault(event["run"], []).append(event)
    started = [{(e["round"], e["stage"]) for e in run if e["event"] == "started"} for run in runs.values()]
    assert started[0] == {(0, "trained"), (0, "exported"), (0, "md")}
    assert started[1] == {(0, "md")}  # the MD resumed (from restart.200), training was not redone
    assert started[2] == {(0, "analysed"), (0, "selected"), (0, "labelled")}  # nothing before redone
    assert (0, "labelled") in started[3] and not {(0, "trained"), (0, "md"), (0, "selected")} & started[3]
    assert trajectory.stat().st_mtime_ns == md_mtime  # the MD was not run again
    assert labelled.stat().st_mtime_ns == labelled_mtime  # nor were the frames labelled again
    assert result.stopped == "rounds" and len(result.rounds) == 2
    with h5py.File(trajectory, "r") as h5:  # the resumed trajectory has every frame once
        assert h5["particles/all/position/step"][()].tolist() == list(range(100, 401, 20))

    # Frames added, read independently from LAMMPS's file: first the last two trajectory frames at or
    # below hi before each excursion above hi (the onset of an excursion: docs/active_learning.md),
    # then the frames in the band by largest deviation, capped.
    devi = _devi_file(md_dir / "model_devi.out")
    frame_steps = range(100, 401, 20)  # dump_every 20 from the end of equilibration to steps
    series = sorted(s for s in devi if s >= 100)
    crossings = [b for a, b in itertools.pairwise(series) if devi[a] <= hi < devi[b]]
    onsets: list[int] = []
    for crossing in crossings:
        before = [s for s in frame_steps if s < crossing and devi.get(s, hi + 1) <= hi][-2:]
        onsets += [s for s in before if s not in onsets]
    in_band = sorted(s for s in frame_steps if s in devi and lo <= devi[s] <= hi and s not in onsets)
    by_deviation = sorted(onsets, key=lambda s: (-devi[s], s)) + sorted(in_band, key=lambda s: (-devi[s], s))
    frames = read(labelled, ":")
    assert len(frames) == min(cap, len(by_deviation)) == result.rounds[0]["frames_added"]
    assert len(frames) >= 1, f"no frame to add: deviations {sorted(devi.values())}"
    assert sorted(f.info["md_step"] for f in frames) == sorted(by_deviation[:cap])

    members = read_committee(round0 / "export" / "committee.json")
    for frame in frames:
        step = frame.info["md_step"]
        assert frame.info["learn_round"] == 0 and frame.info["temperature_K"] == 600.0
        assert frame.info["max_devi_f"] == pytest.approx(devi[step], rel=1e-9)  # as LAMMPS wrote it
        bare = frame.copy()
        bare.calc = None
        # Python evaluation of the same members on the saved frame. Basis of 1e-6: model_devi.out
        # prints 10 significant digits (< 1e-8 here) and extxyz keeps positions to 1e-8 Å, which
        # moves forces by curvature (< 100 eV/Å²) x 1e-8 Å.
        assert force_deviation(members, bare).max == pytest.approx(frame.info["max_devi_f"], abs=1e-6)
    # The labels are SevenNet-0's on the very positions it was given (the trajectory's, read back
    # independently with h5py). SevenNet-0 runs in float32 and answers alike for equal input, so the
    # only difference is extxyz's rounding of forces to 1e-8 eV/Å and of energies to 1e-8 relative.
    with h5py.File(trajectory, "r") as h5:
        steps = h5["particles/all/position/step"][()].tolist()
        positions = h5["particles/all/position/value"]
        for frame in frames:
            atoms = frame.copy()
            atoms.positions = positions[steps.index(frame.info["md_step"])]
            atoms.calc = labeller.calculator
            assert atoms.get_potential_energy() == pytest.approx(frame.get_potential_energy(), rel=1e-8)
            assert np.abs(atoms.get_forces() - frame.get_forces()).max() < 1e-7

    # The uncertain fraction recorded per round equals a count over each round's model_devi.out.
    report = json.loads((out / "learn.json").read_text())
    for record in report["rounds"]:
        steps = _devi_file(out / f"round_{record['round']:03d}" / "md" / "T600K" / "model_devi.out")
        production = [v for s, v in steps.items() if s >= 100]
        stats = record["temperatures"]["600"]
        assert stats["deviation_steps"] == len(production) == 31  # steps 100, 110, ..., 400
        assert stats["uncertain_fraction"] == pytest.approx(np.mean(np.array(production) > lo), abs=1e-12)
        assert stats["max_devi_f_max"] == pytest.approx(max(production), rel=1e-12)

    # Round 1 trained on the starting data plus round 0's frames, warm-started from round 0.
    state1 = json.loads((out / "round_001" / "state.json").read_text())["stages"]
    assert state1["trained"]["warm_start"] is True and state1["trained"]["epochs"] == 2
    assert state1["trained"]["data"] == [str(data), str(labelled)]
    assert "selected" not in state1  # the last round labels nothing: no round would train on it
    with open(out / "learn.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["round"], r["temperature_K"], r["frames_added"]) for r in rows] == [
        ("0", "600", str(len(frames))),
        ("1", "600", "0"),
    ]
    assert (out / "learn.png").stat().st_size > 10_000
