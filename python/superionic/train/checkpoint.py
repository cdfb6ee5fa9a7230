"""Checkpoints: everything needed to continue a run bit for bit, written atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from superionic.models.build import build_model
from superionic.models.contract import ContractModel
from superionic.train.config import TrainConfig, config_from_dict

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to this run."""


@dataclass
class TrainState:
    epoch: int = 0  # epoch in progress
    step_in_epoch: int = 0  # batches of that epoch already taken
    global_step: int = 0
    best_val_loss: float = float("inf")
    best_epoch: int = -1
    epochs_since_best: int = 0
    csv_rows: int = 0
    finished: bool = False


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file and rename: a kill mid-write leaves the previous checkpoint intact."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    source = Path(path)
    if not source.exists():
        raise CheckpointError(f"{source}: no such checkpoint")
    try:
        payload = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for unreadable files
        raise CheckpointError(f"{source}: not a readable superionic checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source}: not a superionic checkpoint of format {CHECKPOINT_FORMAT}")
    return payload


def model_from_checkpoint(path: str | Path, weights: str = "ema") -> tuple[ContractModel, TrainConfig, dict]:
    """The trained model (EMA weights by default, as validated and exported)."""
    payload = load_checkpoint(path)
    config = config_from_dict(payload["config"], str(path))
    model = build_model(config.model, payload["species"], config.training.seed)
    try:
        model.load_state_dict(payload[weights])
    except RuntimeError as err:
        summary = str(err).splitlines()[-1].strip()
        raise CheckpointError(
            f"{path}: its weights do not fit this version's {config.model.kind} ({summary}); "
            "retrain, or evaluate it with the superionic version that wrote it"
        ) from err
    return model.eval(), config, payload
