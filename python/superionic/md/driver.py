"""`superionic md`: production MD through LAMMPS for one or several temperatures, resumable.

Each temperature runs in its own directory with lammps_inputs/nvt.in. A run that crashed or was
killed resumes from its newest restart file; the trajectory is appended from that step on, so the
final file has no gap and no duplicate step. Structures are checked against the model's species
before LAMMPS starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from superionic import plugin_dir
from superionic.data.materials import build_cell
from superionic.data.ordering import perpendicular_widths
from superionic.export import read_metadata
from superionic.md import ensemble
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsError, LammpsRun, run_lammps

SOURCE_TEMPLATES = Path(__file__).resolve().parents[3] / "lammps_inputs"
RESTART_RE = re.compile(r"restart\.(\d+)\.lammps$")


class MdError(ValueError):
    """An MD request that cannot run; the message names what to change."""


def template(name: str) -> Path:
    local = SOURCE_TEMPLATES / name
    return local if local.exists() else Path(plugin_dir()) / "lammps_inputs" / name


@dataclass
class MdConfig:
    structure: str
    model: str
    temperatures: list[float]
    steps: int = 50_000  # total, including equilibration
    eq_steps: int = 5_000
    timestep_ps: float = 0.002
    dump_every: int = 100
    restart_every: int = 5_000
    nprocs: int = 1
    parallel: int = 1  # temperatures run at the same time, each on nprocs ranks
    seed: int = 4928459
    group: str = "all"
    charges: list[float] | None = None  # per element of the model's order in the data file
    output: str = "runs/md"
    overwrite: bool = False
    # How a structure (CIF with partial occupancies included) becomes the simulated cell.
    supercell: tuple[int, int, int] | None = None
    min_width: float | None = None  # Å
    ordering_seed: int = 0
    draws: int = 10
    oxidation_states: dict[str, int] | None = None
    min_distance: float | None = None
    # A cell narrower than twice the model's receptive field sees one neighbour through several
    # images: allowed only when asked (e.g. to match a labeller's reference run on the same cell).
    allow_small_cell: bool = False
    # A committee: more members beside ``model`` (member 0, which drives the dynamics), or ``model``
    # is an exported committee.json / its directory. Every devi_every steps all members are evaluated.
    committee: list[str] | None = None
    devi_every: int = 10
    devi_threshold: float | None = None  # eV/Å: the "uncertain" line (fraction above it; devi_warn)
    devi_stop: float | None = None  # eV/Å: stop the run cleanly above it
    # pair_style superionic's backend: auto (the native kernel for sprinters), native, or torch
    # (TorchScript/AOTInductor: the path before the kernel, kept to compare and to cross-check).
    backend: str = "auto"
    # The physical-sanity guard (docs/guard.md): every guard_every steps (0: off) each pair against
    # its floor from the model file; at a breach warn and go on, or stop cleanly (restart written).
    guard_every: int = 10
    guard_action: str = "warn"
    # Threads per MPI rank for the pair style (None: the machine's cores shared out, as always).
    threads: int | None = None
    # A finished run asked for more steps continues from its final restart file, appending to its
    # trajectory, and one that has the steps asked for is reused as it is (the precision planner
    # lengthens runs this way, and resumes after a kill); without it a finished run is refused.
    extend: bool = False
    # Steps of particular temperatures (total, from 0), where they differ from ``steps``.
    steps_by_temperature: dict[float, int] | None = None

    def steps_for(self, temperature: float) -> int:
        return int((self.steps_by_temperature or {}).get(temperature, self.steps))


@dataclass
class TemperatureRun:
    temperature_K: float
    directory: str
    trajectory: str
    steps: int
    resumed_from_step: int | None
    wall_s: float
    atom_steps_per_s: float
    ns_per_day: float
    committee: dict | None = None  # deviation statistics of a committee run (None: one model)
    guard: dict | None = None  # what the pair style's guard saw (None: the model has no floors)


@dataclass
class MdSummary:
    structure: str
    model: str
    atoms: int
    ranks: int
    timestep_ps: float
    runs: list[TemperatureRun] = field(default_factory=list)
    cell_widths_A: list[float] = field(default_factory=list)
    ordering: dict | None = None
    committee: list[str] | None = None  # member files, member 0 first (None: one model)

    def to_dict(self) -> dict:
        """As JSON; a one-model run's summary has no committee keys (the layout it always had)."""
        body = asdict(self)
        if body["committee"] is None:
            del body["committee"]
        for run in body["runs"]:
            if run["committee"] is None:
                del run["committee"]
            if run["guard"] is None:
                del run["guard"]
        return body


