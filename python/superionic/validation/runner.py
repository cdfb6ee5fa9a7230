"""`superionic validate`: a model's transport against reference (teacher) MD runs, with verdicts.

For each reference trajectory (same cell, same temperature, same thermostat as the model's run):
the model's MD is run in LAMMPS through ``superionic.md.driver`` from the reference's first frame,
with the reference's time step, frame interval, equilibration and production length (read from the
JSON summary beside the reference, ``name.json`` for ``name.extxyz.gz``), or a model trajectory the
user gives is taken as it is. Both are analysed alike (``validation.transport``) and compared
(``validation.compare``); the report goes to ``validation.json`` and one figure ``validation.png``.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from ase.io import iread, write

from superionic.analysis.diffusion import WindowRule
from superionic.analysis.integrity import floors_from_trajectories
from superionic.analysis.readers import open_trajectory
from superionic.analysis.report import find_temperature
from superionic.data.file_faults import file_fault
from superionic.md.driver import MdConfig, run_md
from superionic.validation.compare import (
    TemperatureComparison,
    ValidationSettings,
    compare_activation_energy,
    compare_temperature,
)
from superionic.validation.errors import ValidationError
from superionic.validation.plots import plot_validation
from superionic.validation.statistics import Verdict
from superionic.validation.transport import RdfSettings, RunTransport

# The thermostat of lammps_inputs/nvt.in: Nosé–Hoover with a relaxation time of 100 time steps.
MODEL_THERMOSTAT = "nose-hoover"
MODEL_TDAMP_STEPS = 100.0


@dataclass
class Reference:
    """A reference trajectory and what its summary says about how it was run."""

    path: Path
    temperature_K: float
    summary: dict[str, Any]
    timestep_fs: float
    frame_interval_fs: float
    equilibration_ps: float
    production_ps: float
    thermostat: str | None
    tdamp_fs: float | None


def summary_of(path: Path) -> dict[str, Any]:
    stem = path.name.split(".")[0]
    candidate = path.with_name(stem + ".json")
    if candidate.exists():
        try:
            return json.loads(candidate.read_text())
        except json.JSONDecodeError as err:
            raise ValidationError(
                f"{candidate}: not valid JSON ({err}); remake the reference summary"
            ) from err
    return {}


def load_reference(path: str | Path, temperature_K: float | None = None) -> Reference:
    source = Path(path)
    if not source.exists():
        raise ValidationError(f"{source}: no such reference trajectory (--reference)")
    fault = file_fault(source)
    if fault is not None:
        raise ValidationError(f"{source}: {fault} (--reference)")
    summary = summary_of(source)
    temperature = temperature_K if temperature_K is not None else find_temperature(source)
    if temperature is None:
        # Our reference frames carry their thermostat temperature (info temperature_K).
        try:
            first = next(iread(str(source), index=":"), None)
        except Exception as err:  # ase.io raises many types for unreadable input
            raise ValidationError(f"{source}: ase.io cannot read it ({type(err).__name__}: {err})") from err
        value = first.info.get("temperature_K") if first is not None else None
        temperature = float(value) if isinstance(value, (int, float)) else None
    if temperature is None:
        raise ValidationError(
            f"{source}: temperature unknown (no summary {source.name.split('.')[0]}.json beside it with "
            "'temperature_K', none in its first frame); give it as FILE@T, e.g. ref.extxyz@1200"
        )
    config = summary.get("config", {})
    timestep = float(summary.get("timestep_fs", 2.0))
    frame_interval = summary.get("frame_interval_fs")
    if frame_interval is None:
        frames = list(itertools.islice(iread(str(source), index=":"), 2))
        times = [f.info.get("time_ps") for f in frames]
        if len(frames) < 2 or None in times:
            raise ValidationError(
                f"{source}: frame interval unknown (no 'frame_interval_fs' in its summary, no 'time_ps' per "
                "frame): add a summary JSON beside it"
            )
        frame_interval = 1000.0 * (times[1] - times[0])
    production = summary.get("production_ps")
    if production is None:
        n_frames = sum(1 for _ in iread(str(source), index=":"))
        production = (n_frames - 1) * float(frame_interval) / 1000.0
    return Reference(
        path=source,
        temperature_K=float(temperature),
        summary=summary,
        timestep_fs=timestep,
        frame_interval_fs=float(frame_interval),
        equilibration_ps=float(summary.get("equilibration_ps", 2.0)),
        production_ps=float(production),
        thermostat=summary.get("thermostat") or config.get("thermostat"),
        tdamp_fs=config.get("tdamp_fs"),
    )


@dataclass
class ValidationRequest:
    model: str
    references: list[str]  # paths, optionally FILE@T
    model_trajectories: dict[float, str] = field(default_factory=dict)
    ion: str = "Li"
    anion: str | None = None
    output: str = "runs/validate"
    slope_tolerance: float = 0.2  # the rule the committed references were analysed with
    production_ps: float | None = None  # None: as long as the reference
    equilibration_ps: float | None = None  # None: as the reference
    nprocs: int = 1
    parallel: int = 1
    seed: int = 4928459
    rdf_r_max_A: float = 6.0
    overwrite: bool = False
    settings: ValidationSettings = field(default_factory=ValidationSettings)


@dataclass
class ValidationReport:
    model: str
    ion: str
    statistics: dict[str, str]
    temperatures: list[dict[str, Any]]
    activation_energy: dict[str, Any]
    verdicts: list[dict[str, Any]]
    figure: str
    notes: list[str]


def _parse_reference(text: str) -> tuple[str, float | None]:
    if "@" in text:
        path, _, value = text.rpartition("@")
        try:
            return path, float(value)
        except ValueError as err:
            raise ValidationError(f"--reference {text}: the part after @ must be a temperature in K") from err
    return text, None


def _model_md(
    request: ValidationRequest, refs: Sequence[Reference], on_step, notes: list[str]
) -> dict[float, str]:
    """Run the model's MD for the references that have no model trajectory; returns T → trajectory."""
    out: dict[float, str] = {}
    model = Path(request.model)
    if not model.exists():
        raise ValidationError(f"{model}: no such model file (MODEL, an exported .pt or .pt2)")
    groups: dict[tuple, list[Reference]] = {}
    for ref in refs:
        if ref.thermostat not in (None, MODEL_THERMOSTAT):
            notes.append(
                f"{ref.path.name}: the reference thermostat is {ref.thermostat}, the model's MD uses "
                f"Nosé–Hoover; a stochastic thermostat slows diffusion, so D is not compared like for like"
            )
        if ref.tdamp_fs is not None and abs(ref.tdamp_fs - MODEL_TDAMP_STEPS * ref.timestep_fs) > 1e-6:
            notes.append(
                f"{ref.path.name}: Nosé–Hoover relaxation time {ref.tdamp_fs:g} fs in the reference, "
                f"{MODEL_TDAMP_STEPS * ref.timestep_fs:g} fs in lammps_inputs/nvt.in (100 steps); a "
                "deterministic thermostat's time constant barely changes D, but it is not identical"
            )
        production = request.production_ps if request.production_ps is not None else ref.production_ps
        every = ref.frame_interval_fs / ref.timestep_fs
        if abs(every - round(every)) > 1e-6:
            raise ValidationError(
                f"{ref.path}: frame interval {ref.frame_interval_fs:g} fs is not a multiple of the time step "
                f"{ref.timestep_fs:g} fs: give the model trajectory with --model-trajectory"
            )
        equilibration = (
            request.equilibration_ps if request.equilibration_ps is not None else ref.equilibration_ps
        )
        key = (ref.timestep_fs, round(every), equilibration, production)
        groups.setdefault(key, []).append(ref)
    for (timestep_fs, every, equilibration_ps, production_ps), members in groups.items():
        dt = timestep_fs / 1000.0
        eq_steps = round(equilibration_ps / dt)
        steps = eq_steps + round(production_ps / dt)
        wanted = {"model": str(model.resolve()), "steps": steps, "eq_steps": eq_steps, "dump_every": every}
        if not request.overwrite:
            members = [r for r in members if not _reuse(request, r, wanted, out, notes)]
            if not members:
                continue
        first = members[0]
        structure = Path(request.output) / "md" / f"start_{first.path.name.split('.')[0]}.extxyz"
        structure.parent.mkdir(parents=True, exist_ok=True)
        atoms = next(iread(str(first.path), index=":"))
        atoms.wrap()  # the reference stores unwrapped positions; LAMMPS wants them in the box
        write(structure, atoms)
        settings: dict[str, Any] = {
            "structure": str(structure),
            "model": str(model),
            "temperatures": [r.temperature_K for r in members],
            "steps": steps,
            "eq_steps": eq_steps,
            "timestep_ps": dt,
            "dump_every": every,
            "restart_every": max(every, steps // 4),
            "nprocs": request.nprocs,
            "parallel": request.parallel,
            "seed": request.seed,
            "output": str(Path(request.output) / "md"),
            "overwrite": request.overwrite,
        }
        if "allow_small_cell" in {f.name for f in fields(MdConfig)}:
            # The reference ran on this very cell: a cell narrower than twice the receptive field is
            # what is being compared, like for like (the pair style handles the images exactly).
            settings["allow_small_cell"] = True
        summary = run_md(MdConfig(**settings), on_step=on_step)
        for run in summary.runs:
            out[run.temperature_K] = run.trajectory
        notes.append(
            f"model MD: {len(members)} temperature(s) from the first frame of {first.path.name}, "
            f"{equilibration_ps:g} ps equilibration + {production_ps:g} ps production at {timestep_fs:g} fs, "
            f"a frame every {every} steps (lammps_inputs/nvt.in)"
        )
    return out


def _uncompressed(path: Path, scratch: Path) -> Path:
    """``path`` itself, or for ``.gz`` a decompressed copy in ``scratch`` (made once): ASE's extxyz
    reader seeks back and forth, which a gzip stream answers by decompressing from the start, so a
    few hundred frames read from .gz take minutes instead of seconds."""
    if path.suffix != ".gz":
        return path
    target = scratch / path.name.removesuffix(".gz")
    if not target.exists() or target.stat().st_mtime < path.stat().st_mtime:
        scratch.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with gzip.open(path, "rb") as source, open(partial, "wb") as sink:
            shutil.copyfileobj(source, sink, 2**20)
        partial.replace(target)
    return target


def _reuse(
    request: ValidationRequest,
    ref: Reference,
    wanted: dict[str, Any],
    out: dict[float, str],
    notes: list[str],
) -> bool:
    """True (and ``out`` filled) if the output already holds this model's finished run at ref's T
    with the same steps and frame interval; a finished run of something else is an error."""
    directory = Path(request.output) / "md" / f"T{ref.temperature_K:g}K"
    info = directory / "run.json"
    if not (directory / "restart.final.lammps").exists() or not info.exists():
        return False
    recorded = json.loads(info.read_text())
    differing = [k for k, v in wanted.items() if recorded.get(k) != v]
    if differing:
        raise ValidationError(
            f"{directory} holds a finished model run with other {', '.join(differing)}: pass --overwrite "
            "to rerun it or choose another --output"
        )
    out[ref.temperature_K] = str(directory / "traj.h5")
    notes.append(f"model MD at {ref.temperature_K:g} K: reused the finished run in {directory}")
    return True


def _match(temperatures: Mapping[float, str], temperature: float) -> str | None:
    for t, path in temperatures.items():
        if abs(t - temperature) <= 1.0:
            return path
    return None


def validate(
    request: ValidationRequest,
    on_stage: Callable[[str], None] = lambda stage: None,
    on_step: Callable[[float, int, int], None] | None = None,
) -> ValidationReport:
    if not request.references:
        raise ValidationError("no reference trajectory: pass --reference FILE (one per temperature)")
    refs = [load_reference(*_parse_reference(text)) for text in request.references]
    refs.sort(key=lambda r: r.temperature_K)
    if len({round(r.temperature_K) for r in refs}) != len(refs):
        raise ValidationError("two references share a temperature: pass one reference per temperature")
    for t in request.model_trajectories:
        if not any(abs(t - r.temperature_K) <= 1.0 for r in refs):
            raise ValidationError(
                f"--model-trajectory {t:g}=…: no reference at {t:g} K (references at "
                f"{', '.join(f'{r.temperature_K:g}' for r in refs)} K)"
            )
    notes: list[str] = []
    missing = [r for r in refs if _match(request.model_trajectories, r.temperature_K) is None]
    trajectories = dict(request.model_trajectories)
    if missing:
        on_stage("md")
        trajectories.update(_model_md(request, missing, on_step, notes))
    on_stage("analyze")
    rule = WindowRule(slope_tolerance=request.slope_tolerance)
    settings = request.settings
    models, references, comparisons = [], [], []
    for ref in refs:
        rdf = RdfSettings(ion=request.ion, anion=request.anion, r_max_A=request.rdf_r_max_A)
        reference_file = _uncompressed(ref.path, Path(request.output) / "references")
        # The teacher's own closest approach of each pair at this temperature: the model's run is
        # judged against factor × that (analysis.integrity), its transport from the intact frames.
        floors = floors_from_trajectories([open_trajectory(reference_file)])
        reference_probe = RunTransport.from_file(
            "reference",
            reference_file,
            ref.temperature_K,
            ion=request.ion,
            rule=rule,
            rdf=rdf,
            n_bootstrap=settings.n_bootstrap,
            seed=settings.seed,
        )
        reference_probe.source = str(ref.path)  # the committed file, not its decompressed copy
        reference_probe.closest_A = dict(floors.closest_A)
        if not any(name != f"{request.ion}-{request.ion}" for name in reference_probe.rdfs):
            notes.append(f"no anion among {sorted(reference_probe.composition)}: only the {request.ion} RDF")
        model_path = _match(trajectories, ref.temperature_K)
        assert model_path is not None
        model_run = RunTransport.from_file(
            "model",
            _uncompressed(Path(model_path), Path(request.output) / "references"),
            ref.temperature_K,
            ion=request.ion,
            rule=rule,
            rdf=rdf,
            n_bootstrap=settings.n_bootstrap,
            seed=settings.seed + 1,
            floors=floors,
        )
        model_run.source = str(model_path)
        comparison = compare_temperature(model_run, reference_probe, settings)
        summary = ref.summary
        if summary.get("D_Li_cm2_per_s") is not None and request.ion == "Li" and reference_probe.diffusion:
            recorded = summary["D_Li_cm2_per_s"]
            comparison.notes.append(
                f"reference D recomputed here {reference_probe.diffusion.diffusion_cm2_per_s:.4g} cm²/s, "
                f"its summary says {recorded:.4g}"
            )
        models.append(model_run)
        references.append(reference_probe)
        comparisons.append(comparison)
    ea_verdict, ea_table = compare_activation_energy(models, references, settings)
    output = Path(request.output)
    output.mkdir(parents=True, exist_ok=True)
    png = plot_validation(
        comparisons,
        models,
        references,
        ea_table,
        output / "validation.png",
        title=f"{Path(request.model).name}: {request.ion} transport against the reference",
    )
    verdicts = [
        {"temperature_K": c.temperature_K, **v.to_dict()} for c in comparisons for v in c.verdicts
    ] + [{"temperature_K": None, **ea_verdict.to_dict()}]
    report = ValidationReport(
        model=str(request.model),
        ion=request.ion,
        statistics=STATISTICS,
        temperatures=[_comparison_dict(c) for c in comparisons],
        activation_energy={"verdict": ea_verdict.to_dict(), **ea_table},
        verdicts=verdicts,
        figure=str(png),
        notes=notes,
    )
    text = json.dumps(_finite(asdict(report)), indent=2, default=_plain, allow_nan=False)
    (output / "validation.json").write_text(text)
    return report


def _comparison_dict(c: TemperatureComparison) -> dict[str, Any]:
    return {
        "temperature_K": c.temperature_K,
        "model": c.model,
        "reference": c.reference,
        "verdicts": [v.to_dict() for v in c.verdicts],
        "msd_at_equal_lags": c.msd_lags,
        "rdf": c.rdf,
        "framework": c.framework,
        "notes": c.notes,
    }


STATISTICS = {
    "D": "z = (ln D_model − ln D_ref) / √(s_m² + s_r²), s = log width of each run's 95 % "
    "bootstrap-over-atoms interval / 3.92; disagree if |z| > t_0.975 (Welch dof from the atom "
    "counts; 1.96 for many atoms; nominal false-alarm rate 5 %); "
    "agree only if a factor "
    "'resolution' (default 2) would be detected with 80 % power, else undetermined with the run-length "
    "factor (s / s_needed)²",
    "MSD": "the same z test on ln MSD at 4 equal lags up to a third of the shorter run, bootstrap over "
    "atoms, Bonferroni threshold (family-wise false-alarm rate 5 %); power judged at the longest lag",
    "RDF": "first-peak position, first-peak height and coordination number within the reference's first "
    "minimum; standard errors over 5 time blocks, Welch t, Bonferroni over the 3 (family-wise 5 %)",
    "Ea": "weighted Arrhenius fit of D on each side over the temperatures where both give D; z on the "
    "difference with the two fit errors; agree only if 0.05 eV would be detected with 80 % power",
    "not diffusive": "no D is reported for a run whose MSD never meets the window rule; the needed length is "
    "estimated from MSD = c + 6Dt fitted at its longest usable lags: t_on = (1 − tol) c / (tol · 6D), "
    "run = persistence · t_on / end_fraction",
}


def verdict_table(report: ValidationReport) -> list[str]:
    """Plain-text rows: temperature, quantity, verdict, statistic."""
    rows = []
    for v in report.verdicts:
        t = f"{v['temperature_K']:g} K" if v["temperature_K"] is not None else "all"
        rows.append(f"{t:>8}  {v['quantity']:<16} {v['label']:<38} {v['statistic']}")
    return rows


def _finite(value: Any) -> Any:
    """The report with NaN / inf replaced by null: strict JSON that every reader accepts."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Verdict):
        return _finite(value.to_dict())
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Verdict):
        return value.to_dict()
    raise TypeError(type(value))
