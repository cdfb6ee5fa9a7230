"""The `superionic learn` configuration (YAML), every key checked; paths relative to the file.

A bad value is one line naming the file, the key and an example of a valid value; an unknown key
names the nearest valid one. See docs/active_learning.md for what each key does.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from superionic.data.labellers import LABELLERS
from superionic.train.config import ConfigError, parse_yaml


class LearnError(ConfigError):
    """An active-learning request that cannot run; the message names the file, the key and the fix."""


@dataclass
class LearnMd:
    steps: int = 20_000  # per temperature and round, equilibration included
    eq_steps: int = 2_000
    timestep_ps: float = 0.002
    dump_every: int = 50  # must be a multiple of devi_every: frames are chosen at deviation steps
    devi_every: int = 10
    restart_every: int = 5_000
    nprocs: int = 1
    parallel: int = 1
    seed: int = 4928459  # round r runs with seed + r
    devi_stop: float | None = None  # eV/Å; stop a run whose deviation exceeds it (None: never)


@dataclass
class LearnFinetune:
    # Rounds after the first warm-start every member from its own previous checkpoint and train it
    # this many epochs at lr × lr_scale (null epochs: every round retrains from scratch).
    epochs: int | None = 40
    lr_scale: float = 0.3


@dataclass
class LearnValidation:
    references: list[str] = field(default_factory=list)  # teacher MD at the learn temperatures
    slope_tolerance: float = 0.2


@dataclass
class LearnConfig:
    structure: str = ""
    training: str = ""  # a superionic train config; its data.train is the starting data
    committee: str | None = None  # a committee.json from `superionic train --committee`: round 0's
    members: int = 4
    temperatures: list[float] = field(default_factory=list)
    labeller: str = "sevennet"
    device: str = "cpu"
    rounds: int = 4
    lo: float = 0.05  # eV/Å
    hi: float = 0.30  # eV/Å
    threshold: float | None = None  # eV/Å; uncertain = max_devi_f > threshold (None: lo)
    target_fraction: float = 0.05
    max_frames: int = 20  # labelled per round, all temperatures together
    min_gap_steps: int | None = None  # between frames of one run (None: 2 × dump_every)
    ion: str = "Li"
    supercell: list[int] | None = None
    min_width: float | None = None
    ordering_seed: int = 0
    allow_small_cell: bool = False
    output: str = "runs/learn"
    md: LearnMd = field(default_factory=LearnMd)
    finetune: LearnFinetune = field(default_factory=LearnFinetune)
    validation: LearnValidation = field(default_factory=LearnValidation)
    source: str = "learn config"  # the file it came from, for messages

    @property
    def gap_steps(self) -> int:
        return self.min_gap_steps if self.min_gap_steps is not None else 2 * self.md.dump_every

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("source")
        return out

    def fingerprint(self) -> str:
        """What a resumed run must share with the one it continues (rounds and target may grow)."""
        kept = self.to_dict()
        for key in ("rounds", "target_fraction"):
            kept.pop(key)
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


SECTIONS = {"md": LearnMd, "finetune": LearnFinetune, "validation": LearnValidation}


def _unknown(key: str, valid: list[str], where: str) -> LearnError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
    return LearnError(f"{where}: unknown key '{key}'; {hint}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(source: str, key: str, value: Any, need: str, example: str) -> LearnError:
    return LearnError(f"{source}: {key} = {value!r} is not valid: it must be {need}; e.g. {example}")


def check(config: LearnConfig) -> None:
    """Every value in range, or one line naming the file, the key and a valid example."""
    s, md = config.source, config.md
    if not config.structure:
        raise LearnError(
            f"{s}: structure is missing; give the MD starting structure, e.g. structure: cell.cif"
        )
    if not config.training:
        raise LearnError(
            f"{s}: training is missing; give a superionic train config, e.g. training: train.yaml"
        )
    if not _integer(config.members) or config.members < 2:
        raise _bad(s, "members", config.members, "an integer >= 2 (a committee)", "members: 4")
    temps = config.temperatures
    if not isinstance(temps, list) or not temps or not all(_number(t) and t > 0 for t in temps):
        raise _bad(s, "temperatures", temps, "a list of temperatures > 0 K", "temperatures: [600, 900]")
    if len(set(temps)) != len(temps):
        raise _bad(s, "temperatures", temps, "distinct temperatures", "temperatures: [600, 900]")
    if config.labeller not in LABELLERS:
        raise _bad(s, "labeller", config.labeller, f"one of {', '.join(LABELLERS)}", "labeller: sevennet")
    if not _integer(config.rounds) or config.rounds < 1:
        raise _bad(s, "rounds", config.rounds, "an integer >= 1", "rounds: 4")
    if not (_number(config.lo) and config.lo > 0):
        raise _bad(s, "lo", config.lo, "a force deviation > 0 in eV/Å", "lo: 0.05")
    if not (_number(config.hi) and config.hi > config.lo):
        raise _bad(
            s,
            "hi",
            config.hi,
            f"a force deviation above lo ({config.lo:g}) in eV/Å",
            f"hi: {max(0.3, 3 * config.lo):g}",
        )
    if config.threshold is not None and not (_number(config.threshold) and config.threshold > 0):
        raise _bad(
            s, "threshold", config.threshold, "a force deviation > 0 in eV/Å, or null (lo)", "threshold: null"
        )
    if not (_number(config.target_fraction) and 0 <= config.target_fraction < 1):
        raise _bad(
            s, "target_fraction", config.target_fraction, "a fraction in [0, 1)", "target_fraction: 0.05"
        )
    if not _integer(config.max_frames) or config.max_frames < 1:
        raise _bad(s, "max_frames", config.max_frames, "an integer >= 1 (frames per round)", "max_frames: 20")
    if config.min_gap_steps is not None and (not _integer(config.min_gap_steps) or config.min_gap_steps < 1):
        raise _bad(s, "min_gap_steps", config.min_gap_steps, "an integer >= 1, or null", "min_gap_steps: 100")
    for key in (
        "steps",
        "eq_steps",
        "dump_every",
        "devi_every",
        "restart_every",
        "nprocs",
        "parallel",
        "seed",
    ):
        value = getattr(md, key)
        lowest = 0 if key in ("eq_steps", "seed") else 1
        if not _integer(value) or value < lowest:
            raise _bad(s, f"md.{key}", value, f"an integer >= {lowest}", f"{key}: {getattr(LearnMd, key)}")
    if not (_number(md.timestep_ps) and md.timestep_ps > 0):
        raise _bad(s, "md.timestep_ps", md.timestep_ps, "a time step > 0 in ps", "timestep_ps: 0.002")
    if md.steps <= md.eq_steps:
        raise _bad(
            s, "md.steps", md.steps, f"more than md.eq_steps ({md.eq_steps})", f"steps: {md.eq_steps + 10000}"
        )
    if md.dump_every % md.devi_every:
        raise _bad(
            s,
            "md.dump_every",
            md.dump_every,
            f"a multiple of md.devi_every ({md.devi_every}): frames are labelled at deviation steps",
            f"dump_every: {5 * md.devi_every}",
        )
    if md.eq_steps % md.dump_every:
        raise _bad(
            s,
            "md.eq_steps",
            md.eq_steps,
            f"a multiple of md.dump_every ({md.dump_every}): the trajectory starts there",
            f"eq_steps: {md.dump_every * max(1, round(md.eq_steps / md.dump_every))}",
        )
    if md.devi_stop is not None and not (_number(md.devi_stop) and md.devi_stop > config.hi):
        raise _bad(
            s,
            "md.devi_stop",
            md.devi_stop,
            f"a deviation above hi ({config.hi:g}) eV/Å, or null",
            "devi_stop: null",
        )
    ft = config.finetune
    if ft.epochs is not None and (not _integer(ft.epochs) or ft.epochs < 1):
        raise _bad(
            s, "finetune.epochs", ft.epochs, "an integer >= 1, or null (retrain from scratch)", "epochs: 40"
        )
    if not (_number(ft.lr_scale) and ft.lr_scale > 0):
        raise _bad(s, "finetune.lr_scale", ft.lr_scale, "a factor > 0 on the training lr", "lr_scale: 0.3")
    if config.supercell is not None and (
        not isinstance(config.supercell, list)
        or len(config.supercell) != 3
        or not all(_integer(n) and n >= 1 for n in config.supercell)
    ):
        raise _bad(s, "supercell", config.supercell, "three integers >= 1, or null", "supercell: [1, 1, 2]")
    if config.min_width is not None and not (_number(config.min_width) and config.min_width > 0):
        raise _bad(s, "min_width", config.min_width, "a width > 0 in Å, or null", "min_width: 12")
    for path_key in ("structure", "training", "committee"):
        value = getattr(config, path_key)
        if (
            value is not None
            and not Path(value).exists()
            and not (path_key == "structure" and "/" not in value)
        ):
            raise LearnError(
                f"{s}: {path_key} = {value}: no such file; check the path (relative to the config)"
            )
    for k, ref in enumerate(config.validation.references):
        if not Path(ref.rpartition("@")[0] if "@" in ref else ref).exists():
            raise LearnError(f"{s}: validation.references[{k}] = {ref}: no such file; check the path")


def config_from_dict(raw: Any, source: str = "learn config", base: Path | None = None) -> LearnConfig:
    if not isinstance(raw, dict):
        raise LearnError(f"{source}: expected a mapping of keys (structure, training, temperatures, ...)")
    top = [f.name for f in fields(LearnConfig) if f.name != "source"]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in top:
            raise _unknown(key, top, source)
        if key in SECTIONS:
            cls = SECTIONS[key]
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise LearnError(f"{source}: section '{key}' must be a mapping of keys")
            valid = [f.name for f in fields(cls)]
            for inner in value:
                if inner not in valid:
                    raise _unknown(inner, valid, f"{source}: section '{key}'")
            value = cls(
                **{k: (float(v) if isinstance(v, str) and _is_float(v) else v) for k, v in value.items()}
            )
        elif isinstance(value, str) and key in ("lo", "hi", "threshold", "target_fraction", "min_width"):
            value = float(value) if _is_float(value) else value  # PyYAML reads 1e-3 as a string
        values[key] = value
    if isinstance(values.get("temperatures"), int | float):
        values["temperatures"] = [values["temperatures"]]
    config = LearnConfig(**values, source=source)
    if isinstance(config.temperatures, list):
        config.temperatures = [float(t) if _number(t) else t for t in config.temperatures]
    if base is not None:
        for key in ("training", "committee"):
            value = getattr(config, key)
            if isinstance(value, str) and value:
                setattr(config, key, str((base / value).resolve()))
        if isinstance(config.structure, str) and (base / config.structure).exists():
            config.structure = str((base / config.structure).resolve())
        config.output = str((base / config.output).resolve())
        config.validation.references = [_resolve_reference(base, r) for r in config.validation.references]
    check(config)
    return config


def _resolve_reference(base: Path, text: str) -> str:
    path, at, temperature = text.rpartition("@") if "@" in text else (text, "", "")
    return str((base / path).resolve()) + (at + temperature if at else "")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_learn_config(path: str | Path) -> LearnConfig:
    source = Path(path)
    if not source.exists():
        raise LearnError(f"{source}: no such config file; write one as in docs/active_learning.md")
    if source.is_dir():
        raise LearnError(f"{source}: is a directory; give the learn YAML config")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise LearnError(f"{source}: not a text file; give a YAML config") from err
    raw = parse_yaml(text, str(source))
    return config_from_dict(raw or {}, str(source), source.resolve().parent)
