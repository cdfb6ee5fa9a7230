"""`superionic data ...`: generate labelled reference data and reference MD trajectories.

Wire into the main parser with ``add_data_commands(verbs)``, where ``verbs`` is the object
``parser.add_subparsers(...)`` returned; errors worth one line without a traceback are listed in
:data:`DATA_ERRORS`.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from superionic.data.dataset import LabelKeys
from superionic.data.generate import GenerateConfig, GenerationError
from superionic.data.labellers import LABELLERS, LabellerError
from superionic.data.materials import MATERIALS, MaterialError
from superionic.progress import progress_display

__all__ = [
    "DATA_ERRORS",
    "add_data_commands",
    "add_label_key_options",
    "add_structure_options",
    "label_keys_of",
    "oxidation_states",
    "supercell",
]

DATA_ERRORS = (GenerationError, LabellerError, MaterialError)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.replace(",", " ").split())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from error


def oxidation_states(text: str) -> dict[str, int]:
    """``Li=1,Ge=4,P=5,S=-2`` -> a mapping; argparse turns the error into one line."""
    out: dict[str, int] = {}
    for item in text.replace(" ", ",").split(","):
        if not item:
            continue
        element, _, value = item.partition("=")
        try:
            out[element.strip()] = int(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                f"expected Element=integer pairs such as Li=1,S=-2, got {item!r}"
            ) from error
    if not out:
        raise argparse.ArgumentTypeError("expected Element=integer pairs such as Li=1,S=-2")
    return out


def _label_key(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]*", text):
        raise argparse.ArgumentTypeError(
            f"expected a key as extxyz writes it (e.g. REF_energy), got {text!r}"
        )
    return text


def add_label_key_options(parser: argparse.ArgumentParser) -> None:
    """--energy-key/--forces-key/--stress-key: where labelled files keep their labels (the training
    config's data.energy_key, forces_key, stress_key)."""
    parser.add_argument(
        "--energy-key", type=_label_key, default="energy", help="frame key of the energy (MACE: REF_energy)"
    )
    parser.add_argument(
        "--forces-key", type=_label_key, default="forces", help="per-atom array of the forces (REF_forces)"
    )
    parser.add_argument(
        "--stress-key", type=_label_key, default="stress", help="frame key of the stress (REF_stress)"
    )


def label_keys_of(args: argparse.Namespace) -> LabelKeys:
    return LabelKeys(args.energy_key, args.forces_key, args.stress_key)


# Faults of the disk rather than of the input: what each one asks the user to do.
_DISK_FIXES = {
    errno.ENOSPC: "free space on its disk",
    errno.EDQUOT: "free space within your disk quota",
    errno.EFBIG: "raise the file-size limit (ulimit -f)",
    errno.EROFS: "give -o in a writable directory",
    errno.EACCES: "give -o in a directory you can write to",
    errno.EPERM: "give -o in a directory you can write to",
}


def check_writable(output: Path) -> None:
    """Refuse, before any labeller loads, an output whose directory cannot take a file (read-only
    file system, no permission): creating one there is the only test every file system answers."""
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the directory that the output's folders would be made in
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".superionic-write-test-"):
            pass
    except OSError as err:
        fix = _DISK_FIXES.get(err.errno or 0, "give -o in a writable directory")
        raise GenerationError(f"{output}: cannot write in {folder} ({err.strerror}); {fix}") from err


@contextmanager
def disk_faults(output: Path, what: str) -> Iterator[None]:
    """A full disk, a file-size limit or a read-only directory while ``what`` is written: one line
    naming the file and the reason; the complete frames already written stay (the run's partial
    file and its resume state), so the same command continues once the fault is gone."""
    try:
        yield
    except OSError as err:
        if err.errno not in _DISK_FIXES:
            raise
        where = err.filename or output.with_name(output.name + ".partial")
        reason = err.strerror + (", the file-size limit (ulimit -f)" if err.errno == errno.EFBIG else "")
        raise GenerationError(
            f"{where}: cannot write the {what} ({reason}); every complete frame written so far is kept: "
            f"{_DISK_FIXES[err.errno]}, then run the same command again (it resumes)"
        ) from err


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from error
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def supercell(text: str) -> tuple[int, int, int]:
    return _supercell(text)


