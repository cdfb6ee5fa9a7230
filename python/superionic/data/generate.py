"""Reference data made by a labeller: its own MD at several temperatures plus strained cells.

Sampling plan for ``frames`` frames (seeded, reproducible):

* ``1 - strain_fraction`` of them come from Langevin NVT MD driven by the labeller itself, from
  the ordered experimental cell, split evenly over ``temperatures``. Each temperature starts from
  its own ordering of the partial occupancies (seed + index), equilibrates for
  ``equilibration_steps`` and then keeps one frame every ``sample_every`` steps (≥ 10 steps = 20 fs
  apart at 2 fs, long enough for the fast Li vibrations to decorrelate).
* the rest are strained cells: a kept MD frame, deformed by an isotropic strain from
  ``isotropic_strains`` or a random symmetric shear (off-diagonal ≤ ``shear_max``), positions
  scaled with the cell and rattled by ``rattle`` Å. They teach the model the stress and the
  equation of state around the experimental volume, which MD at one volume never visits.

Every frame is labelled by a single-point call and written as extended XYZ (gzip-compressed)
with energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign convention) held in a
:class:`~ase.calculators.singlepoint.SinglePointCalculator`, so ``ase.io.read`` gives them back
through ``get_potential_energy()``, ``get_forces()`` and ``get_stress()``. ``atoms.info`` carries
the provenance of each frame; a JSON summary is written beside the file.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

import superionic
from superionic.data.labellers import Labeller, make_labeller
from superionic.data.materials import build_cell, structure_name
from superionic.data.ordering import OrderingReport
from superionic.data.resume_state import RunState, fingerprint, read_complete_frames, state_path

__all__ = [
    "GenerateConfig",
    "GenerateResult",
    "GenerationError",
    "finish_partial",
    "generate",
    "label_frame",
    "set_threads",
]

log = logging.getLogger(__name__)

# Below this an MD frame has collapsed (atoms fused): the labeller left its domain, stop.
COLLAPSE_DISTANCE = 0.7

ProgressCallback = Callable[[int, int, str], None]


class GenerationError(RuntimeError):
    """Data generation that cannot proceed as configured."""


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate; every field ends up in the JSON summary."""

    material: str
    labeller: str = "sevennet"
    frames: int = 300
    temperatures: tuple[float, ...] = (300.0, 600.0, 900.0, 1200.0)
    strain_fraction: float = 0.25
    isotropic_strains: tuple[float, ...] = (-0.03, -0.02, 0.02, 0.03)
    shear_max: float = 0.02
    rattle: float = 0.02  # Å
    timestep_fs: float = 2.0
    sample_every: int = 10
    equilibration_steps: int = 200
    friction_per_fs: float = 0.01  # Langevin; strong enough to thermalise in ~100 fs
    seed: int = 0
    supercell: tuple[int, int, int] | None = None  # None: 1x1x1, or what min_width needs
    min_width: float | None = None  # Å, shortest perpendicular width of the cell
    draws: int = 10  # ordering draws; the lowest Ewald energy wins
    oxidation_states: dict[str, int] | None = None
    min_distance: float | None = None  # Å, the ordering's exclusion (default: the structure's rule)
    device: str = "cpu"
    threads: int | None = None
    output: Path | None = None

    def validate(self) -> None:
        if self.frames < 1:
            raise GenerationError(f"--frames must be >= 1, got {self.frames}")
        if not self.temperatures or min(self.temperatures) <= 0:
            raise GenerationError(f"--temperatures must all be > 0 K, got {list(self.temperatures)}")
        if not 0.0 <= self.strain_fraction < 1.0:
            raise GenerationError(f"--strain-fraction must be in [0, 1), got {self.strain_fraction}")
        if self.sample_every < 1:
            raise GenerationError(f"--sample-every must be >= 1, got {self.sample_every}")
        if self.equilibration_steps < 0:
            raise GenerationError(f"--equilibration-steps must be >= 0, got {self.equilibration_steps}")
        if self.timestep_fs <= 0:
            raise GenerationError(f"timestep_fs must be positive, got {self.timestep_fs}")
        if self.draws < 1:
            raise GenerationError(f"--draws must be >= 1, got {self.draws}")
        if self.threads is not None and self.threads < 1:
            raise GenerationError(f"--threads must be >= 1, got {self.threads}")

    def output_path(self) -> Path:
        if self.output is not None:
            return Path(self.output)
        return Path("data") / structure_name(self.material) / f"{self.labeller}.extxyz.gz"

    def cell(self, seed: int) -> tuple[Atoms, OrderingReport]:
        """The ordered starting cell for one ordering seed."""
        return build_cell(
            self.material,
            seed=seed,
            supercell=self.supercell,
            min_width=self.min_width,
            draws=self.draws,
            oxidation_states=self.oxidation_states,
            min_distance=self.min_distance,
        )


