"""`superionic <verb>`: the command line. Each verb writes JSON beside what it prints."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import traceback
import warnings
from pathlib import Path

import torch

from superionic import progress
from superionic.analysis.errors import AnalysisError
from superionic.cli_checks import OneLineParser, UsageError, check_arguments
from superionic.data.commands import DATA_ERRORS, add_label_key_options, add_structure_options, label_keys_of
from superionic.data.dataset import DataError
from superionic.data.examples import DEMO_SPECIES
from superionic.data.graph import GraphError
from superionic.export import ExportError, checkpoint_export_args, export_model
from superionic.md import ensemble
from superionic.md.driver import MdError
from superionic.md.runner import LammpsError
from superionic.modelfile import ModelFileError
from superionic.models import ReferenceMessagePassing, ReferencePotential
from superionic.progress import progress_display
from superionic.studies.locality import LocalityError
from superionic.train.checkpoint import CheckpointError
from superionic.train.config import ConfigError
from superionic.train.trainer import RunExistsError

# Errors whose message is the whole story: shown as one line, exit status 2, no traceback.
USER_ERRORS = (
    UsageError,
    ModelFileError,
    ConfigError,
    DataError,
    GraphError,
    ExportError,
    CheckpointError,
    RunExistsError,
    LammpsError,
    MdError,
    AnalysisError,
    LocalityError,
    *DATA_ERRORS,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _reference(kind: str, species: list[str], dtype: str):
    cls = ReferencePotential if kind == "local" else ReferenceMessagePassing
    return cls(species, dtype=DTYPES[dtype])


def cmd_export_reference(args: argparse.Namespace) -> int:
    model = _reference(args.kind, args.species, args.dtype)
    meta = export_model(model, args.output)
    print(json.dumps({"output": str(args.output), **meta.__dict__}, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import logging

    from rich.logging import RichHandler

    from superionic.train.config import load_config
    from superionic.train.trainer import Trainer

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    config = load_config(args.config)
    if args.committee is not None:
        return _train_committee(args, config)
    trainer = Trainer(config, resume=args.resume, overwrite=args.overwrite)
    with progress_display(*_training_columns()) as progress:
        task = progress.add_task("training", total=config.training.epochs, status="")

        def show(p) -> None:
            val = f" val F-RMSE {p.val_force_rmse:.4f} eV/Å" if p.val_force_rmse is not None else ""
            progress.update(
                task,
                completed=p.epoch + p.step_in_epoch / p.steps_per_epoch,
                status=f"epoch {p.epoch + 1}/{p.epochs} loss {p.train_loss:.4g}{val}",
            )

        result = trainer.run(on_progress=show)
    m = result.val_metrics
    print(
        f"best epoch {result.best_epoch}: validation force RMSE {m['force_rmse_eV_per_A']:.4f} eV/Å, "
        f"energy RMSE {1000 * m['energy_rmse_eV_per_atom']:.2f} meV/atom; {result.wall_s:.0f} s\n"
        f"checkpoint {result.checkpoint}; parity {result.parity_png}; "
        f"metrics {Path(result.output) / 'metrics.json'}"
    )
    return 0


def _training_columns() -> tuple:
    """Description, bar, a status text (epoch, loss, validation RMSE), elapsed time."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )


