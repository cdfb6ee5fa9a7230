"""MD speed of the reference model through ``pair_style superionic``, against LAMMPS's own lj/cut.

Prints one table in atom-steps/s and writes the same numbers as JSON. Every row runs the same
structure with the same input apart from the pair style, so the only thing that differs is the
cost of the force call: TorchScript (.pt) or AOTInductor (.pt2) through the plugin, or native
``lj/cut 5.0`` (same cutoff, so the same neighbour lists and ghost shell) as the ceiling.

    .venv/bin/python bench/md_speed.py [--atoms-per-side 10] [--steps 100] [--skip-pt2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from superionic import __version__
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps
from superionic.md.speed import LOOP_RE
from superionic.models import ReferencePotential

SPECIES = ["Li", "Ge", "P", "S"]
RANKS = (1, 2)
WARMUP_STEPS = 10
LJ_NAME = "lj/cut 5.0"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "md_speed.json"


@dataclass(frozen=True)
class Row:
    name: str
    ranks: int
    atoms: int
    steps: int
    wall_s: float
    atom_steps_per_s: float
    ratio_to_lj: float | None = None


def lammps_input(pair_lines: str, steps: int) -> str:
    # The warm-up run absorbs one-off costs (model load, first-call allocation and, for TorchScript,
    # the profiling executor's first passes) so that the timed run measures steady state.
    return f"""units metal
atom_style atomic
read_data data.lmp
{pair_lines}
velocity all create 600 12345
fix 1 all nve
timestep 0.001
thermo 50
run {WARMUP_STEPS}
run {steps}
"""


def time_run(name: str, pair_lines: str, workdir: Path, ranks: int, atoms: int, steps: int) -> Row:
    input_file = workdir / f"in.{name.replace('/', '_').replace(' ', '_')}.{ranks}"
    input_file.write_text(lammps_input(pair_lines, steps))
    output = run_lammps(input_file, workdir, nprocs=ranks).output
    loops = LOOP_RE.findall(output)
    if len(loops) != 2:
        raise RuntimeError(f"{name} on {ranks} ranks: expected 2 'Loop time' lines, got {len(loops)}")
    wall, procs, done, natoms = loops[-1]
    # A launcher that does not match LAMMPS's MPI starts N independent 1-rank jobs; the procs
    # count in the Loop line is what tells a real N-rank run from that.
    if (int(procs), int(done), int(natoms)) != (ranks, steps, atoms):
        raise RuntimeError(
            f"{name}: timed run was {procs} procs/{done} steps/{natoms} atoms, "
            f"expected {ranks}/{steps}/{atoms}"
        )
    wall_s = float(wall)
    return Row(name, ranks, atoms, steps, wall_s, atoms * steps / wall_s)


def with_ratios(rows: list[Row]) -> list[Row]:
    # The ratio is taken at equal rank count so it isolates the pair style from MPI scaling.
    ceiling = {row.ranks: row.atom_steps_per_s for row in rows if row.name == LJ_NAME}
    return [
        Row(**{**asdict(row), "ratio_to_lj": row.atom_steps_per_s / ceiling[row.ranks]})
        if row.ranks in ceiling
        else row
        for row in rows
    ]


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'name':<22} {'ranks':>5} {'atoms':>6} {'steps':>6} {'wall s':>9} {'atom-steps/s':>13} {'vs lj':>7}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        ratio = "-" if row.ratio_to_lj is None else f"{row.ratio_to_lj:.4f}"
        lines.append(
            f"{row.name:<22} {row.ranks:>5} {row.atoms:>6} {row.steps:>6} {row.wall_s:>9.4g} "
            f"{row.atom_steps_per_s:>13.4g} {ratio:>7}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--atoms-per-side", type=int, default=10, help="lattice repeats n (n³ atoms)")
    parser.add_argument("--steps", type=int, default=100, help="timed MD steps after the warm-up")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    parser.add_argument("--skip-pt2", action="store_true", help="skip the slow AOTInductor compile")
    args = parser.parse_args()

    n = args.atoms_per_side
    atoms = jittered_lattice((n, n, n), spacing=2.6, seed=0)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="md_speed.") as tmp:
        workdir = Path(tmp)
        write_lammps_data(workdir / "data.lmp", atoms, SPECIES)
        model = ReferencePotential(SPECIES)
        # Each suffix is exported once and reused by both rank counts (the .pt2 compile is slow).
        suffixes = [".pt"] if args.skip_pt2 else [".pt", ".pt2"]
        for suffix in suffixes:
            export_model(model, workdir / f"model{suffix}")
            pair = f"pair_style superionic\npair_coeff * * model{suffix} {' '.join(SPECIES)}"
            for ranks in RANKS:
                rows.append(time_run(f"reference {suffix}", pair, workdir, ranks, len(atoms), args.steps))
        lj_pair = f"pair_style {LJ_NAME}\npair_coeff * * 0.01 2.3"
        for ranks in RANKS:
            rows.append(time_run(LJ_NAME, lj_pair, workdir, ranks, len(atoms), args.steps))
    rows = with_ratios(rows)

    print(format_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Enough context to compare runs from different machines or versions later.
    result = {
        "benchmark": "md_speed",
        "units": "atom-steps/s",
        "warmup_steps": WARMUP_STEPS,
        "superionic_version": __version__,
        "torch_version": torch.__version__,
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "1"),
        "machine": platform.machine(),
        "rows": [asdict(row) for row in rows],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
