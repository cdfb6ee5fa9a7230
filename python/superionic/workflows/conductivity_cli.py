"""The `superionic conductivity` verb: options, the one-line-per-stage progress and the printed result."""

from __future__ import annotations

import argparse
from pathlib import Path

from superionic.data.commands import add_structure_options
from superionic.data.labellers import LABELLERS
from superionic.progress import note, progress_display
from superionic.workflows.conductivity import STAGES, ConductivityRequest, StageEvent

TITLES = {
    "label": "label (labeller MD)",
    "train": "train committee",
    "learn": "active learning",
    "md": "production MD",
    "analysis": "analysis D(T), Ea",
    "teacher": "teacher check",
    "report": "report",
}


def _request(args: argparse.Namespace) -> ConductivityRequest:
    return ConductivityRequest(
        structure=args.structure,
        temperatures=list(args.temperatures) if args.temperatures else None,
        labeller=args.labeller,
        workdir=str(args.workdir),
        ion=args.ion,
        seed=args.seed,
        supercell=args.supercell,
        min_width=args.min_width,
        draws=args.draws,
        oxidation_states=args.oxidation_states,
        min_distance=args.min_distance,
        allow_small_cell=args.allow_small_cell,
        min_ions=args.min_ions,
        t_min=args.t_min,
        t_max=args.t_max,
        target_ea=args.target_ea,
        target_sigma=args.target_sigma,
        max_md_ns=args.max_md_ns,
        max_hours=args.max_hours,
        pilot_ps=args.pilot_ps,
        frames=args.frames,
        label_temperatures=args.label_temperatures,
        strain_fraction=args.strain_fraction,
        sample_every=args.sample_every,
        label_eq_steps=args.label_eq_steps,
        committee=args.committee,
        epochs=args.epochs,
        train_minutes=args.train_minutes,
        cutoff=args.cutoff,
        val_fraction=args.val_fraction,
        train_config=str(args.train_config) if args.train_config else None,
        learn_rounds=args.learn_rounds,
        learn_frames=args.learn_frames,
        learn_steps=args.learn_steps,
        learn_eq_steps=args.learn_eq_steps,
        learn_epochs=args.learn_epochs,
        devi_lo=args.devi_band[0] if args.devi_band else None,
        devi_hi=args.devi_band[1] if args.devi_band else None,
        target_fraction=args.target_fraction,
        md_eq_steps=args.md_eq_steps,
        timestep_fs=args.timestep,
        dump_every=args.dump_every,
        devi_every=args.devi_every,
        teacher_steps=args.teacher_steps,
        teacher_eq_steps=args.teacher_eq_steps,
        teacher_write_every=args.teacher_write_every,
        slope_tolerance=args.slope_tolerance,
        resolution=args.resolution,
        nprocs=args.np,
        parallel=args.parallel,
        threads=args.threads,
        device=args.device,
        overwrite=args.overwrite,
    )


