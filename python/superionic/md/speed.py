"""How fast a model file runs in LAMMPS on a given cell: atom-steps per second, wall and CPU time.

A short NVE run after a warm-up (model load, first-call allocations) times the steady state.
LAMMPS's own "Loop time" gives the wall time and its "% CPU use" line the share of it the ranks
were on a core: on a shared machine the CPU-time rate (wall rate / CPU share) is the figure that
compares two models fairly, and both are reported.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsError, run_lammps

# One "Loop time" line per `run`: the last belongs to the timed run (the benchmarks in bench/ share these).
LOOP_RE = re.compile(r"^Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms", re.MULTILINE)
CPU_RE = re.compile(r"^(\S+)% CPU use with", re.MULTILINE)
# A timed run shorter than this is repeated longer (see measure_md_speed).
MIN_TIMED_S = 0.2


@dataclass(frozen=True)
class MdSpeed:
    model: str
    atoms: int
    ranks: int
    steps: int
    wall_s: float
    cpu_share: float  # LAMMPS's "% CPU use" / 100 of the timed run
    wall_atom_steps_per_s: float
    cpu_atom_steps_per_s: float  # per core-second the ranks actually ran


def measure_md_speed(
    model: str | Path,
    atoms: Atoms,
    elements: Sequence[str],
    *,
    steps: int = 200,
    warmup_steps: int = 20,
    ranks: int = 1,
    threads: int = 1,
    temperature_K: float = 600.0,
    pair_options: str = "",
) -> MdSpeed:
    """Time ``steps`` NVE steps of ``model`` on ``atoms`` with ``ranks`` MPI ranks.

    ``pair_options`` are more ``pair_style superionic`` keywords, e.g. ``graph shell``. A timed run
    shorter than ``MIN_TIMED_S`` is run again, longer: LAMMPS's CPU share of a few milliseconds
    reads 0.0 % (the CPU clock's resolution), which would make the CPU rate infinite.
    """
    for _ in range(3):
        wall, share = _timed_run(
            model, atoms, elements, steps, warmup_steps, ranks, threads, temperature_K, pair_options
        )
        if wall >= MIN_TIMED_S and share > 0:
            break
        steps = math.ceil(steps * 1.5 * MIN_TIMED_S / max(wall, 1e-6))
    if not share > 0:
        raise LammpsError(f"{model}: LAMMPS measured no CPU time over {steps} steps ({wall:.3g} s)")
    rate = len(atoms) * steps / wall
    return MdSpeed(
        model=str(model),
        atoms=len(atoms),
        ranks=ranks,
        steps=steps,
        wall_s=wall,
        cpu_share=share,
        wall_atom_steps_per_s=rate,
        cpu_atom_steps_per_s=rate / share,
    )


def _timed_run(
    model: str | Path,
    atoms: Atoms,
    elements: Sequence[str],
    steps: int,
    warmup_steps: int,
    ranks: int,
    threads: int,
    temperature_K: float,
    pair_options: str,
) -> tuple[float, float]:
    """(wall seconds, CPU share) of ``steps`` NVE steps after ``warmup_steps``, from LAMMPS's log."""
    with tempfile.TemporaryDirectory(prefix="superionic-speed.") as tmp:
        work = Path(tmp)
        write_lammps_data(work / "data.lmp", atoms, list(elements))
        (work / "in.speed").write_text(
            f"""units metal
atom_style atomic
read_data data.lmp
pair_style superionic threads {threads} {pair_options}
pair_coeff * * {Path(model).resolve()} {" ".join(elements)}
velocity all create {temperature_K} 4928459
fix 1 all nve
timestep 0.001
thermo {max(steps, 1)}
run {warmup_steps}
run {steps}
"""
        )
        output = run_lammps(work / "in.speed", work, nprocs=ranks).output
    loops, shares = LOOP_RE.findall(output), CPU_RE.findall(output)
    if len(loops) != 2 or len(shares) != 2:
        raise LammpsError(f"{model}: LAMMPS printed no timing for the timed run")
    wall = float(loops[-1][0])
    share = float(shares[-1]) / 100.0
    return wall, share