def _supercell(text: str) -> tuple[int, int, int]:
    parts = text.lower().replace("x", " ").replace(",", " ").split()
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"supercell must look like 2x1x1, got {text!r}")
    return (int(parts[0]), int(parts[1]), int(parts[2]))


def _limit_threads(threads: int | None) -> None:
    # OpenMP reads this only at start-up of its runtime; set it before torch spins threads up.
    if threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def _progress(description: str):
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    return progress_display(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[kind]}"),
        TimeElapsedColumn(),
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from superionic.data.generate import finish_partial, generate

    _limit_threads(args.threads)
    config = GenerateConfig(
        material=args.structure,
        labeller=args.labeller,
        frames=args.frames,
        temperatures=args.temperatures,
        strain_fraction=args.strain_fraction,
        sample_every=args.sample_every,
        equilibration_steps=args.equilibration_steps,
        seed=args.seed,
        **_structure_fields(args),
        device=args.device,
        threads=args.threads,
        output=args.output,
    )
    run = finish_partial if args.finish_partial else generate
    output = config.output_path()
    check_writable(output)
    with _progress(f"{args.structure} / {args.labeller}") as progress, disk_faults(output, "labelled frames"):
        task = progress.add_task("generate", total=args.frames, kind="")
        result = run(
            config,
            on_progress=lambda done, total, kind: progress.update(
                task, completed=done, total=total, kind=kind
            ),
        )
    summary = result.summary
    print(
        f"{summary['frames']} frames -> {result.output} ({summary['wall_time_s']:.0f} s); "
        f"summary {result.summary_json}"
    )
    return 0


def cmd_reference_md(args: argparse.Namespace) -> int:
    from superionic.data.reference_md import (
        ReferenceMDConfig,
        extend_reference_md,
        finish_partial,
        run_reference_md,
    )

    _limit_threads(args.threads)
    config = ReferenceMDConfig(
        material=args.structure,
        temperature=args.temperature,
        steps=args.steps,
        labeller=args.labeller,
        timestep_fs=args.timestep,
        write_every=args.write_every,
        equilibration_steps=args.equilibration_steps,
        thermostat=args.thermostat,
        seed=args.seed,
        **_structure_fields(args),
        ion=args.ion,
        device=args.device,
        threads=args.threads,
        output=args.output,
    )
    output = config.output_path()
    check_writable(output)
    if args.finish_partial:
        with disk_faults(output, "reference trajectory"):
            result = finish_partial(config)
        return _print_reference(result)
    run = extend_reference_md if args.extend else run_reference_md
    with (
        _progress(f"{args.structure} {args.temperature:.0f} K") as progress,
        disk_faults(output, "reference trajectory"),
    ):
        task = progress.add_task("md", total=None, kind="")
        result = run(
            config, on_progress=lambda done, total: progress.update(task, completed=done, total=total)
        )
    return _print_reference(result)


def _structure_fields(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "supercell": args.supercell,
        "min_width": args.min_width,
        "draws": args.draws,
        "oxidation_states": args.oxidation_states,
        "min_distance": args.min_distance,
    }


def _print_reference(result: Any) -> int:
    s = result.summary
    ion = s.get("mobile_ion", "Li")
    print(
        json.dumps(
            {
                "output": str(result.output),
                "summary": str(result.summary_json),
                "production_ps": s["production_ps"],
                f"D_{ion}_cm2_per_s": s[f"D_{ion}_cm2_per_s"],
                f"D_{ion}_ci95_cm2_per_s": s.get(f"D_{ion}_ci95_cm2_per_s"),
                "notes": [n for n in (s.get("note"), s.get(f"D_{ion}_note")) if n],
            },
            indent=2,
        )
    )
    return 0