def cmd_conductivity(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from superionic.workflows.conductivity import open_job, run_job

    job = open_job(_request(args))  # every refusal is one line, before the display opens
    columns = (
        TextColumn("{task.description:<26}"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with progress_display(*columns) as progress:
        tasks = {
            stage: progress.add_task(
                f"{k + 1}/{len(STAGES)} {TITLES[stage]}", total=None, status="", start=False
            )
            for k, stage in enumerate(STAGES)
        }

        def show(event: StageEvent) -> None:
            task = tasks[event.stage]
            if event.event == "start":
                progress.start_task(task)
            elif event.event == "note":
                note(f"{TITLES[event.stage]}: {event.status}")
            elif event.event == "progress":
                if event.total:
                    progress.update(task, total=event.total, completed=event.completed or 0)
                progress.update(task, status=event.status)
            else:
                progress.update(task, total=1, completed=1, status=f"{event.event}: {event.status}"[:110])
                if event.event == "skipped":
                    progress.start_task(task)
                progress.stop_task(task)

        job.listener = show
        result = run_job(job)
    r = result.report
    if r["conductivity_300K_S_per_cm"] is not None:
        lo, hi = r["conductivity_300K_ci95_S_per_cm"]
        elo, ehi = r["activation_energy_ci95_eV"]
        print(
            f"σ(300 K) = {1e3 * r['conductivity_300K_S_per_cm']:.3g} mS/cm "
            f"(95% CI {1e3 * lo:.2g}–{1e3 * hi:.2g}); "
            f"Ea = {r['activation_energy_eV']:.3f} eV (95% CI {elo:.3f}–{ehi:.3f})"
        )
    else:
        print(f"σ(300 K), Ea not determined: {r['arrhenius_note']}")
    p = r["precision"]
    ea = f"± {p['ea_half_width_eV']:.3f} eV" if p["ea_half_width_eV"] is not None else "not determined"
    factor = f"factor {p['sigma_factor']:.3g}" if p["sigma_factor"] is not None else "not determined"
    print(
        f"precision: Ea {ea} (target ± {p['ea_target_eV']:g}, {'met' if p['ea_met'] else 'not met'}), "
        f"σ(300 K) {factor} (target {p['sigma_target']:g}, {'met' if p['sigma_met'] else 'not met'})"
        + (f"; {p['advice']}" if p.get("advice") else "")
    )
    for m in r.get("experiment", []):
        ea = f", Ea {m['ea_eV']:g} eV" if m.get("ea_eV") is not None else ""
        print(f"experiment ({m['material']}): {m['sigma_mS_per_cm']:g} mS/cm{ea} (doi {m['doi']})")
    for row in r["temperatures"]:
        if row["diffusive"]:
            lo, hi = row["D_ci95_cm2_per_s"]
            print(
                f"{row['temperature_K']:g} K: D = {row['D_cm2_per_s']:.3e} cm²/s (95% CI {lo:.2e}–{hi:.2e})"
            )
        else:
            print(f"{row['temperature_K']:g} K: not diffusive ({row['not_diffusive']})")
    print(f"verdict: {r['verdict']['text']}")
    print(f"report {result.report_json}; figure {result.report_png}")
    return 0


def _band(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a force deviation in eV/Å, got {text!r}") from err
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 eV/Å, got {text}")
    return value


def add_conductivity_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``conductivity`` (structure → label → committee → learn → MD → D, Ea, σ → teacher check)."""
    p = subparsers.add_parser(
        "conductivity",
        help="structure → labelled data → committee → active learning → MD → σ(300 K), Ea, verdict",
    )
    p.add_argument(
        "structure", help="a CIF (partial occupancies are ordered), POSCAR, extxyz, or LGPS/LLZO/LYC"
    )
    p.add_argument(
        "-T",
        "--temperatures",
        type=float,
        nargs="+",
        help="production temperatures, K, ascending (default: the planner picks >= 5 in --t-min..--t-max)",
    )
    p.add_argument("--labeller", choices=LABELLERS, default="sevennet", help="the teacher (default sevennet)")
    p.add_argument(
        "--workdir", type=Path, default=Path("runs/conductivity"), help="all stages and the report"
    )
    p.add_argument("--ion", default="Li", help="the mobile ion")
    p.add_argument("--seed", type=int, default=0, help="ordering (× 1000, as data generate) and MD seeds")
    p.add_argument(
        "--overwrite", action="store_true", help="discard the work directory's job and start afresh"
    )
    cell = p.add_argument_group("cell (one for every stage; default: the smallest >= 2 × cutoff wide)")
    add_structure_options(cell)
    cell.add_argument("--allow-small-cell", action="store_true", help="keep a cell narrower than 2 × cutoff")
    cell.add_argument(
        "--min-ions", type=int, default=100, help="mobile ions in the production cell (default 100)"
    )
    g = p.add_argument_group("precision (docs/precision.md)")
    g.add_argument("--target-ea", type=float, default=0.03, help="95 %% half-width of Ea, eV (default 0.03)")
    g.add_argument(
        "--target-sigma",
        type=float,
        default=3.0,
        help="upper/lower of the 95 %% interval of σ(300 K) (default 3)",
    )
    g.add_argument("--max-md-ns", type=float, default=2.0, help="MD budget per temperature, ns (default 2)")
    g.add_argument("--max-hours", type=float, help="wall-clock budget of the production MD, hours")
    g.add_argument("--t-min", type=float, default=500.0, help="lowest temperature the planner may pick, K")
    g.add_argument("--t-max", type=float, default=1200.0, help="highest temperature the planner may pick, K")
    g.add_argument("--pilot-ps", type=float, default=40.0, help="length of each pilot run, ps")
    g = p.add_argument_group("1. labelling")
    g.add_argument("--frames", type=int, default=300, help="labelled frames (default 300)")
    g.add_argument(
        "--label-temperatures",
        type=float,
        nargs="+",
        help="labeller MD, K (default: 4 evenly in 1/T up to 1.2 × the highest production temperature)",
    )
    g.add_argument("--strain-fraction", type=float, default=0.25, help="share of strained, rattled frames")
    g.add_argument("--sample-every", type=int, default=10, help="labeller MD steps between frames")
    g.add_argument("--label-eq-steps", type=int, default=200, help="labeller MD equilibration steps")
    g = p.add_argument_group("2. committee")
    g.add_argument("--committee", type=int, default=4, help="members K (default 4)")
    g.add_argument("--epochs", type=int, help="epochs per member (default: the train config's, else 100)")
    g.add_argument("--train-minutes", type=float, help="wall-clock cap per member, minutes")
    g.add_argument("--cutoff", type=float, help="model cutoff, Å (default: the train config's, else 5)")
    g.add_argument("--val-fraction", type=float, default=0.1, help="validation share of the frames")
    g.add_argument("--train-config", type=Path, help="YAML whose model: and training: sections are used")
    g = p.add_argument_group("3. active learning")
    g.add_argument(
        "--learn-rounds", type=int, default=3, help="label-and-retrain rounds (0 skips; default 3)"
    )
    g.add_argument("--learn-frames", type=int, default=20, help="frames labelled per round")
    g.add_argument("--learn-steps", type=int, default=20_000, help="committee MD steps per T and round")
    g.add_argument("--learn-eq-steps", type=int, default=2_000, help="of which equilibration")
    g.add_argument("--learn-epochs", type=int, default=40, help="fine-tuning epochs per later round")
    g.add_argument(
        "--devi-band", type=_band, nargs=2, metavar=("LO", "HI"),
        help="eV/Å: frames in [LO, HI] are labelled; above LO counts as uncertain (default: calibrated "
        "on held-out labelled frames)",
    )  # fmt: skip
    g.add_argument("--target-fraction", type=float, default=0.05, help="uncertain share that is acceptable")
    g = p.add_argument_group("4. production MD")
    g.add_argument("--md-eq-steps", type=int, default=5_000, help="equilibration steps, not analysed")
    g.add_argument("--timestep", type=float, default=2.0, help="fs (every MD of the job)")
    g.add_argument("--dump-every", type=int, default=100, help="steps between trajectory frames")
    g.add_argument("--devi-every", type=int, default=10, help="steps between committee deviations")
    g = p.add_argument_group("5./6. analysis and teacher check")
    g.add_argument(
        "--teacher-steps", type=int, default=10_000, help="teacher MD production steps, each of 2 T"
    )
    g.add_argument("--teacher-eq-steps", type=int, default=1_000, help="teacher MD equilibration steps")
    g.add_argument("--teacher-write-every", type=int, default=25, help="teacher MD steps between frames")
    g.add_argument("--slope-tolerance", type=float, default=0.2, help="window rule: log-log slope 1 ± this")
    g.add_argument("--resolution", type=float, default=2.0, help="D ratio an 'agree' must resolve")
    g = p.add_argument_group("resources (a resumed job may change them)")
    g.add_argument("--np", type=int, default=1, help="MPI ranks per MD run")
    g.add_argument("--parallel", type=int, default=1, help="temperatures run side by side")
    g.add_argument("--threads", type=int, help="torch threads of the labeller and training")
    g.add_argument("--device", default="cpu", help="labeller device (cpu, cuda)")
    p.set_defaults(func=cmd_conductivity)
    return p
