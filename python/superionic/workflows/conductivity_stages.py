"""Stages 1–4 of `superionic conductivity`: label, train the committee, learn, production MD.

Each function takes the job (request, state, work directory, progress listener) and returns what
goes into the stage's marker in state.json: ``files`` (relative to the work directory; a missing one
reopens the stage), a one-line ``line`` for the progress display, and the numbers later stages read.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.io import write

from superionic.data.generate import GenerateConfig, generate
from superionic.data.materials import build_cell
from superionic.data.ordering import OrderingReport, perpendicular_widths
from superionic.export import export_committee
from superionic.md.committee import read_committee, read_devi_file
from superionic.md.driver import DEVI_FILE, DeviProgress, MdConfig, run_md
from superionic.train.committee import MemberProgress, train_committee
from superionic.train.config import ConfigError, TrainConfig, config_from_dict, parse_yaml
from superionic.workflows.conductivity import ConductivityError, ConductivityRequest, Job
from superionic.workflows.conductivity_state import write_atomic, write_json_atomic
from superionic.workflows.learn_selection import Band, DeviationSeries, deviation_statistics

DEFAULT_CUTOFF = 5.0  # Å, the sprinter's default (models.config.ModelConfig)
DEFAULT_EPOCHS = 100
# The sections of a training config that the workflow takes from --train-config; data and output
# are its own (the labelled frames, the work directory).
TRAIN_SECTIONS = ("model", "training")
STRUCTURE = "label/structure.extxyz"
FRAMES = "label/frames.extxyz.gz"
# Active learning saves a frame every this many deviation steps (frames are picked at deviation steps).
LEARN_DUMP_DEVI = 5


def train_sections(request: ConductivityRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model: and training: sections of --train-config (empty without one)."""
    if request.train_config is None:
        return {}, {}
    source = Path(request.train_config)
    raw = parse_yaml(source.read_text(encoding="utf-8"), str(source)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with model: and training: sections")
    for key in raw:
        if key not in TRAIN_SECTIONS:
            raise ConfigError(
                f"{source}: section '{key}' is set by superionic conductivity (the labelled frames, the "
                f"work directory); keep only {' and '.join(s + ':' for s in TRAIN_SECTIONS)}"
            )
    model, training = raw.get("model") or {}, raw.get("training") or {}
    for name, section in (("model", model), ("training", training)):
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: section '{name}' must be a mapping")
    return dict(model), dict(training)


def model_cutoff(request: ConductivityRequest) -> float:
    model, _ = train_sections(request)
    return float(request.cutoff or model.get("cutoff") or DEFAULT_CUTOFF)


def ordered_cell(job: Job) -> tuple[Atoms, OrderingReport, float | None]:
    """:func:`build_ordered_cell`, once per call (ordering a large cell takes seconds)."""
    if "cell" not in job.cache:
        job.cache["cell"] = build_ordered_cell(job.request)
    return job.cache["cell"]


def build_ordered_cell(request: ConductivityRequest) -> tuple[Atoms, OrderingReport, float | None]:
    """The one ordered cell of every stage, and the minimum width it was built with.

    With neither --supercell nor --min-width the cell is the smallest whose every width is at least
    twice the cutoff, the minimum image LAMMPS needs (a sprinter's receptive field is its cutoff),
    unless --allow-small-cell keeps the 1x1x1 cell.
    """
    min_width = request.min_width
    if request.supercell is None and min_width is None and not request.allow_small_cell:
        min_width = 2.0 * model_cutoff(request)
    atoms, ordering = build_cell(
        request.structure,
        seed=request.seed * 1000,  # data generate's first ordering (seed × 1000 + temperature index)
        supercell=request.supercell,
        min_width=min_width,
        draws=request.draws,
        oxidation_states=request.oxidation_states,
        min_distance=request.min_distance,
    )
    return atoms, ordering, min_width


def preflight(job: Job) -> None:
    """What would stop a later stage, checked before the labeller's first step."""
    request = job.request
    atoms, _, _ = ordered_cell(job)
    symbols = set(atoms.get_chemical_symbols())
    if request.ion not in symbols:
        raise ConductivityError(
            f"{request.structure}: no {request.ion} in the structure ({', '.join(sorted(symbols))}); "
            "name the mobile ion with --ion"
        )
    cutoff = model_cutoff(request)
    width = float(perpendicular_widths(atoms.cell.array).min())
    if width < 2.0 * cutoff and not request.allow_small_cell:
        raise ConductivityError(
            f"{request.structure}: the cell is {width:.2f} Å wide, less than twice the cutoff {cutoff:g} Å; "
            f"use --min-width {2 * cutoff:g}, a larger --supercell, or --allow-small-cell"
        )
    # A config that would fail only at the training stage fails now.
    _train_config(job, Path("frames-not-yet-written.extxyz"))


def label(job: Job) -> dict[str, Any]:
    request = job.request
    directory = job.path("label")
    directory.mkdir(parents=True, exist_ok=True)
    atoms, ordering, min_width = ordered_cell(job)
    structure = job.path(STRUCTURE)
    write_atomic(structure, lambda tmp: write(tmp, atoms, format="extxyz"))
    config = GenerateConfig(
        material=request.structure,
        labeller=request.labeller,
        frames=request.frames,
        temperatures=tuple(request.label_temperatures or request.temperatures),
        strain_fraction=request.strain_fraction,
        sample_every=request.sample_every,
        equilibration_steps=request.label_eq_steps,
        seed=request.seed,
        supercell=request.supercell,
        min_width=min_width,
        draws=request.draws,
        oxidation_states=request.oxidation_states,
        min_distance=request.min_distance,
        device=request.device,
        threads=request.threads,
        output=job.path(FRAMES),
    )
    result = generate(
        config, on_progress=lambda done, total, kind: job.progress("label", done, total, f"frame {kind}")
    )
    summary = result.summary
    return {
        "files": [STRUCTURE, FRAMES, job.relative(result.summary_json)],
        "structure": STRUCTURE,
        "frames": FRAMES,
        "summary": job.relative(result.summary_json),
        "n_frames": summary["frames"],
        "atoms": len(atoms),
        "formula": atoms.get_chemical_formula(empirical=True),
        "ordering": ordering.to_dict(),
        "line": f"{summary['frames']} frames of {len(atoms)} atoms labelled by {request.labeller} "
        f"({summary['wall_time_s']:.0f} s)",
    }


def _train_config(job: Job, frames: Path) -> TrainConfig:
    request = job.request
    model, training = train_sections(request)
    model = {"kind": "sprinter", **model, "cutoff": model_cutoff(request)}
    training = {**training, "seed": request.seed}
    training["epochs"] = request.epochs or training.get("epochs") or DEFAULT_EPOCHS
    if request.train_minutes is not None:
        training["max_minutes"] = request.train_minutes
    if request.threads is not None:
        training["threads"] = request.threads
    raw = {
        "data": {"train": [str(frames.resolve())], "val_fraction": request.val_fraction},
        "model": model,
        "training": training,
        "output": str(job.path("train").resolve()),
    }
    source = request.train_config or "superionic conductivity"
    return config_from_dict(raw, str(source))


def train(job: Job) -> dict[str, Any]:
    request = job.request
    config = _train_config(job, job.path(job.state.outputs("label")["frames"]))
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    # The config as trained, for active learning's retraining and for the user.
    write_json_atomic(output / "config.yaml", config.to_dict())  # JSON is YAML
    started = (output / "committee.json").exists() or any(
        (output / f"member_{k}" / "last.ckpt").exists() for k in range(request.committee)
    )
    epochs = config.training.epochs
    total = request.committee * epochs

    def show(p: MemberProgress) -> None:
        done = p.member * epochs + (epochs if p.skipped else p.epoch + p.step_in_epoch / p.steps_per_epoch)
        rmse = f", val F-RMSE {p.val_force_rmse:.3f} eV/Å" if p.val_force_rmse is not None else ""
        job.progress("train", done, total, f"member {p.member + 1}/{p.members} epoch {p.epoch + 1}{rmse}")

    result = train_committee(config, request.committee, resume=started, on_progress=show)
    exported = export_committee(result.manifest, output / "model")
    rmse = result.val_force_rmse
    return {
        "files": [job.relative(result.manifest), job.relative(exported)],
        "config": job.relative(output / "config.yaml"),
        "train_manifest": job.relative(result.manifest),
        "committee": job.relative(exported),
        "val_force_rmse_eV_per_A": rmse,
        "line": f"{len(rmse)} members, validation force RMSE {min(rmse):.3f}–{max(rmse):.3f} eV/Å",
    }


def learn(job: Job) -> dict[str, Any]:
    """Active learning (``workflows.learn``) from the trained committee at the MD temperatures.

    --learn-rounds N means N rounds that label and retrain, then one more committee MD that judges
    the last committee: learn's ``rounds`` = N + 1 (its round 0 runs the committee given).
    """
    from superionic.workflows.learn import LearnProgress
    from superionic.workflows.learn import learn as run_learn
    from superionic.workflows.learn_config import LearnConfig, LearnFinetune, LearnMd, check

    request = job.request
    trained = job.state.outputs("train")
    if request.learn_rounds == 0:
        return {"rounds": 0, "line": "skipped (--learn-rounds 0)"}
    dump_every = LEARN_DUMP_DEVI * request.devi_every
    config = LearnConfig(
        structure=str(job.path(STRUCTURE)),
        training=str(job.path(trained["config"])),
        committee=str(job.path(trained["train_manifest"])),
        members=request.committee,
        temperatures=list(request.temperatures),
        labeller=request.labeller,
        device=request.device,
        rounds=request.learn_rounds + 1,
        lo=request.devi_lo,
        hi=request.devi_hi,
        target_fraction=request.target_fraction,
        max_frames=request.learn_frames,
        ion=request.ion,
        allow_small_cell=True,  # the preflight checked the width, or the user allowed a small cell
        output=str(job.path("learn")),
        md=LearnMd(
            steps=request.learn_steps,
            eq_steps=request.learn_eq_steps,
            timestep_ps=request.timestep_fs / 1000.0,
            dump_every=dump_every,
            devi_every=request.devi_every,
            restart_every=max(dump_every, request.learn_steps // 10),
            nprocs=request.nprocs,
            parallel=request.parallel,
            seed=4928459 + request.seed,
        ),
        finetune=LearnFinetune(epochs=request.learn_epochs),
        source="superionic conductivity (learn stage)",
    )
    check(config)
    progress = LearnProgress(
        stage=lambda r, stage, text: job.progress("learn", None, None, f"round {r}: {text}"),
        md_step=lambda t, step, total: job.progress("learn", step, total, f"committee MD {t:g} K"),
        label=lambda done, total: job.progress("learn", done, total, "labelling"),
    )
    result = run_learn(config, progress)
    fractions = [r.get("uncertain_fraction_max") for r in result.rounds]
    added = sum(r.get("frames_added", 0) for r in result.rounds)
    text = " → ".join("n/a" if f is None else f"{100 * f:.3g} %" for f in fractions)
    return {
        "files": [job.relative(result.final_committee), job.relative(result.report_json)],
        "rounds": len(result.rounds),
        "stopped": result.stopped,
        "frames_added": added,
        "uncertain_fraction_max": fractions,
        "committee": job.relative(result.final_committee),
        "report": job.relative(result.report_json),
        "kept_round": result.best_round,
        "worse_rounds": result.worse_rounds,
        "line": f"{len(result.rounds)} rounds ({result.stopped}), {added} frames added, uncertain {text}; "
        f"kept round {result.best_round}",
    }


def current_committee(job: Job) -> Path:
    """The exported committee.json production MD runs: learning's last one, else training's."""
    learned = job.state.outputs("learn").get("committee")
    return job.path(learned or job.state.outputs("train")["committee"])


def _finished(directory: Path) -> bool:
    return all((directory / name).exists() for name in ("restart.final.lammps", "traj.h5", "run.json"))


def production_md(job: Job) -> dict[str, Any]:
    request = job.request
    committee = current_committee(job)
    members = read_committee(committee)
    output = job.path("md")
    output.mkdir(parents=True, exist_ok=True)
    todo = []
    for temperature in request.temperatures:
        directory = output / f"T{temperature:g}K"
        if _finished(directory):
            continue
        if (directory / "restart.final.lammps").exists():
            shutil.rmtree(directory)  # finished once, but its trajectory is gone: run it again
        todo.append(temperature)
    settings = MdConfig(
        structure=str(job.path(STRUCTURE)),
        model=str(committee),  # the exported committee: member 0 drives, all K give the deviation
        temperatures=todo,
        steps=request.md_steps,
        eq_steps=request.md_eq_steps,
        timestep_ps=request.timestep_fs / 1000.0,
        dump_every=request.dump_every,
        restart_every=max(request.dump_every, request.md_steps // 10),
        nprocs=request.nprocs,
        parallel=min(request.parallel, max(1, len(todo))),
        seed=4928459 + request.seed,
        output=str(output),
        # The preflight checked the width (or the user allowed a small cell): same cell as the teacher.
        allow_small_cell=True,
        devi_every=request.devi_every,
        devi_threshold=request.devi_lo,
    )
    steps: dict[float, int] = {t: 0 for t in todo}
    start = time.perf_counter()

    latest: dict[float, float] = {}

    def on_step(temperature: float, step: int, total: int) -> None:
        steps[temperature] = step
        text = ", ".join(f"{t:g} K {s}/{total}" for t, s in steps.items())
        if latest:
            text += f"; max deviation now {max(latest.values()):.3f} eV/Å"
        job.progress("md", sum(steps.values()), total * len(steps), text)

    def on_devi(temperature: float, p: DeviProgress) -> None:
        latest[temperature] = p.latest_max_devi_f

    if todo:
        run_md(settings, on_step=on_step, on_devi=on_devi)
    runs = [_run_record(job, output / f"T{t:g}K", t) for t in request.temperatures]
    fractions = [r["deviation"].get("uncertain_fraction") for r in runs if r["deviation"]]
    line = f"{len(runs)} runs × {request.md_steps} steps ({time.perf_counter() - start:.0f} s)"
    if fractions:
        shown = ", ".join("n/a" if f is None else f"{100 * f:.3g} %" for f in fractions)
        line += f"; uncertain (max_devi_f > {request.devi_lo:g} eV/Å): {shown}"
    return {
        "files": [r["trajectory"] for r in runs],
        "runs": runs,
        "members": [str(m) for m in members],
        "line": line,
    }


def _run_record(job: Job, directory: Path, temperature: float) -> dict[str, Any]:
    """One temperature's run: its files, the driver's committee block, and the deviation statistics
    of its production steps as active learning computes them (``learn_selection``: step >= eq_steps,
    uncertain = max_devi_f above lo), so "uncertain" means the same in both commands."""
    request = job.request
    info = json.loads((directory / "run.json").read_text())
    record: dict[str, Any] = {
        "temperature_K": temperature,
        "trajectory": job.relative(directory / "traj.h5"),
        "run_json": job.relative(directory / "run.json"),
        "committee": info.get("committee"),
        "deviation": None,
    }
    if (directory / DEVI_FILE).exists():
        raw = read_devi_file(directory / DEVI_FILE)
        series = DeviationSeries.from_columns(
            raw.step, raw.max_devi_f, raw.min_devi_f, raw.avg_devi_f, raw.devi_e
        )
        band = Band(request.devi_lo, request.devi_hi)
        record["deviation"] = deviation_statistics(series.production(request.md_eq_steps), band)
    return record
