"""Each round's committee: trained from scratch (round 0), or warm-started from the previous round.

Warm start: member k of round r starts from member k of round r − 1 (its EMA weights, as
validated and exported, in both the trained and the averaged copy; a fresh optimiser; the epoch
counter at 0) and trains ``finetune.epochs`` epochs on all data so far at ``lr × lr_scale``. It
costs a fraction of a full training and keeps each member's own lineage (seed k, split k), so the
members stay as different from each other as round 0 made them. It is written as the member's
``last.ckpt`` before training, so the committee trainer's own resume path starts from it and a kill
during training resumes from the trainer's later checkpoints, not from the warm start again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

from superionic.data.dataset import data_hash
from superionic.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from superionic.train.committee import (
    CommitteeResult,
    MemberProgress,
    member_config,
    member_directory,
    read_manifest,
    train_committee,
)
from superionic.train.config import TrainConfig
from superionic.workflows.learn_config import LearnConfig, LearnError


def round_train_config(
    base: TrainConfig, config: LearnConfig, round_index: int, extra_data: Sequence[Path], output: Path
) -> TrainConfig:
    """The training config of one round: the base data plus every frame labelled so far."""
    train = copy.deepcopy(base)
    train.data.train = [*base.data.train, *(str(p) for p in extra_data)]
    train.output = str(output)
    if round_index > 0 and config.finetune.epochs is not None:
        train.training.epochs = config.finetune.epochs
        train.training.lr = base.training.lr * config.finetune.lr_scale
        train.training.warmup_epochs = min(base.training.warmup_epochs, 1)
        # Early stopping counts from the warm start: keep it from ending a short fine-tune at once.
        train.training.patience = max(base.training.patience, config.finetune.epochs)
    return train


def seed_warm_start(train: TrainConfig, previous_manifest: Path, members: int) -> list[int]:
    """Write member k's starting checkpoint from the previous round's member k; members that
    already have a checkpoint (a resumed round) are left alone. Returns the members seeded."""
    previous = read_manifest(previous_manifest)
    if len(previous.checkpoints) < members:
        raise LearnError(
            f"{previous_manifest}: {len(previous.checkpoints)} members, but members = {members}; "
            f"set members: {len(previous.checkpoints)} or train the committee afresh"
        )
    seeded = []
    digest = data_hash(train.data.train + train.data.val)
    for k in range(members):
        cfg = member_config(train, k)
        last = Path(cfg.output) / "last.ckpt"
        if last.exists():
            continue
        payload = load_checkpoint(previous.checkpoints[k])
        optimizer = copy.deepcopy(payload["optimizer"])
        optimizer["state"] = {}  # Adam's moments belong to the old loss landscape
        warm = {
            **payload,
            "config": cfg.to_dict(),
            "data_hash": digest,
            "model": payload["ema"],
            "ema": payload["ema"],
            "optimizer": optimizer,
            "state": TrainState().__dict__,
            "warm_start": str(previous.checkpoints[k]),
        }
        Path(cfg.output).mkdir(parents=True, exist_ok=True)
        save_checkpoint(last, warm)
        seeded.append(k)
    return seeded


def train_round(
    train: TrainConfig,
    members: int,
    previous_manifest: Path | None,
    on_progress: Callable[[MemberProgress], None] | None = None,
) -> CommitteeResult:
    """Train (or finish, after a kill) one round's committee; warm-started when a previous
    manifest is given."""
    if previous_manifest is not None:
        seed_warm_start(train, previous_manifest, members)
    started = any((member_directory(train.output, k) / "last.ckpt").exists() for k in range(members))
    return train_committee(train, members, resume=started, on_progress=on_progress)