def _train_committee(args: argparse.Namespace, config) -> int:

    from superionic.train.committee import train_committee

    k_members = args.committee
    with progress_display(*_training_columns()) as progress:
        task = progress.add_task(f"committee of {k_members}", total=k_members, status="")

        def show(p) -> None:
            if p.skipped:
                status = f"member {p.member + 1}/{p.members} finished earlier"
            else:
                val = f" val F-RMSE {p.val_force_rmse:.4f} eV/Å" if p.val_force_rmse is not None else ""
                status = (
                    f"member {p.member + 1}/{p.members} epoch {p.epoch + 1}/{p.epochs} "
                    f"loss {p.train_loss:.4g}{val}"
                )
            fraction = min(1.0, (p.epoch + p.step_in_epoch / p.steps_per_epoch) / p.epochs)
            progress.update(task, completed=p.member + fraction, status=status)

        result = train_committee(
            config, k_members, resume=args.resume, overwrite=args.overwrite, on_progress=show
        )
        progress.update(task, completed=k_members)
    for k, r in enumerate(result.results):
        m = r.val_metrics
        note = "" if k in result.trained else " (finished earlier, not retrained)"
        print(
            f"member {k}: best epoch {r.best_epoch}: validation force RMSE "
            f"{m['force_rmse_eV_per_A']:.4f} eV/Å, energy RMSE {1000 * m['energy_rmse_eV_per_atom']:.2f} "
            f"meV/atom; checkpoint {r.checkpoint}{note}"
        )
    print(
        f"committee of {k_members}: trained {len(result.trained)} member(s) now; manifest {result.manifest}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from superionic.data.dataset import label_keys
    from superionic.validation.metrics import evaluate_model

    with label_keys(label_keys_of(args)):
        report = evaluate_model(args.model, args.data, args.output)
    m = report.metrics
    print(
        f"{int(m['frames'])} frames: force RMSE {m['force_rmse_eV_per_A']:.4f} eV/Å, "
        f"energy RMSE {1000 * m['energy_rmse_eV_per_atom']:.2f} meV/atom"
        + (f", stress RMSE {m['stress_rmse_GPa']:.3f} GPa" if "stress_rmse_GPa" in m else "")
        + f"\nparity {report.parity_png}; metrics {report.json_path}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from superionic.train.checkpoint import model_from_checkpoint

    if args.checkpoint.suffix == ".json":
        from superionic.export import export_committee

        if args.format == "nequip":
            raise ExportError(
                f"{args.checkpoint}: --format nequip writes one model; export each member's checkpoint alone"
            )

        exported = export_committee(
            args.checkpoint, args.output, suffix=f".{args.format}", device=args.device
        )
        body = json.loads(exported.read_text())
        print(json.dumps({"output": str(exported), **body}, indent=2))
        return 0

    model, config, payload = model_from_checkpoint(args.checkpoint)
    if args.format == "nequip":
        from superionic.nequip_export import export_nequip

        compiled = export_nequip(model, args.output, device=args.device, data_hash=payload["data_hash"])
        print(json.dumps({"output": str(args.output), **compiled}, indent=2))
        return 0
    meta = export_model(model, args.output, device=args.device, **checkpoint_export_args(payload, config))
    print(json.dumps({"output": str(args.output), **meta.__dict__}, indent=2))
    return 0


def cmd_md(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

    from superionic.md.driver import MdConfig, run_md

    config = MdConfig(
        structure=str(args.structure),
        model=str(args.model),
        temperatures=args.temperatures,
        steps=args.steps,
        eq_steps=args.eq_steps,
        timestep_ps=args.dt,
        dump_every=args.dump_every,
        restart_every=args.restart_every,
        nprocs=args.np,
        parallel=args.parallel,
        seed=args.seed,
        group=args.group,
        charges=args.charges,
        output=str(args.output),
        overwrite=args.overwrite,
        supercell=args.supercell,
        min_width=args.min_width,
        ordering_seed=args.ordering_seed,
        draws=args.draws,
        oxidation_states=args.oxidation_states,
        min_distance=args.min_distance,
        allow_small_cell=args.allow_small_cell,
        committee=[str(m) for m in args.committee] if args.committee else None,
        devi_every=args.devi_every,
        devi_threshold=args.devi_threshold,
        devi_stop=args.devi_stop,
        backend=args.backend,
        guard_every=args.guard_every,
        guard_action=args.guard,
        threads=args.threads,
        extend=args.extend,
    )
    if args.target_ea is not None or args.target_sigma is not None:
        return _md_to_precision(args, config)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[devi]}"),
        TimeRemainingColumn(),
    )

    def deviation(t, d) -> None:
        above = (
            f", {100 * d.fraction_above_threshold:.1f}% > {config.devi_threshold:g}"
            if d.fraction_above_threshold is not None
            else ""
        )
        progress.update(tasks[t], devi=f"max devi_f {d.latest_max_devi_f:.3f} eV/Å{above}")

    with progress_display(*columns) as progress:
        tasks = {
            t: progress.add_task(f"MD {t:g} K", total=config.steps, devi="") for t in config.temperatures
        }
        summary = run_md(
            config,
            on_step=lambda t, step, total: progress.update(tasks[t], completed=step),
            on_devi=deviation,
        )
    for run in summary.runs:
        resumed = f", resumed from step {run.resumed_from_step}" if run.resumed_from_step is not None else ""
        print(
            f"{run.temperature_K:g} K: {run.steps} steps, {run.ns_per_day:.3g} ns/day, "
            f"{run.atom_steps_per_s:.3g} atom-steps/s{resumed}; trajectory {run.trajectory}"
        )
        if run.committee is not None:
            print(f"  {_committee_line(run.committee)}")
        if run.guard is not None:
            print(f"  {_guard_line(run.guard)}")
    print(f"summary {Path(config.output) / 'md_summary.json'}")
    return 0


def _md_to_precision(args: argparse.Namespace, config) -> int:
    """`superionic md -T ... --target-ea/--target-sigma`: the given temperatures, their lengths
    planned and extended until Ea and σ(300 K) reach the targets or --max-md-ns stops them
    (workflows.precision_run, docs/precision.md)."""
    from dataclasses import replace

    from rich.progress import TextColumn

    from superionic.workflows.precision import Targets
    from superionic.workflows.precision_run import PrecisionRequest, run_to_precision

    targets = Targets(
        args.target_ea if args.target_ea is not None else Targets.ea_half_width_eV,
        args.target_sigma if args.target_sigma is not None else Targets.sigma_factor,
        args.max_md_ns,
    )
    request = PrecisionRequest(
        md=replace(config, extend=True),
        ion=args.ion,
        output=str(config.output),
        targets=targets,
        temperatures=sorted(config.temperatures),
        pilot_ps=args.pilot_ps,
        slope_tolerance=args.slope_tolerance,
    )
    with progress_display(TextColumn("{task.description}"), TextColumn("{task.fields[status]}")) as progress:
        task = progress.add_task("MD to precision", status="")
        result = run_to_precision(request, on_stage=lambda text: progress.update(task, status=text))
    for r in sorted(result.transport, key=lambda r: r.temperature_K):
        lo, hi = r.tracer["ci95_cm2_per_s"]
        print(
            f"{r.temperature_K:g} K ({r.duration_ps:.0f} ps): D = {r.tracer['diffusion_cm2_per_s']:.3e} "
            f"cm²/s (95% CI {lo:.2e}–{hi:.2e})"
        )
    for text in result.notes:
        print(f"note: {text}")
    t = result.targets
    if result.arrhenius is not None:
        a = result.arrhenius
        print(
            f"Ea = {a.activation_energy_eV:.3f} eV (± {t['ea_half_width_eV']:.3f}, "
            f"target {t['ea_target_eV']:g}: "
            f"{'met' if t['ea_met'] else 'not met'}); σ(300 K) = {1e3 * a.conductivity_300K_S_per_cm:.3g} "
            f"mS/cm (factor {t['sigma_factor']:.3g}, target {t['sigma_target']:g}: "
            f"{'met' if t['sigma_met'] else 'not met'})"
        )
    if t.get("advice"):
        print(f"to reach the targets: {t['advice']}")
    print(f"plan and rounds {Path(config.output) / 'precision.json'}")
    return 0


def _guard_line(g: dict) -> str:
    if not g["breached_checks"]:
        return (
            f"guard: framework intact, {g['checks']} checks every {g['every']} steps, no pair below its floor"
        )
    text = (
        f"guard: {g['breached_checks']} of {g['checks']} checks found a pair below its floor, the first at "
        f"step {g['first_breach_step']}: {g['first_breach']}"
    )
    if g["stopped_at_step"] is not None:
        text += f"; STOPPED at step {g['stopped_at_step']} (--guard stop)"
    return text


def _committee_line(c: dict) -> str:
    text = (
        f"committee of {len(c['members'])}: {c['deviation_steps']} deviation steps, max devi_f "
        f"mean {c['max_devi_f_mean']:.4f}, largest {c['max_devi_f_max']:.4f} eV/Å"
    )
    if c["fraction_above_threshold"] is not None:
        text += f", {100 * c['fraction_above_threshold']:.1f}% of steps above {c['threshold']:g} eV/Å"
    if c["stopped_at_step"] is not None:
        text += f"; STOPPED by --devi-stop {c['devi_stop']:g} at step {c['stopped_at_step']} (not resumed)"
    return f"{text}; series {c['series']}"


def cmd_study_data_size(args: argparse.Namespace) -> int:
    from superionic.studies.data_size import TransportSettings, learning_curve
    from superionic.studies.transport_score import describe_d
    from superionic.train.config import load_config

    config = load_config(args.config)
    transport = (
        TransportSettings(args.reference, production_ps=args.production_ps, parallel=args.parallel)
        if args.reference
        else None
    )
    points = learning_curve(
        config,
        args.sizes,
        args.output,
        on_size=lambda n: print(f"training on {n} frames"),
        transport=transport,
    )
    print(f"{'frames':>7} {'F-RMSE eV/Å':>12} {'E-RMSE meV/at':>14} {'epochs':>7} {'wall s':>7}")
    for p in points:
        line = (
            f"{p.frames:>7} {p.val_force_rmse_eV_per_A:>12.4f} {p.val_energy_rmse_meV_per_atom:>14.2f} "
            f"{p.epochs_run:>7} {p.wall_s:>7.0f}"
        )
        if p.transport is not None:
            ea = p.transport.Ea_eV
            line += f"  D/reference: {describe_d(p.transport)}" + (
                f"; Ea {ea:.3f} eV" if ea is not None else ""
            )
        print(line)
    print(
        f"table {Path(args.output) / 'learning_curve.csv'}; plot {Path(args.output) / 'learning_curve.png'}"
    )
    return 0


def _transport_line(r) -> str:
    d, ne = r.tracer, r.nernst_einstein
    text = (
        f"{r.ion} at {r.temperature_K:g} K: "
        f"D = {d['diffusion_cm2_per_s']:.3e} ± {d['stderr_cm2_per_s']:.1e} cm²/s "
        f"(95% CI {d['ci95_cm2_per_s'][0]:.2e}–{d['ci95_cm2_per_s'][1]:.2e}); "
        f"σ_NE = {1e3 * ne['conductivity_S_per_cm']:.3g} ± {1e3 * ne['stderr_S_per_cm']:.2g} mS/cm"
    )
    if r.conductivity:
        c = r.conductivity
        text += f"; σ = {1e3 * c['conductivity_S_per_cm']:.3g} ± {1e3 * c['stderr_S_per_cm']:.2g} mS/cm"
    if r.haven:
        text += f"; H_R = {r.haven['haven_ratio']:.2f} ± {r.haven['stderr']:.2f}"
    return text


def _analyze_all(args: argparse.Namespace, paths: list[Path]) -> list:
    from superionic.analysis.diffusion import WindowRule
    from superionic.analysis.report import analyze_trajectory

    reports = []
    for k, path in enumerate(paths):
        temperature = (
            args.temperatures[k]
            if getattr(args, "temperatures", None)
            else getattr(args, "temperature", None)
        )
        out = Path(args.output) / (path.parent.name if len(paths) > 1 else "")
        report = analyze_trajectory(
            path,
            args.ion,
            out,
            temperature_K=temperature,
            type_names=args.types,
            timestep_ps=args.timestep_ps,
            structure=args.structure,
            fmt=args.format,
            charge_e=args.charge,
            rule=WindowRule(slope_tolerance=args.slope_tolerance),
            fit=args.fit,
            floors=args.floors,
        )
        print(_transport_line(report))
        reports.append(report)
    return reports


def cmd_analyze(args: argparse.Namespace) -> int:
    report = _analyze_all(args, [args.trajectory])[0]
    for note in report.notes:
        print(f"note: {note}")
    print(f"plot {report.msd_png}; numbers {Path(args.output) / f'transport_{args.ion}.json'}")
    return 0


def cmd_arrhenius(args: argparse.Namespace) -> int:
    from superionic.analysis.report import arrhenius_report

    if args.temperatures and len(args.temperatures) != len(args.trajectories):
        raise AnalysisError(
            f"--temperatures gives {len(args.temperatures)} values for {len(args.trajectories)} files"
        )
    result = arrhenius_report(_analyze_all(args, args.trajectories), args.output)
    lo, hi = result.activation_energy_ci95_eV
    slo, shi = result.conductivity_300K_ci95_S_per_cm
    print(
        f"Ea = {result.activation_energy_eV:.3f} ± {result.activation_energy_stderr_eV:.3f} eV "
        f"(95% CI {lo:.3f}–{hi:.3f}); "
        f"D(300 K) = {result.diffusion_300K_cm2_per_s:.2e} cm²/s; "
        f"σ(300 K) = {1e3 * result.conductivity_300K_S_per_cm:.3g} mS/cm "
        f"(95% CI {1e3 * slo:.2g}–{1e3 * shi:.2g})"
    )
    print(_precision_line(result, args.target_ea, args.target_sigma))
    print(f"plot {result.plot_png}; numbers {Path(args.output) / f'arrhenius_{result.ion}.json'}")
    return 0


def _precision_line(result, target_ea: float, target_sigma: float) -> str:
    """Whether the fit reached the precision targets, and if not, how much longer the runs must be:
    every D's error falls as 1/√(run length), so a shortfall f in either target needs f² × the
    length (docs/precision.md)."""
    from superionic.workflows.precision import Targets, reached_precision, shortfall

    half, factor = reached_precision(result)
    missed_by = shortfall(half, factor, Targets(target_ea, target_sigma))
    met = f"Ea ± {half:.3f} eV (target {target_ea:g}), σ(300 K) factor {factor:.3g} (target {target_sigma:g})"
    if missed_by <= 1.0:
        return f"precision: {met}: both met"
    return (
        f"precision: {met}: not met; runs about {missed_by**2:.2g}× as long (superionic md --extend), "
        "more ions, or a lower lowest temperature would reach them"
    )


def _add_trajectory_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ion", default="Li", help="element whose transport is analysed")
    parser.add_argument(
        "--types",
        nargs="+",
        help="element of each atom type, in order, for files that store types (or one per atom, none)",
    )
    parser.add_argument(
        "--structure",
        type=Path,
        help="structure file with the same atoms in the same order, for files that store no elements",
    )
    parser.add_argument(
        "--format",
        help="trajectory format if the name does not tell: h5md, lammps-dump, vasprun, xdatcar, extxyz, "
        "traj, or an ase.io format",
    )
    parser.add_argument("--timestep-ps", type=float, help="time between frames, for files without times")
    parser.add_argument("--charge", type=float, help="ion charge in e (default: from the file, else formal)")
    parser.add_argument(
        "--slope-tolerance",
        type=float,
        default=0.1,
        help="diffusive window: where the log-log MSD slope stays within 1 ± this (default 0.1)",
    )
    parser.add_argument(
        "--fit",
        choices=("ols", "gls"),
        default="ols",
        help="MSD fit over the window: ols, or gls (Brownian MSD covariance; its interval narrows "
        "with run length)",
    )
    parser.add_argument(
        "--floors",
        help="what judges the framework (docs/guard.md): a model file with distance floors, the "
        "teacher's reference trajectory or labelled frames, or 'off' to skip the check (default: the "
        "model superionic md ran)",
    )
    parser.add_argument("-o", "--output", default="runs/analysis")


def cmd_demo(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from superionic.demo import DemoSettings, run_demo

    settings = DemoSettings(
        workdir=args.workdir,
        epochs=args.epochs,
        max_md_ns=args.max_md_ns,
        nprocs=args.np,
        backend=args.backend,
    )
    columns = (
        TextColumn("{task.description:<30}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with progress_display(*columns) as progress:
        train = progress.add_task("1/4 train sprinter (LGPS)", total=settings.epochs, status="", start=False)
        export = progress.add_task("2/4 export TorchScript", total=1, status="", start=False)
        md = progress.add_task("3/4 MD to precision (LAMMPS)", total=1, status="", start=False)
        check = progress.add_task("4/4 validate vs SevenNet-0", total=1, status="", start=False)
        tasks = {"train": train, "export": export, "md": md, "validate": check}
        previous = {"export": train, "md": export, "validate": md}

        def stage(name: str) -> None:
            if name in previous:
                progress.update(previous[name], completed=progress.tasks[previous[name]].total)
                progress.stop_task(previous[name])
            progress.start_task(tasks[name])

        def trained(p) -> None:
            status = f"val F-RMSE {p.val_force_rmse:.3f} eV/Å" if p.val_force_rmse is not None else ""
            progress.update(train, completed=p.epoch + p.step_in_epoch / p.steps_per_epoch, status=status)

        summary = run_demo(
            settings,
            on_stage=stage,
            on_train=trained,
            on_md_stage=lambda text: progress.update(md, status=text),
        )
        progress.update(check, completed=1)
        progress.stop_task(check)
    h = summary.headline
    print(
        f"sprinter: validation force RMSE {summary.validation_force_rmse_eV_per_A:.3f} eV/Å, "
        f"energy RMSE {summary.validation_energy_rmse_meV_per_atom:.1f} meV/atom"
    )
    for r in summary.transport:
        d = r["tracer"]
        lo, hi = d["ci95_cm2_per_s"]
        print(
            f"Li {r['temperature_K']:g} K ({r['duration_ps']:.0f} ps, {h['atoms']} atoms): "
            f"D = {d['diffusion_cm2_per_s']:.3e} cm²/s (95% CI {lo:.2e}–{hi:.2e})"
        )
    for note in summary.notes:
        print(f"note: {note}")
    if summary.validation_table:
        print("teacher checks against SevenNet-0's own MD (superionic validate):")
        print("\n".join(summary.validation_table))
    p = summary.precision
    if h["Ea_eV"] is not None:
        lo, hi = h["Ea_ci95_eV"]
        slo, shi = h["sigma_300K_ci95_mS_per_cm"]
        print(
            f"Ea = {h['Ea_eV']:.3f} eV (95% CI {lo:.3f}–{hi:.3f}, target ± {p['ea_target_eV']:g}: "
            f"{'met' if p['ea_met'] else 'not met'}); σ(300 K) = {h['sigma_300K_mS_per_cm']:.3g} mS/cm "
            f"(95% CI {slo:.3g}–{shi:.3g}, factor {shi / slo:.2g}, target {p['sigma_target']:g}: "
            f"{'met' if p['sigma_met'] else 'not met'})"
        )
    else:
        print("Ea and σ(300 K) not determined: fewer than two temperatures gave a D (see the notes)")
    if p.get("advice"):
        print(f"to reach the targets: {p['advice']}")
    if h["experiment"] is not None:
        e = h["experiment"]
        ea = f", Ea = {e['Ea_eV']:g} eV" if e["Ea_eV"] is not None else ""
        print(f"experiment: σ(300 K) = {e['sigma_300K_mS_per_cm']:g} mS/cm{ea} (doi {e['doi']})")
    print(
        f"wall time {sum(summary.wall_s.values()):.0f} s; Arrhenius plot {summary.figure}; "
        f"summary {args.workdir}/demo.json"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="superionic", description=__doc__)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an internal error (allowed after the verb)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines, only results and errors (allowed after the verb)",
    )
    parser.add_argument(
        "--log",
        metavar="FILE",
        help="also write the progress as timestamped lines to FILE (allowed after the verb); without a "
        "terminal they go to standard output anyway",
    )
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

    train = verbs.add_parser("train", help="train a model from a YAML config (see docs/train_example.yaml)")
    train.add_argument("config", type=Path)
    mode = train.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", action="store_true", help="continue the run in the config's output directory"
    )
    mode.add_argument("--overwrite", action="store_true", help="start afresh even if the output holds a run")
    train.add_argument(
        "--committee",
        type=int,
        metavar="K",
        help="train K >= 2 members (seed + k, split_seed + k) into OUTPUT/member_k/, OUTPUT/committee.json",
    )
    train.set_defaults(func=cmd_train)

    evaluate = verbs.add_parser("evaluate", help="metrics and parity plots of a model on labelled data")
    evaluate.add_argument("model", type=Path, help="checkpoint (.ckpt) or exported model (.pt, .pt2)")
    evaluate.add_argument("data", nargs="+", help="labelled files (any ase.io format)")
    evaluate.add_argument("-o", "--output", default="runs/evaluate")
    add_label_key_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    export = verbs.add_parser("export", help="export a checkpoint's EMA weights to .pt or .pt2")
    export.add_argument(
        "checkpoint", type=Path, help="best.ckpt / last.ckpt, or a committee's committee.json"
    )
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="model.pt / model.pt2, or a directory for a committee",
    )
    export.add_argument("--device", default="cpu", help="device a .pt2 is compiled for")
    export.add_argument(
        "--format",
        choices=["pt", "pt2", "nequip"],
        default="pt",
        help="file format of a committee's members; nequip: one strictly local model as *.nequip.pt2 for "
        "pair_allegro and nequip's loader (docs/nequip.md)",
    )
    export.set_defaults(func=cmd_export)

    md = verbs.add_parser("md", help="production NVT MD in LAMMPS at one or several temperatures")
    md.add_argument(
        "structure",
        type=str,
        help="a CIF (partial occupancies are ordered), POSCAR, extxyz (first frame) or other ase-readable "
        "file, or a built-in name (LGPS, LLZO, LYC)",
    )
    md.add_argument(
        "model",
        type=Path,
        help="exported model (.pt or .pt2), or an exported committee.json (or its directory)",
    )
    md.add_argument("-T", "--temperatures", type=float, nargs="+", required=True, help="K")
    md.add_argument("--steps", type=int, default=50_000, help="total steps from 0, equilibration included")
    md.add_argument("--eq-steps", type=int, default=5_000, help="equilibration steps, not in the trajectory")
    md.add_argument("--dt", type=float, default=0.002, help="time step, ps")
    md.add_argument("--dump-every", type=int, default=100, help="steps between trajectory frames")
    md.add_argument("--restart-every", type=int, default=5_000, help="steps between restart files")
    md.add_argument("--np", type=int, default=1, help="MPI ranks per temperature")
    md.add_argument("--parallel", type=int, default=1, help="temperatures run at the same time")
    md.add_argument("--seed", type=int, default=4928459)
    md.add_argument("--group", default="all", help="LAMMPS group written to the trajectory")
    md.add_argument("--charges", type=float, nargs="+", help="formal charge per element, model order")
    md.add_argument("-o", "--output", type=Path, default=Path("runs/md"))
    md.add_argument("--overwrite", action="store_true", help="discard finished or partial runs in the output")
    precision = md.add_argument_group("precision (docs/precision.md): with a target, -T's runs are planned")
    precision.add_argument("--target-ea", type=float, help="95 %% half-width of Ea, eV (e.g. 0.03)")
    precision.add_argument(
        "--target-sigma", type=float, help="upper/lower of σ(300 K)'s 95 %% interval (e.g. 3)"
    )
    precision.add_argument("--max-md-ns", type=float, default=2.0, help="MD budget per temperature, ns (2)")
    precision.add_argument("--pilot-ps", type=float, default=40.0, help="each pilot run, ps (40)")
    precision.add_argument("--ion", default="Li", help="the mobile ion the targets are for")
    precision.add_argument(
        "--slope-tolerance", type=float, default=0.1, help="the diffusive window rule (0.1)"
    )
    md.add_argument(
        "--extend",
        action="store_true",
        help="continue finished runs to the larger --steps from their final restart (trajectory appended)",
    )
    md.add_argument(
        "--committee", type=Path, nargs="+", metavar="M", help="more members beside MODEL (member 0 drives)"
    )
    md.add_argument("--devi-every", type=int, default=10, help="steps between committee deviations")
    md.add_argument(
        "--devi-threshold", type=float, help="eV/Å: report the fraction of steps above it; LAMMPS warns"
    )
    md.add_argument("--devi-stop", type=float, help="eV/Å: stop the run cleanly above this deviation")
    md.add_argument(
        "--guard",
        choices=("warn", "stop"),
        default="warn",
        help="at a pair closer than its floor (docs/guard.md): warn and go on, or stop cleanly",
    )
    md.add_argument("--guard-every", type=int, default=10, help="steps between guard checks (0: off)")
    md.add_argument(
        "--threads",
        type=int,
        help="threads per MPI rank (default: the node's cores shared out over its ranks)",
    )
    md.add_argument(
        "--backend",
        choices=("auto", "native", "torch"),
        default="auto",
        help="pair_style superionic backend: auto (the native kernel for sprinters), native, or torch",
    )
    add_structure_options(md)
    md.add_argument("--ordering-seed", type=int, default=0, help="seed of the partial-occupancy ordering")
    md.add_argument(
        "--allow-small-cell",
        action="store_true",
        help="run a cell narrower than twice the model's receptive field (finite-size artefacts)",
    )
    md.set_defaults(func=cmd_md)

    study = verbs.add_parser("study", help="the guideline studies (docs/science.md)")
    studies = study.add_subparsers(dest="study", required=True)
    from superionic.studies.commands import (
        add_architecture_command,
        add_data_quality_command,
        add_locality_command,
        add_model_md_options,
    )

    size = studies.add_parser("data-size", help="learning curve: validation errors against training frames")
    size.add_argument("config", type=Path, help="a training config (superionic train)")
    size.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 400])
    size.add_argument(
        "--reference",
        nargs="+",
        help="teacher MD (one file per temperature): also judge every size on D and Ea (superionic validate)",
    )
    add_model_md_options(size)
    size.add_argument("-o", "--output", default="runs/study_data_size")
    size.set_defaults(func=cmd_study_data_size)

    add_locality_command(studies)
    add_data_quality_command(studies)
    add_architecture_command(studies)

    analyze = verbs.add_parser("analyze", help="D, σ and Haven ratio of one ion from one trajectory")
    analyze.add_argument(
        "trajectory", type=Path, help="H5MD, LAMMPS dump, vasprun.xml, XDATCAR, extxyz, .traj, ase.io formats"
    )
    analyze.add_argument("--temperature", type=float, help="K (default: from superionic md's run.json)")
    _add_trajectory_options(analyze)
    analyze.set_defaults(func=cmd_analyze)

    arrhenius = verbs.add_parser(
        "arrhenius", help="activation energy and 300 K values from several temperatures"
    )
    arrhenius.add_argument("trajectories", type=Path, nargs="+")
    arrhenius.add_argument(
        "--temperatures", type=float, nargs="+", help="K, one per file (default: run.json)"
    )
    arrhenius.add_argument(
        "--target-ea", type=float, default=0.03, help="95 %% half-width of Ea to judge against, eV (0.03)"
    )
    arrhenius.add_argument(
        "--target-sigma",
        type=float,
        default=3.0,
        help="upper/lower of σ(300 K)'s 95 %% interval to judge against (3)",
    )
    _add_trajectory_options(arrhenius)
    arrhenius.set_defaults(func=cmd_arrhenius)

    from superionic.data.commands import add_data_commands

    add_data_commands(verbs)

    from superionic.validation.commands import add_validate_command

    add_validate_command(verbs)

    from superionic.workflows.learn_command import add_learn_command

    add_learn_command(verbs)

    from superionic.workflows.conductivity_cli import add_conductivity_command

    add_conductivity_command(verbs)

    demo = verbs.add_parser(
        "demo", help="LGPS: train → export → MD planned to precision → D(T), Ea, σ(300 K) → validate"
    )
    demo.add_argument("--workdir", default="runs/demo")
    demo.add_argument("--epochs", type=int, default=60, help="training epochs")
    demo.add_argument(
        "--max-md-ns", type=float, default=1.0, help="MD budget per temperature, ns (docs/precision.md)"
    )
    demo.add_argument("--np", type=int, default=1, help="MPI ranks per temperature for LAMMPS")
    demo.add_argument(
        "--backend",
        choices=("auto", "native", "torch"),
        default="auto",
        help="pair_style superionic backend (torch: the TorchScript path, for a before/after timing)",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def _global_options(argv: list[str]) -> tuple[list[str], bool, bool, str | None]:
    """--debug, --quiet and --log FILE anywhere on the line (so that rerunning a command only
    appends them); the rest goes to the verb's parser."""
    rest, debug, quiet, log = [], False, False, None
    words = iter(argv)
    for word in words:
        if word == "--debug":
            debug = True
        elif word == "--quiet":
            quiet = True
        elif word == "--log":
            log = next(words, None)
            if log is None:
                raise SystemExit("superionic: --log needs a file name, e.g. --log run.log")
        elif word.startswith("--log="):
            log = word.split("=", 1)[1]
        else:
            rest.append(word)
    return rest, debug, quiet, log


def _quiet_third_party_warnings() -> None:
    """Third-party warnings a user cannot act on are not shown; every other one once.

    Filtered: sevenn's "No tensor product accelerator is enabled" (printed at every calculator load:
    the accelerators need GPU builds this install does not have, and results are the same without),
    and torch's deprecation of TorchScript (`torch.jit.load`/`script` "is deprecated"): the .pt
    format is ours to migrate (the .pt2 path exists), nothing a user's command can change.
    """
    warnings.filterwarnings("once")
    warnings.filterwarnings("ignore", message="No tensor product accelerator is enabled")
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    argv, debug, quiet, log = _global_options(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    # Under mpirun every rank runs this; rank 0 alone speaks (md.ensemble).
    follower = ensemble.launcher_rank() != 0
    if follower:
        sys.stdout = open(os.devnull, "w")
        atexit.register(sys.stdout.close)
    progress.configure(quiet=quiet or follower, log=None if follower else log)
    _quiet_third_party_warnings()
    try:
        check_arguments(args)
        return args.func(args)
    except USER_ERRORS as err:
        if not follower:
            print(f"superionic: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("superionic: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk, a file-size limit, a read-only or missing directory
        if not follower:
            where = f"{err.filename}: " if err.filename else ""
            print(
                f"superionic: {where}{err.strerror or err}; free space, raise the limit or choose a writable "
                "output, then rerun the same command: finished work is kept",
                file=sys.stderr,
            )
        return 2
    except Exception as err:  # the one guard: anything not a known user error is a bug to report
        if debug:
            traceback.print_exc()
            print(f"superionic: internal error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        else:
            print(
                f"superionic: internal error: {type(err).__name__}: {_one_line(err)} "
                "(rerun with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
