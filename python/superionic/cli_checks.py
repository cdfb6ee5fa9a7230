"""Up-front checks of command-line arguments: every verb refuses bad input before any work starts.

Each check raises UsageError with one line naming the option, the value given and a fix, so that
a run never fails minutes in (after training, inside LAMMPS) on something the arguments already
showed. What only the library can judge (a config's keys, a file's contents) stays there; this
module checks ranges, existence, kinds of files and consistency between options.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from superionic.modelfile import EXPORTED, Kind, ModelFileError, identify, require_exported

# LAMMPS draws velocities and thermostat noise from a positive 32-bit seed.
MAX_SEED = 2**31 - 1
GROUP_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class UsageError(ValueError):
    """A command-line argument out of range, inconsistent with another, or naming a wrong file."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (argparse prints the usage block first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _number(
    name: str,
    value: float | int | None,
    ok: Callable[[float], bool],
    need: str,
    example: str,
) -> None:
    if value is None:
        return
    if not (math.isfinite(value) and ok(value)):
        raise UsageError(f"{name} {value:g}: must be {need}; e.g. {name} {example}")


def at_least(name: str, value: int | None, low: int, what: str, example: str) -> None:
    _number(name, value, lambda v: v >= low, f"an integer >= {low} ({what})", example)


def positive(name: str, value: float | None, what: str, example: str) -> None:
    _number(name, value, lambda v: v > 0, f"> 0 ({what})", example)


