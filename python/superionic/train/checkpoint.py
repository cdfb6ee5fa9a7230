"""Checkpoints: everything needed to continue a run bit for bit, written atomically."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import pickle
import re
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
    """Write to a temporary file, sync it and rename: a kill, a full disk or a file-size limit
    mid-write leaves the previous checkpoint intact.

    The payload is serialised in memory first, so a write that fails does so in ``os.write``, whose
    error carries the system's reason (torch's own file writer reports only "file write failed").
    Such a failure removes the temporary file and is one :class:`CheckpointError` line naming the
    checkpoint, the reason, what is kept and the fix.
    """
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(buffer.getbuffer())
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(tmp, path)
        _sync_directory(path.parent)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise CheckpointError(_write_failure(path, err)) from err


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (a crash right after it must not bring the old checkpoint back)."""
    with contextlib.suppress(OSError):  # some file systems cannot open a directory for fsync
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


_WRITE_FIXES = {
    errno.ENOSPC: "free space on its disk",
    errno.EDQUOT: "free space within your disk quota",
    errno.EFBIG: "raise the file-size limit (ulimit -f)",
    errno.EROFS: "give an output directory on a writable file system",
    errno.EACCES: "make the output directory writable",
    errno.EPERM: "make the output directory writable",
}


def _write_failure(path: Path, err: OSError) -> str:
    reason = err.strerror or type(err).__name__
    if err.errno == errno.EFBIG:
        reason += ", the file-size limit (ulimit -f)"
    kept = f"the previous {path.name} is intact" if path.is_file() else f"no {path.name} had been written yet"
    fix = _WRITE_FIXES.get(err.errno or 0, "check the disk")
    return f"{path}: cannot write the checkpoint ({reason}); {kept}: {fix}, then rerun with --resume"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a checkpoint, read without running any code the file may carry.

    ``weights_only=True`` restricts unpickling to tensors, containers and plain values, which is all
    a checkpoint holds (format 1 files written before this check load unchanged); a file that asks
    for anything else, e.g. a function to call, is refused before it runs.
    """
    source = Path(path)
    if not source.exists():
        raise CheckpointError(f"{source}: no such checkpoint")
    if source.is_dir():
        raise CheckpointError(f"{source}: is a directory, not a checkpoint; give its last.ckpt or best.ckpt")
    _refuse_other_kinds(source)
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _UNSAFE_GLOBAL.search(str(err))
        what = f"'{found.group(1)}'" if found else "an object that is not tensors or plain values"
        raise CheckpointError(
            f"{source}: refused: the file asks to load {what}, which could run code; superionic "
            "checkpoints hold only tensors and plain values, so this one was not written by superionic "
            "train or was tampered with. Do not use it"
        ) from err
    except Exception as err:  # torch raises several types for unreadable files
        summary = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{source}: not a readable superionic checkpoint ({summary})") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source}: not a superionic checkpoint of format {CHECKPOINT_FORMAT}")
    missing = [key for key in PAYLOAD_KEYS if key not in payload]
    if missing:
        raise CheckpointError(
            f"{source}: incomplete superionic checkpoint (no {', '.join(missing)}); use another checkpoint"
        )
    return payload


# torch names a refused global as "unsupported GLOBAL posix.system" (older: "Unsupported global: GLOBAL x").
_UNSAFE_GLOBAL = re.compile(r"(?:unsupported|Unsupported global:) GLOBAL (\S+)")
PAYLOAD_KEYS = ("config", "species", "data_hash", "model", "ema", "optimizer", "state")


def _refuse_other_kinds(source: Path) -> None:
    """An exported model or a foreign file named as a checkpoint gets a message saying what it is."""
    from superionic.modelfile import Kind, identify

    found = identify(source)
    if found.kind is not Kind.CHECKPOINT:
        raise CheckpointError(f"{source}: not a superionic checkpoint ({found.description}); {found.advice}")


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
