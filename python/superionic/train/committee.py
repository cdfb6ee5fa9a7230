"""A committee of K models: K ordinary training runs that differ in seed and split, and a manifest.

Member k is the run the same config would give with ``training.seed + k`` and
``data.split_seed + k``, written to ``OUTPUT/member_k/``: different initial weights, batch orders
and (when the validation set is held out of the training files) different validation frames, so
the members disagree where the data do not pin the potential down. That disagreement is what the
committee deviation in MD measures. Each member is resumable exactly as a single run is; a member
whose run finished is not trained again. ``OUTPUT/committee.json`` lists the members' best
checkpoints (relative to the manifest) and validation metrics once all of them are finished.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from superionic.data.dataset import data_hash
from superionic.train.checkpoint import CheckpointError, load_checkpoint
from superionic.train.config import ConfigError, TrainConfig
from superionic.train.trainer import Progress, RunExistsError, Trainer, TrainResult

log = logging.getLogger("superionic.train")

MANIFEST_NAME = "committee.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class MemberProgress:
    """A trainer's Progress, plus which member it is (a callback written for Progress reads it too)."""

    member: int
    members: int
    epoch: int
    epochs: int
    step_in_epoch: int
    steps_per_epoch: int
    train_loss: float
    val_force_rmse: float | None = None
    skipped: bool = False  # a member finished earlier, not trained again

    @classmethod
    def of(cls, member: int, members: int, p: Progress) -> MemberProgress:
        return cls(member, members, **asdict(p))


@dataclass(frozen=True)
class CommitteeResult:
    output: Path
    manifest: Path
    checkpoints: list[Path]  # best.ckpt of each member, absolute
    results: list[TrainResult]
    trained: list[int] = field(default_factory=list)  # members trained or resumed by this call

    @property
    def val_force_rmse(self) -> list[float]:
        return [r.val_metrics["force_rmse_eV_per_A"] for r in self.results]


def member_directory(output: str | Path, k: int) -> Path:
    return Path(output) / f"member_{k}"


def member_config(config: TrainConfig, k: int) -> TrainConfig:
    """The config of member k: seeds shifted by k, output in member_k/."""
    member = copy.deepcopy(config)
    member.training.seed = config.training.seed + k
    member.data.split_seed = config.data.split_seed + k
    member.output = str(member_directory(config.output, k))
    return member


def _finished_result(config: TrainConfig) -> TrainResult | None:
    """The result of a member whose run completed (metrics written, all epochs or an early stop)."""
    directory = Path(config.output)
    metrics, last = directory / "metrics.json", directory / "last.ckpt"
    if not (metrics.exists() and last.exists()):
        return None
    payload = load_checkpoint(last)
    state = payload["state"]
    if not (state["finished"] or state["epoch"] >= config.training.epochs):
        return None
    expected = data_hash(config.data.train + config.data.val)
    if payload["data_hash"] != expected:
        raise RunExistsError(
            f"{last}: was trained on different data (hash {payload['data_hash']} vs {expected}); resume "
            "with the original data or train the committee into a new output directory"
        )
    try:
        return TrainResult(**json.loads(metrics.read_text()))
    except (json.JSONDecodeError, TypeError):
        return None  # a metrics file cut short by a kill: resuming rewrites it


def _check_start(config: TrainConfig, members: int, resume: bool, overwrite: bool) -> None:
    if members < 2:
        raise ConfigError(
            f"--committee {members}: a committee needs at least 2 members to disagree; e.g. --committee 4 "
            "(or leave --committee out to train one model)"
        )
    output = Path(config.output)
    manifest = output / MANIFEST_NAME
    started = [k for k in range(members) if (member_directory(output, k) / "last.ckpt").exists()]
    if resume and not started and not manifest.exists():
        raise RunExistsError(
            f"{output}: no committee member to resume (no member_*/last.ckpt); drop --resume to start one"
        )
    if not (resume or overwrite) and (started or manifest.exists()):
        what = MANIFEST_NAME if manifest.exists() else f"member_{started[0]}/last.ckpt"
        raise RunExistsError(
            f"{output} already holds a committee ({what}); pass --resume to finish it, --overwrite to "
            "start afresh, or choose another output directory"
        )


