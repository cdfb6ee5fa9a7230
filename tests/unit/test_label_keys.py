"""Labels under other programs' names (issue 25, part 5): MACE and nequip training files carry
``REF_energy``, ``REF_forces`` and ``REF_stress`` (written with ASE so that its calculator keys do not
shadow them). ``data: {energy_key, forces_key, stress_key}`` in the training config and
``--energy-key/--forces-key/--stress-key`` on `superionic evaluate` read them as they are.

The references are the same frames written with ASE's own keys: read, trained on and evaluated,
the two files must give the same numbers, bit for bit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.io import read, write

from superionic.data.dataset import DataError, LabelKeys, label_keys, load_frames
from superionic.train.config import ConfigError, load_config
from tests.unit.test_training import labelled_frames

SUPERIONIC = [sys.executable, "-m", "superionic.cli"]
MACE = LabelKeys("REF_energy", "REF_forces", "REF_stress")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One set of labelled frames in ASE's keys and in MACE's (stress as 9 values, as MACE writes)."""
    root = tmp_path_factory.mktemp("labels")
    frames = labelled_frames(16)
    write(root / "ase.extxyz", frames)
    renamed = []
    for atoms in frames:
        copy = atoms.copy()  # no calculator: the labels live in info and arrays only
        results = atoms.calc.results
        copy.info["REF_energy"] = float(results["energy"])
        copy.arrays["REF_forces"] = np.array(results["forces"])
        copy.info["REF_stress"] = atoms.get_stress(voigt=False).ravel()
        renamed.append(copy)
    write(root / "mace.extxyz", renamed)
    return {"root": root, "ase": root / "ase.extxyz", "mace": root / "mace.extxyz"}


def test_the_file_holds_the_other_programs_keys(files: dict[str, Path]) -> None:
    header = files["mace"].read_text().splitlines()[1]
    assert "REF_energy=" in header and "REF_forces:R:3" in header and "REF_stress=" in header
    assert " energy=" not in header and ":forces:" not in header
    assert read(files["mace"]).calc is None  # ASE sees no labels of its own


def test_frames_read_under_the_keys_equal_those_under_ases(files: dict[str, Path]) -> None:
    reference, species = load_frames([files["ase"]], 5.0)
    renamed, _ = load_frames([files["mace"]], 5.0, species, MACE)
    assert len(renamed) == len(reference) == 16
    for a, b in zip(reference, renamed, strict=True):
        assert a.energy == b.energy
        assert torch.equal(a.forces, b.forces)
        assert a.stress is not None and b.stress is not None
        torch.testing.assert_close(a.stress, b.stress, rtol=0, atol=1e-12)
        assert torch.equal(a.edge_vec, b.edge_vec)


def test_without_the_keys_the_message_names_them(files: dict[str, Path]) -> None:
    with pytest.raises(DataError) as refused:
        load_frames([files["mace"]], 5.0)
    message = str(refused.value)
    assert message.startswith(f"{files['mace']}: frame 0: no energy under 'energy'")
    assert "'REF_energy'" in message and "data.energy_key" in message and "--energy-key" in message
    with pytest.raises(DataError, match=r"no forces under 'forces'.*'REF_forces'.*data\.forces_key"):
        load_frames([files["mace"]], 5.0, keys=LabelKeys("REF_energy", "forces", "REF_stress"))
    with label_keys(MACE):  # what `evaluate --energy-key ...` sets around a call that takes no keys
        frames, _ = load_frames([files["mace"]], 5.0)
    assert len(frames) == 16


def _config(root: Path, data: Path, name: str, **keys: str) -> Path:
    config = {
        "data": {"train": [str(data)], "val_fraction": 0.25, **keys},
        "model": {"cutoff": 4.0, "hidden": [8], "radial_channels": 4, "angular_channels": 2, "l_max": 2},
        "training": {"epochs": 2, "batch_size": 4, "threads": 1},
        "output": str(root / name),
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_training_and_evaluate_on_the_renamed_file_equal_the_original(files: dict[str, Path]) -> None:
    root = files["root"]
    keys = {"energy_key": "REF_energy", "forces_key": "REF_forces", "stress_key": "REF_stress"}
    for name, data, extra in (("plain", files["ase"], {}), ("mace", files["mace"], keys)):
        subprocess.run(
            [*SUPERIONIC, "train", str(_config(root, data, name, **extra))],
            check=True,
            capture_output=True,
            timeout=600,
        )
    a = torch.load(root / "plain" / "last.ckpt", weights_only=True)
    b = torch.load(root / "mace" / "last.ckpt", weights_only=True)
    for name, tensor in a["ema"].items():
        assert torch.equal(tensor, b["ema"][name]), f"ema.{name} differs"
    assert b["config"]["data"]["energy_key"] == "REF_energy"

    checkpoint = str(root / "plain" / "best.ckpt")
    metrics = {}
    for name, data, options in (
        ("plain", files["ase"], []),
        ("mace", files["mace"], ["--energy-key", "REF_energy", "--forces-key", "REF_forces"]),
    ):
        out = root / f"evaluate_{name}"
        command = [*SUPERIONIC, "evaluate", checkpoint, str(data), "-o", str(out), *options]
        run = subprocess.run(
            [*command, "--stress-key", "REF_stress"] if options else command,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr
        metrics[name] = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["plain"] == metrics["mace"]
    assert "stress_rmse_GPa" in metrics["mace"]


def test_evaluate_without_the_keys_is_one_line(files: dict[str, Path], tmp_path: Path) -> None:
    model = str(Path(__file__).parent / "fixtures" / "checkpoint_format1" / "run" / "last.ckpt")
    run = subprocess.run(
        [*SUPERIONIC, "evaluate", model, str(files["mace"]), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [x for x in run.stderr.splitlines() if x.strip()]
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert "no energy under 'energy'" in lines[0] and "--energy-key" in lines[0]


@pytest.mark.parametrize("value", ["", "REF energy", "a=b", 3])
def test_a_bad_key_in_the_config_is_one_line(files: dict[str, Path], value: object) -> None:
    path = _config(files["root"], files["mace"], "bad", energy_key=value)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"data\.energy_key = .* is not valid: .*e\.g\. energy_key: REF_energy"
    ):
        load_config(path)
