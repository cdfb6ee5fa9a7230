"""The training loop: seeded, resumable to the bit, with EMA, clipping, early stopping and logs.

Determinism: the batch order of epoch e is a permutation drawn from (seed, e), the learning rate a
function of the global step, and nothing else is random. A checkpoint therefore needs only the
weights, the EMA, the optimiser state and counters to continue exactly where a run stopped, even
mid-epoch, and a resumed run ends with the same weights as one that was never interrupted.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from superionic.data.dataset import Batch, Frame, collate, data_hash, load_frames, split_indices
from superionic.models.build import DTYPES, build_model
from superionic.models.contract import ContractModel
from superionic.models.prediction import predict
from superionic.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from superionic.train.config import TrainConfig
from superionic.train.initialise import closest_pair_distances, initialise_model, pair_closest_record
from superionic.train.metrics import EV_PER_A3_TO_GPA, Predictions, compute_metrics
from superionic.train.plots import parity_plot

log = logging.getLogger("superionic.train")

CSV_FIELDS = [
    "epoch",
    "step",
    "lr",
    "train_loss",
    "val_loss",
    "val_energy_rmse_eV_per_atom",
    "val_force_rmse_eV_per_A",
    "val_stress_rmse_GPa",
    "wall_s",
]


class RunExistsError(RuntimeError):
    """The output directory already holds a run; refusing to overwrite it."""


@dataclass(frozen=True)
class TrainResult:
    output: str
    epochs_run: int
    global_step: int
    best_epoch: int
    best_val_loss: float
    val_metrics: dict[str, float]
    wall_s: float
    checkpoint: str
    parity_png: str


@dataclass(frozen=True)
class Progress:
    epoch: int
    epochs: int
    step_in_epoch: int
    steps_per_epoch: int
    train_loss: float
    val_force_rmse: float | None = None


def loss_terms(pred, batch: Batch, config: TrainConfig) -> torch.Tensor:
    t = config.training
    per_atom = (pred.energy - batch.energy) / batch.n_atoms
    loss = (
        t.energy_weight * per_atom.pow(2).mean() + t.force_weight * (pred.forces - batch.forces).pow(2).mean()
    )
    if t.stress_weight > 0 and bool(batch.has_stress.any()):
        diff = (pred.stress - batch.stress)[batch.has_stress] * EV_PER_A3_TO_GPA
        loss = loss + t.stress_weight * diff.pow(2).mean()
    return loss


def learning_rate(config: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    t = config.training
    warmup = max(1, t.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return t.lr * (step + 1) / warmup
    if t.schedule == "constant":
        return t.lr
    progress = (step - warmup) / max(1, total_steps - warmup)
    return t.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


class Trainer:
    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False) -> None:
        self.config = config
        self.output = Path(config.output)
        self.last_path = self.output / "last.ckpt"
        self.best_path = self.output / "best.ckpt"
        if self.last_path.exists() and not (resume or overwrite):
            raise RunExistsError(
                f"{self.output} already holds a training run ({self.last_path.name}); pass --resume to "
                "continue it or choose another output directory"
            )
        if resume and not self.last_path.exists():
            raise RunExistsError(f"{self.last_path}: nothing to resume; drop --resume to start a new run")
        self.resume = resume
        t = config.training
        if t.threads:
            torch.set_num_threads(t.threads)
        self.dtype = DTYPES[config.model.dtype]
        self._load_data()
        self.model = build_model(config.model, self.species, t.seed)
        self.state = TrainState()
        initialise_model(self.model, self.train_frames)
        self.ema = copy.deepcopy(self.model)
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        if resume:
            self._restore()

    def _load_data(self) -> None:
        cfg = self.config
        keys = cfg.data.label_keys()
        frames, self.species = load_frames(cfg.data.train, cfg.model.cutoff, cfg.model.species, keys)
        if cfg.data.val:
            self.val_frames, _ = load_frames(cfg.data.val, cfg.model.cutoff, self.species, keys)
            train_idx = np.arange(len(frames))
        else:
            train_idx, val_idx = split_indices(len(frames), cfg.data.val_fraction, cfg.data.split_seed)
            self.val_frames = [frames[i] for i in val_idx]
        if cfg.data.max_frames is not None:
            # A seeded subset, nested for growing sizes: learning curves compare like with like.
            chosen = np.random.default_rng(cfg.data.split_seed).permutation(train_idx)[: cfg.data.max_frames]
            train_idx = np.sort(chosen)
        self.train_frames: list[Frame] = [frames[i] for i in train_idx]
        self.data_hash = data_hash(cfg.data.train + cfg.data.val)
        # Every labelled frame, validation included, is a geometry the teacher vouched for: the
        # closest approach of each species pair there is what the MD guard's floors derive from.
        closest = closest_pair_distances(self.train_frames + self.val_frames, len(self.species))
        self.pair_closest = pair_closest_record(closest)
        log.info(
            "data: %d training and %d validation frames, species %s",
            len(self.train_frames),
            len(self.val_frames),
            self.species,
        )

    def _payload(self) -> dict:
        return {
            "format": 1,
            "config": self.config.to_dict(),
            "species": self.species,
            "data_hash": self.data_hash,
            "pair_closest_A": self.pair_closest,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": asdict(self.state),
        }

    def _restore(self) -> None:
        payload = load_checkpoint(self.last_path)
        if payload["data_hash"] != self.data_hash:
            raise RunExistsError(
                f"{self.last_path}: was trained on different data (hash {payload['data_hash']} vs "
                f"{self.data_hash}); resume with the original data or start a new output directory"
            )
        self.model.load_state_dict(payload["model"])
        self.ema.load_state_dict(payload["ema"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.state = TrainState(**payload["state"])
        log.info("resumed %s at epoch %d, step %d", self.last_path, self.state.epoch, self.state.global_step)

    def _update_ema(self) -> None:
        decay = self.config.training.ema_decay
        with torch.no_grad():
            for ema_p, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                ema_p.mul_(decay).add_(p, alpha=1.0 - decay)

    def evaluate(self, model: ContractModel, frames: Sequence[Frame]) -> tuple[float, Predictions]:
        bs = self.config.training.batch_size
        total, weight = 0.0, 0
        collected = Predictions()
        for start in range(0, len(frames), bs):
            chunk = list(frames[start : start + bs])
            batch = collate(chunk, self.dtype)
            pred = predict(model, batch, create_graph=False)
            total += float(loss_terms(pred, batch, self.config).detach()) * len(chunk)
            weight += len(chunk)
            collect(collected, pred, batch)
        return total / max(1, weight), collected

    def _open_csv(self) -> None:
        path = self.output / "train.csv"
        rows: list[list[str]] = []
        if self.resume and path.exists():
            # Rows written after the checkpoint will be written again: drop them.
            with path.open() as handle:
                rows = list(csv.reader(handle))[1 : 1 + self.state.csv_rows]
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_FIELDS)
            writer.writerows(rows)
        self.csv_path = path

    def _write_csv(self, row: dict[str, float]) -> None:
        with self.csv_path.open("a", newline="") as handle:
            csv.DictWriter(handle, CSV_FIELDS).writerow(row)
        self.state.csv_rows += 1

    def run(self, on_progress: Callable[[Progress], None] | None = None) -> TrainResult:
        from torch.utils.tensorboard import SummaryWriter

        cfg, t = self.config, self.config.training
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self._open_csv()
        writer = SummaryWriter(str(self.output / "tensorboard"), purge_step=self.state.global_step or None)
        n_train = len(self.train_frames)
        steps_per_epoch = math.ceil(n_train / t.batch_size)
        total_steps = t.epochs * steps_per_epoch
        start = time.perf_counter()
        val_metrics: dict[str, float] = {}
        epoch_loss = []
        try:
            while self.state.epoch < t.epochs and not self.state.finished:
                order = epoch_order(t.seed, self.state.epoch, n_train)
                # The rate of the epoch's last step, for its log row: a run resumed from a checkpoint
                # written after that step (then stopped before the epoch's end) takes no step here.
                lr = learning_rate(cfg, max(self.state.global_step - 1, 0), total_steps, steps_per_epoch)
                while self.state.step_in_epoch < steps_per_epoch:
                    k = self.state.step_in_epoch
                    batch = collate(
                        [self.train_frames[i] for i in order[k * t.batch_size : (k + 1) * t.batch_size]],
                        self.dtype,
                    )
                    lr = learning_rate(cfg, self.state.global_step, total_steps, steps_per_epoch)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    loss = loss_terms(predict(self.model, batch, create_graph=True), batch, cfg)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
                    self.optimizer.step()
                    self._update_ema()
                    epoch_loss.append(float(loss.detach()))
                    self.state.step_in_epoch += 1
                    self.state.global_step += 1
                    if self.state.global_step % t.checkpoint_every == 0:
                        save_checkpoint(self.last_path, self._payload())
                    if on_progress:
                        on_progress(
                            Progress(
                                self.state.epoch,
                                t.epochs,
                                self.state.step_in_epoch,
                                steps_per_epoch,
                                float(loss.detach()),
                            )
                        )
                val_loss, collected = self.evaluate(self.ema, self.val_frames)
                val_metrics = compute_metrics(collected, self.species)
                row = {
                    "epoch": self.state.epoch,
                    "step": self.state.global_step,
                    "lr": lr,
                    "train_loss": float(np.mean(epoch_loss)) if epoch_loss else float("nan"),
                    "val_loss": val_loss,
                    "val_energy_rmse_eV_per_atom": val_metrics["energy_rmse_eV_per_atom"],
                    "val_force_rmse_eV_per_A": val_metrics["force_rmse_eV_per_A"],
                    "val_stress_rmse_GPa": val_metrics.get("stress_rmse_GPa", float("nan")),
                    "wall_s": time.perf_counter() - start,
                }
                self._write_csv(row)
                for key, value in row.items():
                    if key not in ("epoch", "step"):
                        writer.add_scalar(key, value, self.state.global_step)
                epoch_loss = []
                if on_progress:
                    on_progress(
                        Progress(
                            self.state.epoch,
                            t.epochs,
                            steps_per_epoch,
                            steps_per_epoch,
                            row["train_loss"],
                            val_metrics["force_rmse_eV_per_A"],
                        )
                    )
                if val_loss < self.state.best_val_loss:
                    self.state.best_val_loss, self.state.best_epoch = val_loss, self.state.epoch
                    self.state.epochs_since_best = 0
                    save_checkpoint(self.best_path, self._payload())
                else:
                    self.state.epochs_since_best += 1
                self.state.epoch += 1
                self.state.step_in_epoch = 0
                if self.state.epochs_since_best >= t.patience:
                    log.info("early stop: no validation improvement for %d epochs", t.patience)
                    self.state.finished = True
                if t.max_minutes is not None and time.perf_counter() - start > 60 * t.max_minutes:
                    log.info("stopping: wall-clock budget of %s minutes reached", t.max_minutes)
                    self.state.finished = True
                save_checkpoint(self.last_path, self._payload())
        finally:
            writer.close()
        return self._finish(time.perf_counter() - start)

    def _finish(self, wall: float) -> TrainResult:
        best, _, _ = _best_model(self.best_path if self.best_path.exists() else self.last_path)
        _, collected = self.evaluate(best, self.val_frames)
        metrics = compute_metrics(collected, self.species)
        png = parity_plot(
            collected, self.output / "parity_val.png", f"validation, {len(self.val_frames)} frames"
        )
        result = TrainResult(
            output=str(self.output),
            epochs_run=self.state.epoch,
            global_step=self.state.global_step,
            best_epoch=self.state.best_epoch,
            best_val_loss=self.state.best_val_loss,
            val_metrics=metrics,
            wall_s=wall,
            checkpoint=str(self.best_path),
            parity_png=str(png),
        )
        (self.output / "metrics.json").write_text(json.dumps(asdict(result), indent=2))
        return result


def _best_model(path: Path):
    from superionic.train.checkpoint import model_from_checkpoint

    return model_from_checkpoint(path)


def collect(collected: Predictions, pred, batch: Batch) -> None:
    """Append one batch's reference and predicted values, frame by frame."""
    n = batch.n_atoms.numpy()
    energy_pred = pred.energy.detach().numpy() / n
    energy_ref = batch.energy.numpy() / n
    collected.energy_per_atom += list(zip(energy_ref.tolist(), energy_pred.tolist(), strict=True))
    collected.forces.append((batch.forces.numpy(), pred.forces.detach().numpy(), batch.species.numpy()))
    for k in range(batch.n_frames):
        if bool(batch.has_stress[k]):
            collected.stress.append((batch.stress[k].numpy(), pred.stress[k].detach().numpy()))
