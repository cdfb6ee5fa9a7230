"""`superionic study locality`: the command line of the locality study (lesson 4)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from superionic.progress import progress_display


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
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

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
    with progress_display(*columns) as progress:
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


def add_model_md_options(parser: argparse.ArgumentParser) -> None:
    """The model MD that every transport-judging study runs against the teacher's trajectories."""
    parser.add_argument(
        "--production-ps", type=float, help="model MD production per temperature (default: the reference's)"
    )
    parser.add_argument("--parallel", type=int, default=1, help="model MD temperatures run side by side")


def add_data_quality_command(studies: argparse._SubParsersAction) -> None:
    quality = studies.add_parser(
        "data-quality",
        help="the same model on the same frames labelled at two fidelities: do RMSE and transport agree?",
    )
    quality.add_argument(
        "config",
        type=Path,
        help="training config (superionic train) whose data.train holds the high-fidelity labels",
    )
    quality.add_argument(
        "--low-labeller",
        default="chgnet",
        help="labeller that labels the same frames again (sevennet, chgnet)",
    )
    quality.add_argument(
        "--reference",
        nargs="+",
        required=True,
        help="high-fidelity teacher MD (one file per temperature; FILE@T when no summary JSON gives T)",
    )
    add_model_md_options(quality)
    quality.add_argument("-o", "--output", type=Path, default=Path("runs/study_data_quality"))
    quality.set_defaults(func=cmd_study_data_quality)


def cmd_study_data_quality(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from superionic.studies.data_quality import data_quality_study
    from superionic.train.config import load_config

    config = load_config(args.config)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with progress_display(*columns) as progress:
        task = progress.add_task("data-quality study", total=None)

        def on_frame(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        def on_stage(stage: str) -> None:
            progress.update(task, description=stage, completed=0, total=None)

        result = data_quality_study(
            config,
            args.low_labeller,
            args.reference,
            args.output,
            production_ps=args.production_ps,
            parallel=args.parallel,
            on_stage=on_stage,
            on_frame=on_frame,
        )
    gap = result.label_gap
    print(
        f"label gap ({result.low_labeller} vs {result.high_labeller}, {gap.frames} frames): force RMSE "
        f"{gap.force_rmse_eV_per_A:.3f} eV/Å, energy RMSE {gap.energy_rmse_meV_per_atom:.1f} meV/atom after "
        f"removing the mean offset {gap.energy_offset_eV_per_atom:+.3f} eV/atom"
    )
    print(f"{'trained on':>12} {'F-RMSE own':>11} {'F-RMSE high':>12} {'Ea eV':>7}  D / reference")
    for row in result.rows:
        ea = "-" if row.transport.Ea_eV is None else f"{row.transport.Ea_eV:.3f}"
        ratios = ", ".join(
            f"{t:g} K {r:.2f}" if r is not None else f"{t:g} K -"
            for t, r in zip(row.transport.temperatures_K, row.transport.D_ratio, strict=True)
        )
        print(
            f"{row.labeller:>12} {row.own_val_force_rmse_eV_per_A:>11.4f} "
            f"{row.high_val_force_rmse_eV_per_A:>12.4f} {ea:>7}  {ratios}"
        )
    print(result.verdict)
    print(json.dumps(result.outputs))
    return 0


def add_architecture_command(studies: argparse._SubParsersAction) -> None:
    arch = studies.add_parser(
        "architecture",
        help="model families on the same data: errors, transport against the teacher's MD, cost",
    )
    arch.add_argument(
        "configs",
        type=Path,
        nargs="+",
        help="training configs with one data section; the first is the baseline",
    )
    arch.add_argument(
        "--reference",
        nargs="+",
        required=True,
        help="teacher MD (one file per temperature; FILE@T when no summary JSON gives T)",
    )
    arch.add_argument(
        "--timing-repeat",
        type=int,
        nargs=3,
        default=[2, 2, 2],
        help="the cell the MD cost is timed on: the first reference's first frame, repeated",
    )
    arch.add_argument("--timing-steps", type=int, default=200, help="timed NVE steps per model")
    add_model_md_options(arch)
    arch.add_argument("-o", "--output", type=Path, default=Path("runs/study_architecture"))
    arch.set_defaults(func=cmd_study_architecture)


def cmd_study_architecture(args: argparse.Namespace) -> int:
    from ase.io import read
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    from superionic.studies.architecture import architecture_study
    from superionic.studies.transport_score import check_references, reference_path
    from superionic.train.config import load_config
    from superionic.validation.errors import ValidationError

    configs = [(path.stem, load_config(path)) for path in args.configs]
    check_references(args.reference)
    first = reference_path(args.reference[0])
    try:
        cell = read(first, index=0).repeat(tuple(args.timing_repeat))
    except Exception as err:  # ase raises many types for an unreadable file
        raise ValidationError(f"--reference {first}: not a trajectory ASE can read ({err})") from err
    with progress_display(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as progress:
        task = progress.add_task("architecture study", total=None)
        result = architecture_study(
            configs,
            args.reference,
            cell,
            args.output,
            production_ps=args.production_ps,
            parallel=args.parallel,
            timing_steps=args.timing_steps,
            on_stage=lambda stage: progress.update(task, description=stage),
        )
    print(
        f"{'model':>14} {'params':>8} {'F-RMSE':>8} {'E-RMSE':>8} {'CPU atom-steps/s':>17} "
        f"{'train min':>9}  D / ref"
    )
    for r in result.rows:
        ratios = ", ".join(
            f"{t:g} K {x:.2f}" if x is not None else f"{t:g} K -"
            for t, x in zip(r.transport.temperatures_K, r.transport.D_ratio, strict=True)
        )
        print(
            f"{r.name:>14} {r.parameters:>8} {r.val_force_rmse_eV_per_A:>8.4f} "
            f"{r.val_energy_rmse_meV_per_atom:>8.2f} "
            f"{r.speed.cpu_atom_steps_per_s:>17.4g} {r.train_wall_s / 60:>9.1f}  {ratios}"
        )
    print(result.verdict)
    print(json.dumps(result.outputs))
    return 0
