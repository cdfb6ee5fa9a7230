"""`superionic study locality`: the command line of the locality study (lesson 4)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_locality_command(studies: argparse._SubParsersAction) -> None:
    loc = studies.add_parser(
        "locality",
        help="force change on a central atom when atoms beyond r move: which cutoff a material needs",
    )
    loc.add_argument(
        "structure",
        help="built-in material (LGPS, LLZO, LYC) or any ASE-readable file; file@index picks a frame",
    )
    loc.add_argument(
        "--model",
        action="append",
        required=True,
        help="labeller (sevennet, chgnet) or model file (.pt, .pt2, .ckpt); repeat to compare several",
    )
    loc.add_argument(
        "--repeat", type=int, nargs=3, help="supercell (default: the smallest that fits --radii)"
    )
    loc.add_argument(
        "--radii",
        type=float,
        nargs="+",
        default=[3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        help="Å, at most half the width",
    )
    loc.add_argument("--sigma", type=float, default=0.05, help="Gaussian displacement per component, Å")
    loc.add_argument("--draws", type=int, default=2, help="displacement fields per central atom")
    loc.add_argument("--centres", type=int, default=2, help="central atoms per species")
    loc.add_argument("--species", nargs="+", help="species of the central atoms (default: all)")
    loc.add_argument("--threshold", type=float, default=0.01, help="fraction of the force RMS")
    loc.add_argument("--rattle", type=float, default=0.0, help="Å; displace an ideal crystal first")
    loc.add_argument("--seed", type=int, default=0)
    loc.add_argument("--device", default="cpu")
    loc.add_argument(
        "--include",
        type=Path,
        nargs="+",
        default=[],
        help="locality.json of earlier runs (same structure and settings) to show beside these models",
    )
    loc.add_argument("-o", "--output", type=Path, default=Path("runs/study_locality"))
    loc.add_argument("--name", default="locality", help="file stem of the outputs: NAME.json, .csv, .png")
    loc.set_defaults(func=cmd_study_locality)


def cmd_study_locality(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from superionic.studies.locality import (
        LocalitySettings,
        load_structure,
        locality_study,
        merge_results,
        read_result,
        repeat_for_radius,
        resolve_model,
        verdict,
        write_outputs,
    )

    atoms = load_structure(args.structure)
    repeat = tuple(args.repeat) if args.repeat else repeat_for_radius(atoms, max(args.radii))
    atoms = atoms.repeat(repeat)
    settings = LocalitySettings(
        radii=tuple(args.radii),
        sigma=args.sigma,
        draws=args.draws,
        centres_per_species=args.centres,
        species=tuple(args.species) if args.species else None,
        threshold=args.threshold,
        rattle=args.rattle,
        seed=args.seed,
    )
    settings.check()
    models = [resolve_model(spec, args.device) for spec in args.model]
    print(f"{args.structure} × {repeat}: {len(atoms)} atoms; models: {', '.join(m.name for m in models)}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress:
        tasks = {m.name: progress.add_task(f"locality {m.name}", total=None) for m in models}

        def on_step(name: str, done: int, total: int) -> None:
            progress.update(tasks[name], completed=done, total=total)

        result = locality_study(atoms, models, settings, on_step=on_step)
    result.structure["source"] = args.structure
    result.structure["repeat"] = list(repeat)
    for path in args.include:
        result = merge_results(result, read_result(path), str(path))
    paths = write_outputs(result, args.output, stem=args.name)
    print(f"{'model':>14} {'species':>7} {'r* (Å)':>7} {'p95/F_RMS at r_max':>19} {'F_RMS eV/Å':>11}")
    for model in result.models:
        for c in model.curves:
            radius = "-" if c.locality_radius_A is None else f"{c.locality_radius_A:g}"
            print(
                f"{model.name:>14} {c.species:>7} {radius:>7} {c.p95_rel[-1]:>19.2e} "
                f"{model.force_rms_eV_per_A:>11.3f}"
            )
        advice = (
            f"recommended cutoff {model.recommended_cutoff_A:g} Å"
            if model.recommended_cutoff_A is not None
            else f"not local to {100 * args.threshold:g} % within {max(args.radii):g} Å (a larger --repeat "
            "reaches further)"
        )
        print(f"{model.name}: {advice} ({model.evaluations} evaluations, {model.wall_s:.0f} s)")
    print(verdict(result))
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0
