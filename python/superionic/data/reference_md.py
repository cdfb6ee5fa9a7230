"""A labeller MD trajectory that serves as the transport target, and its Li tracer diffusivity.

NVT at one temperature from the ordered experimental cell: a Langevin equilibration, then
production with a Nosé–Hoover chain (deterministic, momentum-conserving dynamics that does not
damp diffusion the way a stochastic thermostat does). A frame every ``write_every`` steps (50 fs
by default) goes to extxyz.gz with UNWRAPPED positions: the module unwraps them itself, step by
step with minimum-image increments, so the file is right whatever the integrator does with
periodic images. Each frame also carries the labeller's energy, forces and stress.

Li tracer diffusivity: computed from the written file by :mod:`superionic.analysis` — the same
reader, drift convention (whole-system centre of mass removed), window rule and bootstrap over
atoms that users run on their own trajectories — so a model's D and the labeller's D are measured
alike. :data:`REFERENCE_WINDOW` is the stated window rule; a block-average interval over the same
window is recorded beside the bootstrap one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.io import read
from ase.md.langevin import Langevin
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from superionic.analysis.diffusion import WindowRule, tracer_diffusion
from superionic.analysis.errors import AnalysisError
from superionic.analysis.readers import load_ion_positions, open_trajectory
from superionic.analysis.trajectory import remove_drift
from superionic.data.generate import (
    FrameWriter,
    GenerationError,
    _jsonable,
    check_not_collapsed,
    label_frame,
    provenance,
    set_threads,
    structure_info,
    summary_path,
)
from superionic.data.labellers import Labeller, make_labeller
from superionic.data.materials import build_cell, structure_name
from superionic.data.ordering import OrderingReport
from superionic.data.resume_state import RunState, fingerprint, read_complete_frames, state_path

__all__ = [
    "REFERENCE_WINDOW",
    "ReferenceMDConfig",
    "ReferenceMDResult",
    "extend_reference_md",
    "finish_partial",
    "run_reference_md",
    "transport_summary",
]

log = logging.getLogger(__name__)

# The demo's rule too: small reference cells give noisy MSDs whose log-log slope wanders by > 0.1.
REFERENCE_WINDOW = WindowRule(slope_tolerance=0.2)
THERMOSTATS = ("nose-hoover", "langevin")


@dataclass(frozen=True)
class ReferenceMDConfig:
    """One reference trajectory; every field ends up in the JSON summary."""

    material: str
    temperature: float
    steps: int  # production steps (written part)
    labeller: str = "sevennet"
    timestep_fs: float = 2.0
    write_every: int = 25  # steps: 50 fs at 2 fs
    equilibration_steps: int = 1000  # 2 ps at 2 fs, not written
    thermostat: str = "nose-hoover"
    tdamp_fs: float = 100.0  # Nosé–Hoover relaxation time
    friction_per_fs: float = 0.01  # Langevin (equilibration, or production if asked)
    seed: int = 0
    supercell: tuple[int, int, int] | None = None  # None: 1x1x1, or what min_width needs
    min_width: float | None = None  # Å
    draws: int = 10
    oxidation_states: dict[str, int] | None = None
    min_distance: float | None = None
    ion: str = "Li"  # the mobile ion whose D the summary reports
    device: str = "cpu"
    threads: int | None = None
    output: Path | None = None

    def validate(self) -> None:
        if self.temperature <= 0:
            raise GenerationError(f"--temperature must be > 0 K, got {self.temperature}")
        if self.write_every < 1:
            raise GenerationError(f"--write-every must be >= 1, got {self.write_every}")
        if self.equilibration_steps < 0:
            raise GenerationError(f"--equilibration-steps must be >= 0, got {self.equilibration_steps}")
        if self.timestep_fs <= 0:
            raise GenerationError(f"--timestep must be > 0 fs, got {self.timestep_fs}")
        if self.draws < 1:
            raise GenerationError(f"--draws must be >= 1, got {self.draws}")
        if self.steps < self.write_every * 10:
            raise GenerationError(
                f"--steps {self.steps} must cover at least 10 written frames (--write-every "
                f"{self.write_every}): give at least {10 * self.write_every}"
            )
        if self.thermostat not in THERMOSTATS:
            raise GenerationError(f"unknown thermostat {self.thermostat!r}; valid: {', '.join(THERMOSTATS)}")

    def output_path(self) -> Path:
        if self.output is not None:
            return Path(self.output)
        name = structure_name(self.material)
        return Path("data") / name / f"reference_md_{self.labeller}_{self.temperature:.0f}K.extxyz.gz"

    def cell(self) -> tuple[Atoms, OrderingReport]:
        return build_cell(
            self.material,
            seed=self.seed,
            supercell=self.supercell,
            min_width=self.min_width,
            draws=self.draws,
            oxidation_states=self.oxidation_states,
            min_distance=self.min_distance,
        )


@dataclass
class ReferenceMDResult:
    output: Path
    summary_json: Path
    summary: dict[str, Any]


def transport_summary(trajectory: Path, ion: str = "Li", n_bootstrap: int = 1000) -> dict[str, Any]:
    """D of ``ion`` in a written reference trajectory, as JSON fields; a run too short or not
    diffusive gives ``None`` values and the reason instead of an exception (the frames still count)."""
    ions = load_ion_positions(open_trajectory(trajectory), ion)
    try:
        try:
            tracer = tracer_diffusion(
                ions.positions, ions.times_ps, rule=REFERENCE_WINDOW, n_bootstrap=n_bootstrap
            )
        except AnalysisError as err:
            return {f"D_{ion}_cm2_per_s": None, f"D_{ion}_note": f"not determined: {err}"}
        try:
            blocks = tracer_diffusion(
                ions.positions, ions.times_ps, window_ps=tracer.window_ps, uncertainty="block_average"
            )
            block_ci: list[float] | None = list(blocks.ci95_cm2_per_s)
        except AnalysisError:
            block_ci = None
    finally:
        ions.close()
    return {
        f"D_{ion}_cm2_per_s": tracer.diffusion_cm2_per_s,
        f"D_{ion}_uncertainty_cm2_per_s": tracer.stderr_cm2_per_s,
        f"D_{ion}_ci95_cm2_per_s": list(tracer.ci95_cm2_per_s),
        f"D_{ion}_block_average_ci95_cm2_per_s": block_ci,
        f"D_{ion}_components_cm2_per_s": list(tracer.components_cm2_per_s),
        "fit_window_ps": list(tracer.window_ps),
        "method": (
            f"superionic.analysis.tracer_diffusion: {tracer.method}; window rule: log-log MSD slope "
            f"within 1 ± {REFERENCE_WINDOW.slope_tolerance}; whole-system centre-of-mass drift removed"
        ),
    }


class _Unwrapper:
    """Accumulates minimum-image displacements every step: positions that never jump by a box."""

    def __init__(self, atoms: Atoms) -> None:
        self.atoms = atoms
        self.previous = atoms.get_scaled_positions(wrap=False)
        self.unwrapped = atoms.get_positions().copy()

    def __call__(self) -> None:
        now = self.atoms.get_scaled_positions(wrap=False)
        step = now - self.previous
        step -= np.round(step)
        self.unwrapped += step @ self.atoms.cell.array
        self.previous = now


def run_reference_md(
    config: ReferenceMDConfig, on_progress: Callable[[int, int], None] | None = None
) -> ReferenceMDResult:
    """Run the trajectory, write frames and the JSON with D; returns both."""
    config.validate()
    set_threads(config.threads)
    atoms, ordering = config.cell()
    info = structure_info(atoms, ordering)
    if config.ion not in atoms.get_chemical_symbols():
        raise GenerationError(f"--ion {config.ion}: the structure has no {config.ion}; name its mobile ion")
    output = config.output_path()
    start_time = time.perf_counter()
    resume, kept = _resumable(config, output)
    labeller = make_labeller(config.labeller, device=config.device)
    labeller.check_elements(set(atoms.get_chemical_symbols()), str(config.material))
    rng = np.random.default_rng(config.seed)
    atoms.calc = labeller.calculator
    if resume is not None:
        return _resume(config, atoms, ordering, info, labeller, rng, resume, kept, start_time, on_progress)
    thermalize_momenta(atoms, config.temperature, rng=rng)
    Stationary(atoms)
    if config.equilibration_steps:
        log.info(
            "%s: equilibrating %d steps at %.0f K",
            info["material"],
            config.equilibration_steps,
            config.temperature,
        )
        _langevin(atoms, config, rng).run(config.equilibration_steps)
        check_not_collapsed(atoms, f"equilibration at {config.temperature:.0f} K")
        # Langevin kicks give the centre of mass a thermal velocity; zero it so the momentum-
        # conserving production run does not drift (the analysis removes drift regardless).
        Stationary(atoms)
    dyn = _nose_hoover_or_langevin(atoms, config, rng)
    writer = FrameWriter(output)
    base_info = {**provenance(info, labeller, config.seed), "sampling": "reference_md"}
    trajectory, temperatures = _produce(
        atoms, dyn, labeller, config, writer, base_info, first_step=0, on_progress=on_progress, rng=rng
    )
    writer.finish()

    return _summarise(
        config,
        output,
        symbols=atoms.get_chemical_symbols(),
        masses=atoms.get_masses(),
        trajectory=np.array(trajectory),
        temperatures=temperatures,
        provenance_fields={**info, "labeller": labeller.name, "labeller_version": labeller.version},
        wall_s=time.perf_counter() - start_time,
        ordering=ordering.to_dict(),
    )


def _fingerprint(config: ReferenceMDConfig) -> str:
    settings = {k: v for k, v in asdict(config).items() if k not in ("device", "threads", "output")}
    return fingerprint({k: str(v) for k, v in settings.items()})


def _resumable(config: ReferenceMDConfig, output: Path) -> tuple[RunState | None, list[Atoms]]:
    """The saved state and frames of a killed production run with these settings, if any."""
    partial = FrameWriter.partial_path(output)
    if not partial.exists():
        return None, []
    state = RunState.load(state_path(partial))
    if state is None or state.fingerprint != _fingerprint(config):
        why = "no resume state" if state is None else "it was made with other settings"
        raise GenerationError(
            f"{partial}: frames of an earlier run that cannot be continued ({why}); rerun with the "
            "settings it was started with, keep its frames with --finish-partial, or delete it"
        )
    kept = read_complete_frames(partial, state.frames)
    if len(kept) != state.frames:
        raise GenerationError(
            f"{partial}: holds {len(kept)} complete frames but its state says {state.frames}; the file "
            "was changed by hand: keep its frames with --finish-partial, or delete it"
        )
    return state, kept


def _thermostat_state(dyn: Any) -> dict[str, list[float]]:
    """The Nosé–Hoover chain's variables (ASE keeps them on its thermostat object); none for Langevin."""
    thermostat = getattr(dyn, "_thermostat", None)
    if thermostat is None or not hasattr(thermostat, "_eta"):
        return {}
    return {"eta": thermostat._eta.tolist(), "p_eta": thermostat._p_eta.tolist()}


