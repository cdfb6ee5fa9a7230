"""A labeller MD trajectory that serves as the transport target, and its Li tracer diffusivity.

NVT at one temperature from the ordered experimental cell: a Langevin equilibration, then
production with a Nosé–Hoover chain (deterministic, momentum-conserving dynamics that does not
damp diffusion the way a stochastic thermostat does). A frame every ``write_every`` steps (50 fs
by default) goes to extxyz.gz with UNWRAPPED positions: the module unwraps them itself, step by
step with minimum-image increments, so the file is right whatever the integrator does with
periodic images. Each frame also carries the labeller's energy, forces and stress.

Tracer diffusion (:func:`tracer_diffusion`): MSD of Li with the centre-of-mass drift of the whole
system removed, averaged over all time origins, fitted by MSD(t) = 6 D t + c on the later part
of the lag range (``fit_window`` as fractions of the trajectory length; the intercept absorbs
the vibrational plateau); the uncertainty is the standard error of D over ``blocks``
equal, consecutive blocks analysed the same way. 1 Å²/ps = 1e-4 cm²/s.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from superionic.data.generate import (
    FrameWriter,
    GenerationError,
    _jsonable,
    check_not_collapsed,
    label_frame,
    provenance,
    set_threads,
    summary_path,
)
from superionic.data.labellers import make_labeller
from superionic.data.materials import build_structure, get_material

__all__ = [
    "DiffusionResult",
    "ReferenceMDConfig",
    "ReferenceMDResult",
    "run_reference_md",
    "tracer_diffusion",
]

log = logging.getLogger(__name__)

A2_PER_PS_TO_CM2_PER_S = 1e-4
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
    supercell: tuple[int, int, int] = (1, 1, 1)
    device: str = "cpu"
    threads: int | None = None
    fit_window: tuple[float, float] = (0.2, 0.6)
    blocks: int = 5
    output: Path | None = None

    def validate(self) -> None:
        if self.temperature <= 0:
            raise GenerationError(f"temperature must be positive, got {self.temperature}")
        if self.steps < self.write_every * 10:
            raise GenerationError(
                f"steps ({self.steps}) must cover at least 10 written frames (write_every {self.write_every})"
            )
        if self.thermostat not in THERMOSTATS:
            raise GenerationError(f"unknown thermostat {self.thermostat!r}; valid: {', '.join(THERMOSTATS)}")
        lo, hi = self.fit_window
        if not 0.0 <= lo < hi <= 1.0:
            raise GenerationError(f"fit_window must satisfy 0 <= start < end <= 1, got {self.fit_window}")
        if self.blocks < 2:
            raise GenerationError(f"blocks must be >= 2 for an uncertainty, got {self.blocks}")

    def output_path(self) -> Path:
        if self.output is not None:
            return Path(self.output)
        name = get_material(self.material).name
        return Path("data") / name / f"reference_md_{self.labeller}_{self.temperature:.0f}K.extxyz.gz"


@dataclass(frozen=True)
class DiffusionResult:
    """Li tracer diffusivity, Å²/ps; ``*_cm2_s`` in cm²/s."""

    D: float
    D_blocks: tuple[float, ...]
    D_block_mean: float
    D_block_sem: float
    lag_ps: tuple[float, ...]
    msd_A2: tuple[float, ...]
    fit_window_ps: tuple[float, float]

    @property
    def D_cm2_s(self) -> float:
        return self.D * A2_PER_PS_TO_CM2_PER_S

    @property
    def D_sem_cm2_s(self) -> float:
        return self.D_block_sem * A2_PER_PS_TO_CM2_PER_S


@dataclass
class ReferenceMDResult:
    output: Path
    summary_json: Path
    diffusion: DiffusionResult
    summary: dict[str, Any]


def _drift_removed(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Unwrapped positions (T, N, 3) minus the mass-weighted centre of mass of each frame."""
    com = np.einsum("tnk,n->tk", positions, masses) / masses.sum()
    return positions - com[:, None, :]


def msd_all_origins(positions: np.ndarray, max_lag: int) -> np.ndarray:
    """MSD(lag) for lag = 0..max_lag, averaged over atoms and over every time origin."""
    msd = np.zeros(max_lag + 1)
    for lag in range(1, max_lag + 1):
        d = positions[lag:] - positions[:-lag]
        msd[lag] = float(np.mean(np.sum(d * d, axis=-1)))
    return msd


def _fit_D(positions: np.ndarray, dt_ps: float, fit_window: tuple[float, float]) -> tuple[float, np.ndarray]:
    frames = len(positions)
    max_lag = max(2, math.floor(fit_window[1] * (frames - 1)))
    msd = msd_all_origins(positions, max_lag)
    lo = max(1, math.floor(fit_window[0] * (frames - 1)))
    lags = np.arange(lo, max_lag + 1)
    if len(lags) < 2:
        raise GenerationError("too few frames in the fit window; run longer or write frames more often")
    slope, _ = np.polyfit(lags * dt_ps, msd[lo : max_lag + 1], 1)
    return float(slope / 6.0), msd