def newest_restart(directory: Path) -> tuple[Path, int] | None:
    found = []
    for path in directory.glob("restart.*.lammps"):
        match = RESTART_RE.search(path.name)
        if match and path.stat().st_size > 0:
            found.append((int(match.group(1)), path))
    if not found:
        return None
    step, path = max(found)
    return path, step


def _elements(
    structure_species: set[str], model_species: Sequence[str], source: str, model: str
) -> list[str]:
    unknown = sorted(structure_species - set(model_species))
    if unknown:
        raise MdError(
            f"{source}: element(s) {', '.join(unknown)} not in model {model} "
            f"(species {', '.join(model_species)}); use a model trained on them"
        )
    # One LAMMPS type per element present, in the model's order.
    return [s for s in model_species if s in structure_species]


@dataclass(frozen=True)
class DeviProgress:
    """What the progress line shows of a committee run while it proceeds."""

    step: int
    latest_max_devi_f: float  # eV/Å
    fraction_above_threshold: float | None
    deviation_steps: int


def _members(config: MdConfig) -> list[Path]:
    """Every model file, member 0 first: one file for a single model, K >= 2 for a committee."""
    from superionic.md.committee import check_members, read_committee

    model = Path(config.model)
    members = read_committee(model) if model.is_dir() or model.suffix == ".json" else [model.resolve()]
    members += [Path(m).resolve() for m in config.committee or []]
    seen: set[Path] = set()
    for member in members:
        if member in seen:
            raise MdError(f"committee member {member} is given twice; give each model file once")
        seen.add(member)
    if len(members) > 1:
        check_members(members)
    return members


def _check_committee(config: MdConfig, members: Sequence[Path]) -> None:
    if len(members) < 2:
        if config.devi_threshold is not None or config.devi_stop is not None:
            raise MdError(
                "--devi-threshold and --devi-stop need a committee: give an exported committee.json as the "
                "model, or add members with --committee M1 M2 ..."
            )
        return
    if config.devi_every < 1:
        raise MdError(
            f"--devi-every {config.devi_every}: must be an integer >= 1 (steps); e.g. --devi-every 10"
        )
    for name, value in (("--devi-threshold", config.devi_threshold), ("--devi-stop", config.devi_stop)):
        if value is not None and not value > 0:
            raise MdError(f"{name} {value:g}: must be a force deviation > 0 in eV/Å; e.g. {name} 0.3")
    if config.dump_every % config.devi_every:
        raise MdError(
            f"--dump-every {config.dump_every} is not a multiple of --devi-every {config.devi_every}: "
            "trajectory frames would have no deviation; make --dump-every a multiple of --devi-every"
        )


