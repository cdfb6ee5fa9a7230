"""Cost of trajectory output during MD: ``fix superionic/h5md`` against LAMMPS's ``dump custom``.

Runs the same NVE MD once with no output, once per H5MD variant and once with a text
``dump custom`` (all writing one frame every 100 steps), and reports the extra loop time as a
fraction of the no-output run together with the file size per frame. The force field is LAMMPS's
native ``lj/cut 5.0`` by default: it is cheap, so the output cost stands out and the runs are short;
the fractions it gives are therefore upper bounds (against the ML model the step is far dearer and
the same output costs a smaller fraction). ``--model`` uses ``pair_style superionic`` with the
exported reference model instead (slow: pass fewer ``--steps``).

Only the second ``run`` is timed (its "Loop time" line); the output is defined before the warm-up
run, so file creation and the first frames fall outside the timed run. Each row is run
``--repeats`` times, interleaved, and the fastest run is kept, to damp noise from other load.

    .venv/bin/python bench/dump_speed.py [--steps 1000] [--atoms-per-side 22] [--np 1] [--model]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import torch

from superionic import __version__
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps
from superionic.md.speed import LOOP_RE
from superionic.models import ReferencePotential

SPECIES = ["Li", "Ge", "P", "S"]
WARMUP_STEPS = 100
EVERY = 100
GOAL = 0.05  # overhead fraction to stay under at one frame per EVERY steps
LJ_PAIR = "pair_style lj/cut 5.0\npair_coeff * * 0.01 2.3"
MODEL_PAIR = f"pair_style superionic\npair_coeff * * model.pt {' '.join(SPECIES)}"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "dump_speed.json"

# Rows of the timing breakdown that follows it: section | min | avg | max time.
SECTION_RE = re.compile(r"^(Output|Modify)\s*\|\s*\S+\s*\|\s*\S+\s*\|\s*(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Output:
    name: str
    file: str | None  # written in the work directory; None for the no-output row
    command: str  # LAMMPS line(s) defining the output ("" for none)


OUTPUTS = (
    Output("none", None, ""),
    Output("h5md single", "traj.h5", f"fix traj all superionic/h5md {EVERY} traj.h5"),
    Output(
        "h5md double",
        "traj_double.h5",
        f"fix traj all superionic/h5md {EVERY} traj_double.h5 positions double",
    ),
    Output("dump custom", "traj.dump", f"dump d all custom {EVERY} traj.dump id type x y z ix iy iz"),
)


@dataclass(frozen=True)
class Row:
    output: str
    ranks: int
    atoms: int
    steps: int
    frames: int  # frames written during the timed run
    frames_in_file: int | None  # including those of the warm-up run
    file_bytes: int | None
    bytes_per_frame: float | None  # whole file / frames in it (H5MD's fixed header included)
    loop_s: float  # fastest of the repeats
    loop_s_all: list[float]
    io_s: float  # fastest Output + Modify time (max over ranks) of the breakdown: where writing happens
    io_s_all: list[float]
    overhead: float | None = None  # (loop_s - loop_s of "none") / loop_s of "none"
    ms_per_frame: float | None = None  # (io_s - io_s of "none") / frames
    overhead_sections: float | None = None  # (io_s - io_s of "none") / loop_s of "none"


def lammps_input(pair_lines: str, output: Output, steps: int) -> str:
    return f"""units metal
