"""The parts of `superionic learn` that need no MD: the band, the spacing rule, the caps, the stage
state, the config checks and labelled frames from a real labeller (SevenNet-0)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read, write

from superionic.workflows.learn_config import LearnError, config_from_dict
from superionic.workflows.learn_selection import (
    Band,
    Candidate,
    DeviationSeries,
    band_candidates,
    deviation_statistics,
    onset_candidates,
    select_frames,
    spaced,
    uncertain_fraction,
)
from superionic.workflows.learn_state import RoundState


def _series(steps, values) -> DeviationSeries:
    values = np.asarray(values, dtype=float)
    return DeviationSeries.from_columns(steps, values, values / 4, values / 2, values / 100)


def test_repeated_step_keeps_its_last_row_and_rows_are_sorted():
    # A resumed LAMMPS run writes step 20 again: the spec says the last line of a step wins.
    series = _series([0, 10, 20, 30, 20, 40], [0.1, 0.2, 0.3, 0.4, 0.9, 0.5])
    assert series.step.tolist() == [0, 10, 20, 30, 40]
    assert series.max_devi_f.tolist() == [0.1, 0.2, 0.9, 0.4, 0.5]
    assert series.row(20) == {
        "max_devi_f": 0.9,
        "min_devi_f": 0.9 / 4,
        "avg_devi_f": 0.9 / 2,
        "devi_e": 0.9 / 100,
    }
    assert len(series.production(20)) == 3


def test_fractions_and_statistics_count_by_hand():
    band = Band(lo=0.1, hi=0.3)
    values = [0.05, 0.1, 0.15, 0.3, 0.31, 0.5, 0.02, 0.2]
    series = _series(np.arange(8) * 10, values)
    # Strictly above lo = 0.1: 0.15, 0.3, 0.31, 0.5, 0.2 -> 5 of 8.
    assert uncertain_fraction(series.max_devi_f, band) == 5 / 8
    assert uncertain_fraction(series.max_devi_f, Band(0.1, 0.3, threshold=0.3)) == 2 / 8
    stats = deviation_statistics(series, band)
    assert stats["deviation_steps"] == 8
    assert stats["max_devi_f_max"] == 0.5
    assert stats["max_devi_f_mean"] == pytest.approx(np.mean(values), abs=1e-15)
    assert stats["fraction_below_lo"] == 2 / 8  # 0.05, 0.02
    assert stats["fraction_in_band"] == 4 / 8  # 0.1, 0.15, 0.3, 0.2 (both ends inclusive)
    assert stats["fraction_above_hi"] == 2 / 8  # 0.31, 0.5
    assert uncertain_fraction(np.array([]), band) != uncertain_fraction(np.array([]), band)  # NaN


def test_candidates_are_frames_in_the_closed_band():
    band = Band(lo=0.1, hi=0.3)
    series = _series(np.arange(10) * 10, [0.1, 0.3, 0.31, 0.09, 0.2, 0.25, 0.2, 0.15, 0.12, 0.11])
    frames = [0, 20, 40, 60, 80]  # dump_every = 2 x devi_every
    found = band_candidates(series, frames, band, 900.0)
    assert [(c.step, c.max_devi_f) for c in found] == [(0, 0.1), (40, 0.2), (60, 0.2), (80, 0.12)]
    assert all(c.temperature_K == 900.0 for c in found)


def test_spacing_takes_the_largest_first_and_skips_neighbours():
    steps = np.arange(10) * 10
    values = [0.1, 0.2, 0.15, 0.05, 0.3, 0.25, 0.12, 0.11, 0.1, 0.09]
    candidates = [Candidate(600.0, int(s), v) for s, v in zip(steps, values, strict=True)]
    # Worked by hand with a 20-step gap: 40 (0.3) blocks 30, 50; 10 (0.2) blocks 0, 20;
    # 60 (0.12) is 20 from 40, allowed; 70 is 10 from 60, blocked; 80 (0.1) allowed; 90 blocked.
    assert sorted(c.step for c in spaced(candidates, 20)) == [10, 40, 60, 80]
    assert len(spaced(candidates, 1)) == 10  # a gap of one step keeps every distinct frame


@pytest.mark.parametrize("seed", range(5))
def test_spacing_is_maximal_and_respects_the_gap(seed):
    rng = np.random.default_rng(seed)
    steps = np.sort(rng.choice(np.arange(0, 5000, 10), size=80, replace=False))
    candidates = [
        Candidate(900.0, int(s), float(v)) for s, v in zip(steps, rng.uniform(0.1, 0.3, 80), strict=True)
    ]
    gap = 120
    taken = spaced(candidates, gap)
    chosen = {c.step for c in taken}
    assert all(abs(a.step - b.step) >= gap for a in taken for b in taken if a is not b)
    # Every candidate left out is within the gap of a taken one whose deviation is at least its own.
    for c in candidates:
        if c.step not in chosen:
            assert any(abs(c.step - t.step) < gap and t.max_devi_f >= c.max_devi_f for t in taken)


def test_cap_is_shared_out_over_temperatures_in_turn():
    hot = [Candidate(900.0, s, 0.1 + s / 1000) for s in range(0, 500, 100)]  # 5 candidates
    cold = [Candidate(600.0, 300, 0.15)]
    chosen = select_frames([cold, hot], max_frames=4, min_gap_steps=50)
    assert [(c.temperature_K, c.step) for c in chosen] == [
        (600.0, 300),
        (900.0, 200),
        (900.0, 300),
        (900.0, 400),
    ]
    assert len(select_frames([cold, hot], max_frames=100, min_gap_steps=50)) == 6
    assert select_frames([[], []], max_frames=3, min_gap_steps=50) == []


def test_onsets_are_the_last_frames_before_each_excursion_and_come_first():
    band = Band(lo=0.1, hi=0.3)
    # Two excursions: one crossing at step 50 (0.25 -> 0.5), one at step 120 (0.2 -> 0.9).
    values = [0.05, 0.12, 0.15, 0.2, 0.25, 0.5, 0.8, 0.4, 0.2, 0.15, 0.12, 0.2, 0.9, 1.2]
    series = _series(np.arange(len(values)) * 10, values)
    frames = [0, 20, 40, 60, 80, 100, 120]  # every other deviation step is a frame
    onsets = onset_candidates(series, frames, band, 900.0, per_excursion=2)
    # Before 50: the frames 40 (0.25) and 20 (0.15); before 120: frames 100 (0.12) and 80 (0.2).
    assert [(c.step, c.max_devi_f) for c in onsets] == [(20, 0.15), (40, 0.25), (80, 0.2), (100, 0.12)]
    assert all(c.onset for c in onsets)
    # Spacing takes onsets before any larger in-band deviation.
    plain = [Candidate(900.0, 500, 0.29)]
    taken = spaced(plain + onsets, min_gap_steps=15)
    assert [c.step for c in taken][:4] == [40, 80, 20, 100] and taken[-1].step == 500


def test_the_best_round_is_kept_and_a_worse_round_is_named():
    from superionic.workflows.learn import best_round

    def record(k, broken, uncertain):
        return {
            "round": k,
            "temperatures": {"900": {"broken_fraction": broken, "uncertain_fraction": uncertain}},
        }

    rounds = [record(0, 0.0, 0.40), record(1, 0.0, 0.10), record(2, 0.6, 0.05)]
    best, worse = best_round(rounds)
    assert best == 1  # round 2 has the fewest uncertain steps, but its framework broke
    assert len(worse) == 1 and worse[0].startswith("round 2 made the committee worse than round 1")
    rounds = [record(0, 0.0, 0.40), record(1, 0.0, 0.10), record(2, 0.0, 0.10)]
    assert best_round(rounds) == (2, [])  # a tie goes to the later round, which has more data


def test_round_state_markers_survive_a_reload(tmp_path):
    state = RoundState.load(tmp_path / "round_000", 0)
    assert not state.done("trained")
    state.mark("trained", {"manifest": "x/committee.json"})
    state.mark("exported", {"committee": "y/committee.json"})
    again = RoundState.load(tmp_path / "round_000", 0)
    assert again.done("trained") and again.done("exported") and not again.done("md")
    assert again.result("exported")["committee"] == "y/committee.json"
    assert sorted(p.name for p in (tmp_path / "round_000").iterdir()) == ["state.json"]  # no .tmp left
    with pytest.raises(ValueError):
        state.mark("trainde", {})


def _config(tmp_path, **changes):
    training = tmp_path / "train.yaml"
    training.write_text("data:\n  train: [x.extxyz]\n")
    raw = {"structure": "LGPS", "training": str(training), "temperatures": [900], **changes}
    return config_from_dict(raw, "learn.yaml")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"md": {"dump_every": 25, "devi_every": 10}}, "learn.yaml: md.dump_every = 25 is not valid"),
        ({"hi": 0.01}, "learn.yaml: hi = 0.01 is not valid: it must be a force deviation above lo"),
        ({"members": 1}, "learn.yaml: members = 1 is not valid: it must be an integer >= 2"),
        ({"temprature": 900}, "learn.yaml: unknown key 'temprature'; did you mean 'temperatures'?"),
        ({"md": {"step": 100}}, "learn.yaml: section 'md': unknown key 'step'; did you mean 'steps'?"),
        (
            {"labeller": "dft"},
            "learn.yaml: labeller = 'dft' is not valid: it must be one of sevennet, chgnet",
        ),
        ({"md": {"eq_steps": 130, "dump_every": 50}}, "learn.yaml: md.eq_steps = 130 is not valid"),
        ({"training": "nope.yaml"}, "learn.yaml: training = nope.yaml: no such file"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, changes, expected):
    with pytest.raises(LearnError) as info:
        _config(tmp_path, **changes)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_good_config_defaults(tmp_path):
    config = _config(tmp_path, lo="5e-2")  # PyYAML reads 5e-2 as text
    assert config.lo == 0.05 and config.gap_steps == 2 * config.md.dump_every
    assert config.fingerprint() == _config(tmp_path, lo=0.05, rounds=9).fingerprint()
    assert config.fingerprint() != _config(tmp_path, lo=0.06).fingerprint()


@pytest.mark.slow  # SevenNet-0 loads in ~10 s and labels a 104-atom frame in ~2 s on one core
def test_labelled_frames_equal_the_labeller_and_resume(tmp_path):
    """Two Li6PS5Cl frames labelled by SevenNet-0 through label_and_write: energies and forces equal a
    direct call of the same calculator; provenance is kept; a rerun labels only missing frames."""
    from superionic.data.labellers import make_labeller
    from superionic.data.materials import build_cell
    from superionic.workflows.learn_frames import label_and_write, labelled_count

    cell, _ = build_cell("data/examples/Li6PS5Cl.cif", seed=0, supercell=(1, 1, 2))
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(2):
        frame = cell.copy()
        frame.positions += rng.normal(0.0, 0.05, frame.positions.shape)
        frames.append(frame)
    infos = [
        {"learn_round": 0, "temperature_K": 600.0, "md_step": 100 * (k + 1), "max_devi_f": 0.1 + k}
        for k in range(2)
    ]
    labeller = make_labeller("sevennet")
    output = tmp_path / "labelled.extxyz"
    partial = output.with_name(output.name + ".partial")
    calls = []
    # First pass stops after one frame (a kill): only the partial file holds it.
    with pytest.raises(KeyboardInterrupt):

        def stop(done, total):
            calls.append(done)
            raise KeyboardInterrupt

        label_and_write(frames, infos, labeller, output, {"material": "Li6PS5Cl"}, 0, on_frame=stop)
    assert labelled_count(partial) == 1 and not output.exists()
    label_and_write(
        frames, infos, labeller, output, {"material": "Li6PS5Cl"}, 0, on_frame=lambda d, t: calls.append(d)
    )
    assert calls == [1, 2]  # the second pass labelled frame 2 only
    label_and_write(
        frames, infos, labeller, output, {"material": "Li6PS5Cl"}, 0, on_frame=lambda d, t: calls.append(d)
    )
    assert calls == [1, 2]  # a finished file is not labelled again
    written = read(output, ":")
    assert len(written) == 2
    for frame, stored, info in zip(frames, written, infos, strict=True):
        direct = frame.copy()
        direct.calc = labeller.calculator
        # The stored values are the labeller's own, written with extxyz's full float precision.
        assert stored.get_potential_energy() == pytest.approx(direct.get_potential_energy(), abs=1e-8)
        assert np.abs(stored.get_forces() - direct.get_forces()).max() < 1e-8
        for key, value in info.items():
            assert stored.info[key] == value
        assert stored.info["labeller"] == "sevennet" and stored.info["material"] == "Li6PS5Cl"
    assert json.dumps(written[0].info["labeller_version"]).startswith('"SevenNet-0')


def test_warm_start_begins_from_the_previous_members_ema(tmp_path):
    """Round 1's member k starts from round 0's member k (EMA weights in both copies, step 0) and
    trains finetune.epochs epochs at lr x lr_scale on the grown data."""
    import torch

    from superionic.train.checkpoint import load_checkpoint
    from superionic.train.committee import member_config
    from superionic.train.config import config_from_dict as train_config
    from superionic.train.trainer import Trainer
    from superionic.workflows.learn_train import round_train_config, seed_warm_start, train_round

    frames = read("data/LGPS/sevennet.extxyz.gz", ":10")
    start, extra = tmp_path / "start.extxyz", tmp_path / "extra.extxyz"
    write(start, frames[:8], format="extxyz")
    write(extra, frames[8:], format="extxyz")
    base = train_config(
        {
            "data": {"train": [str(start)], "val_fraction": 0.25},
            "model": {
                "cutoff": 4.0,
                "n_basis": 4,
                "radial_channels": 2,
                "angular_channels": 1,
                "l_max": 1,
                "hidden": [8],
            },
            "training": {"epochs": 1, "batch_size": 4, "threads": 1, "lr": 0.002},
        }
    )
    config = _config(tmp_path, finetune={"epochs": 2, "lr_scale": 0.5})
    first = round_train_config(base, config, 0, [], tmp_path / "r0")
    assert first.training.epochs == 1 and first.data.train == [str(start)]
    result0 = train_round(first, 2, None)
    second = round_train_config(base, config, 1, [extra], tmp_path / "r1")
    assert second.training.epochs == 2 and second.training.lr == 0.001
    assert second.data.train == [str(start), str(extra)]
    assert seed_warm_start(second, result0.manifest, 2) == [0, 1]
    for k in range(2):
        previous = load_checkpoint(result0.checkpoints[k])["ema"]
        trainer = Trainer(member_config(second, k), resume=True)
        assert trainer.state.global_step == 0 and trainer.state.epoch == 0
        for name, value in previous.items():
            assert torch.equal(trainer.model.state_dict()[name], value), name
            assert torch.equal(trainer.ema.state_dict()[name], value), name
    result1 = train_round(second, 2, result0.manifest)  # the seeded checkpoints are kept, not re-seeded
    for k in range(2):
        rows = (tmp_path / "r1" / f"member_{k}" / "train.csv").read_text().splitlines()
        assert len(rows) == 1 + 2  # header + finetune.epochs rows
    assert json.loads(result1.manifest.read_text())["members"] == 2


def test_a_training_subset_and_a_changed_config_are_refused(tmp_path):
    from superionic.workflows.learn import learn

    config = _config(tmp_path, output=str(tmp_path / "out"))
    (tmp_path / "train.yaml").write_text("data:\n  train: [x.extxyz]\n  max_frames: 50\n")
    with pytest.raises(LearnError, match=r"data.max_frames = 50: learn adds frames .* remove max_frames"):
        learn(config)
    (tmp_path / "train.yaml").write_text("data:\n  train: [x.extxyz]\n")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "learn_config.json").write_text(
        json.dumps({"fingerprint": "0", "config": {**config.to_dict(), "lo": 0.01, "members": 8}})
    )
    with pytest.raises(LearnError) as info:
        learn(config)
    assert str(info.value) == (
        f"learn.yaml: {tmp_path / 'out'} holds an active-learning run made with other members, lo; "
        "restore them to continue it, or set another output"
    )


def test_report_rows_carry_the_round_numbers_and_the_d_verdict(tmp_path):
    import csv

    from superionic.workflows.learn_report import write_report

    config = _config(tmp_path, temperatures=[900, 1200], lo=0.35, hi=1.0, target_fraction=0.1)
    stats = {"deviation_steps": 501, "uncertain_fraction": 0.377, "max_devi_f_mean": 0.35, "threshold": 0.35}
    rounds = [
        {
            "round": 0,
            "training_files": 1,
            "frames_added": 40,
            "candidates": {"900": 38, "1200": 77},
            "temperatures": {
                "900": {**stats, "D_cm2_per_s": 5.7e-5, "D_ci95_cm2_per_s": [3.6e-5, 8.2e-5]},
                "1200": stats,
            },
            "validation": {
                "verdicts": [
                    {"temperature_K": 900.0, "quantity": "MSD_Li", "label": "disagree"},
                    {"temperature_K": 900.0, "quantity": "D_Li", "label": "undetermined: run 4.2x longer"},
                    {"temperature_K": 1200.0, "quantity": "D_Li", "label": "agree"},
                ]
            },
        },
        {"round": 1, "training_files": 2, "temperatures": {"900": {**stats, "uncertain_fraction": 0.2}}},
    ]
    json_path, csv_path, png_path = write_report(tmp_path, rounds, config, "rounds")
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["round"], r["temperature_K"], r["frames_added"], r["candidates"]) for r in rows] == [
        ("0", "900", "40", "38"),
        ("0", "1200", "40", "77"),
        ("1", "900", "0", ""),
    ]
    assert [r["validation_D"] for r in rows] == ["undetermined: run 4.2x longer", "agree", ""]
    assert [r["uncertain_fraction"] for r in rows] == ["0.377", "0.377", "0.2"]
    assert rows[0]["D_ci95_low"] == "3.6e-05" and rows[1]["D_cm2_per_s"] == ""
    body = json.loads(json_path.read_text())
    assert body["stopped"] == "rounds" and body["definition"]["threshold_eV_per_A"] == 0.35
    assert png_path.stat().st_size > 10_000


def test_a_run_killed_before_its_first_restart_starts_again(tmp_path):
    from superionic.workflows.learn import _forget_unresumable

    fresh, resumable = tmp_path / "T600K", tmp_path / "T900K"
    for directory in (fresh, resumable):
        directory.mkdir()
        for name in ("traj.h5", "model_devi.out", "model_devi.csv", "run.json"):
            (directory / name).write_text("x")
    (resumable / "restart.200.lammps").write_text("x")
    _forget_unresumable(fresh)
    _forget_unresumable(resumable)
    _forget_unresumable(tmp_path / "T1200K")  # never started: nothing to do
    assert sorted(p.name for p in fresh.iterdir()) == ["run.json"]
    assert len(list(resumable.iterdir())) == 5  # resumable from restart.200: kept as it is


def test_cli_bad_config_is_one_line_and_status_2(tmp_path, capsys):
    from superionic.cli import main

    bad = tmp_path / "learn.yaml"
    bad.write_text(
        f"structure: LGPS\ntraining: {tmp_path / 'train.yaml'}\ntemperatures: [900]\nlo: 0.4\nhi: 0.2\n"
    )
    (tmp_path / "train.yaml").write_text("data:\n  train: [x.extxyz]\n")
    assert main(["learn", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"superionic: {bad}: hi = 0.2 is not valid: it must be a force deviation above lo (0.4) in eV/Å; "
        "e.g. hi: 1.2"
    )


def test_a_run_stopped_before_its_trajectory_began_offers_no_frames(tmp_path) -> None:
    # devi_stop during equilibration: LAMMPS skips the production run, so no traj.h5 exists; the
    # deviation steps in the band then have no frame to label, and selection must say none, not fail.
    from superionic.workflows.learn_frames import trajectory_steps

    steps = trajectory_steps(tmp_path / "traj.h5")
    assert steps.dtype == np.int64 and steps.size == 0
    series = DeviationSeries.from_columns([0, 25, 50], [0.5, 0.6, 0.7], [0.1] * 3, [0.2] * 3, [0.01] * 3)
    assert band_candidates(series, steps, Band(0.3, 1.0), 1200.0) == []
    assert band_candidates(series, [25, 50], Band(0.3, 1.0), 1200.0) == [
        Candidate(1200.0, 25, 0.6),
        Candidate(1200.0, 50, 0.7),
    ]
