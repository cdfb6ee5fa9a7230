"""Stages 1–4 of `superionic conductivity`: label, train the committee, learn, production MD.

Each function takes the job (request, state, work directory, progress listener) and returns what
goes into the stage's marker in state.json: ``files`` (relative to the work directory; a missing one
reopens the stage), a one-line ``line`` for the progress display, and the numbers later stages read.
"""

from __future__ import annotations

import json
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
from superionic.md.driver import DEVI_FILE, MdConfig
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


def _partial_frames(output: Path) -> int:
    """Complete frames a killed labelling run left in its partial file (its resume state says)."""
    from superionic.data.generate import FrameWriter
    from superionic.data.resume_state import state_path

    state = state_path(FrameWriter.partial_path(Path(output)))
    try:
        return int(json.loads(state.read_text())["frames"])
    except (OSError, ValueError, KeyError):
        return 0


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
        temperatures=tuple(request.label_plan()),
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
    kept = _partial_frames(config.output_path())
    if kept:
        job.note("label", f"resuming from {kept} labelled frames in the partial file")
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


CALIBRATION = "train/calibration.extxyz"
TRAINING = "train/training.extxyz"


def split_frames(job: Job) -> tuple[Path, Path]:
    """The labelled frames split (seeded) into the committee's training frames and the held-out
    calibration frames: every member validates on them and none trains on them, so the
    committee's spread there calibrates the deviation band (workflows.band)."""
    import numpy as np
    from ase.io import read

    training, calibration = job.path(TRAINING), job.path(CALIBRATION)
    if training.exists() and calibration.exists():
        return training, calibration
    frames = read(job.path(job.state.outputs("label")["frames"]), ":")
    order = np.random.default_rng(job.request.seed).permutation(len(frames))
    held = max(5, round(job.request.val_fraction * len(frames)))
    if len(frames) - held < 5:
        raise ConductivityError(
            f"{len(frames)} labelled frames: too few to hold out {held} for calibration and train on the "
            "rest; raise --frames"
        )
    calibration.parent.mkdir(parents=True, exist_ok=True)
    keep = sorted(order[held:].tolist())
    aside = sorted(order[:held].tolist())
    write_atomic(calibration, lambda tmp: write(tmp, [frames[k] for k in aside], format="extxyz"))
    write_atomic(training, lambda tmp: write(tmp, [frames[k] for k in keep], format="extxyz"))
    return training, calibration


def band_of(job: Job) -> Band:
    """The deviation band: --devi-band when given, else the one calibrated after training."""
    request = job.request
    if request.devi_lo is not None and request.devi_hi is not None:
        return Band(request.devi_lo, request.devi_hi)
    calibrated = job.state.outputs("train")["band"]
    return Band(calibrated["lo"], calibrated["hi"])


def _train_config(job: Job, frames: Path, calibration: Path | None = None) -> TrainConfig:
    request = job.request
    model, training = train_sections(request)
    model = {"kind": "sprinter", **model, "cutoff": model_cutoff(request)}
    training = {**training, "seed": request.seed}
    training["epochs"] = request.epochs or training.get("epochs") or DEFAULT_EPOCHS
    if request.train_minutes is not None:
        training["max_minutes"] = request.train_minutes
    if request.threads is not None:
        training["threads"] = request.threads
    data: dict[str, Any] = {"train": [str(frames.resolve())], "val_fraction": request.val_fraction}
    if calibration is not None:
        data["val"] = [str(calibration.resolve())]
    raw = {
        "data": data,
        "model": model,
        "training": training,
        "output": str(job.path("train").resolve()),
    }
    source = request.train_config or "superionic conductivity"
    return config_from_dict(raw, str(source))


