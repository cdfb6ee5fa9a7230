"""Training configuration from YAML, with every key checked (typos name the nearest valid key)."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

# ModelConfig belongs to the models layer (models are built from it); re-exported here so a
# training config is still one import.
from superionic.models.config import ModelConfig


class ConfigError(ValueError):
    """A configuration the trainer cannot run; the message names the file, the key and the fix."""


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    max_frames: int | None = None
    split_seed: int = 0


@dataclass
class TrainingConfig:
    seed: int = 0
    epochs: int = 200
    batch_size: int = 4
    lr: float = 0.003
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: int = 2
    energy_weight: float = 1.0
    force_weight: float = 10.0
    stress_weight: float = 0.1
    ema_decay: float = 0.99
    grad_clip: float = 10.0
    patience: int = 50
    checkpoint_every: int = 50
    max_minutes: float | None = None
    threads: int | None = None


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: str = "runs/train"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig}
CHOICES = {
    ("model", "kind"): ("sprinter",),
    ("model", "dtype"): ("float32", "float64"),
    ("training", "schedule"): ("cosine", "constant"),
}


def _unknown(key: str, valid: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
    return ConfigError(f"{where}: unknown key '{key}'; {hint}")


def config_from_dict(raw: dict[str, Any], source: str = "config") -> TrainConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (data, model, training, output)")
    top = [*SECTIONS, "output"]
    for key in raw:
        if key not in top:
            raise _unknown(key, top, source)
    config = TrainConfig(output=str(raw.get("output", TrainConfig.output)))
    for name, cls in SECTIONS.items():
        section = raw.get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: section '{name}' must be a mapping")
        valid = [f.name for f in fields(cls)]
        for key in section:
            if key not in valid:
                raise _unknown(key, valid, f"{source}: section '{name}'")
        try:
            value = cls(**section)
        except TypeError as err:
            raise ConfigError(f"{source}: section '{name}': {err}") from err
        for (sec, key), allowed in CHOICES.items():
            if sec == name and getattr(value, key) not in allowed:
                raise ConfigError(
                    f"{source}: {name}.{key} = '{getattr(value, key)}' is not one of {', '.join(allowed)}"
                )
        setattr(config, name, value)
    if not config.data.train:
        raise ConfigError(f"{source}: data.train lists no files; give at least one labelled file")
    return config


def load_config(path: str | Path) -> TrainConfig:
    source = Path(path)
    if not source.exists():
        raise ConfigError(f"{source}: no such config file")
    try:
        raw = yaml.safe_load(source.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML ({err})") from err
    config = config_from_dict(raw or {}, str(source))
    # Every path, the run directory included, is relative to the config file, so a config travels
    # with its data and `superionic train docs/x.yaml` writes where the file says from any directory.
    base = source.resolve().parent
    config.data.train = [str((base / p).resolve()) for p in config.data.train]
    config.data.val = [str((base / p).resolve()) for p in config.data.val]
    config.output = str((base / config.output).resolve())
    return config
