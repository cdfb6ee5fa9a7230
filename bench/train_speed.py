"""Speed of the whole loop: training the sprinter, running it in LAMMPS, and the labeller it replaces.

Prints one table and writes the same figures as JSON. The rows are

- training throughput of the sprinter in frames/s (forward, force loss, backward, optimiser step),
  measured twice: the bare training step (the body of ``Trainer.run``'s inner loop, timed directly)
  and ``Trainer.run`` end to end (adds per-epoch validation, checkpoints and logs), on the LGPS
  reference data if it has been generated, else on frames labelled by the analytic reference;
- MD speed of that trained sprinter through ``pair_style superionic`` in atom-steps/s on an ordered
  LGPS supercell, as 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1 thread (.pt always,
  .pt2 with ``--pt2``). NVE on the model's own forces; a model trained for a few epochs usually
  collapses the cell, and then the rows run with the model's forces replaced by a harmonic tether
  (marked *; the model is still evaluated every step, and its cost does not depend on the weights);
- MD speed of the labeller (SevenNet-0, optionally CHGNet) in ASE on the same cell, 2 threads.

The headline under the table is sprinter / labeller in atom-steps/s: how much more MD the distilled
model buys per CPU second than the model that labelled its data. Nothing uses more than two cores.

    .venv/bin/python bench/train_speed.py [--steps 200] [--epochs 3] [--pt2] [--chgnet]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.units import fs

from superionic import __version__
from superionic.calculator import evaluate
from superionic.data.dataset import Batch, collate
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsError, run_lammps
from superionic.models import ReferencePotential
from superionic.models.prediction import predict
from superionic.train.checkpoint import model_from_checkpoint
from superionic.train.config import config_from_dict
from superionic.train.trainer import Trainer, epoch_order, learning_rate, loss_terms

REPO = Path(__file__).resolve().parents[1]
LGPS_DATA = REPO / "data" / "LGPS" / "sevennet.extxyz.gz"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "train_speed.json"
# Pinned rather than left to torch's default (all cores) so that rows compare like with like and a
# larger machine does not silently change them.
TRAIN_THREADS = 2
LABELLER_THREADS = 2
# (MPI ranks, torch threads per rank). 1x2 and 2x1 use the two cores; 1x1 is the per-core figure
# and, next to 1x2, shows what intra-op threading buys.
LAMMPS_LAYOUTS = ((1, 1), (1, 2), (2, 1))
MD_WARMUP_STEPS = 10
LABELLER_WARMUP_STEPS = 2
MIN_MD_ATOMS = 200
TEMPERATURE_K = 600.0
SEED = 0
TETHER_EV_PER_A2 = 2.0  # kT/k = (0.16 Å)² at 600 K
TETHER_MARK = "*"

# LAMMPS prints one of these per `run`; the last one belongs to the timed run.
LOOP_RE = re.compile(r"^Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms", re.MULTILINE)
# The plugin reports the thread count it actually set; the table shows that, not what we asked for.
THREADS_RE = re.compile(r"(\d+) torch threads per rank")


@dataclass(frozen=True)
class Row:
    name: str
    unit: str  # "frames/s" or "atom-steps/s"
    ranks: int
    threads: int  # torch threads per rank
    atoms: int  # atoms per training frame (mean) or in the MD cell
    count: int  # frames trained on, or timed MD steps
    wall_s: float
    rate: float


# --- inputs ------------------------------------------------------------------------------------


def build_lgps() -> Callable[..., Atoms] | None:
    """``superionic.data.materials.build_structure`` if this checkout has it, else None."""
    try:
        from superionic.data.materials import build_structure
    except ImportError:
        return None
    return build_structure


def reference_frames(n: int) -> tuple[list[Atoms], str]:
    """Frames labelled by the analytic reference potential (as tests/unit/test_training.py does).

    The fallback when the LGPS reference data has not been generated: exact forces and stress, cheap
    to make. The structures are ordered LGPS cells (a different Li/Ge/P ordering per frame, rattled
    by 0.1 Å) so the frames have the size and neighbour density of the real data and of the MD
    cell; the test's jittered 3x3x3 lattices where the materials module is missing.
    """
    teacher = ReferencePotential(["Li", "Ge", "P", "S"])
    build = build_lgps()
    frames = []
    for seed in range(n):
        if build is not None:
            atoms = build("LGPS", seed=seed)
            atoms.rattle(0.1, seed=seed)
        else:
            atoms = jittered_lattice((3, 3, 3), jitter=0.15, seed=seed)
        result = evaluate(teacher, atoms, teacher.cutoff, teacher.species_names)
        atoms.calc = SinglePointCalculator(
            atoms, energy=result.energy, forces=result.forces, stress=result.stress_ase(atoms.cell.volume)
        )
        frames.append(atoms)
    kind = "rattled ordered LGPS cells" if build is not None else "jittered 3x3x3 lattices"
    return frames, kind


def training_data(workdir: Path, n_frames: int) -> tuple[Path, str]:
    """A small labelled file for the trainer and a description of where it came from."""
    path = workdir / "train.extxyz"
    if LGPS_DATA.exists():
        # Only the first frames: reading (and building neighbour lists for) the whole file would
        # dominate a benchmark whose point is the per-frame cost.
        frames = read(LGPS_DATA, index=f":{n_frames}")
        source = f"{LGPS_DATA.relative_to(REPO)} (first {len(frames)} frames)"
    else:
        frames, kind = reference_frames(n_frames)
        source = f"reference potential on {kind} ({n_frames} frames; {LGPS_DATA.name} absent)"
    write(path, frames)
    return path, source


def md_cell() -> tuple[Atoms, str]:
    """The ordered LGPS cell replicated to at least MIN_MD_ATOMS atoms (a jittered lattice if absent)."""
    build_structure = build_lgps()
    if build_structure is None:
        atoms = jittered_lattice((6, 6, 6), seed=SEED)
        return atoms, "jittered 6x6x6 lattice (superionic.data.materials unavailable)"
    # Grow a, then b, then c: the (2, 2, 1) LGPS supercell (200 atoms) is close to cubic.
    per_cell = len(build_structure("LGPS", seed=SEED))
    reps = [1, 1, 1]
    axis = 0
    while per_cell * int(np.prod(reps)) < MIN_MD_ATOMS:
        reps[axis] += 1
        axis = (axis + 1) % 3
    supercell = (reps[0], reps[1], reps[2])
    atoms = build_structure("LGPS", seed=SEED, supercell=supercell)
    return atoms, f"LGPS {supercell[0]}x{supercell[1]}x{supercell[2]} (ordered, seed {SEED})"


# --- training ----------------------------------------------------------------------------------


def train_step(trainer: Trainer, batch: Batch, lr: float) -> float:
    # The body of Trainer.run's inner loop, without its checkpoint and progress bookkeeping: what
    # one optimiser step costs, no more.
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    loss = loss_terms(predict(trainer.model, batch, create_graph=True), batch, trainer.config)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.config.training.grad_clip)
    trainer.optimizer.step()
    trainer._update_ema()
    return float(loss.detach())


def time_train_steps(trainer: Trainer, epochs: int) -> Row:
    t = trainer.config.training
    frames = trainer.train_frames
    n = len(frames)
    steps_per_epoch = -(-n // t.batch_size)
    total = epochs * steps_per_epoch
    # One untimed step: the first backward allocates the autograd buffers and the optimiser state.
    train_step(trainer, collate(frames[: t.batch_size], trainer.dtype), t.lr)
    done = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        order = epoch_order(t.seed, epoch, n)
        for k in range(steps_per_epoch):
            chunk = [frames[i] for i in order[k * t.batch_size : (k + 1) * t.batch_size]]
            # Collation is inside the timing because Trainer.run collates every step too.
            batch = collate(chunk, trainer.dtype)
            train_step(
                trainer,
                batch,
                learning_rate(trainer.config, epoch * steps_per_epoch + k, total, steps_per_epoch),
            )
            done += len(chunk)
    wall = time.perf_counter() - start
    atoms = round(float(np.mean([f.n_atoms for f in frames])))
    return Row("sprinter train step", "frames/s", 1, torch.get_num_threads(), atoms, done, wall, done / wall)


def train(data: Path, workdir: Path, epochs: int, batch_size: int) -> tuple[list[Row], Path, dict]:
    """Train the sprinter (default architecture) and time it; returns the rows and best checkpoint."""
    torch.set_num_threads(TRAIN_THREADS)
    config = config_from_dict(
        {
            "data": {"train": [str(data)], "val_fraction": 0.25},
            # The model section is left at its defaults: the benchmark measures the sprinter as shipped.
            "training": {
                "epochs": epochs,
                "batch_size": batch_size,
                "threads": TRAIN_THREADS,
                # Only the end-of-epoch checkpoints: mid-epoch ones would be counted as step time.
                "checkpoint_every": 10**9,
                "seed": SEED,
            },
            "output": str(workdir / "run"),
        },
        "train_speed",
    )
    # Trainer.run first: its weights are what `superionic train` for this many epochs would give
    # (the model exported for MD), and it warms the process (thread pool, allocator) for the bare
    # step, which gets a Trainer of its own so it cannot touch the exported weights.
    trainer = Trainer(config, overwrite=True)
    result = trainer.run()
    n_frames = epochs * len(trainer.train_frames)
    atoms = round(float(np.mean([f.n_atoms for f in trainer.train_frames])))
    # result.wall_s covers the epoch loop (steps, per-epoch validation and checkpoints, logs), not
    # the final parity plot.
    run_row = Row(
        "sprinter Trainer.run",
        "frames/s",
        1,
        torch.get_num_threads(),
        atoms,
        n_frames,
        result.wall_s,
        n_frames / result.wall_s,
    )
    step_row = time_train_steps(Trainer(config, overwrite=True), epochs)
    info = {
        "model": asdict(config.model),
        "training": asdict(config.training),
        "train_frames": len(trainer.train_frames),
        "val_frames": len(trainer.val_frames),
        "val_force_rmse_eV_per_A": result.val_metrics.get("force_rmse_eV_per_A"),
    }
    return [step_row, run_row], Path(result.checkpoint), info


# --- LAMMPS ------------------------------------------------------------------------------------


def lammps_input(pair_lines: str, steps: int, budget_s: float, tethered: bool) -> str:
    # The warm-up run absorbs one-off costs (model load, first-call allocation and, for TorchScript,
    # the profiling executor's first passes) so that the timed run measures steady state. The timed
    # run stops early at budget_s (LAMMPS's timer timeout); the Loop line then reports the steps done.
    # Tethered: the model is still evaluated on the moving configuration every step, but its forces
    # are replaced (setforce, then spring/self in definition order) by a harmonic tether to the
    # starting sites, an Einstein crystal with ~0.15 Å thermal amplitude at 600 K. Both fixes are
    # O(N) and cheap next to the model; they keep a barely trained model from collapsing the cell.
    tether = (
        f"fix hold all setforce 0.0 0.0 0.0\nfix tether all spring/self {TETHER_EV_PER_A2}\n"
        if tethered
        else ""
    )
    return f"""units metal