@dataclass
class GenerateResult:
    """What was written, with the summary that also goes to the JSON file."""

    output: Path
    summary_json: Path
    summary: dict[str, Any] = field(default_factory=dict)


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads (the labellers run through torch); None leaves the default."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(int(threads))


def summary_path(output: Path) -> Path:
    """``x.extxyz.gz`` -> ``x.json``."""
    name = output.name
    for suffix in (".extxyz.gz", ".xyz.gz", ".gz", ".extxyz", ".xyz"):
        if name.endswith(suffix):
            return output.with_name(name[: -len(suffix)] + ".json")
    return output.with_name(name + ".json")


def label_frame(atoms: Atoms, labeller: Labeller, info: dict[str, Any]) -> Atoms:
    """A copy of ``atoms`` whose results (energy, forces, stress) are frozen in a single point."""
    atoms.calc = labeller.calculator
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces(), dtype=float)
    stress = np.array(atoms.get_stress(voigt=True), dtype=float)
    if not (math.isfinite(energy) and np.isfinite(forces).all() and np.isfinite(stress).all()):
        raise GenerationError(f"{labeller.name} returned non-finite results; the frame is outside its domain")
    frame = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.cell, pbc=True)
    # Training frames keep atoms inside the cell (ASE MD lets them drift out); labels are unchanged.
    frame.wrap()
    frame.info.update(info)
    frame.calc = SinglePointCalculator(frame, energy=energy, forces=forces, stress=stress)
    return frame


def structure_info(atoms: Atoms, report: OrderingReport) -> dict[str, str]:
    """Name, formula and literature source of an ordered cell, for provenance."""
    return {
        "material": str(atoms.info.get("material", "structure")),
        "formula": str(atoms.info.get("formula", atoms.get_chemical_formula(empirical=True))),
        "source": report.citation,
    }


def provenance(info: dict[str, str], labeller: Labeller, seed: int) -> dict[str, Any]:
    """The fields every frame of a material/labeller carries."""
    return {
        **info,
        "labeller": labeller.name,
        "labeller_version": labeller.version,
        "seed": int(seed),
        "superionic_version": superionic.__version__,
    }


def check_not_collapsed(atoms: Atoms, context: str) -> None:
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    if distances.min() < COLLAPSE_DISTANCE:
        raise GenerationError(
            f"{context}: atoms {distances.min():.2f} Å apart, the MD collapsed; "
            "use a lower temperature or smaller timestep"
        )


class FrameWriter:
    """Appends frames to ``<output>.partial`` (plain extxyz, readable while running) and gzips at the end."""

    def __init__(self, output: Path, kept: int = 0) -> None:
        """``kept``: frames of a resumed run already in the partial file (0: start it afresh)."""
        self.output = output
        self.partial = self.partial_path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        if not kept:
            self.partial.unlink(missing_ok=True)
        self.count = kept

    @staticmethod
    def partial_path(output: Path) -> Path:
        return output.with_name(output.name + ".partial")

    @staticmethod
    def gzip_partial(output: Path) -> None:
        partial = FrameWriter.partial_path(output)
        with partial.open("rb") as src, gzip.open(output, "wb", compresslevel=9) as dst:
            shutil.copyfileobj(src, dst)
        partial.unlink()

    def add(self, frame: Atoms) -> None:
        write(self.partial, frame, format="extxyz", append=True)
        self.count += 1

    def finish(self) -> None:
        if self.count == 0:
            raise GenerationError("no frames were produced")
        self.gzip_partial(self.output)
        state_path(self.partial).unlink(missing_ok=True)


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if k < extra else 0) for k in range(parts)]