def _restore_thermostat(dyn: Any, saved: dict[str, list[float]]) -> bool:
    thermostat = getattr(dyn, "_thermostat", None)
    if not saved or thermostat is None or not hasattr(thermostat, "_eta"):
        return not saved
    thermostat._eta[:] = saved["eta"]
    thermostat._p_eta[:] = saved["p_eta"]
    return True


def _resume(
    config: ReferenceMDConfig,
    atoms: Atoms,
    ordering: Any,
    info: dict[str, Any],
    labeller: Labeller,
    rng: np.random.Generator,
    state: RunState,
    kept: list[Atoms],
    start_time: float,
    on_progress: Callable[[int, int], None] | None,
) -> ReferenceMDResult:
    """Production continued from the state saved after the last written frame: positions,
    momenta, the thermostat's variables, the unwrapped positions and the generator."""
    state.restore_rng(rng)
    state.restore_atoms(atoms)
    dyn = _nose_hoover_or_langevin(atoms, config, rng)
    extra = state.extra or {}
    exact = _restore_thermostat(dyn, extra.get("thermostat", {}))
    log.info("%s: resuming at production step %d from %d frames", info["material"], state.step, len(kept))
    writer = FrameWriter(config.output_path(), len(kept))
    base_info = {**provenance(info, labeller, config.seed), "sampling": "reference_md"}
    trajectory, temperatures = _produce(
        atoms,
        dyn,
        labeller,
        config,
        writer,
        base_info,
        first_step=state.step,
        on_progress=on_progress,
        unwrapped=(np.array(extra["unwrapped"]), np.array(extra["scaled"])),
        frames_before=len(kept),
        rng=rng,
    )
    writer.finish()
    note = None if exact else f"resumed at step {state.step} with the thermostat's variables restarted"
    return _summarise(
        config,
        config.output_path(),
        symbols=atoms.get_chemical_symbols(),
        masses=atoms.get_masses(),
        trajectory=np.array([f.positions for f in kept] + trajectory),
        temperatures=[float(f.info["instantaneous_temperature_K"]) for f in kept] + temperatures,
        provenance_fields={**info, "labeller": labeller.name, "labeller_version": labeller.version},
        wall_s=time.perf_counter() - start_time,
        ordering=ordering.to_dict(),
        note=note,
    )


