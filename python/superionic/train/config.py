"""Training configuration from YAML, with every key checked (typos name the nearest valid key)."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from superionic.data.dataset import LabelKeys

# ModelConfig belongs to the models layer (models are built from it); re-exported here so a
# training config is still one import.
from superionic.models.config import KIND_KEYS, MARATHON_MAX_L, ModelConfig


class ConfigError(ValueError):
    """A configuration the trainer cannot run; the message names the file, the key and the fix."""


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    max_frames: int | None = None
    split_seed: int = 0
    # Where each frame's labels are: ASE's keys by default; MACE/nequip files say REF_energy etc.
    energy_key: str = "energy"
    forces_key: str = "forces"
    stress_key: str = "stress"

    def label_keys(self) -> LabelKeys:
        return LabelKeys(self.energy_key, self.forces_key, self.stress_key)


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
    ("model", "kind"): ("sprinter", "marathon"),
    ("model", "dtype"): ("float32", "float64"),
    ("training", "schedule"): ("cosine", "constant"),
}


@dataclass(frozen=True)
class Rule:
    """What one key accepts: its type, a range test, the range in words and an example of a fix."""

    kind: str  # int, float, str, files, ints, elements
    test: Callable[[Any], bool]
    need: str
    example: str
    optional: bool = False  # null allowed (means "not set")


def _any(_: Any) -> bool:
    return True


def _key(value: Any) -> bool:
    """A label key as extxyz writes one: non-empty, no spaces, '=' or quotes."""
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]*", value))


RULES: dict[tuple[str, str], Rule] = {
    ("data", "train"): Rule("files", lambda v: len(v) > 0, "a list of labelled files", "[frames.extxyz]"),
    ("data", "val"): Rule("files", _any, "a list of labelled files", "[] (hold out val_fraction)"),
    ("data", "val_fraction"): Rule("float", lambda v: 0 < v < 1, "a fraction between 0 and 1", "0.1"),
    ("data", "max_frames"): Rule("int", lambda v: v >= 1, "an integer >= 1", "null (all frames)", True),
    ("data", "split_seed"): Rule("int", lambda v: v >= 0, "an integer >= 0", "0"),
    ("data", "energy_key"): Rule("str", _key, "a frame info key (extxyz comment line)", "REF_energy"),
    ("data", "forces_key"): Rule("str", _key, "a per-atom array name (extxyz column)", "REF_forces"),
    ("data", "stress_key"): Rule("str", _key, "a frame info key (6 or 9 values)", "REF_stress"),
    ("model", "cutoff"): Rule("float", lambda v: v > 0, "a distance > 0 in Angstrom", "5.0"),
    ("model", "n_basis"): Rule("int", lambda v: v >= 1, "an integer >= 1", "8"),
    ("model", "radial_channels"): Rule("int", lambda v: v >= 1, "an integer >= 1", "8"),
    ("model", "angular_channels"): Rule("int", lambda v: v >= 1, "an integer >= 1", "4"),
    ("model", "l_max"): Rule("int", lambda v: 0 <= v <= 4, "an integer from 0 to 4", "4"),
    ("model", "hidden"): Rule("ints", lambda v: all(w >= 1 for w in v), "a list of widths >= 1", "[32, 32]"),
    ("model", "channels"): Rule("int", lambda v: v >= 1, "an integer >= 1 (features per irrep)", "16"),
    ("model", "n_layers"): Rule("int", lambda v: 1 <= v <= 6, "an integer from 1 to 6", "2"),
    ("model", "radial_hidden"): Rule("int", lambda v: v >= 1, "an integer >= 1", "16"),
    ("model", "species"): Rule(
        "elements", _any, "a list of distinct element symbols", "[Li, Ge, P, S]", True
    ),
    ("training", "seed"): Rule("int", lambda v: v >= 0, "an integer >= 0", "0"),
    ("training", "epochs"): Rule("int", lambda v: v >= 1, "an integer >= 1", "200"),
    ("training", "batch_size"): Rule("int", lambda v: v >= 1, "an integer >= 1", "4"),
    ("training", "lr"): Rule("float", lambda v: v > 0, "a learning rate > 0", "0.003"),
    ("training", "weight_decay"): Rule("float", lambda v: v >= 0, "a number >= 0", "0.0"),
    ("training", "warmup_epochs"): Rule("int", lambda v: v >= 0, "an integer >= 0", "2"),
    ("training", "energy_weight"): Rule("float", lambda v: v >= 0, "a loss weight >= 0", "1.0"),
    ("training", "force_weight"): Rule("float", lambda v: v >= 0, "a loss weight >= 0", "10.0"),
    ("training", "stress_weight"): Rule(
        "float", lambda v: v >= 0, "a loss weight >= 0 (0 ignores stress)", "0.1"
    ),
    ("training", "ema_decay"): Rule("float", lambda v: 0 <= v < 1, "a number in [0, 1)", "0.99"),
    ("training", "grad_clip"): Rule("float", lambda v: v > 0, "a gradient norm > 0", "10.0"),
    ("training", "patience"): Rule("int", lambda v: v >= 1, "an integer >= 1 (epochs)", "50"),
    ("training", "checkpoint_every"): Rule(
        "int", lambda v: v >= 1, "an integer >= 1 (optimiser steps)", "50"
    ),
    ("training", "max_minutes"): Rule("float", lambda v: v > 0, "minutes > 0", "null (no budget)", True),
    ("training", "threads"): Rule("int", lambda v: v >= 1, "an integer >= 1", "null (torch's default)", True),
}
# PyYAML reads 1e-3 (no dot) as a string: numbers written that way are accepted for float keys.
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _typed(kind: str, value: Any) -> tuple[bool, Any]:
    """(whether ``value`` has the kind, the value converted to it)."""
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind == "float":
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    if kind == "files":
        value = [value] if isinstance(value, str) else value  # one file needs no list
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value), value
    if kind == "ints":
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return ok, value
    if kind == "elements":
        from ase.data import chemical_symbols

        ok = (
            isinstance(value, list)
            and all(isinstance(v, str) and v in chemical_symbols[1:] for v in value)
            and len(set(value)) == len(value)
            and len(value) > 0
        )
        return ok, value
    return isinstance(value, str), value


def check_values(config: TrainConfig, source: str) -> None:
    """Every value in range, or a ConfigError naming the key, the value and an example of a fix."""
    for (section, key), rule in RULES.items():
        part = getattr(config, section)
        value = getattr(part, key)
        if value is None and rule.optional:
            continue
        ok, converted = _typed(rule.kind, value)
        if not ok or not rule.test(converted):
            raise ConfigError(
                f"{source}: {section}.{key} = {value!r} is not valid: it must be {rule.need}; "
                f"e.g. {key}: {rule.example}"
            )
        setattr(part, key, converted)
    _check_kind_keys(config.model, source)
    t = config.training
    if t.energy_weight == 0 and t.force_weight == 0 and t.stress_weight == 0:
        raise ConfigError(
            f"{source}: training.energy_weight, force_weight and stress_weight are all 0: nothing to fit; "
            "e.g. force_weight: 10.0"
        )
    if not isinstance(config.output, str) or not config.output.strip():
        raise ConfigError(f"{source}: output = {config.output!r} is not valid: give a run directory")


def _check_kind_keys(model: ModelConfig, source: str) -> None:
    """A key of another kind set away from its default would be silently ignored: refuse it."""
    defaults = ModelConfig()
    for kind, keys in KIND_KEYS.items():
        if kind == model.kind:
            continue
        for key in keys:
            if getattr(model, key) != getattr(defaults, key):
                raise ConfigError(
                    f"{source}: model.{key} applies to kind {kind} only, not {model.kind}; "
                    f"remove it or set kind: {kind}"
                )
    if model.kind == "marathon" and model.l_max > MARATHON_MAX_L:
        raise ConfigError(
            f"{source}: model.l_max = {model.l_max} is too large for kind marathon (its tensor products "
            f"support 0 to {MARATHON_MAX_L}); e.g. l_max: 1"
        )


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
    check_values(config, source)
    return config


def parse_yaml(text: str, source: str) -> Any:
    """YAML text, or one line naming the file, the line and column, and what the parser expected."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        detail = f"{problem} ({context})" if context else problem
        if "'\\t'" in detail:
            detail = "a tab character; YAML indents with spaces only"
        raise ConfigError(
            f"{where}: YAML syntax error: {detail}; check the indentation and quoting there"
        ) from err


def load_config(path: str | Path) -> TrainConfig:
    source = Path(path)
    if not source.exists():
        raise ConfigError(f"{source}: no such config file")
    if source.is_dir():
        raise ConfigError(f"{source}: is a directory; give the YAML config file")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{source}: not a text file (byte {err.start} is not UTF-8); give a YAML config"
        ) from err
    except OSError as err:
        raise ConfigError(f"{source}: cannot be read ({err.strerror})") from err
    raw = parse_yaml(text, str(source))
    config = config_from_dict(raw or {}, str(source))
    # Every path, the run directory included, is relative to the config file, so a config travels
    # with its data and `superionic train docs/x.yaml` writes where the file says from any directory.
    base = source.resolve().parent
    config.data.train = [str((base / p).resolve()) for p in config.data.train]
    config.data.val = [str((base / p).resolve()) for p in config.data.val]
    config.output = str((base / config.output).resolve())
    return config