def add_structure_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that builds an ordered cell from a structure."""
    cell = parser.add_mutually_exclusive_group()
    cell.add_argument("--supercell", type=_supercell, default=None, help="e.g. 2x2x2 (default 1x1x1)")
    cell.add_argument(
        "--min-width",
        type=_positive_float,
        default=None,
        metavar="W",
        help="Å: the smallest supercell whose every perpendicular width is >= W",
    )
    parser.add_argument(
        "--draws", type=int, default=10, help="seeded orderings drawn; the lowest Ewald energy is kept"
    )
    parser.add_argument(
        "--oxidation-states",
        type=oxidation_states,
        default=None,
        metavar="Li=1,S=-2,...",
        help="formal charges for neutrality and the Ewald criterion (default: from the CIF, else guessed)",
    )
    parser.add_argument(
        "--min-distance",
        type=float,
        default=None,
        metavar="Å",
        help="no two atoms of equal charge sign closer than this on partial sites (default 1.6 Å)",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "structure",
        help=f"a CIF (partial occupancies welcome), POSCAR, extxyz or other ase-readable file, "
        f"or one of {', '.join(MATERIALS)}",
    )
    parser.add_argument("--labeller", choices=LABELLERS, default="sevennet")
    parser.add_argument("--seed", type=int, default=0, help="ordering (and MD) seed")
    add_structure_options(parser)
    parser.add_argument("--device", default="cpu", help="torch device of the labeller (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads (default: torch's)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="extxyz.gz path; JSON goes beside it")


def add_data_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``data generate`` and ``data reference-md`` under the ``data`` verb."""
    data = subparsers.add_parser("data", help="make labelled reference data with a pretrained labeller")
    actions = data.add_subparsers(dest="data_verb", required=True)

    gen = actions.add_parser("generate", help="labeller MD at several temperatures plus strained cells")
    _common(gen)
    gen.add_argument("--frames", type=int, default=300)
    gen.add_argument(
        "--temperatures", type=_floats, default=(300.0, 600.0, 900.0, 1200.0), help="K, e.g. 300,900"
    )
    gen.add_argument("--strain-fraction", type=float, default=0.25, help="share of strained, rattled frames")
    gen.add_argument("--sample-every", type=int, default=10, help="MD steps between kept frames")
    gen.add_argument("--equilibration-steps", type=int, default=200)
    gen.add_argument(
        "--finish-partial",
        action="store_true",
        help="keep the MD frames of a stopped run (its .partial file) and add its strained frames",
    )
    gen.set_defaults(func=cmd_generate)

    ref = actions.add_parser(
        "reference-md", help="NVT trajectory (unwrapped) and Li tracer D for transport targets"
    )
    _common(ref)
    ref.add_argument("--temperature", type=float, required=True, help="K")
    ref.add_argument("--steps", type=int, required=True, help="production MD steps")
    ref.add_argument("--timestep", type=float, default=2.0, help="fs")
    ref.add_argument("--write-every", type=int, default=25, help="steps between written frames (25 = 50 fs)")
    ref.add_argument("--equilibration-steps", type=int, default=1000)
    ref.add_argument(
        "--finish-partial",
        action="store_true",
        help="keep the frames of a stopped run (its .partial file) as the reference, with a note",
    )
    ref.add_argument(
        "--extend",
        action="store_true",
        help="continue the finished trajectory at --output (or the default path) to --steps production steps",
    )
    ref.add_argument("--thermostat", choices=["nose-hoover", "langevin"], default="nose-hoover")
    ref.add_argument("--ion", default="Li", help="the mobile ion whose D the summary reports")
    ref.set_defaults(func=cmd_reference_md)
    return data
