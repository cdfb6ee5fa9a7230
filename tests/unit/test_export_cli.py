"""`superionic export` (the CLI) writes the checkpoint's EMA model: the exported file's energies and
forces equal the eager model rebuilt from the checkpoint, and its metadata names the training data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from ase.io import read

from superionic.calculator import SuperionicCalculator, evaluate
from superionic.cli import main
from superionic.train.checkpoint import model_from_checkpoint

FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_format1"


def test_export_equals_the_checkpoints_ema_model(tmp_path: Path, capsys) -> None:
    checkpoint = FIXTURE / "run" / "last.ckpt"
    output = tmp_path / "model.pt"
    assert main(["export", str(checkpoint), "-o", str(output)]) == 0
    printed = json.loads(capsys.readouterr().out)
    model, _, payload = model_from_checkpoint(checkpoint)
    assert printed["species"] == list(payload["species"]) and printed["data_hash"] == payload["data_hash"]
    assert printed["cutoff"] == model.cutoff
    frames = read(FIXTURE / "data.extxyz", ":3")
    for atoms in frames:
        eager = evaluate(model, atoms, model.cutoff, payload["species"], dtype=torch.float64)
        atoms.calc = SuperionicCalculator(output)
        # Same float64 graph through TorchScript: equal to round-off (1e-10 eV, 1e-10 eV/Å).
        assert abs(atoms.get_potential_energy() - eager.energy) < 1e-10
        np.testing.assert_allclose(atoms.get_forces(), eager.forces, atol=1e-10)
    # The EMA weights, not the raw ones, are what export writes (they differ after training).
    raw, _, _ = model_from_checkpoint(checkpoint, weights="model")
    atoms = frames[0]
    assert (
        abs(evaluate(raw, atoms, raw.cutoff, payload["species"]).energy - atoms.get_potential_energy()) > 1e-8
    )
