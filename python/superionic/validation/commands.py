"""The `superionic validate` verb: argument parsing and the printed verdict table."""

from __future__ import annotations

import argparse
from pathlib import Path

from superionic.progress import progress_display
from superionic.validation.compare import ValidationSettings
from superionic.validation.errors import ValidationError


def _model_trajectory(text: str) -> tuple[float, str]:
    temperature, sep, path = text.partition("=")
    try:
        value = float(temperature.rstrip("Kk"))
    except ValueError:
        value = float("nan")
    if not sep or not path or not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: write T=FILE, e.g. 1200=runs/md/T1200K/traj.h5")
    return value, path


def cmd_validate(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

    from superionic.validation.runner import ValidationRequest, validate, verdict_table

    trajectories: dict[float, str] = {}
    for temperature, path in args.model_trajectory or []:
        if not Path(path).exists():
            raise ValidationError(f"--model-trajectory {temperature:g}={path}: no such trajectory file")
        trajectories[temperature] = path
    request = ValidationRequest(
        model=str(args.model),
        references=[str(r) for r in args.reference],
        model_trajectories=trajectories,
        ion=args.ion,
        anion=args.anion,
        output=str(args.output),
        slope_tolerance=args.slope_tolerance,
        production_ps=args.production_ps,
        equilibration_ps=args.equilibration_ps,
        nprocs=args.np,
        parallel=args.parallel,
        seed=args.seed,
        rdf_r_max_A=args.rdf_r_max,
        overwrite=args.overwrite,
        settings=ValidationSettings(
            resolution=args.resolution, ea_resolution_eV=args.ea_resolution, n_bootstrap=args.n_bootstrap
        ),
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeRemainingColumn(),
    )
    with progress_display(*columns, transient=True) as progress:
        tasks: dict[float, int] = {}

        def step(temperature: float, now: int, total: int) -> None:
            if temperature not in tasks:
                tasks[temperature] = progress.add_task(f"model MD {temperature:g} K", total=total)
            progress.update(tasks[temperature], completed=now)

        def stage(name: str) -> None:
            if name == "analyze":
                progress.add_task("analysing model and reference", total=None)

        report = validate(request, on_stage=stage, on_step=step)
    for t in report.temperatures:
        for who in ("model", "reference"):
            run = t[who]
            if run["D_cm2_per_s"] is not None:
                low, high = run["D_ci95_cm2_per_s"]
                text = f"D = {run['D_cm2_per_s']:.3e} cm²/s (95% CI {low:.2e}–{high:.2e})"
            else:
                text = f"D not determined: {run['D_not_determined']}"
            print(f"{t['temperature_K']:g} K {who:<9} {run['duration_ps']:.3g} ps: {text}")
    print("\n".join(verdict_table(report)))
    for note in report.notes + [n for t in report.temperatures for n in t["notes"]]:
        print(f"note: {note}")
    print(f"figure {report.figure}; report {Path(args.output) / 'validation.json'}")
    return 0


def add_validate_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``validate`` (model transport against reference MD, with verdicts)."""
    parser = subparsers.add_parser(
        "validate", help="a model's D, MSD, RDFs and Ea against reference MD runs, with verdicts"
    )
    parser.add_argument("model", type=Path, help="exported model (.pt or .pt2) whose MD is validated")
    parser.add_argument(
        "--reference",
        nargs="+",
        required=True,
        help="reference (teacher) trajectories, one per temperature; FILE@T when no summary JSON gives T",
    )
    parser.add_argument(
        "--model-trajectory",
        type=_model_trajectory,
        action="append",
        metavar="T=FILE",
        help="use this model trajectory at T (K) instead of running MD (repeat per temperature)",
    )
    parser.add_argument("--ion", default="Li", help="mobile ion whose D and MSD are compared")
    parser.add_argument("--anion", help="anion of the ion–anion RDF (default: the most abundant anion)")
    parser.add_argument(
        "--production-ps", type=float, help="model MD production length (default: the reference's)"
    )
    parser.add_argument(
        "--equilibration-ps",
        type=float,
        help="model MD equilibration, not analysed (default: the reference's)",
    )
    parser.add_argument(
        "--slope-tolerance",
        type=float,
        default=0.2,
        help="window rule: log-log MSD slope within 1 ± this (default 0.2, as the committed references)",
    )
    parser.add_argument(
        "--resolution",
        type=float,
        default=2.0,
        help="D/MSD ratio an 'agree' must resolve with 80 %% power (default 2)",
    )
    parser.add_argument(
        "--ea-resolution", type=float, default=0.05, help="Ea difference (eV) an 'agree' must resolve"
    )
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples over atoms")
    parser.add_argument("--rdf-r-max", type=float, default=6.0, help="RDF range, Å")
    parser.add_argument("--np", type=int, default=1, help="MPI ranks per model MD run")
    parser.add_argument("--parallel", type=int, default=1, help="model MD temperatures run side by side")
    parser.add_argument("--seed", type=int, default=4928459, help="velocity seed of the model MD")
    parser.add_argument("--overwrite", action="store_true", help="rerun model MD already in the output")
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/validate"))
    parser.set_defaults(func=cmd_validate)
    return parser