def tracer_diffusion(
    positions: np.ndarray,
    masses: np.ndarray,
    mobile: np.ndarray,
    dt_ps: float,
    fit_window: tuple[float, float] = (0.2, 0.6),
    blocks: int = 5,
) -> DiffusionResult:
    """Tracer D of the ``mobile`` atoms from unwrapped ``positions`` (T, N, 3) written every ``dt_ps``."""
    positions = np.asarray(positions, dtype=float)
    centred = _drift_removed(positions, np.asarray(masses, dtype=float))[:, np.asarray(mobile, dtype=bool)]
    D, msd = _fit_D(centred, dt_ps, fit_window)
    size = len(centred) // blocks
    if size < 5:
        raise GenerationError(f"{len(centred)} frames are too few for {blocks} blocks; run longer")
    per_block = tuple(_fit_D(centred[b * size : (b + 1) * size], dt_ps, fit_window)[0] for b in range(blocks))
    sem = float(np.std(per_block, ddof=1) / math.sqrt(blocks))
    total_ps = (len(centred) - 1) * dt_ps
    return DiffusionResult(
        D=D,
        D_blocks=per_block,
        D_block_mean=float(np.mean(per_block)),
        D_block_sem=sem,
        lag_ps=tuple(float(x) for x in np.arange(len(msd)) * dt_ps),
        msd_A2=tuple(float(x) for x in msd),
        fit_window_ps=(fit_window[0] * total_ps, fit_window[1] * total_ps),
    )


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
    spec = get_material(config.material)
    output = config.output_path()
    start_time = time.perf_counter()
    labeller = make_labeller(config.labeller, device=config.device)
    rng = np.random.default_rng(config.seed)
    atoms = build_structure(spec, seed=config.seed, supercell=config.supercell)
    atoms.calc = labeller.calculator
    thermalize_momenta(atoms, config.temperature, rng=rng)
    Stationary(atoms)
    dt = config.timestep_fs * units.fs
    if config.equilibration_steps:
        log.info(
            "%s: equilibrating %d steps at %.0f K", spec.name, config.equilibration_steps, config.temperature
        )
        Langevin(
            atoms,
            timestep=dt,
            temperature_K=config.temperature,
            friction=config.friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        ).run(config.equilibration_steps)
        check_not_collapsed(atoms, f"equilibration at {config.temperature:.0f} K")
        # Langevin kicks give the centre of mass a thermal velocity; zero it so the momentum-
        # conserving production run does not drift (the analysis removes drift regardless).
        Stationary(atoms)
    if config.thermostat == "nose-hoover":
        dyn = NoseHooverChainNVT(
            atoms, timestep=dt, temperature_K=config.temperature, tdamp=config.tdamp_fs * units.fs
        )
    else:
        dyn = Langevin(
            atoms,
            timestep=dt,
            temperature_K=config.temperature,
            friction=config.friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )

    unwrap = _Unwrapper(atoms)
    dyn.attach(unwrap, interval=1)
    writer = FrameWriter(output)
    base_info = {**provenance(spec, labeller, config.seed), "sampling": "reference_md"}
    trajectory: list[np.ndarray] = []
    temperatures: list[float] = []
    n_frames = config.steps // config.write_every + 1

    def record() -> None:
        step = dyn.nsteps
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
        if on_progress is not None:
            on_progress(len(trajectory), n_frames)

    record()
    for _ in range(config.steps // config.write_every):
        dyn.run(config.write_every)
        record()
    writer.finish()

    masses = atoms.get_masses()
    mobile = np.array([s == "Li" for s in atoms.get_chemical_symbols()])
    dt_ps = config.write_every * config.timestep_fs / 1000.0
    positions = np.array(trajectory)
    diffusion = tracer_diffusion(positions, masses, mobile, dt_ps, config.fit_window, config.blocks)
    framework = _drift_removed(positions, masses)[:, ~mobile]
    framework_msd = float(np.mean(np.sum((framework[-1] - framework[0]) ** 2, axis=-1)))
    wall = time.perf_counter() - start_time
    stride = max(1, len(diffusion.lag_ps) // 200)  # keep the JSON small
    summary = {
        "file": output.name,
        "material": spec.name,
        "formula": spec.formula,
        "source": spec.citation,
        "labeller": labeller.name,
        "labeller_version": labeller.version,
        "atoms": len(atoms),
        "li_atoms": int(mobile.sum()),
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
        "D_Li_A2_per_ps": diffusion.D,
        "D_Li_cm2_per_s": diffusion.D_cm2_s,
        "D_Li_blocks_cm2_per_s": [d * A2_PER_PS_TO_CM2_PER_S for d in diffusion.D_blocks],
        "D_Li_block_mean_cm2_per_s": diffusion.D_block_mean * A2_PER_PS_TO_CM2_PER_S,
        "D_Li_uncertainty_cm2_per_s": diffusion.D_sem_cm2_s,
        "method": (
            "Li tracer MSD with the whole-system centre-of-mass drift removed, averaged over all time "
            f"origins; least-squares fit MSD(t) = 6 D t + c for lags in {config.fit_window[0]:.0%}-"
            f"{config.fit_window[1]:.0%} of the trajectory length; uncertainty = standard error of D over "
            f"{config.blocks} consecutive equal blocks analysed the same way. D is from the full run."
        ),
        "fit_window_ps": list(diffusion.fit_window_ps),
        "framework_msd_end_A2": framework_msd,
        "msd_Li": {"lag_ps": list(diffusion.lag_ps[::stride]), "msd_A2": list(diffusion.msd_A2[::stride])},
        "wall_time_s": round(wall, 1),
        "config": _jsonable(asdict(config)),
    }
    summary_json = summary_path(output)
    summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    log.info(
        "%s %.0f K: D(Li) = %.3g ± %.2g cm²/s over %.1f ps",
        spec.name,
        config.temperature,
        diffusion.D_cm2_s,
        diffusion.D_sem_cm2_s,
        summary["production_ps"],
    )
    return ReferenceMDResult(output=output, summary_json=summary_json, diffusion=diffusion, summary=summary)
