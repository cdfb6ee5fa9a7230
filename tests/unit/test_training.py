"""Training: exact resume after SIGKILL, config checking, data validation, nothing lost on failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from superionic.calculator import evaluate
from superionic.data.dataset import DataError, load_frames
from superionic.data.examples import jittered_lattice
from superionic.models import ReferencePotential
from superionic.train.config import ConfigError, config_from_dict, load_config
from superionic.train.trainer import RunExistsError, Trainer

SUPERIONIC = [sys.executable, "-m", "superionic.cli"]


def labelled_frames(n: int, seed0: int = 0):
    """Frames labelled by the analytic reference potential: a teacher with exact forces and stress."""
    teacher = ReferencePotential(["Li", "Ge", "P", "S"])
    frames = []
    for seed in range(seed0, seed0 + n):
        atoms = jittered_lattice((3, 3, 3), jitter=0.15, seed=seed)
        result = evaluate(teacher, atoms, teacher.cutoff, teacher.species_names)
        atoms.calc = SinglePointCalculator(
            atoms, energy=result.energy, forces=result.forces, stress=result.stress_ase(atoms.cell.volume)
        )
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reference.extxyz"
    write(path, labelled_frames(24))
    return path


def write_config(directory: Path, data: Path, **training) -> Path:
    config = {
        "data": {"train": [str(data)], "val_fraction": 0.25},
        "model": {"cutoff": 5.0, "hidden": [16, 16], "radial_channels": 6, "angular_channels": 3, "l_max": 3},
        "training": {"epochs": 4, "batch_size": 2, "checkpoint_every": 3, "threads": 1, **training},
        "output": str(directory / "run"),
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path: Path, dataset: Path) -> None:
    (tmp_path / "a").mkdir()
    straight = write_config(tmp_path / "a", dataset)
    subprocess.run([*SUPERIONIC, "train", str(straight)], check=True, capture_output=True)

    (tmp_path / "b").mkdir()
    interrupted = write_config(tmp_path / "b", dataset)
    checkpoint = tmp_path / "b" / "run" / "last.ckpt"
    proc = subprocess.Popen(
        [*SUPERIONIC, "train", str(interrupted)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = torch.load(checkpoint, weights_only=False)["state"]
    assert 0 < state["step_in_epoch"], "the kill should land mid-epoch"
    assert not state["finished"]
    subprocess.run([*SUPERIONIC, "train", str(interrupted), "--resume"], check=True, capture_output=True)

    a = torch.load(tmp_path / "a" / "run" / "last.ckpt", weights_only=False)
    b = torch.load(checkpoint, weights_only=False)
    assert a["state"]["global_step"] == b["state"]["global_step"] > state["global_step"]
    for part in ("model", "ema"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), f"{part}.{name} differs after resume"
    # The log has every epoch exactly once.
    rows_a = np.genfromtxt(tmp_path / "a" / "run" / "train.csv", delimiter=",", names=True)
    rows_b = np.genfromtxt(tmp_path / "b" / "run" / "train.csv", delimiter=",", names=True)
    assert list(rows_b["epoch"]) == list(rows_a["epoch"]) == [0, 1, 2, 3]
    np.testing.assert_array_equal(rows_a["val_loss"], rows_b["val_loss"])


def test_existing_run_is_not_overwritten(tmp_path: Path, dataset: Path) -> None:
    config = load_config(write_config(tmp_path, dataset, epochs=1))
    Trainer(config).run()
    checkpoint = Path(config.output) / "last.ckpt"
    before = checkpoint.read_bytes()
    with pytest.raises(RunExistsError, match=r"already holds a training run.*--resume"):
        Trainer(config)
    assert checkpoint.read_bytes() == before


def test_failed_run_keeps_what_was_written(tmp_path: Path, dataset: Path) -> None:
    config = load_config(write_config(tmp_path, dataset, epochs=1))
    Trainer(config).run()
    written = {p: p.read_bytes() for p in Path(config.output).iterdir() if p.is_file()}
    broken = tmp_path / "broken.extxyz"
    frames = labelled_frames(2, seed0=100)
    frames[1].calc.results["forces"][3, 0] = np.nan
    write(broken, frames)
    config.data.train = [str(broken)]
    with pytest.raises(DataError):
        Trainer(config, resume=True)
    assert {p: p.read_bytes() for p in written} == written


@pytest.mark.parametrize(
    ("section", "key", "hint"),
    [
        ("training", "epochz", "did you mean 'epochs'"),
        ("model", "cutof", "did you mean 'cutoff'"),
        ("trainin", None, "did you mean 'training'"),
    ],
)
def test_unknown_config_key_names_nearest(section: str, key: str | None, hint: str) -> None:
    raw = {"data": {"train": ["x.extxyz"]}}
    if key is None:
        raw[section] = {}
    else:
        raw[section] = {key: 1}
    with pytest.raises(ConfigError, match=hint):
        config_from_dict(raw, "cfg.yaml")


def test_bad_choice_in_config() -> None:
    with pytest.raises(ConfigError, match=r"model\.dtype = 'float16' is not one of float32, float64"):
        config_from_dict({"data": {"train": ["x"]}, "model": {"dtype": "float16"}}, "cfg.yaml")


def _broken(tmp_path: Path, fault: str) -> Path:
    frames = labelled_frames(3, seed0=50)
    target = frames[2]
    if fault == "no forces":
        target.calc = SinglePointCalculator(target, energy=target.calc.results["energy"])
    elif fault == "no energy":
        target.calc = SinglePointCalculator(target, forces=target.calc.results["forces"])
    elif fault == "nan":
        target.calc.results["energy"] = float("nan")
    elif fault == "units":
        target.info["energy_units"] = "kcal/mol"
    elif fault == "energy spread":
        target.calc.results["energy"] *= 23.06  # kcal/mol slipped into an eV file
    elif fault == "overlap":
        target.positions[1] = target.positions[0] + [0.2, 0.0, 0.0]
    elif fault == "species":
        target.symbols[0] = "Cl"
    path = tmp_path / "bad.extxyz"
    write(path, frames)
    return path


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("no forces", "frame 2: no forces"),
        ("no energy", "frame 2: no energy"),
        ("nan", "frame 2: energy or forces contain NaN"),
        ("units", "frame 2: declares units 'kcal/mol'"),
        ("energy spread", "frame 2: energy .* eV/atom is more than 10"),
        ("overlap", "frame 2: atoms 0 and 1 are 0.2 Å apart"),
        ("species", r"frame 2: element\(s\) Cl not in the model's species"),
    ],
)
def test_bad_data_names_file_and_frame(tmp_path: Path, fault: str, message: str) -> None:
    path = _broken(tmp_path, fault)
    with pytest.raises(DataError, match=f"{path}: {message}") as info:
        load_frames([path], 5.0, ["Li", "Ge", "P", "S"])
    assert "\n" not in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothere\.extxyz: no such file"):
        load_frames([tmp_path / "nothere.extxyz"], 5.0)


def test_evaluate_checkpoint_and_export_agree(tmp_path: Path, dataset: Path) -> None:
    from superionic.export import export_model
    from superionic.train.checkpoint import CheckpointError, model_from_checkpoint
    from superionic.validation.metrics import evaluate_model

    config = load_config(write_config(tmp_path, dataset, epochs=1))
    result = Trainer(config).run()
    model, _, _ = model_from_checkpoint(result.checkpoint)
    export_model(model, tmp_path / "m.pt")
    from_ckpt = evaluate_model(result.checkpoint, [dataset], tmp_path / "a").metrics
    from_pt = evaluate_model(tmp_path / "m.pt", [dataset], tmp_path / "b").metrics
    for key in ("force_rmse_eV_per_A", "energy_rmse_eV_per_atom", "stress_rmse_GPa"):
        assert from_pt[key] == pytest.approx(from_ckpt[key], rel=1e-10)
    assert from_ckpt["frames"] == 24 and (tmp_path / "a" / "parity.png").exists()

    payload = torch.load(result.checkpoint, weights_only=False)
    del payload["ema"]["core_strength"]  # a checkpoint written by a version without this buffer
    torch.save(payload, tmp_path / "old.ckpt")
    with pytest.raises(CheckpointError, match=r"old\.ckpt: its weights do not fit this version's sprinter"):
        model_from_checkpoint(tmp_path / "old.ckpt")