def train(job: Job) -> dict[str, Any]:
    from ase.io import read

    from superionic.workflows.band import calibrate_band

    request = job.request
    training, calibration = split_frames(job)
    config = _train_config(job, training, calibration)
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

    for k in range(request.committee):
        if (output / f"member_{k}" / "last.ckpt").exists():
            job.note("train", f"member {k + 1}/{request.committee} resumes from its checkpoint")
    result = train_committee(config, request.committee, resume=started, on_progress=show)
    exported = export_committee(result.manifest, output / "model")
    rmse = result.val_force_rmse
    job.progress("train", None, None, "calibrating the deviation band on the held-out frames")
    band = calibrate_band(read_committee(exported), read(calibration, ":"))
    return {
        "files": [job.relative(result.manifest), job.relative(exported), TRAINING, CALIBRATION],
        "band": band.to_dict(),
        "config": job.relative(output / "config.yaml"),
        "train_manifest": job.relative(result.manifest),
        "committee": job.relative(exported),
        "val_force_rmse_eV_per_A": rmse,
        "line": f"{len(rmse)} members, validation force RMSE {min(rmse):.3f}–{max(rmse):.3f} eV/Å; "
        + (
            f"deviation band {band.lo:.3f}–{band.hi:.3f} eV/Å (calibrated)"
            if request.devi_lo is None
            else f"calibrated band {band.lo:.3f}–{band.hi:.3f} eV/Å not used (--devi-band given)"
        ),
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
        temperatures=request.learn_plan(),
        labeller=request.labeller,
        device=request.device,
        rounds=request.learn_rounds + 1,
        lo=band_of(job).lo,
        hi=band_of(job).hi,
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


PRODUCTION_CELL = "md/production_cell.extxyz"


def production_repeats(cell, ion_count: int, min_ions: int) -> tuple[int, int, int]:
    """The smallest repeat of the labelled cell holding >= ``min_ions`` mobile ions: fewest atoms
    first, then the most even perpendicular widths (the cell closest to a cube)."""
    import itertools

    import numpy as np

    widths = perpendicular_widths(np.asarray(cell))
    best = None
    for repeat in itertools.product(range(1, 7), repeat=3):
        n = repeat[0] * repeat[1] * repeat[2]
        if ion_count * n < min_ions:
            continue
        w = widths * np.array(repeat)
        key = (n, float(w.max() / w.min()))
        if best is None or key < best[0]:
            best = (key, repeat)
    if best is None:
        raise ConductivityError(
            f"--min-ions {min_ions}: more than a 6x6x6 repeat of the cell would be needed"
        )
    return best[1]


def production_cell(job: Job) -> Path:
    """The labelled cell (same ordering) repeated until it holds --min-ions mobile ions."""
    request = job.request
    atoms, _, _ = ordered_cell(job)
    ions = sum(1 for s in atoms.get_chemical_symbols() if s == request.ion)
    repeat = production_repeats(atoms.cell.array, ions, request.min_ions)
    target = job.path(PRODUCTION_CELL)
    target.parent.mkdir(parents=True, exist_ok=True)
    big = atoms.repeat(repeat)
    big.info.clear()
    write_atomic(target, lambda tmp: write(tmp, big, format="extxyz"))
    job.cache["production_repeat"] = repeat
    return target


def production_md(job: Job) -> dict[str, Any]:
    """Production MD planned for the precision targets (workflows.precision_run) on the production
    cell, member 0 driving and the committee's deviation recorded, the guard on."""
    from superionic.workflows.precision_run import PrecisionRequest, run_to_precision

    request = job.request
    committee = current_committee(job)
    members = read_committee(committee)
    structure = production_cell(job)
    band = band_of(job)
    md = MdConfig(
        structure=str(structure),
        model=str(committee),  # the exported committee: member 0 drives, all K give the deviation
        temperatures=[request.t_max],
        steps=request.md_eq_steps + request.dump_every,
        eq_steps=request.md_eq_steps,
        timestep_ps=request.timestep_fs / 1000.0,
        dump_every=request.dump_every,
        restart_every=max(request.dump_every, 5000),
        nprocs=request.nprocs,
        parallel=request.parallel,
        seed=4928459 + request.seed,
        output=str(job.path("md")),
        allow_small_cell=True,  # the labelled cell passed the preflight; a repeat of it is wider
        devi_every=request.devi_every,
        devi_threshold=band.lo,
        threads=request.threads,
    )
    start = time.perf_counter()
    precision = run_to_precision(
        PrecisionRequest(
            md=md,
            ion=request.ion,
            output=str(job.path("md")),
            targets=request.targets,
            high_K=max(request.temperatures) if request.temperatures else request.t_max,
            floor_K=request.t_min,
            temperatures=list(request.temperatures) if request.temperatures else None,
            pilot_ps=request.pilot_ps,
            slope_tolerance=request.slope_tolerance,
        ),
        on_stage=lambda text: job.progress("md", None, None, text),
    )
    temperatures = sorted(precision.plan["temperatures_K"])
    runs = [_run_record(job, job.path("md") / "production" / f"T{t:g}K", t) for t in temperatures]
    fractions = [r["deviation"].get("uncertain_fraction") for r in runs if r["deviation"]]
    targets = precision.targets
    line = (
        f"{len(runs)} temperatures {', '.join(f'{t:g}' for t in temperatures)} K on "
        f"{len(read_cell(structure))} atoms ({time.perf_counter() - start:.0f} s); Ea ± "
        f"{targets['ea_half_width_eV']:.3f} eV ({'met' if targets['ea_met'] else 'not met'}), σ(300 K) "
        f"factor {targets['sigma_factor']:.3g} ({'met' if targets['sigma_met'] else 'not met'})"
    )
    if fractions:
        shown = ", ".join("n/a" if f is None else f"{100 * f:.3g} %" for f in fractions)
        line += f"; uncertain (max_devi_f > {band.lo:.3g} eV/Å): {shown}"
    return {
        "files": [r["trajectory"] for r in runs] + ["md/precision.json"],
        "runs": runs,
        "members": [str(m) for m in members],
        "production_cell": PRODUCTION_CELL,
        "atoms": len(read_cell(structure)),
        "plan": precision.plan,
        "pilots": precision.pilots,
        "framework_pilots": precision.framework_pilots,
        "finite_size": precision.finite_size,
        "targets": targets,
        "notes": precision.notes,
        "precision": "md/precision.json",
        "line": line,
    }


def read_cell(path: Path) -> Atoms:
    from ase.io import read

    return read(path)


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
        record["deviation"] = deviation_statistics(series.production(request.md_eq_steps), band_of(job))
    return record