atom_style atomic
read_data data.lmp
{pair_lines}
velocity all create {TEMPERATURE_K} {12345 + SEED}
fix 1 all nve
{tether}timestep 0.001
thermo 50
run {MD_WARMUP_STEPS}
timer timeout {budget_s:g} every 1
run {steps}
"""


def time_lammps(
    name: str,
    model_file: str,
    species: list[str],
    workdir: Path,
    ranks: int,
    threads: int,
    atoms: int,
    steps: int,
    budget_s: float,
    tethered: bool,
) -> Row:
    # Threads are pinned through the pair style (its default, cores / ranks per node, would follow
    # the machine and change the rows on a larger one).
    pair = f"pair_style superionic threads {threads}\npair_coeff * * {model_file} {' '.join(species)}"
    input_file = workdir / f"in.{model_file}.{ranks}x{threads}"
    input_file.write_text(lammps_input(pair, steps, budget_s, tethered))
    output = run_lammps(input_file.resolve(), workdir, nprocs=ranks).output
    loops = LOOP_RE.findall(output)
    if len(loops) != 2:
        raise RuntimeError(f"{name} on {ranks} ranks: expected 2 'Loop time' lines, got {len(loops)}")
    wall, procs, done, natoms = loops[-1]
    # A launcher that does not match LAMMPS's MPI starts N independent 1-rank jobs; the procs
    # count in the Loop line is what tells a real N-rank run from that.
    if int(procs) != ranks or int(natoms) != atoms or not 0 < int(done) <= steps:
        raise RuntimeError(
            f"{name}: timed run was {procs} procs/{done} steps/{natoms} atoms, "
            f"expected {ranks}/{steps}/{atoms}"
        )
    reported = THREADS_RE.search(output)
    used = int(reported.group(1)) if reported else threads
    wall_s = float(wall)
    label = f"{name} {TETHER_MARK}" if tethered else name
    return Row(label, "atom-steps/s", ranks, used, atoms, int(done), wall_s, atoms * int(done) / wall_s)


def collapsed(error: LammpsError) -> bool:
    """The pair style's overlap guard fired: the model, not the set-up, drove atoms together."""
    return "apart (< " in str(error)