def run_md(
    config: MdConfig,
    on_step: Callable[[float, int, int], None] | None = None,
    on_devi: Callable[[float, DeviProgress], None] | None = None,
) -> MdSummary:
    """Run every temperature; ``on_devi`` sees a committee run's newest deviation as it is written."""
    structure_path = Path(config.structure)
    atoms, ordering = build_cell(
        config.structure,
        seed=config.ordering_seed,
        supercell=config.supercell,
        min_width=config.min_width,
        draws=config.draws,
        oxidation_states=config.oxidation_states,
        min_distance=config.min_distance,
    )
    members = _members(config)
    model_path = members[0]
    meta = read_metadata(model_path)
    elements = _elements(
        set(atoms.get_chemical_symbols()), meta.species, str(structure_path), str(model_path)
    )
    widths = perpendicular_widths(atoms.cell.array)
    needed = 2.0 * float(meta.receptive_field)
    if widths.min() < needed and not config.allow_small_cell:
        raise MdError(
            f"{structure_path}: the cell is {widths.min():.2f} Å wide, but the model's receptive field "
            f"{meta.receptive_field:g} Å needs >= {needed:g} Å (minimum image); use --min-width {needed:g} "
            "or a --supercell, or --allow-small-cell to run this cell anyway"
        )
    if config.charges is not None and len(config.charges) != len(elements):
        raise MdError(
            f"charges: give one per element present ({', '.join(elements)}), got {len(config.charges)}"
        )
    for temperature in config.temperatures:
        if config.steps_for(temperature) <= config.eq_steps:
            raise MdError(
                f"steps ({config.steps_for(temperature)}) must exceed eq_steps ({config.eq_steps}): steps "
                "counts from 0"
            )
    _check_committee(config, members)
    if config.guard_every < 0:
        raise MdError(f"--guard-every {config.guard_every}: must be >= 0 (steps between checks; 0 = off)")
    if config.guard_action not in ("warn", "stop"):
        raise MdError(f"--guard {config.guard_action}: must be warn or stop (or --guard-every 0 for off)")
    has_floors = meta.pair_floor_A is not None
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    summary = MdSummary(
        str(structure_path),
        str(model_path),
        len(atoms),
        config.nprocs,
        config.timestep_ps,
        cell_widths_A=[round(float(w), 4) for w in widths],
        ordering=ordering.to_dict(),
        committee=[str(m) for m in members] if len(members) > 1 else None,
    )
    if config.parallel < 1:
        raise MdError(f"parallel = {config.parallel}: run at least one temperature at a time")
    if config.threads is not None and config.threads < 1:
        raise MdError(f"--threads {config.threads}: must be >= 1 (threads per MPI rank)")
    if ensemble.active():
        return _run_ensemble(config, summary, atoms, elements, members, has_floors)
    # Runs side by side share the cores: give each rank its share of torch threads so that
    # parallel × nprocs × threads never exceeds the machine (0 = the pair style's own choice).
    threads = (
        0 if config.parallel == 1 else max(1, (os.cpu_count() or 1) // (config.parallel * config.nprocs))
    )
    if config.threads is not None:
        threads = config.threads
    lock = threading.Lock()

    def one(temperature: float) -> TemperatureRun:
        run = _run_one(config, atoms, elements, members, temperature, on_step, threads, on_devi, has_floors)
        with lock:
            summary.runs.append(run)
            summary.runs.sort(key=lambda r: config.temperatures.index(r.temperature_K))
            (output / "md_summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
        return run

    with ThreadPoolExecutor(max_workers=config.parallel) as pool:
        for future in [pool.submit(one, t) for t in config.temperatures]:
            future.result()  # re-raises the first failure
    return summary


def _run_ensemble(config: MdConfig, summary: MdSummary, atoms, elements, members, has_floors) -> MdSummary:
    """Every temperature under one mpirun: each group of ranks runs its share (md.ensemble), world
    rank 0 gathers the runs, writes md_summary.json and returns the summary; every rank returns it,
    so the command prints on rank 0 alone. A failure anywhere is raised on every rank."""
    if config.nprocs != 1 or config.parallel != 1:
        raise MdError(
            "under mpirun the ranks are shared out over the temperatures; drop --np and --parallel "
            f"(got --np {config.nprocs}, --parallel {config.parallel})"
        )
    world, group, mine, threads = ensemble.split(list(config.temperatures))
    if config.threads is not None:
        threads = config.threads
    runs: list[TemperatureRun] = []
    failure = None
    if group.root:
        try:
            for temperature in mine:
                runs.append(
                    _run_one(
                        config,
                        atoms,
                        elements,
                        members,
                        temperature,
                        None,
                        threads,
                        None,
                        has_floors,
                        group.run,
                    )
                )
        except (MdError, LammpsError) as err:
            failure = str(err)
        finally:
            group.close()
    else:
        group.serve()
    gathered = world.allgather((runs, failure, group.comm.Get_size() if group.root else 0))
    errors = [f for _, f, _ in gathered if f]
    if errors:
        raise MdError(errors[0])
    everything = [run for r, _, _ in gathered for run in r]
    summary.runs = sorted(everything, key=lambda r: config.temperatures.index(r.temperature_K))
    summary.ranks = max(n for _, _, n in gathered)
    if world.Get_rank() == 0:
        (Path(config.output) / "md_summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    return summary


DEVI_FILE = "model_devi.out"
DEVI_CSV = "model_devi.csv"
STOPPED_FILE = "stopped.json"
STOP_RE = re.compile(r"max force deviation (\S+) eV/A > devi_stop (\S+) at step (\d+); stopping the run")


def _run_one(
    config,
    atoms,
    elements,
    members,
    temperature,
    on_step,
    threads: int = 0,
    on_devi=None,
    has_floors=False,
    execute: Callable[..., LammpsRun] | None = None,
) -> TemperatureRun:
    """One temperature: the files, the LAMMPS run (``execute``: by default `lmp` as a subprocess,
    under mpirun with --np; md.ensemble passes its in-process group) and what it printed."""
    directory = Path(config.output) / f"T{temperature:g}K"
    directory.mkdir(parents=True, exist_ok=True)
    trajectory = directory / "traj.h5"
    model_path = members[0]
    committee = len(members) > 1
    restart = newest_restart(directory)
    stopped = directory / STOPPED_FILE
    if stopped.exists() and not config.overwrite:
        # A stopped run still writes restart.final: without this it would pass for a finished one.
        info = json.loads(stopped.read_text())
        if info.get("reason") == "guard":
            raise MdError(
                f"{directory} was stopped by the guard at step {info['step']} ({info['detail']}): the model "
                "left its training data there; add data there and retrain, or --overwrite to run it again"
            )
        raise MdError(
            f"{directory} was stopped by devi_stop at step {info['step']} (max force deviation "
            f"{info['max_devi_f']:g} eV/Å > {info['devi_stop']:g}): the model is uncertain there; add data "
            "where the committee disagrees and retrain (superionic learn), or --overwrite to run it again"
        )
    final = directory / "restart.final.lammps"
    if final.exists() and not config.overwrite:
        done = (
            json.loads((directory / "run.json").read_text()).get("steps")
            if (directory / "run.json").exists()
            else None
        )
        if config.extend and done is not None and config.steps_for(temperature) <= int(done):
            return _finished_run(directory, temperature, int(done))
        if not (config.extend and done is not None and config.steps_for(temperature) > int(done)):
            raise MdError(
                f"{directory} holds a finished run; pass --overwrite to run it again, --extend with more "
                "--steps to continue it, or change --output"
            )
        # The final restart becomes the restart of its step, from which the longer run continues.
        final.replace(directory / f"restart.{int(done)}.lammps")
        restart = newest_restart(directory)
    if config.overwrite:
        for stale in [
            *directory.glob("restart.*.lammps"),
            trajectory,
            directory / DEVI_FILE,
            directory / DEVI_CSV,
            stopped,
        ]:
            stale.unlink(missing_ok=True)
        restart = None
    elif restart is None and trajectory.exists():
        raise MdError(f"{trajectory} exists but there is no restart to resume from; pass --overwrite")
    if committee and restart is None:
        (directory / DEVI_FILE).unlink(missing_ok=True)  # a fresh run starts a fresh series
    previous_guard = None
    if restart is not None and (directory / "run.json").is_file():
        previous_guard = json.loads((directory / "run.json").read_text()).get("guard")
    write_lammps_data(directory / "structure.data", atoms, elements)
    # What analysis needs and a trajectory file cannot say: the thermostat's temperature.
    info = {
        "temperature_K": temperature,
        "timestep_ps": config.timestep_ps,
        "eq_steps": config.eq_steps,
        "steps": config.steps_for(temperature),
        "dump_every": config.dump_every,
        "elements": elements,
        "model": str(model_path),
    }
    if committee:
        info["committee"] = {"members": [str(m) for m in members], "devi_every": config.devi_every}
    (directory / "run.json").write_text(json.dumps(info, indent=2))
    variables = {
        "model": " ".join(str(m) for m in members),
        "data": "structure.data",
        "elements": " ".join(elements),
        "T": f"{temperature:g}",
        "eq_steps": str(config.eq_steps),
        "steps": str(config.steps_for(temperature)),
        "dt": str(config.timestep_ps),
        "seed": str(config.seed),
        "dump_every": str(config.dump_every),
        "restart_every": str(config.restart_every),
        "group": config.group,
        "traj": trajectory.name,
        "resume": "1" if restart else "0",
        "restart_file": restart[0].name if restart else "none",
        "threads": str(threads),
    }
    fix_args = []  # appended to the fix superionic/h5md line (nvt.in's charge_args)
    if config.charges is not None:
        fix_args.append("charges " + " ".join(f"{q:g}" for q in config.charges))
    if committee:
        # Frames at deviation steps are stored exactly (float64, not the default float32), so a
        # frame picked for labelling is the configuration whose deviation was measured, and the
        # deviation can be recomputed from the file to round-off.
        fix_args.append("positions double")
    if fix_args:
        variables["charge_args"] = " ".join(fix_args)
    follower = None
    pair_args = [] if config.backend == "auto" else [f"backend {config.backend}"]
    if committee:
        pair_args.append(f"committee {len(members)} devi_every {config.devi_every} devi_file {DEVI_FILE}")
        if config.devi_threshold is not None:
            pair_args.append(f"devi_warn {config.devi_threshold:g}")
        if config.devi_stop is not None:
            pair_args.append(f"devi_stop {config.devi_stop:g}")
        variables["committee"] = "1"
        from superionic.md.committee import DeviFollower

        follower = DeviFollower(directory / DEVI_FILE, config.devi_threshold)
    if config.guard_every == 0:
        pair_args.append("guard 0")
    elif has_floors:
        pair_args.append(f"guard {config.guard_every} guard_action {config.guard_action}")
    if pair_args:
        variables["pair_args"] = " ".join(pair_args)
    # A thermo row: step time temp pe ke etotal press vol, and with a committee c_devi[1] c_devi[2].
    thermo_words = 10 if committee else 8

    def follow(line: str) -> None:
        words = line.split()
        if len(words) != thermo_words or not words[0].isdigit():
            return
        if on_step:
            on_step(temperature, int(words[0]), config.steps_for(temperature))
        if follower is not None and on_devi:
            follower.update()
            if follower.latest is not None:
                on_devi(
                    temperature,
                    DeviProgress(
                        follower.latest_step, follower.latest, follower.fraction_above, len(follower.maxima)
                    ),
                )

    start = time.perf_counter()
    # LAMMPS reads its input lazily, line by line as it runs: a template edited (or a package
    # upgraded) mid-run would be read from a shifted offset. Each run reads its own copy, which
    # also records the exact input used.
    script = directory / "in.nvt.lammps"
    shutil.copyfile(template("nvt.in"), script)
    if execute is None:
        run = run_lammps(script.name, directory, nprocs=config.nprocs, variables=variables, on_line=follow)
    else:
        run = execute(script.name, directory, variables, follow)
        if run.returncode != 0 or run.error_line:
            (directory / "lammps.out").write_text(run.output)
            raise LammpsError(run.error_line or f"LAMMPS failed in {directory}")
    wall = time.perf_counter() - start
    (directory / "lammps.out").write_text(run.output)
    loops = [
        (float(m.group(1)), int(m.group(2)))
        for m in re.finditer(r"Loop time of (\S+) on \d+ procs for (\d+) steps", run.output)
    ]
    loop_s = sum(t for t, _ in loops) or wall
    steps_run = sum(n for _, n in loops)
    block = _committee_block(config, members, directory, run.output) if committee else None
    if block is not None:
        info["committee"] = block
    guard = guard_block(run.output, previous_guard) if has_floors and config.guard_every else None
    if guard is not None:
        info["guard"] = guard
        if guard["stopped_at_step"] is not None:
            (directory / STOPPED_FILE).write_text(
                json.dumps(
                    {"reason": "guard", "step": guard["stopped_at_step"], "detail": guard["stop_detail"]}
                )
            )
    if block is not None or guard is not None:
        (directory / "run.json").write_text(json.dumps(info, indent=2))
    return TemperatureRun(
        temperature_K=temperature,
        directory=str(directory),
        trajectory=str(trajectory),
        steps=config.steps_for(temperature),
        resumed_from_step=restart[1] if restart else None,
        wall_s=wall,
        atom_steps_per_s=len(atoms) * steps_run / loop_s if steps_run else 0.0,
        ns_per_day=steps_run * config.timestep_ps * 1e-3 / (loop_s / 86400.0) if steps_run else 0.0,
        committee=block,
        guard=guard,
    )


def _finished_run(directory: Path, temperature: float, steps: int) -> TemperatureRun:
    """A finished run reused as it is (``extend``): what its run.json recorded, no new timing."""
    info = json.loads((directory / "run.json").read_text())
    return TemperatureRun(
        temperature_K=temperature,
        directory=str(directory),
        trajectory=str(directory / "traj.h5"),
        steps=steps,
        resumed_from_step=steps,
        wall_s=0.0,
        atom_steps_per_s=0.0,
        ns_per_day=0.0,
        committee=info.get("committee"),
        guard=info.get("guard"),
    )


GUARD_SUMMARY_RE = re.compile(
    r"guard summary: (\d+) checks every (\d+) steps, (\d+) with a pair below its floor"
    r"(?:, the first at step (\d+))?"
)
GUARD_CLOSEST_RE = re.compile(r"guard closest \(pair, closest A, floor A\):(.*)")
# A breach as the pair style describes it: "<pair> atoms i and j are d A apart at step s, below ...".
GUARD_EVENT_RE = re.compile(r"pair superionic: guard( stop)?: ([^;]* at step (\d+), below the floor [^;]*)")


def guard_block(output: str, previous: dict | None = None) -> dict:
    """What the pair style's guard printed (docs/guard.md), added to the block of the run this one
    resumed: checks, breaches, the first breach, the closest approach of each pair, a stop."""
    block = previous or {
        "every": None,
        "checks": 0,
        "breached_checks": 0,
        "first_breach_step": None,
        "first_breach": None,
        "closest_A": {},
        "floor_A": {},
    }
    block = {**block, "closest_A": dict(block["closest_A"]), "floor_A": dict(block["floor_A"])}
    for match in GUARD_SUMMARY_RE.finditer(output):
        block["checks"] += int(match.group(1))
        block["every"] = int(match.group(2))
        block["breached_checks"] += int(match.group(3))
    events = list(GUARD_EVENT_RE.finditer(output))
    if events and block["first_breach_step"] is None:
        block["first_breach_step"] = int(events[0].group(3))
        block["first_breach"] = events[0].group(2)
    for match in GUARD_CLOSEST_RE.finditer(output):
        words = match.group(1).split()
        for k in range(0, len(words) - 2, 3):
            pair, value = words[k], words[k + 1]
            block["floor_A"][pair] = float(words[k + 2])
            if value != "none":
                block["closest_A"][pair] = min(block["closest_A"].get(pair, float("inf")), float(value))
    stop = next((e for e in events if e.group(1)), None)
    block["stopped_at_step"] = int(stop.group(3)) if stop else None
    block["stop_detail"] = stop.group(2) if stop else None
    return block


def _committee_block(config: MdConfig, members: Sequence[Path], directory: Path, output: str) -> dict:
    """The deviation series as CSV, its statistics, and whether devi_stop ended the run."""
    from superionic.md.committee import read_devi_file, summary

    series = read_devi_file(directory / DEVI_FILE)
    series.write_csv(directory / DEVI_CSV)
    stop = STOP_RE.search(output)
    stopped_at = int(stop.group(3)) if stop else None
    if stop:
        (directory / STOPPED_FILE).write_text(
            json.dumps(
                {"step": stopped_at, "max_devi_f": float(stop.group(1)), "devi_stop": float(stop.group(2))}
            )
        )
    return {
        "members": [str(m) for m in members],
        "devi_every": config.devi_every,
        "threshold": config.devi_threshold,
        "devi_stop": config.devi_stop,
        "series": DEVI_CSV,
        **summary(series, config.devi_threshold, production_from=config.eq_steps),
        "stopped_at_step": stopped_at,
    }