atom_style atomic
read_data data.lmp
{pair_lines}
velocity all create 600 1
fix 1 all nve
timestep 0.002
thermo {steps}
{output.command}
run {WARMUP_STEPS}
run {steps}
"""


def count_frames(path: Path) -> int:
    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return int(f["particles/all/position/step"].shape[0])
    with path.open() as f:
        return sum(1 for line in f if line.startswith("ITEM: TIMESTEP"))


def time_once(
    pair_lines: str, output: Output, workdir: Path, ranks: int, atoms: int, steps: int
) -> tuple[float, float]:
    """(loop time, Output + Modify time) of the timed run."""
    if output.file is not None:
        (workdir / output.file).unlink(missing_ok=True)  # the fix refuses to overwrite silently
    input_file = workdir / f"in.{output.name.replace(' ', '_')}"
    input_file.write_text(lammps_input(pair_lines, output, steps))
    text = run_lammps(input_file, workdir, nprocs=ranks).output
    loops = LOOP_RE.findall(text)
    if len(loops) != 2:
        raise RuntimeError(f"{output.name}: expected 2 'Loop time' lines, got {len(loops)}")
    wall, procs, done, natoms = loops[-1]
    # A launcher that does not match LAMMPS's MPI starts N independent 1-rank jobs; the procs
    # count in the Loop line is what tells a real N-rank run from that.
    if (int(procs), int(done), int(natoms)) != (ranks, steps, atoms):
        raise RuntimeError(
            f"{output.name}: timed run was {procs} procs/{done} steps/{natoms} atoms, "
            f"expected {ranks}/{steps}/{atoms}"
        )
    # The breakdown's Output (dumps, thermo) and Modify (fixes: nve and superionic/h5md) rows see
    # the writing itself; outside load inflates them far less in absolute terms than the loop.
    sections = dict(SECTION_RE.findall(text[text.rfind("Loop time of") :]))
    if set(sections) != {"Output", "Modify"}:
        raise RuntimeError(f"{output.name}: no Output/Modify rows in the timing breakdown")
    return float(wall), float(sections["Output"]) + float(sections["Modify"])


def measure(pair_lines: str, workdir: Path, ranks: int, atoms: int, steps: int, repeats: int) -> list[Row]:
    times: dict[str, list[float]] = {o.name: [] for o in OUTPUTS}
    io_times: dict[str, list[float]] = {o.name: [] for o in OUTPUTS}
    # Interleaved rounds, so a burst of outside load hits every row rather than one.
    for _ in range(repeats):
        for output in OUTPUTS:
            loop_s, io_s = time_once(pair_lines, output, workdir, ranks, atoms, steps)
            times[output.name].append(loop_s)
            io_times[output.name].append(io_s)
    # Frames at multiples of EVERY after the warm-up's last step, up to and including the end.
    timed_frames = (WARMUP_STEPS + steps) // EVERY - WARMUP_STEPS // EVERY
    base = min(times["none"])
    io_base = min(io_times["none"])
    rows = []
    for output in OUTPUTS:
        loop_s = min(times[output.name])
        io_s = min(io_times[output.name])
        written = output.file is not None
        frames_in_file = file_bytes = per_frame = None
        if output.file is not None:
            path = workdir / output.file  # the last repeat's file
            frames_in_file = count_frames(path)
            file_bytes = path.stat().st_size
            per_frame = file_bytes / frames_in_file
        rows.append(
            Row(
                output=output.name,
                ranks=ranks,
                atoms=atoms,
                steps=steps,
                frames=timed_frames if written else 0,
                frames_in_file=frames_in_file,
                file_bytes=file_bytes,
                bytes_per_frame=per_frame,
                loop_s=loop_s,
                loop_s_all=times[output.name],
                io_s=io_s,
                io_s_all=io_times[output.name],
                overhead=(loop_s - base) / base if written else None,
                ms_per_frame=1e3 * (io_s - io_base) / timed_frames if written else None,
                overhead_sections=(io_s - io_base) / base if written else None,
            )
        )
    return rows


def format_table(rows: list[Row], title: str) -> str:
    header = (
        f"{'output':<14} {'frames':>6} {'bytes/frame':>12} {'loop s':>9} {'overhead':>9} "
        f"{'ms/frame*':>10} {'overhead*':>10}"
    )
    lines = [title, header, "-" * len(header)]

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:+.2f} %"

    for row in rows:
        per_frame = "-" if row.bytes_per_frame is None else f"{row.bytes_per_frame:.0f}"
        ms = "-" if row.ms_per_frame is None else f"{row.ms_per_frame:.2f}"
        lines.append(
            f"{row.output:<14} {row.frames:>6} {per_frame:>12} {row.loop_s:>9.4g} {percent(row.overhead):>9} "
            f"{ms:>10} {percent(row.overhead_sections):>10}"
        )
    lines.append(
        "overhead: from loop times (fastest of the repeats); * from the Output + Modify rows of LAMMPS's "
        "timing breakdown\n(less sensitive to outside load); bytes/frame: whole file / frames in it"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--atoms-per-side", type=int, default=22, help="lattice repeats n (n × n × (n-1) atoms)"
    )
    parser.add_argument("--steps", type=int, default=1000, help="timed MD steps after the warm-up")
    parser.add_argument("--np", type=int, default=1, help="MPI ranks")
    parser.add_argument("--repeats", type=int, default=3, help="runs per row; the fastest is kept")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    parser.add_argument(
        "--model", action="store_true", help="use the exported reference model instead of lj/cut"
    )
    args = parser.parse_args()
    if args.steps % EVERY:
        parser.error(f"--steps must be a multiple of {EVERY}")

    load_before = os.getloadavg()
    n = args.atoms_per_side
    atoms = jittered_lattice((n, n, n - 1), spacing=2.6, seed=0)
    with tempfile.TemporaryDirectory(prefix="dump_speed.") as tmp:
        workdir = Path(tmp)
        write_lammps_data(workdir / "data.lmp", atoms, SPECIES)
        if args.model:
            export_model(ReferencePotential(SPECIES), workdir / "model.pt")
        pair_lines = MODEL_PAIR if args.model else LJ_PAIR
        rows = measure(pair_lines, workdir, args.np, len(atoms), args.steps, args.repeats)
    load_after = os.getloadavg()

    if args.model:
        title = (
            f"Trajectory output cost, one frame per {EVERY} steps, "
            f"pair_style superionic (reference .pt), {len(atoms)} atoms, {args.np} rank(s)"
        )
    else:
        title = (
            f"Trajectory output cost, one frame per {EVERY} steps, cheap lj/cut 5.0 force field, "
            f"{len(atoms)} atoms, {args.np} rank(s)\n"
            "(an upper bound: against the ML model the same output is a smaller fraction of the step)"
        )
    print(format_table(rows, title))
    print(
        f"goal: overhead < {100 * GOAL:.0f} %; "
        f"load average (1 min) {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} CPUs"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Enough context to compare runs from different machines or versions later.
    result = {
        "benchmark": "dump_speed",
        "pair_style": "superionic (reference .pt)" if args.model else "lj/cut 5.0",
        "every": EVERY,
        "warmup_steps": WARMUP_STEPS,
        "repeats": args.repeats,
        "goal_overhead": GOAL,
        "superionic_version": __version__,
        "torch_version": torch.__version__,
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "1"),
        "machine": platform.machine(),
        "loadavg_before": list(load_before),
        "loadavg_after": list(load_after),
        "rows": [asdict(row) for row in rows],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