def _strain_matrix(config: GenerateConfig, rng: np.random.Generator, k: int) -> tuple[np.ndarray, str]:
    """Alternate isotropic strains (cycling through the list) with random symmetric shears."""
    if k % 2 == 0 and config.isotropic_strains:
        e = config.isotropic_strains[(k // 2) % len(config.isotropic_strains)]
        return np.eye(3) * (1.0 + e), f"isotropic {e:+.3f}"
    off = rng.uniform(-config.shear_max, config.shear_max, size=3)
    eps = np.array([[0.0, off[0], off[1]], [off[0], 0.0, off[2]], [off[1], off[2], 0.0]])
    return np.eye(3) + eps, "shear " + " ".join(f"{x:+.4f}" for x in off)


def _md_frames(
    start: Atoms,
    labeller: Labeller,
    config: GenerateConfig,
    temperature: float,
    count: int,
    rng: np.random.Generator,
    on_frame: Callable[[Atoms, int], None],
    resume: RunState | None = None,
) -> None:
    """``count`` frames of labeller MD; with ``resume``, continue the MD it saved (after its
    equilibration) instead of starting one."""
    atoms = start.copy()
    atoms.calc = labeller.calculator
    if resume is None:
        thermalize_momenta(atoms, temperature, rng=rng)
        Stationary(atoms)
    else:
        resume.restore_atoms(atoms)
    dyn = Langevin(
        atoms,
        timestep=config.timestep_fs * units.fs,
        temperature_K=temperature,
        friction=config.friction_per_fs / units.fs,
        fixcm=False,  # ASE's fixcm=True biases small-cell NVT sampling; a drifting COM is harmless here
        rng=rng,
    )
    if resume is not None:
        dyn.nsteps = resume.step
    elif config.equilibration_steps:
        dyn.run(config.equilibration_steps)
    for _ in range(count):
        dyn.run(config.sample_every)
        check_not_collapsed(atoms, f"MD at {temperature:.0f} K")
        on_frame(atoms, dyn.nsteps)


class _Collector:
    """Writes frames and keeps what the summary reports about them."""

    def __init__(
        self, output: Path, total: int, on_progress: ProgressCallback | None, kept: list[Atoms] | None = None
    ) -> None:
        self.writer = FrameWriter(output, len(kept or []))
        self.total, self.on_progress = total, on_progress
        self.kept: list[tuple[Atoms, float]] = []  # MD frames that strained frames start from
        self.energies: list[float] = []
        self.forces_max: list[float] = []
        self.stresses: list[np.ndarray] = []
        self.counts: dict[str, int] = {}
        for frame in kept or []:  # a resumed run's frames count as if made now, without writing
            if frame.info.get("sampling") == "md":
                self.emit_md(frame, float(frame.info["temperature_K"]), write=False)
            else:
                self.emit(frame, "strain", write=False)

    def emit(self, frame: Atoms, kind: str, write: bool = True) -> None:
        if write:
            self.writer.add(frame)
        self.energies.append(frame.get_potential_energy() / len(frame))
        self.forces_max.append(float(np.abs(frame.get_forces()).max()))
        self.stresses.append(frame.get_stress())
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.on_progress is not None:
            self.on_progress(self.writer.count, self.total, kind)

    def emit_md(self, frame: Atoms, temperature: float, write: bool = True) -> None:
        self.kept.append((frame, temperature))
        self.emit(frame, f"md_{temperature:.0f}K", write)


def generate(config: GenerateConfig, on_progress: ProgressCallback | None = None) -> GenerateResult:
    """Run the sampling plan and write ``config.output_path()`` plus its JSON summary.

    A run killed on the way is continued by the same call with the same settings: the frames of its
    partial file are kept and the MD goes on from the state saved after the last one
    (``data.resume_state``); a partial file without a usable state is refused, never overwritten.
    """
    config.validate()
    set_threads(config.threads)
    # Every ordered cell is built (and every structure problem reported) before the labeller loads.
    cells = [config.cell(config.seed * 1000 + k) for k in range(len(config.temperatures))]
    info = structure_info(*cells[0])
    output = config.output_path()
    start_time = time.perf_counter()
    resume, kept = _resumable(config, output)
    labeller = make_labeller(config.labeller, device=config.device)
    labeller.check_elements(set(cells[0][0].get_chemical_symbols()), str(config.material))
    rng = np.random.default_rng(config.seed)
    base_info = provenance(info, labeller, config.seed)

    n_strain = round(config.frames * config.strain_fraction)
    n_md = config.frames - n_strain
    per_temperature = _split(n_md, len(config.temperatures))
    collector = _Collector(output, config.frames, on_progress, kept)
    key = _fingerprint(config)
    state_file = state_path(collector.writer.partial)
    if resume is not None:
        resume.restore_rng(rng)
        log.info("%s: resuming from %d frames in %s", info["material"], len(kept), collector.writer.partial)
    # Where the resumed run stood: temperatures before it are complete, its own MD continues.
    first_md = resume.index if resume is not None and resume.phase == "md" else 0
    if resume is not None and resume.phase == "strain":
        first_md = len(config.temperatures)

    for k, (temperature, count) in enumerate(zip(config.temperatures, per_temperature, strict=True)):
        if count == 0 or k < first_md:
            continue
        continuing = resume if (resume is not None and resume.phase == "md" and k == resume.index) else None
        done = sum(
            1
            for f in kept
            if f.info.get("sampling") == "md" and float(f.info["temperature_K"]) == temperature
        )
        ordering_seed = config.seed * 1000 + k
        start = cells[k][0]
        log.info(
            "%s: MD at %.0f K for %d frames (ordering seed %d)",
            info["material"],
            temperature,
            count - (done if continuing else 0),
            ordering_seed,
        )

        def on_frame(
            atoms: Atoms,
            step: int,
            temperature: float = temperature,
            ordering_seed: int = ordering_seed,
            k: int = k,
        ):
            info = {
                **base_info,
                "sampling": "md",
                "temperature_K": float(temperature),
                "md_step": int(step),
                "ordering_seed": int(ordering_seed),
                "strain": "none",
            }
            # The MD calculator already holds this configuration's results: no extra force call.
            collector.emit_md(label_frame(atoms, labeller, info), temperature)
            RunState.capture(key, collector.writer.count, "md", k, rng, atoms, step).save(state_file)

        _md_frames(
            start,
            labeller,
            config,
            temperature,
            count - (done if continuing else 0),
            rng,
            on_frame,
            continuing,
        )

    strained_done = resume.index if resume is not None and resume.phase == "strain" else 0
    _strained_frames(config, n_strain, collector, labeller, base_info, rng, strained_done, key)
    orderings = [cells[k][1].to_dict() for k, n in enumerate(per_temperature) if n]
    return _finish(config, info, labeller, collector, time.perf_counter() - start_time, orderings=orderings)


def _fingerprint(config: GenerateConfig) -> str:
    """The settings that decide the frames (not where they go or how fast they are made)."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("device", "threads", "output")}
    return fingerprint(_jsonable(settings))


def _resumable(config: GenerateConfig, output: Path) -> tuple[RunState | None, list[Atoms]]:
    """The state and frames of a killed run with these settings; nothing if there is no partial file."""
    partial = FrameWriter.partial_path(output)
    if not partial.exists():
        return None, []
    state = RunState.load(state_path(partial))
    if state is None or state.fingerprint != _fingerprint(config):
        why = "no resume state" if state is None else "it was made with other settings"
        raise GenerationError(
            f"{partial}: frames of an earlier run that cannot be continued ({why}); rerun with the "
            "settings it was started with, keep its MD frames with --finish-partial, or delete it"
        )
    kept = read_complete_frames(partial, state.frames)
    if len(kept) != state.frames:
        raise GenerationError(
            f"{partial}: holds {len(kept)} complete frames but its state says {state.frames}; the file "
            "was changed by hand: keep its MD frames with --finish-partial, or delete it"
        )
    return state, kept


def finish_partial(config: GenerateConfig, on_progress: ProgressCallback | None = None) -> GenerateResult:
    """Finish a generation that was stopped during its MD phase: keep the MD frames of its
    ``.partial`` file and add strained frames from them in the configured proportion."""
    config.validate()
    set_threads(config.threads)
    first_cell = config.cell(config.seed * 1000)
    info = structure_info(*first_cell)
    output = config.output_path()
    partial = FrameWriter.partial_path(output)
    if not partial.exists():
        raise GenerationError(f"{partial}: no partial file to finish; run data generate first")
    from ase.io import read

    frames = [f for f in read(partial, ":", format="extxyz") if f.info.get("sampling") == "md"]
    if not frames:
        raise GenerationError(f"{partial}: no MD frames to keep")
    labeller = make_labeller(config.labeller, device=config.device)
    if frames[0].info.get("material") != info["material"] or frames[0].info.get("labeller") != labeller.name:
        raise GenerationError(
            f"{partial}: frames are {frames[0].info.get('material')}/{frames[0].info.get('labeller')}, "
            f"the command asked for {info['material']}/{labeller.name}; "
            "pass the options the run was started with"
        )
    start_time = time.perf_counter()
    n_strain = round(len(frames) * config.strain_fraction / (1.0 - config.strain_fraction))
    collector = _Collector(output, len(frames) + n_strain, on_progress)  # unlinks the partial file
    for frame in frames:
        collector.emit_md(frame, float(frame.info["temperature_K"]))
    rng = np.random.default_rng(config.seed + 7919)  # not the MD's stream, which is gone
    _strained_frames(config, n_strain, collector, labeller, provenance(info, labeller, config.seed), rng)
    temperatures = sorted({float(f.info["temperature_K"]) for f in frames})
    planned_md = config.frames - round(config.frames * config.strain_fraction)
    note = (
        f"stopped during MD after {len(frames)} of {planned_md} "
        f"MD frames (temperatures reached: {', '.join(f'{t:.0f}' for t in temperatures)} K); "
        f"finished from its partial file with {n_strain} strained frames"
    )
    orderings = [first_cell[1].to_dict()]
    return _finish(config, info, labeller, collector, time.perf_counter() - start_time, note, orderings)


def _strained_frames(
    config: GenerateConfig,
    n_strain: int,
    collector: _Collector,
    labeller: Labeller,
    base_info: dict[str, Any],
    rng: np.random.Generator,
    done: int = 0,
    key: str | None = None,
) -> None:
    """Strained frames ``done`` … ``n_strain`` − 1; with ``key``, the resume state after each."""
    if n_strain and not collector.kept:
        raise GenerationError(
            "strained frames need MD frames to start from; lower strain_fraction or add frames"
        )
    for k in range(done, n_strain):
        source, temperature = collector.kept[int(rng.integers(len(collector.kept)))]
        deformation, description = _strain_matrix(config, rng, k)
        strained = Atoms(
            source.get_chemical_symbols(), positions=source.get_positions(), cell=source.cell, pbc=True
        )
        strained.set_cell(strained.cell.array @ deformation.T, scale_atoms=True)
        strained.positions += rng.normal(0.0, config.rattle, strained.positions.shape)
        check_not_collapsed(strained, f"strained frame {description}")
        info = {
            **base_info,
            "sampling": "strain",
            "temperature_K": float(temperature),
            "md_step": int(source.info["md_step"]),
            "ordering_seed": int(source.info["ordering_seed"]),
            "strain": description,
        }
        collector.emit(label_frame(strained, labeller, info), "strain")
        if key is not None:
            state = RunState.capture(key, collector.writer.count, "strain", k + 1, rng)
            state.save(state_path(collector.writer.partial))


def _finish(
    config: GenerateConfig,
    info: dict[str, str],
    labeller: Labeller,
    collector: _Collector,
    wall: float,
    note: str | None = None,
    orderings: list[dict[str, Any]] | None = None,
) -> GenerateResult:
    output = config.output_path()
    collector.writer.finish()
    stress = np.array(collector.stresses)
    summary = {
        "file": output.name,
        "frames": collector.writer.count,
        "atoms_per_frame": len(collector.kept[0][0]) if collector.kept else None,
        "counts": collector.counts,
        **info,
        "labeller": labeller.name,
        "labeller_version": labeller.version,
        "superionic_version": superionic.__version__,
        "temperatures_K": list(config.temperatures),
        "wall_time_s": round(wall, 1),
        **({"note": note} if note else {}),
        "energy_per_atom_eV": {
            "min": float(np.min(collector.energies)),
            "max": float(np.max(collector.energies)),
        },
        "force_component_abs_max_eV_per_A": {
            "min": float(np.min(collector.forces_max)),
            "max": float(np.max(collector.forces_max)),
        },
        "stress_eV_per_A3": {"min": float(stress.min()), "max": float(stress.max())},
        "units": {
            "energy": "eV",
            "forces": "eV/Å",
            "stress": "eV/Å³ (ASE convention, Voigt xx yy zz yz xz xy)",
        },
        "config": _jsonable(asdict(config)),
        "orderings": orderings or [],
    }
    summary_json = summary_path(output)
    summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    log.info("%s: wrote %d frames to %s in %.0f s", info["material"], collector.writer.count, output, wall)
    return GenerateResult(output=output, summary_json=summary_json, summary=summary)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
