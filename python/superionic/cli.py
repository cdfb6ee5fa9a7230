"""`superionic <verb>`: the command line. Each verb writes JSON beside what it prints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from superionic.data.examples import DEMO_SPECIES, jittered_lattice
from superionic.export import ExportError, export_model
from superionic.models import ReferenceMessagePassing, ReferencePotential

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _reference(kind: str, species: list[str], dtype: str):
    cls = ReferencePotential if kind == "local" else ReferenceMessagePassing
    return cls(species, dtype=DTYPES[dtype])


def cmd_export_reference(args: argparse.Namespace) -> int:
    model = _reference(args.kind, args.species, args.dtype)
    meta = export_model(model, args.output)
    print(json.dumps({"output": str(args.output), **meta.__dict__}, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from superionic.md.nve import run_nve

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_path = workdir / "reference.pt"
    species = list(DEMO_SPECIES)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("export reference model", total=1)
        export_model(_reference("local", species, "float64"), model_path)
        progress.update(task, completed=1)
        atoms = jittered_lattice((8, 8, 8), seed=5)
        md = progress.add_task(f"LAMMPS NVE, {len(atoms)} atoms, {args.np} rank(s)", total=args.steps)
        result = run_nve(
            model_path,
            atoms,
            species,
            workdir / "nve",
            steps=args.steps,
            nprocs=args.np,
            on_step=lambda step: progress.update(md, completed=step),
        )
    summary = {"model": str(model_path), "nve": result.__dict__}
    (workdir / "demo.json").write_text(json.dumps(summary, indent=2))
    print(
        f"NVE {result.atoms} atoms x {result.steps} steps on {result.ranks} rank(s): "
        f"energy drift {result.drift_eV_per_atom:+.2e} eV/atom, "
        f"fluctuation {result.fluctuation_eV_per_atom:.1e} eV/atom, <T> {result.temperature_mean_K:.0f} K, "
        f"{result.atom_steps_per_s:.3g} atom-steps/s\n"
        f"plot {result.plot_png}; summary {workdir / 'demo.json'}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="superionic", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    ref = verbs.add_parser("export-reference", help="export an analytic reference model (.pt or .pt2)")
    ref.add_argument("-o", "--output", type=Path, required=True, help="model.pt (TorchScript) or model.pt2")
    ref.add_argument(
        "--kind",
        choices=["local", "mp"],
        default="local",
        help="local: pair + three-body; mp: adds two message-passing rounds",
    )
    ref.add_argument("--species", nargs="+", default=list(DEMO_SPECIES))
    ref.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    ref.set_defaults(func=cmd_export_reference)

    demo = verbs.add_parser("demo", help="the main job on the shipped example (see README)")
    demo.add_argument("--workdir", default="runs/demo")
    demo.add_argument("--steps", type=int, default=2000)
    demo.add_argument("--np", type=int, default=2, help="MPI ranks for LAMMPS")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ExportError as err:
        print(f"superionic: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
