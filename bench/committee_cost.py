"""Cost of the committee force deviation inside LAMMPS: atom-steps/s of `pair_style superionic` with
one model (K = 1) and with a committee of K = 4, the deviation every step and every 10 steps.

The members are sprinters of the trainer's default size (cutoff 5 A, l_max 4, hidden 32 32) on an
LGPS supercell, one rank, one thread, the native kernel: the configuration `superionic md` runs.
Members differ only in their seed; their cost does not depend on their weights. Each row is the
median of --repeats timed runs after a warm-up run in the same process, so the model load and the
first-call allocations stay out of the figure. Rates are given per wall second and per CPU second
(LAMMPS's "% CPU use" times the loop time); the cost ratio uses CPU time, which other jobs on a
shared machine do not inflate.

    nice .venv/bin/python bench/committee_cost.py [--supercell 2 2 2] [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from superionic import __version__
from superionic.data.materials import build_structure
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps
from superionic.md.speed import CPU_RE, LOOP_RE
from superionic.models.sprinter import Sprinter

MEMBERS = 4
WARMUP_STEPS = 10
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "committee_cost.json"


@dataclass(frozen=True)
class Case:
    name: str
    members: int
    devi_every: int | None  # None: no committee keyword


@dataclass(frozen=True)
class Row:
    name: str
    members: int
    devi_every: int | None
    atoms: int
    steps: int
    wall_s: list[float]
    cpu_s: list[float]
    deviation_steps: int  # lines in the devi_file over warm-up and timed runs
    atom_steps_per_s: float  # per wall second, median over repeats
    atom_steps_per_cpu_s: float  # per CPU second, median over repeats
    cost_vs_single: float | None = None  # CPU time per step relative to K = 1


CASES = (
    Case("K=1", 1, None),
    Case("K=4, deviation every 10", MEMBERS, 10),
    Case("K=4, deviation every 1", MEMBERS, 1),
)


def stable_sprinter(species: list[str], seed: int) -> Sprinter:
    """An untrained sprinter that keeps the crystal together for a few hundred steps.

    Random weights at full scale pull atoms onto each other within ~100 steps; a small energy scale
    and the core repulsion (onset 1.7 A) keep the MD physical. Neither changes the work per step.
    """
    model = Sprinter(species, seed=seed)
    with torch.no_grad():
        model.energy_scale.fill_(0.02)
        model.core_radius_sq.fill_(1.7**2)
        model.core_strength.fill_(1.0)
    return model


def lammps_input(case: Case, species: list[str], steps: int, repeats: int) -> str:
    files = " ".join(f"member_{k}.pt" for k in range(case.members))
    committee = ""
    if case.devi_every is not None:
        every = case.devi_every
        committee = f" committee {case.members} devi_every {every} devi_file devi_every_{every}.out"
    timed = "\n".join(f"run {steps}" for _ in range(repeats))
    return f"""units metal
atom_style atomic
read_data data.lmp
pair_style superionic threads 1{committee}
pair_coeff * * {files} {" ".join(species)}
velocity all create 300 12345 loop all
fix 1 all nve
timestep 0.001
thermo 100
run {WARMUP_STEPS}
{timed}
"""


def time_case(case: Case, workdir: Path, species: list[str], atoms: int, steps: int, repeats: int) -> Row:
    input_file = workdir / f"in.K{case.members}.{case.devi_every}"
    input_file.write_text(lammps_input(case, species, steps, repeats))
    output = run_lammps(input_file, workdir, nprocs=1).output
    loops = LOOP_RE.findall(output)
    if len(loops) != repeats + 1:
        raise RuntimeError(f"{case.name}: expected {repeats + 1} 'Loop time' lines, got {len(loops)}")
    shares = [float(x) / 100.0 for x in CPU_RE.findall(output)]
    if len(shares) != len(loops):
        raise RuntimeError(f"{case.name}: expected a '% CPU use' line after every 'Loop time' line")
    walls, cpus = [], []
    for (wall, procs, done, natoms), share in zip(loops[1:], shares[1:], strict=True):
        if (int(procs), int(done), int(natoms)) != (1, steps, atoms):
            raise RuntimeError(f"{case.name}: timed run was {procs} procs/{done} steps/{natoms} atoms")
        walls.append(float(wall))
        cpus.append(float(wall) * share)
    devi_steps = 0
    if case.devi_every is not None:
        devi_file = workdir / f"devi_every_{case.devi_every}.out"
        devi_steps = sum(1 for line in devi_file.read_text().splitlines() if not line.startswith("#"))
    return Row(
        case.name,
        case.members,
        case.devi_every,
        atoms,
        steps,
        walls,
        cpus,
        devi_steps,
        atoms * steps / statistics.median(walls),
        atoms * steps / statistics.median(cpus),
    )


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'case':<26} {'atoms':>6} {'steps':>6} {'devi steps':>10} {'atom-steps/s (wall)':>20} "
        f"{'atom-steps/s (CPU)':>19} {'cost vs K=1':>12}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        cost = "-" if row.cost_vs_single is None else f"{row.cost_vs_single:.2f}x"
        lines.append(
            f"{row.name:<26} {row.atoms:>6} {row.steps:>6} {row.deviation_steps:>10} "
            f"{row.atom_steps_per_s:>20.4g} {row.atom_steps_per_cpu_s:>19.4g} {cost:>12}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--supercell", type=int, nargs=3, default=(2, 2, 2), help="LGPS supercell (50 atoms each)"
    )
    parser.add_argument("--steps", type=int, default=200, help="MD steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (the median is reported)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    args = parser.parse_args()

    atoms = build_structure("LGPS", seed=1, supercell=tuple(args.supercell))
    species = sorted(set(atoms.get_chemical_symbols()))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="committee_cost.") as tmp:
        workdir = Path(tmp)
        write_lammps_data(workdir / "data.lmp", atoms, species)
        for k in range(MEMBERS):
            export_model(stable_sprinter(species, seed=k), workdir / f"member_{k}.pt")
        for case in CASES:
            rows.append(time_case(case, workdir, species, len(atoms), args.steps, args.repeats))
    single = rows[0].atom_steps_per_cpu_s
    rows = [Row(**{**asdict(row), "cost_vs_single": single / row.atom_steps_per_cpu_s}) for row in rows]

    print(format_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "committee_cost",
        "units": "atom-steps/s",
        "structure": f"LGPS {'x'.join(map(str, args.supercell))} supercell",
        "model": "sprinter, trainer defaults (cutoff 5 A, l_max 4, hidden 32 32), float64, native kernel",
        "ranks": 1,
        "threads": 1,
        "warmup_steps": WARMUP_STEPS,
        "superionic_version": __version__,
        "torch_version": torch.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "rows": [asdict(row) for row in rows],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