# --- labellers in ASE ----------------------------------------------------------------------------


def sevennet() -> tuple[Calculator, str]:
    from sevenn.calculator import SevenNetCalculator  # heavy import, only when measured

    # "7net-0" is the checkpoint bundled in the sevenn wheel (no network access).
    return SevenNetCalculator("7net-0", device="cpu"), f"sevenn {importlib.metadata.version('sevenn')}"


def chgnet() -> tuple[Calculator, str]:
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    model = CHGNet.load(use_device="cpu", verbose=False)
    return CHGNetCalculator(model=model, use_device="cpu"), f"chgnet {importlib.metadata.version('chgnet')}"


def time_ase_md(
    name: str, make: Callable[[], tuple[Calculator, str]], cell: Atoms, max_steps: int, budget_s: float
) -> tuple[Row, str]:
    torch.set_num_threads(LABELLER_THREADS)
    atoms = cell.copy()
    calc, version = make()
    atoms.calc = calc
    thermalize_momenta(atoms, TEMPERATURE_K, rng=np.random.default_rng(SEED))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=1.0 * fs)
    # Warm-up: the first call builds the graph code paths and caches; the initial force call is in here too.
    dyn.run(LABELLER_WARMUP_STEPS)
    # A step at a time against a wall-clock budget: on two shared cores SevenNet-0 takes seconds per
    # step, so max_steps alone could run for minutes. Each run(1) is one step and one force call.
    done = 0
    start = time.perf_counter()
    while done < max_steps and (done == 0 or time.perf_counter() - start < budget_s):
        dyn.run(1)
        done += 1
    wall = time.perf_counter() - start
    n = len(atoms)
    return Row(name, "atom-steps/s", 1, torch.get_num_threads(), n, done, wall, n * done / wall), version