def _langevin(atoms: Atoms, config: ReferenceMDConfig, rng: np.random.Generator) -> Langevin:
    return Langevin(
        atoms,
        timestep=config.timestep_fs * units.fs,
        temperature_K=config.temperature,
        friction=config.friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )


def _nose_hoover_or_langevin(atoms: Atoms, config: ReferenceMDConfig, rng: np.random.Generator) -> Any:
    if config.thermostat == "nose-hoover":
        return NoseHooverChainNVT(
            atoms,
            timestep=config.timestep_fs * units.fs,
            temperature_K=config.temperature,
            tdamp=config.tdamp_fs * units.fs,
        )
    return _langevin(atoms, config, rng)


def _produce(
    atoms: Atoms,
    dyn: Any,
    labeller: Labeller,
    config: ReferenceMDConfig,
    writer: FrameWriter,
    base_info: dict[str, Any],
    *,
    first_step: int,
    on_progress: Callable[[int, int], None] | None,
    unwrapped: tuple[np.ndarray, np.ndarray] | None = None,
    frames_before: int = 0,
    rng: np.random.Generator | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """Production from ``first_step`` to ``config.steps``: a labelled, unwrapped frame every
    ``write_every`` steps (the frame at ``first_step`` only when starting from 0: an extension
    or a resumed run already has it). With ``rng``, the resume state is saved after every frame;
    ``unwrapped`` (unwrapped and scaled positions) continues a resumed run's unwrapping."""
    unwrap = _Unwrapper(atoms)
    if unwrapped is not None:
        unwrap.unwrapped, unwrap.previous = unwrapped[0].copy(), unwrapped[1].copy()
    dyn.attach(unwrap, interval=1)
    trajectory: list[np.ndarray] = []
    temperatures: list[float] = []
    n_frames = (
        frames_before + (config.steps - first_step) // config.write_every + (1 if first_step == 0 else 0)
    )
    key = _fingerprint(config)

    def record() -> None:
        step = first_step + dyn.nsteps
        check_not_collapsed(atoms, f"reference MD at {config.temperature:.0f} K, step {step}")
        info = {
            **base_info,
            "temperature_K": float(config.temperature),
            "instantaneous_temperature_K": float(atoms.get_temperature()),
            "md_step": int(step),
            "time_ps": step * config.timestep_fs / 1000.0,
            "positions": "unwrapped",
        }
        # Labels come from the calculator's cached results for the current (wrapped) configuration;
        # the frame stores the unwrapped positions, which are the same configuration up to lattice
        # translations, so energy, forces and stress are unchanged.
        frame = label_frame(atoms, labeller, info)
        frame.set_positions(unwrap.unwrapped.copy())
        writer.add(frame)
        trajectory.append(unwrap.unwrapped.copy())
        temperatures.append(float(atoms.get_temperature()))
        if rng is not None:
            state = RunState.capture(key, writer.count, "md", 0, rng, atoms, step)
            state.extra = {
                "unwrapped": unwrap.unwrapped.tolist(),
                "scaled": unwrap.previous.tolist(),
                "thermostat": _thermostat_state(dyn),
            }
            state.save(state_path(writer.partial))
        if on_progress is not None:
            on_progress(frames_before + len(trajectory), n_frames)

    if first_step == 0:
        record()
    for _ in range((config.steps - first_step) // config.write_every):
        dyn.run(config.write_every)
        record()
    return trajectory, temperatures


def extend_reference_md(
    config: ReferenceMDConfig, on_progress: Callable[[int, int], None] | None = None
) -> ReferenceMDResult:
    """Continue a finished reference trajectory to ``config.steps`` production steps.

    The file stores positions, not momenta, so the continuation draws velocities from the
    Maxwell–Boltzmann distribution at the run's temperature (rng seeded by ``(seed, last step)``)
    and restarts the thermostat: one Andersen-like resampling at the seam, which leaves the
    equilibrium ensemble, and so D, unchanged. The summary says where the seam is. The old frames
    are copied into the ``.partial`` file first and the finished file replaces the old one only at
    the end, so a killed extension loses nothing (``--finish-partial`` keeps both parts)."""
    config.validate()
    output = config.output_path()
    if not output.exists():
        raise GenerationError(f"{output}: no finished reference trajectory to extend; run reference-md first")
    frames = read(output, ":", format="extxyz")
    first, last = frames[0].info, frames[-1].info
    _check_same_run(output, first, config, labeller=True)
    done = int(last["md_step"])
    interval = int(frames[1].info["md_step"]) - int(first["md_step"])
    if interval != config.write_every:
        raise GenerationError(
            f"{output}: frames are {interval} steps apart, the command asked for --write-every "
            f"{config.write_every}; pass the run's own value"
        )
    if config.steps <= done:
        raise GenerationError(
            f"{output}: already has {done} production steps; --steps must be larger to extend it"
        )
    previous = json.loads(summary_path(output).read_text()) if summary_path(output).exists() else {}

    set_threads(config.threads)
    start_time = time.perf_counter()
    labeller = make_labeller(config.labeller, device=config.device)
    rng = np.random.default_rng([config.seed, done])
    atoms = Atoms(
        frames[-1].get_chemical_symbols(), positions=frames[-1].positions, cell=frames[-1].cell, pbc=True
    )
    atoms.calc = labeller.calculator
    thermalize_momenta(atoms, config.temperature, rng=rng)
    Stationary(atoms)

    writer = FrameWriter(output)
    for frame in frames:
        writer.add(frame)
    base_info = {key: first[key] for key in first if key not in _PER_FRAME_KEYS}
    new_positions, new_temperatures = _produce(
        atoms,
        _nose_hoover_or_langevin(atoms, config, rng),
        labeller,
        config,
        writer,
        base_info,
        first_step=done,
        on_progress=on_progress,
    )
    writer.finish()
    wall = time.perf_counter() - start_time + float(previous.get("wall_time_s") or 0.0)
    return _summarise(
        config,
        output,
        symbols=atoms.get_chemical_symbols(),
        masses=atoms.get_masses(),
        trajectory=np.array([f.positions for f in frames] + new_positions),
        temperatures=[float(f.info["instantaneous_temperature_K"]) for f in frames] + new_temperatures,
        provenance_fields=_frame_provenance(first),
        wall_s=wall,
        ordering=previous.get("ordering"),
        note=(
            f"extended from production step {done} to {config.steps}: velocities redrawn from "
            f"Maxwell-Boltzmann at {config.temperature:.0f} K at the seam (t = "
            f"{done * config.timestep_fs / 1000.0:g} ps) and the thermostat restarted"
        ),
    )


def _frame_provenance(info: dict[str, Any]) -> dict[str, Any]:
    """The structure and labeller fields a written frame carries."""
    keys = ("material", "formula", "source", "labeller", "labeller_version")
    return {k: info[k] for k in keys if k in info}


_PER_FRAME_KEYS = ("instantaneous_temperature_K", "md_step", "time_ps", "energy", "stress", "free_energy")


def _check_same_run(path: Path, info: dict[str, Any], config: ReferenceMDConfig, *, labeller: bool) -> None:
    """Refuse to continue or finish a file with a command that describes another run."""
    expected: dict[str, Any] = {
        "material": structure_name(config.material),
        "temperature_K": float(config.temperature),
    }
    if labeller:
        expected["labeller"] = config.labeller
    for key, value in expected.items():
        if info.get(key) != value:
            raise GenerationError(
                f"{path}: frames have {key} = {info.get(key)!r}, the command asked for {value!r}; "
                "pass the options the run was started with"
            )


def finish_partial(config: ReferenceMDConfig) -> ReferenceMDResult:
    """Turn the ``.partial`` file of a run that was stopped (killed, out of time) into a finished
    reference: every frame written so far is kept, the summary states how far the run got."""
    config.validate()
    output = config.output_path()
    partial = FrameWriter.partial_path(output)
    if not partial.exists():
        raise GenerationError(f"{partial}: no partial trajectory to finish; run reference-md first")
    frames = read(partial, ":", format="extxyz")
    if len(frames) < 10:
        raise GenerationError(f"{partial}: {len(frames)} frames; at least 10 are needed for a D")
    first = frames[0].info
    _check_same_run(partial, first, config, labeller=False)
    FrameWriter.gzip_partial(output)
    last_step = int(frames[-1].info["md_step"])
    return _summarise(
        config,
        output,
        symbols=frames[0].get_chemical_symbols(),
        masses=frames[0].get_masses(),
        trajectory=np.array([f.positions for f in frames]),
        temperatures=[float(f.info["instantaneous_temperature_K"]) for f in frames],
        provenance_fields=_frame_provenance(first),
        wall_s=None,
        note=f"run stopped at production step {last_step} of {config.steps}; finished from its partial file",
    )


def _summarise(
    config: ReferenceMDConfig,
    output: Path,
    *,
    symbols: list[str],
    masses: np.ndarray,
    trajectory: np.ndarray,
    temperatures: list[float],
    provenance_fields: dict[str, str],
    wall_s: float | None,
    note: str | None = None,
    ordering: dict[str, Any] | None = None,
) -> ReferenceMDResult:
    ion = config.ion
    mobile = np.array([s == ion for s in symbols])
    dt_ps = config.write_every * config.timestep_fs / 1000.0
    framework = remove_drift(trajectory, masses)[:, ~mobile]
    # A framework that moves by Å² over the run has melted: the D above is not a solid's.
    framework_msd = float(np.mean(np.sum((framework[-1] - framework[0]) ** 2, axis=-1)))
    summary = {
        "file": output.name,
        **provenance_fields,
        "atoms": len(symbols),
        "li_atoms": int(mobile.sum()) if ion == "Li" else int(np.sum([s == "Li" for s in symbols])),
        "mobile_ion": ion,
        "mobile_atoms": int(mobile.sum()),
        "temperature_K": config.temperature,
        "temperature_mean_K": float(np.mean(temperatures[1:])),
        "temperature_std_K": float(np.std(temperatures[1:])),
        "thermostat": config.thermostat,
        "timestep_fs": config.timestep_fs,
        "frame_interval_fs": config.write_every * config.timestep_fs,
        "frames": len(trajectory),
        "equilibration_ps": config.equilibration_steps * config.timestep_fs / 1000.0,
        "production_ps": (len(trajectory) - 1) * dt_ps,
        "positions": "unwrapped (minimum-image increments accumulated every MD step)",
        **transport_summary(output, ion=ion),
        "framework_msd_end_A2": framework_msd,
        "wall_time_s": None if wall_s is None else round(wall_s, 1),
        **({"note": note} if note else {}),
        "config": _jsonable(asdict(config)),
        **({"ordering": ordering} if ordering else {}),
    }
    summary_json = summary_path(output)
    summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    log.info(
        "%s %.0f K: D(%s) = %s cm²/s over %.1f ps",
        provenance_fields.get("material"),
        config.temperature,
        ion,
        summary[f"D_{ion}_cm2_per_s"],
        summary["production_ps"],
    )
    return ReferenceMDResult(output=output, summary_json=summary_json, summary=summary)