def input_file(name: str, path: str | Path, what: str) -> Path:
    """An existing, non-empty, readable regular file."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{name} {path}: no such file; give the {what}")
    if path.is_dir():
        raise UsageError(f"{name} {path}: is a directory; give the {what} file itself")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{name} {path}: not readable (permissions); give a {what} you can read")
    if path.stat().st_size == 0:
        raise UsageError(f"{name} {path}: the file is empty; give the {what}")
    return path


def output_dir(name: str, path: str | Path) -> None:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{name} {path}: exists and is a file, not a directory; choose another output")


def output_model(name: str, path: str | Path) -> None:
    path = Path(path)
    if path.suffix not in (".pt", ".pt2"):
        raise UsageError(
            f"{name} {path}: unknown model suffix '{path.suffix}'; "
            "use .pt (TorchScript) or .pt2 (AOTInductor)"
        )
    if path.is_dir():
        raise UsageError(f"{name} {path}: is a directory; give a file name ending in {path.suffix}")


def elements(name: str, symbols: Sequence[str] | None) -> None:
    if not symbols:
        return
    from ase.data import chemical_symbols

    for symbol in symbols:
        if symbol not in chemical_symbols[1:]:
            raise UsageError(f"{name} {symbol}: not an element symbol; e.g. {name} Li Ge P S")
    if len(set(symbols)) != len(symbols):
        raise UsageError(f"{name} {' '.join(symbols)}: an element is repeated; give each once")


def distinct(name: str, values: Sequence, what: str) -> None:
    seen = set()
    for value in values:
        key = str(Path(value).resolve()) if isinstance(value, Path) else value
        if key in seen:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            raise UsageError(f"{name}: {shown} is given twice; give each {what} once")
        seen.add(key)


def model_argument(path: str | Path, checkpoints_too: bool = False) -> None:
    """An exported superionic model (or a checkpoint), told apart from its bytes."""
    if not Path(path).exists():
        raise UsageError(f"model {path}: no such file; check the path")
    try:
        require_exported(path, checkpoints_too=checkpoints_too)
    except ModelFileError as err:
        raise UsageError(str(err)) from err


def checkpoint_argument(path: str | Path) -> None:
    found = identify(path)
    if found.kind is Kind.MISSING:
        raise UsageError(f"checkpoint {path}: no such file; give a run's best.ckpt or last.ckpt")
    if found.kind is Kind.CHECKPOINT:
        return
    if found.kind in EXPORTED:
        fix = "it is already exported: give it to `superionic md` or pair_coeff as it is"
    else:
        fix = "give a run's best.ckpt or last.ckpt (written by `superionic train`)"
    raise UsageError(f"{path} is not a superionic checkpoint ({found.description}); {fix}")


def device_argument(device: str) -> None:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise UsageError(f"--device {device}: unknown device; use cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: torch sees no CUDA device here; use --device cpu")


def structure_argument(path: str | Path) -> None:
    """A built-in name, or a readable structure file (CIF with partial occupancies included)."""
    from superionic.data.structure_input import _builtin_key, load_site_table

    if not Path(str(path)).exists() and _builtin_key(str(path)) is not None:
        return
    path = input_file("structure", path, "structure (CIF, POSCAR, extxyz, LAMMPS data ...)")
    load_site_table(str(path))  # one-line StructureError (a user error) for anything unreadable


# --- one function per verb -------------------------------------------------------------------


def _export_reference(args: argparse.Namespace) -> None:
    output_model("--output", args.output)
    elements("--species", args.species)


def _train(args: argparse.Namespace) -> None:
    input_file("config", args.config, "training config (YAML)")


def _evaluate(args: argparse.Namespace) -> None:
    model_argument(args.model, checkpoints_too=True)
    for data in args.data:
        input_file("data", data, "labelled data")
    output_dir("--output", args.output)


def _export(args: argparse.Namespace) -> None:
    if Path(args.checkpoint).suffix == ".json":  # a trained committee's manifest: members into a directory
        input_file("committee manifest", args.checkpoint, "committee.json of superionic train --committee")
        output_dir("--output", args.output)
        device_argument(args.device)
        return
    checkpoint_argument(args.checkpoint)
    output_model("--output", args.output)
    device_argument(args.device)


def _md(args: argparse.Namespace) -> None:
    for t in args.temperatures:
        positive("--temperatures", t, "kelvin", "600 800 1000")
    distinct("--temperatures", args.temperatures, "temperature")
    if args.target_ea is not None or args.target_sigma is not None:
        if len(args.temperatures) < 2:
            raise UsageError(
                f"--target-ea/--target-sigma with -T {' '.join(f'{t:g}' for t in args.temperatures)}: Ea "
                "and σ(300 K) need at least two temperatures (five for the targets), "
                "e.g. -T 600 700 800 900 1000"
            )
        if args.target_ea is not None and not args.target_ea > 0:
            raise UsageError(f"--target-ea {args.target_ea:g}: must be > 0 eV, e.g. --target-ea 0.03")
        if args.target_sigma is not None and not args.target_sigma > 1:
            raise UsageError(f"--target-sigma {args.target_sigma:g}: must be > 1, e.g. --target-sigma 3")
        if not args.max_md_ns > 0:
            raise UsageError(f"--max-md-ns {args.max_md_ns:g}: must be > 0 ns per temperature, e.g. 2")
    at_least("--steps", args.steps, 1, "total MD steps, equilibration included", "50000")
    at_least("--eq-steps", args.eq_steps, 0, "equilibration steps", "5000")
    if args.steps <= args.eq_steps:
        raise UsageError(
            f"--steps {args.steps} must exceed --eq-steps {args.eq_steps}: steps count from 0 and include "
            f"the equilibration; e.g. --steps {args.eq_steps + 50_000}"
        )
    _number("--dt", args.dt, lambda v: 0 < v <= 0.01, "> 0 and <= 0.01 ps (time step, ps)", "0.002")
    at_least("--dump-every", args.dump_every, 1, "steps between frames", "100")
    if args.dump_every > args.steps - args.eq_steps:
        raise UsageError(
            f"--dump-every {args.dump_every} exceeds the {args.steps - args.eq_steps} production steps: "
            "the trajectory would hold no frame after the first; lower --dump-every or raise --steps"
        )
    at_least("--restart-every", args.restart_every, 1, "steps between restart files", "5000")
    at_least("--np", args.np, 1, "MPI ranks", "1")
    at_least("--parallel", args.parallel, 1, "temperatures at once", "1")
    _number("--seed", args.seed, lambda v: 1 <= v <= MAX_SEED, f"an integer from 1 to {MAX_SEED}", "4928459")
    if not GROUP_NAME.match(args.group):
        raise UsageError(
            f"--group {args.group!r}: not a LAMMPS group name (letters, digits, _); e.g. --group all"
        )
    for q in args.charges or []:
        _number("--charges", q, lambda v: True, "finite", "1 4 5 -2")
    output_dir("--output", args.output)
    if not (Path(args.model).is_dir() or Path(args.model).suffix == ".json"):  # else a committee manifest
        model_argument(args.model)
    for member in getattr(args, "committee", None) or []:
        model_argument(member)
    structure_argument(args.structure)


def _trajectory_options(args: argparse.Namespace) -> None:
    elements("--ion", [args.ion])
    elements("--types", args.types)
    positive("--timestep-ps", args.timestep_ps, "ps between frames", "0.2")
    _number("--charge", args.charge, lambda v: v != 0, "a non-zero charge in e", "1")
    _number(
        "--slope-tolerance", args.slope_tolerance, lambda v: 0 < v < 1, "between 0 and 1 (exclusive)", "0.1"
    )
    output_dir("--output", args.output)


def _analyze(args: argparse.Namespace) -> None:
    input_file("trajectory", args.trajectory, "trajectory")
    positive("--temperature", args.temperature, "kelvin", "900")
    _trajectory_options(args)


def _arrhenius(args: argparse.Namespace) -> None:
    if len(args.trajectories) < 2:
        raise UsageError(
            f"arrhenius needs trajectories at two or more temperatures, got {len(args.trajectories)} file; "
            "e.g. superionic arrhenius runs/md/T*/traj.h5"
        )
    distinct("trajectories", args.trajectories, "trajectory")
    if not args.target_ea > 0:
        raise UsageError(f"--target-ea {args.target_ea:g}: must be > 0 eV, e.g. --target-ea 0.03")
    if not args.target_sigma > 1:
        raise UsageError(f"--target-sigma {args.target_sigma:g}: must be > 1, e.g. --target-sigma 3")
    for path in args.trajectories:
        input_file("trajectory", path, "trajectory")
    if args.temperatures:
        if len(args.temperatures) != len(args.trajectories):
            raise UsageError(
                f"--temperatures gives {len(args.temperatures)} values for {len(args.trajectories)} files; "
                "give one temperature per trajectory, in the same order"
            )
        for t in args.temperatures:
            positive("--temperatures", t, "kelvin", "900 1050 1200")
    _trajectory_options(args)


def _study(args: argparse.Namespace) -> None:
    if getattr(args, "study", None) != "data-size":
        return
    input_file("config", args.config, "training config (YAML)")
    for size in args.sizes:
        at_least("--sizes", size, 1, "training frames per point", "50 100 200 400")
    distinct("--sizes", args.sizes, "size")
    output_dir("--output", args.output)


def _demo(args: argparse.Namespace) -> None:
    at_least("--epochs", args.epochs, 1, "training epochs", "60")
    if not args.max_md_ns > 0:
        raise UsageError(
            f"--max-md-ns {args.max_md_ns:g}: must be > 0 ns per temperature, e.g. --max-md-ns 1"
        )
    at_least("--np", args.np, 1, "MPI ranks", "1")
    output_dir("--workdir", args.workdir)


CHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "export-reference": _export_reference,
    "train": _train,
    "evaluate": _evaluate,
    "export": _export,
    "md": _md,
    "analyze": _analyze,
    "arrhenius": _arrhenius,
    "study": _study,
    "demo": _demo,
}


def check_arguments(args: argparse.Namespace) -> None:
    """Raise UsageError for the first bad argument of the verb in ``args``; verbs not listed pass."""
    check = CHECKS.get(getattr(args, "verb", ""))
    if check is not None:
        check(args)