# --- output ------------------------------------------------------------------------------------


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'name':<22} {'ranks':>5} {'thr':>3} {'atoms':>6} {'frames/steps':>12} {'wall s':>8} "
        f"{'rate':>10}  unit"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.name:<22} {row.ranks:>5} {row.threads:>3} {row.atoms:>6} {row.count:>12} "
            f"{row.wall_s:>8.4g} {row.rate:>10.4g}  {row.unit}"
        )
    return "\n".join(lines)


def headline(rows: list[Row]) -> dict[str, float]:
    """sprinter-in-LAMMPS / labeller-in-ASE atom-steps/s, for every pair measured."""
    sprinters = [r for r in rows if r.name.startswith("sprinter lammps")]
    labellers = [r for r in rows if r.name.startswith("labeller")]
    return {
        f"{s.name} ({s.ranks} rank{'s' if s.ranks > 1 else ''} x {s.threads} thr) / "
        f"{lab.name.removeprefix('labeller ')}": (s.rate / lab.rate)
        for lab in labellers
        for s in sprinters
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200, help="timed LAMMPS MD steps after the warm-up")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs timed (each way)")
    parser.add_argument("--frames", type=int, default=24, help="labelled frames to train on (1/4 validation)")
    parser.add_argument("--batch-size", type=int, default=4, help="training batch size")
    parser.add_argument("--labeller-steps", type=int, default=20, help="most labeller MD steps timed")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="wall-clock cap in s on each timed MD run (LAMMPS and ASE)"
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=("passive", "active", "inherit"),
        default="passive",
        help="OpenMP waiting of torch's threads (inherit: leave OMP_WAIT_POLICY as it is)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    parser.add_argument("--pt2", action="store_true", help="add AOTInductor .pt2 rows (compile ~20-60 s)")
    parser.add_argument("--chgnet", action="store_true", help="add CHGNet as a second labeller")
    args = parser.parse_args()

    # On cores shared with other jobs, OpenMP threads that spin at every barrier wait for a sibling
    # the scheduler has parked: measured here, 2-thread runs of SevenNet and of the sprinter in LAMMPS
    # came out 5-10x slower than with passive waiting (and slower than 1 thread). The policy is read
    # when the OpenMP runtime loads, i.e. at `import torch`, so the script restarts itself with it set;
    # LAMMPS inherits it.
    if args.omp_wait_policy != "inherit" and os.environ.get("OMP_WAIT_POLICY", "").lower() != (
        args.omp_wait_policy
    ):
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
        os.execv(sys.executable, [sys.executable, *sys.argv])

    load_before = os.getloadavg()
    rows: list[Row] = []
    labeller_versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="train_speed.") as tmp:
        workdir = Path(tmp)
        data, data_source = training_data(workdir, args.frames)
        train_rows, checkpoint, train_info = train(data, workdir, args.epochs, args.batch_size)
        rows += train_rows

        cell, cell_source = md_cell()
        model, _, payload = model_from_checkpoint(checkpoint)
        species = list(model.species_names)
        write_lammps_data(workdir / "data.lmp", cell, species)
        suffixes = [".pt", ".pt2"] if args.pt2 else [".pt"]
        # Real NVE on the model's own forces first. A model trained for a few epochs usually cannot
        # hold the crystal together (atoms meet within 0.1 Å in tens of steps); the cost of a step
        # does not depend on the weights, so from then on every sprinter row runs tethered (same
        # mode for all rows, so they stay comparable) and the reason goes into the output.
        tethered = False
        md_note = "NVE on the sprinter's own forces"
        for suffix in suffixes:
            # Exported once per format and reused by every layout (the .pt2 compile is slow).
            export_model(model, workdir / f"model{suffix}", data_hash=payload["data_hash"])
            for ranks, threads in LAMMPS_LAYOUTS:
                name = f"sprinter lammps {suffix}"
                run = (
                    name,
                    f"model{suffix}",
                    species,
                    workdir,
                    ranks,
                    threads,
                    len(cell),
                    args.steps,
                    args.budget,
                )
                try:
                    rows.append(time_lammps(*run, tethered=tethered))
                except LammpsError as error:
                    if tethered or not collapsed(error):
                        raise
                    tethered = True
                    md_note = (
                        f"tethered: NVE on the model's forces failed ({error}); the model is evaluated "
                        f"every step but atoms move on setforce 0 + spring/self {TETHER_EV_PER_A2} eV/Å²"
                    )
                    rows.append(time_lammps(*run, tethered=tethered))

        labellers: list[tuple[str, Callable[[], tuple[Calculator, str]]]] = [
            ("labeller SevenNet-0", sevennet)
        ]
        if args.chgnet:
            labellers.append(("labeller CHGNet", chgnet))
        for name, make in labellers:
            row, version = time_ase_md(name, make, cell, args.labeller_steps, args.budget)
            rows.append(row)
            labeller_versions[name] = version

    ratios = headline(rows)
    print(format_table(rows))
    if tethered:
        print(
            f"{TETHER_MARK} the trained sprinter collapses the cell in NVE; its rows run tethered "
            "(model evaluated every step, forces replaced by an Einstein-crystal tether)"
        )
    print()
    for label, ratio in ratios.items():
        print(f"speed-up {label}: {ratio:.4g}x")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Enough context to compare runs from different machines or versions later; the load average
    # says whether someone else was using the cores at the time.
    result = {
        "benchmark": "train_speed",
        "train_timing": (
            "'sprinter train step': Trainer.run's inner-loop body (collate, forward with forces, "
            "loss_terms, backward, clip, AdamW step, EMA) timed directly after one untimed step; "
            "'sprinter Trainer.run': Trainer.run wall_s (adds per-epoch validation, checkpoints, logs)"
        ),
        "training_data": data_source,
        **train_info,
        "md_cell": cell_source,
        "md_dynamics": md_note,
        "md_atoms": len(cell),
        "md_species_order": species,
        "md_warmup_steps": MD_WARMUP_STEPS,
        "md_temperature_K": TEMPERATURE_K,
        "labeller_warmup_steps": LABELLER_WARMUP_STEPS,
        "labeller_versions": labeller_versions,
        "superionic_version": __version__,
        "torch_version": torch.__version__,
        "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: runtime default)"),
        "md_budget_s": args.budget,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "machine": platform.machine(),
        "rows": [asdict(row) for row in rows],
        "speedup_sprinter_over_labeller": ratios,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
