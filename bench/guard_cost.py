"""Cost of the physical-sanity guard of `pair_style superionic` (docs/guard.md): CPU time per MD
step with the guard off, every 10 steps (the default) and every step, as ratios measured in one run.

One LAMMPS process runs every case in turn, repeat after repeat (off, every 10, every 1, off, ...),
so the machine's drift between hours falls on all cases alike; each case's figure is the median of
its repeats. The model is a sprinter of the trainer's default size (cutoff 5 Å, l_max 4, hidden
32 32) on the native kernel, one rank, one thread, with floors 0.85 × the closest distance of each
pair in the starting cell, exported as `superionic export` writes them; an untrained sprinter kept
physical by a small energy scale (bench/committee_cost.py) costs what a trained one costs.

    nice .venv/bin/python bench/guard_cost.py [--supercell 2 2 2] [--steps 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from committee_cost import stable_sprinter

from superionic import __version__
from superionic.data.materials import build_structure
from superionic.data.neighbors import neighbor_list
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps
from superionic.md.speed import CPU_RE, LOOP_RE
from superionic.train.initialise import pair_closest_record

CASES = (("off", 0), ("every 10", 10), ("every 1", 1))
WARMUP_STEPS = 20
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "guard_cost.json"


def closest_in(atoms, species: list[str], cutoff: float = 5.0) -> list[list[float | None]]:
    pairs = neighbor_list(atoms, cutoff)
    index = np.array([species.index(s) for s in atoms.get_chemical_symbols()])
    closest = np.full((len(species), len(species)), np.inf)
    np.minimum.at(closest, (index[pairs.src], index[pairs.dst]), np.linalg.norm(pairs.vectors, axis=1))
    return pair_closest_record(closest)


def lammps_input(species: list[str], steps: int, repeats: int) -> str:
    names = " ".join(species)
    lines = [
        "units metal",
        "atom_style atomic",
        "read_data data.lmp",
        "pair_style superionic threads 1 guard 0",
        f"pair_coeff * * model.pt {names}",
        "velocity all create 300 12345 loop all",
        "fix 1 all nve",
        "timestep 0.001",
        "thermo 100",
        f"run {WARMUP_STEPS}",
    ]
    for _ in range(repeats):
        for _, every in CASES:
            lines += [f"pair_style superionic threads 1 guard {every}", f"pair_coeff * * model.pt {names}"]
            lines.append(f"run {steps}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--supercell", type=int, nargs=3, default=(2, 2, 2), help="LGPS supercell (50 atoms each)"
    )
    parser.add_argument("--steps", type=int, default=500, help="MD steps per timed run")
    parser.add_argument(
        "--repeats", type=int, default=15, help="timed runs per case (the median is reported)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    args = parser.parse_args()

    atoms = build_structure("LGPS", seed=1, supercell=tuple(args.supercell))
    species = sorted(set(atoms.get_chemical_symbols()))
    with tempfile.TemporaryDirectory(prefix="guard_cost.") as tmp:
        workdir = Path(tmp)
        write_lammps_data(workdir / "data.lmp", atoms, species)
        export_model(
            stable_sprinter(species, seed=0), workdir / "model.pt", pair_closest=closest_in(atoms, species)
        )
        (workdir / "in.lmp").write_text(lammps_input(species, args.steps, args.repeats))
        output = run_lammps("in.lmp", workdir, nprocs=1).output
    loops = LOOP_RE.findall(output)[1:]  # the first is the warm-up
    shares = [float(x) / 100.0 for x in CPU_RE.findall(output)][1:]
    if len(loops) != len(CASES) * args.repeats or len(shares) != len(loops):
        raise RuntimeError(f"expected {len(CASES) * args.repeats} timed runs, LAMMPS reported {len(loops)}")
    rows = []
    for k, (name, every) in enumerate(CASES):
        cpu = [float(loops[j][0]) * shares[j] for j in range(k, len(loops), len(CASES))]
        rows.append(
            {
                "case": name,
                "guard_every": every,
                "cpu_s": cpu,
                "cpu_s_per_step": statistics.median(cpu) / args.steps,
            }
        )
    base = rows[0]["cpu_s_per_step"]
    cell = "x".join(map(str, args.supercell))
    print(
        f"guard cost on LGPS {cell} ({len(atoms)} atoms), {args.steps} steps x {args.repeats} "
        "repeats, interleaved"
    )
    print(f"{'guard':<10} {'CPU us/step (median)':>22} {'vs off':>8} {'median of paired ratios':>24}")
    for row in rows:
        row["ratio_to_off"] = row["cpu_s_per_step"] / base
        # Each repeat's run against the 'off' run just before it: the machine drifts little over
        # seconds, much over the minutes between the first and the last repeat.
        paired = [c / o for c, o in zip(row["cpu_s"], rows[0]["cpu_s"], strict=True)]
        row["paired_ratio_to_off"] = paired
        row["paired_ratio_median"] = statistics.median(paired)
        print(
            f"{row['case']:<10} {1e6 * row['cpu_s_per_step']:>22.1f} {row['ratio_to_off']:>8.4f} "
            f"{row['paired_ratio_median']:>24.4f}"
        )
    result = {
        "benchmark": "guard_cost",
        "structure": f"LGPS {'x'.join(map(str, args.supercell))} supercell",
        "atoms": len(atoms),
        "steps": args.steps,
        "repeats": args.repeats,
        "model": "sprinter, trainer defaults (cutoff 5 A, l_max 4, hidden 32 32), float64, native kernel",
        "ranks": 1,
        "threads": 1,
        "superionic_version": __version__,
        "torch_version": torch.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