def _write_manifest(config: TrainConfig, results: list[TrainResult], configs: list[TrainConfig]) -> Path:
    output = Path(config.output)
    manifest = output / MANIFEST_NAME
    first = load_checkpoint(Path(results[0].checkpoint))
    body: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "members": len(results),
        "checkpoints": [os.path.relpath(r.checkpoint, output) for r in results],
        "val_metrics": [r.val_metrics for r in results],
        "val_force_rmse_eV_per_A": [r.val_metrics["force_rmse_eV_per_A"] for r in results],
        "seeds": [c.training.seed for c in configs],
        "split_seeds": [c.data.split_seed for c in configs],
        "species": list(first["species"]),
        "cutoff": config.model.cutoff,
        "data_hash": first["data_hash"],
        "results": [asdict(r) for r in results],
        "config": config.to_dict(),
    }
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2))
    os.replace(tmp, manifest)
    return manifest


def train_committee(
    config: TrainConfig,
    members: int,
    resume: bool = False,
    overwrite: bool = False,
    on_progress: Callable[[MemberProgress], None] | None = None,
) -> CommitteeResult:
    """Train (or finish) the K members of ``config``'s committee in turn; write the manifest."""
    _check_start(config, members, resume, overwrite)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    if overwrite:
        (output / MANIFEST_NAME).unlink(missing_ok=True)
    results: list[TrainResult] = []
    configs: list[TrainConfig] = []
    trained: list[int] = []
    for k in range(members):
        cfg = member_config(config, k)
        configs.append(cfg)
        done = None if overwrite else _finished_result(cfg)
        if done is not None:
            log.info("member %d/%d: finished earlier (%s), not trained again", k + 1, members, cfg.output)
            results.append(done)
            if on_progress:
                rmse = done.val_metrics["force_rmse_eV_per_A"]
                epochs = cfg.training.epochs
                on_progress(MemberProgress(k, members, epochs, epochs, 1, 1, float("nan"), rmse, True))
            continue
        resuming = not overwrite and (Path(cfg.output) / "last.ckpt").exists()
        log.info("member %d/%d: %s %s", k + 1, members, "resuming" if resuming else "training", cfg.output)
        trainer = Trainer(cfg, resume=resuming, overwrite=overwrite)

        def report(p: Progress, k: int = k) -> None:
            if on_progress:
                on_progress(MemberProgress.of(k, members, p))

        results.append(trainer.run(on_progress=report))
        trained.append(k)
    manifest = _write_manifest(config, results, configs)
    return CommitteeResult(
        output=output,
        manifest=manifest,
        checkpoints=[Path(r.checkpoint).resolve() for r in results],
        results=results,
        trained=trained,
    )


@dataclass(frozen=True)
class TrainedCommittee:
    """A training manifest read back: the members' checkpoints (absolute) and their metrics."""

    manifest: Path
    checkpoints: list[Path]
    val_metrics: list[dict[str, float]]
    species: list[str]


def read_manifest(path: str | Path) -> TrainedCommittee:
    """``OUTPUT/committee.json`` written by train_committee (or its directory)."""
    manifest = Path(path)
    if manifest.is_dir():
        manifest = manifest / MANIFEST_NAME
    if not manifest.exists():
        raise CheckpointError(
            f"{manifest}: no such committee manifest; train one with `superionic train CONFIG --committee 4`"
        )
    try:
        body = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{manifest}: not a JSON committee manifest ({err}); train the committee again"
        ) from err
    if not isinstance(body, dict) or not isinstance(body.get("checkpoints"), list):
        raise CheckpointError(
            f"{manifest}: field 'checkpoints' missing: not a training committee manifest (an exported "
            "committee.json goes to `superionic md`, not to export)"
        )
    checkpoints = [(manifest.parent / p).resolve() for p in body["checkpoints"]]
    for k, path in enumerate(checkpoints):
        if not path.exists():
            raise CheckpointError(
                f"{manifest}: checkpoints[{k}] = {body['checkpoints'][k]} does not exist; finish the "
                f"committee with `superionic train CONFIG --committee {len(checkpoints)} --resume`"
            )
    if len(checkpoints) < 2:
        raise CheckpointError(
            f"{manifest}: field 'checkpoints' lists {len(checkpoints)} member; a committee needs >= 2"
        )
    return TrainedCommittee(
        manifest=manifest,
        checkpoints=checkpoints,
        val_metrics=list(body.get("val_metrics", [])),
        species=list(body.get("species", [])),
    )
