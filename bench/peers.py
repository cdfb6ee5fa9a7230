"""Speed of the sprinter beside its peers, on one LGPS cell, in one run.

Rows (atom-steps/s, float64):

- sprinter through ``pair_style superionic``: the native kernel (default), ``.pt2`` (AOTInductor)
  and ``.pt`` (TorchScript), all from one model of the trainer's default hyperparameters
- NEP_CPU through calorine 4.1 ``CPUNEP``: a NEP4 file of GPUMD's default hyperparameters
  (cutoffs 6/4 A, n_max 4 4, basis 8 8, l_max 4 2 1, 30 neurons) with random weights: speed does
  not depend on the values. calorine is built in a throw-away virtual environment
  (``--peers-venv``, created on first use) so that it never touches the project's environment.
- ``lj/cut 5.0`` in the same LAMMPS: the ceiling (neighbour lists, integration, communication).
- SevenNet-0 in ASE: the labeller the sprinter learns from (a short run).

Cells: the 200-atom LGPS cell ``build_structure("LGPS", seed=0, supercell=(2, 2, 1))`` repeated to
3200 and 25 600 atoms. Each LAMMPS row is one NVE run after a warm-up run; per-core throughput
divides by ranks x threads. Beside the wall clock, every row states CPU time (LAMMPS's own
"% CPU use", ``time.process_time`` for the Python peers): on a shared machine the CPU-time figure is
the one that compares per core. Peak memory is the largest process's maximum resident set.
DeePMD-kit is not run: its PyPI wheel fails to load beside torch 2.13 and the sdist build takes
about 8 minutes (see the README).

    .venv/bin/python bench/peers.py [--quick] [--out bench/results/peers.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.io import write

from superionic import __version__
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import lammps_command
from superionic.md.speed import LOOP_RE
from superionic.models.build import build_model
from superionic.models.config import ModelConfig

SPECIES = ["Li", "Ge", "P", "S"]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "peers.json"
DEFAULT_VENV = Path("/tmp/peers-venv")
CALORINE = "calorine==4.1"
REPEATS = {200: (1, 1, 1), 3200: (2, 2, 4), 25600: (4, 4, 8)}
WARMUP_STEPS = 5

CPU_RE = re.compile(r"^(\S+)% CPU use with (\d+) MPI tasks x (\d+) OpenMP threads", re.MULTILINE)


@dataclass(frozen=True)
class Row:
    name: str
    atoms: int
    ranks: int
    threads: int
    steps: int
    wall_s: float
    cpu_fraction: float  # CPU time / (wall x cores), 1.0 on an idle machine
    atom_steps_per_s: float  # wall clock, all cores together
    per_core: float  # atom-steps per second of CPU time of one core
    peak_rss_mb: float
    neighbours: str = ""


def base_cell() -> Atoms:
    from superionic.data.materials import build_structure

    return build_structure("LGPS", seed=0, supercell=(2, 2, 1))


def cell(n_atoms: int) -> Atoms:
    atoms = base_cell().repeat(REPEATS[n_atoms])
    if len(atoms) != n_atoms:
        raise RuntimeError(f"LGPS cell has {len(atoms)} atoms, expected {n_atoms}")
    return atoms


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return pids


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[str, float]:
    """Runs cmd; returns its output and the peak resident set (MB) of its largest process.

    The peak is sampled from /proc every 50 ms: getrusage's ru_maxrss would report this (large,
    torch-importing) parent's own peak, which Linux carries into children across fork and exec.
    """
    peak = 0.0
    with open(cwd / "out.txt", "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        while proc.poll() is None:
            peak = max([peak, *(_rss_mb(p) for p in _tree(proc.pid))])
            time.sleep(0.05)
    output = (cwd / "out.txt").read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}")
    return output, peak


def lammps_deck(n_atoms: int, pair: str, steps: int, threads: int = 1) -> str:
    # The neighbour skin of lammps_inputs/nvt.in, which `superionic md` runs: 1 A, not metal
    # units' default 2 A, which gives a 5 A model 2.7x more candidate pairs than edges. With
    # threads, LAMMPS's OPENMP package threads its neighbour-list build too (`package omp`).
    omp = f"package omp {threads} neigh yes" if threads > 1 else ""
    return textwrap.dedent(
        f"""\
        {omp}
        units metal
        atom_style atomic
        read_data data.{n_atoms}
        {pair}
        neighbor 1.0 bin
        neigh_modify every 1 delay 0 check yes
        velocity all create 600 12345
        fix 1 all nve
        timestep 0.001
        thermo {steps}
        run {WARMUP_STEPS}
        run {steps}
        """
    )


def lammps_row(
    name: str, pair: str, workdir: Path, n_atoms: int, steps: int, ranks: int = 1, threads: int = 1
) -> Row:
    (workdir / "in.lmp").write_text(lammps_deck(n_atoms, pair, steps, threads))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    output, rss = run_measured([*lammps_command(ranks), "-in", "in.lmp"], workdir, env)
    loops, cpus = LOOP_RE.findall(output), CPU_RE.findall(output)
    wall, procs, done, atoms = loops[-1]
    # LAMMPS counts "procs" as MPI tasks x OpenMP threads.
    if (int(procs), int(done), int(atoms)) != (ranks * threads, steps, n_atoms):
        raise RuntimeError(f"{name}: timed run was {procs} procs/{done} steps/{atoms} atoms")
    wall_s = float(wall)
    # LAMMPS's "% CPU use" counts per MPI task; OpenMP threads add up to threads x 100 %.
    fraction = float(cpus[-1][0]) / 100 / threads if cpus else 1.0
    rate = n_atoms * steps / wall_s
    return Row(
        name, n_atoms, ranks, threads, steps, wall_s, fraction, rate, rate / (ranks * threads * fraction), rss
    )


def two_copies_row(name: str, pair: str, workdir: Path, n_atoms: int, steps: int) -> Row:
    """Two independent one-rank runs at the same time: no communication and nothing serial, so
    their summed throughput over one run's is what this machine's two cores can give this work at
    best (two busy vCPUs of a VM run slower than one: shared caches, memory, host frequency)."""
    copies = [workdir / f"copy{k}" for k in range(2)]
    for copy in copies:
        copy.mkdir(exist_ok=True)
        for f in workdir.iterdir():
            if f.is_file() and not (copy / f.name).exists():
                (copy / f.name).symlink_to(f)
        (copy / "in.lmp").unlink(missing_ok=True)
        (copy / "in.lmp").write_text(lammps_deck(n_atoms, pair, steps))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for copy in copies:
        out = open(copy / "out.txt", "w")  # closed below, after both runs end
        procs.append((subprocess.Popen([*lammps_command(1), "-in", "in.lmp"], cwd=copy, stdout=out,
                                       stderr=subprocess.STDOUT, env=env), out))  # fmt: skip
    walls, fractions = [], []
    for (proc, out), copy in zip(procs, copies, strict=True):
        proc.wait()
        out.close()
        output = (copy / "out.txt").read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed ({proc.returncode}):\n{output[-3000:]}")
        walls.append(float(LOOP_RE.findall(output)[-1][0]))
        cpus = CPU_RE.findall(output)
        fractions.append(float(cpus[-1][0]) / 100 if cpus else 1.0)
    rate = 2 * n_atoms * steps / max(walls)
    fraction = sum(fractions) / 2
    return Row(name, n_atoms, 2, 1, steps, max(walls), fraction, rate, rate / (2 * fraction), 0.0)


# --- NEP_CPU through calorine, in its own environment ---------------------------------------------

NEP_RUNNER = """
import json, sys, time
from ase.io import read
from calorine.calculators import CPUNEP
model, structure, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
atoms = read(structure)
atoms.calc = CPUNEP(model)
atoms.get_forces()  # first call builds the neighbour list and allocates
wall, cpu = time.perf_counter(), time.process_time()
for step in range(steps):
    atoms.positions[0, 0] += 1e-6 * (-1) ** step  # a new geometry each call: nothing is cached
    atoms.get_forces()
    atoms.get_stress()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"wall_s": wall, "cpu_s": cpu}))
"""


def ensure_peer_venv(root: Path) -> Path:
    python = root / "bin" / "python"
    probe = (
        subprocess.run([str(python), "-c", "import calorine"], capture_output=True)
        if python.exists()
        else None
    )
    if probe is None or probe.returncode != 0:
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        subprocess.run([str(python), "-m", "pip", "install", "-q", CALORINE], check=True)
    return python


@dataclass(frozen=True)
class NepHyper:
    cutoff: tuple[float, float] = (6.0, 4.0)
    n_max: tuple[int, int] = (4, 4)
    basis: tuple[int, int] = (8, 8)
    l_max: tuple[int, int, int] = (4, 2, 1)
    neurons: int = 30

    def label(self) -> str:
        return (
            f"NEP4 {self.cutoff[0]:g}/{self.cutoff[1]:g} A, n_max {self.n_max[0]} {self.n_max[1]}, "
            f"l_max {' '.join(map(str, self.l_max))}"
        )


def write_nep4(path: Path, hyper: NepHyper, species: list[str], seed: int = 0) -> None:
    """A NEP4 model file (GPUMD's nep.txt layout) with random weights."""
    rng = np.random.default_rng(seed)
    n = len(species)
    n_r, n_a = hyper.n_max
    b_r, b_a = hyper.basis
    l3, l4, l5 = hyper.l_max
    dim = (n_r + 1) + (n_a + 1) * (l3 + (l4 > 0) + (l5 > 0))
    lines = [
        f"nep4 {n} {' '.join(species)}",
        f"cutoff {hyper.cutoff[0]:g} {hyper.cutoff[1]:g} 200 100",
        f"n_max {n_r} {n_a}",
        f"basis_size {b_r} {b_a}",
        f"l_max {l3} {l4} {l5}",
        f"ANN {hyper.neurons} 0",
    ]
    network = rng.normal(0.0, 0.1, (dim + 2) * hyper.neurons * n + 1)
    descriptor = rng.normal(0.0, 0.5, n * n * ((n_r + 1) * (b_r + 1) + (n_a + 1) * (b_a + 1)))
    scaler = rng.uniform(0.5, 2.0, dim)
    lines += [f"{v:15.7e}" for v in np.concatenate([network, descriptor, scaler])]
    path.write_text("\n".join(lines) + "\n")


def neighbour_counts(atoms: Atoms, cutoffs: tuple[float, ...]) -> str:
    from ase.neighborlist import neighbor_list

    return " / ".join(f"{len(neighbor_list('i', atoms, rc)) / len(atoms):.0f}" for rc in cutoffs)


def nep_row(python: Path, workdir: Path, hyper: NepHyper, n_atoms: int, steps: int) -> Row:
    write_nep4(workdir / "nep.txt", hyper, SPECIES)
    write(workdir / f"cell{n_atoms}.xyz", cell(n_atoms))
    (workdir / "nep_runner.py").write_text(NEP_RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out, rss = run_measured(
        [str(python), "nep_runner.py", "nep.txt", f"cell{n_atoms}.xyz", str(steps)], workdir, env
    )
    result = json.loads(out.strip().splitlines()[-1])
    rate = n_atoms * steps / result["wall_s"]
    return Row(
        f"NEP_CPU (calorine CPUNEP, {hyper.label()})",
        n_atoms,
        1,
        1,
        steps,
        result["wall_s"],
        result["cpu_s"] / result["wall_s"],
        rate,
        n_atoms * steps / result["cpu_s"],
        rss,
        neighbour_counts(cell(n_atoms), hyper.cutoff),
    )


def sevennet_row(n_atoms: int, steps: int, threads: int) -> Row:
    from superionic.data.labellers import make_labeller  # the project's own SevenNet-0 set-up

    torch.set_num_threads(threads)
    atoms = cell(n_atoms)
    atoms.calc = make_labeller("sevennet").calculator
    atoms.get_forces()
    wall, cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        atoms.positions[0, 0] += 1e-6 * (-1) ** step
        atoms.get_forces()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate = n_atoms * steps / wall
    rss = _rss_mb(os.getpid())  # this process after the run: the model, ASE and torch together
    return Row(
        "SevenNet-0 in ASE (teacher)", n_atoms, 1, threads, steps, wall, cpu / wall / threads, rate,
        n_atoms * steps / cpu, rss, neighbour_counts(atoms, (5.0,)),
    )  # fmt: skip


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'model / path':<58} {'atoms':>6} {'ranks':>5} {'thr':>3} {'wall atom-steps/s':>17} "
        f"{'per core (CPU time)':>19} {'cpu':>5} {'RSS MB':>7}  neighbours"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.name[:58]:<58} {r.atoms:>6} {r.ranks:>5} {r.threads:>3} {r.atom_steps_per_s:>17.0f} "
            f"{r.per_core:>19.0f} {r.cpu_fraction:>5.2f} {r.peak_rss_mb:>7.0f}  {r.neighbours}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--peers-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--quick", action="store_true", help="3200 atoms only, fewer steps, no .pt2")
    parser.add_argument("--skip-sevennet", action="store_true")
    parser.add_argument("--skip-lammps", action="store_true", help="only the Python peers (NEP, SevenNet-0)")
    parser.add_argument("--torch-max-atoms", type=int, default=25600, help="skip .pt/.pt2 rows above this")
    parser.add_argument("--sizes", default="", help="comma-separated atom counts out of 200,3200,25600")
    args = parser.parse_args()

    sizes = [3200] if args.quick else [200, 3200, 25600]
    if args.sizes:
        sizes = [int(n) for n in args.sizes.split(",")]
    steps = {200: 200, 3200: 20 if args.quick else 40, 25600: 5}
    # The kernel and lj/cut are fast enough that the torch paths' step counts time well under a
    # second, where a single neighbour-list rebuild more or less moves the figure by 30 %: they run
    # at least 400 steps at every size (the same share of rebuilds per step, which are serial) and
    # at least about 5 s of kernel work, so the size comparison is fair.
    kernel_atom_steps = 128_000 if args.quick else 1_280_000
    kernel_min_steps = 40 if args.quick else 400

    def timed_steps(n: int, backend: str) -> int:
        return steps[n] if backend == "torch" else max(kernel_min_steps, kernel_atom_steps // n)

    rows: list[Row] = []

    def note(row: Row) -> None:
        rows.append(row)
        print(format_table([row]).splitlines()[-1], flush=True)

    model = build_model(ModelConfig(), SPECIES, seed=0)
    with torch.no_grad():  # a trained model's core repulsion is on; its cost is part of the kernel
        model.core_radius_sq.fill_(1.8**2)
    sprinter_neighbours = neighbour_counts(cell(3200), (model.cutoff,))
    with tempfile.TemporaryDirectory(prefix="peers.") as tmp:
        work = Path(tmp)
        for n in sizes:
            write_lammps_data(work / f"data.{n}", cell(n), SPECIES)
        export_model(model, work / "sprinter.pt")
        suffixes = [".pt"] if args.quick or args.skip_lammps else [".pt", ".pt2"]
        if ".pt2" in suffixes and min(sizes) <= args.torch_max_atoms:
            export_model(model, work / "sprinter.pt2")
        names = " ".join(SPECIES)
        print(format_table([]), flush=True)
        for n in [] if args.skip_lammps else sizes:
            torch_rows = [("torch", s) for s in suffixes] if n <= args.torch_max_atoms else []
            # SevenNet-0 computes in float32, so at 3200 atoms the kernel's float32 is timed too.
            float32_rows = [("native precision float32", ".pt")] if n == 3200 else []
            for backend, suffix in [("native", ".pt"), *float32_rows, *torch_rows]:
                pair = f"pair_style superionic backend {backend}\npair_coeff * * sprinter{suffix} {names}"
                label = {"native": KERNEL, "native precision float32": KERNEL_FLOAT32}.get(
                    backend, f"sprinter {suffix} (libtorch)"
                )
                layouts = [(1, 1)]
                if n == 3200:
                    layouts += [(1, 2), (2, 1)]
                for ranks, threads in layouts:
                    pair_t = pair.replace("superionic ", f"superionic threads {threads} ", 1)
                    row = lammps_row(label, pair_t, work, n, timed_steps(n, backend), ranks, threads)
                    note(Row(**{**asdict(row), "neighbours": sprinter_neighbours}))
                if n == 3200 and backend == "native":
                    pair_1 = pair.replace("superionic ", "superionic threads 1 ", 1)
                    note(two_copies_row(TWO_COPIES, pair_1, work, n, timed_steps(n, backend)))
            note(
                lammps_row(
                    "lj/cut 5.0 (ceiling)",
                    "pair_style lj/cut 5.0\npair_coeff * * 0.01 2.3",
                    work,
                    n,
                    4 * timed_steps(n, "native"),
                )
            )

        python = ensure_peer_venv(args.peers_venv)
        for n in sizes:
            note(nep_row(python, work, NepHyper(), n, steps[n]))
        if 3200 in sizes:
            nep_5 = NepHyper(cutoff=(5.0, 5.0), n_max=(8, 4), l_max=(4, 0, 0))
            note(nep_row(python, work, nep_5, 3200, steps[3200]))
    if not args.skip_sevennet:
        note(sevennet_row(200, 3, threads=1))
        note(sevennet_row(200, 3, threads=2))

    print("\n" + format_table(rows))
    summary = summarise(rows)
    for line in summary["lines"]:
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "peers",
                "units": "atom-steps/s; per_core divides by ranks x threads x CPU fraction",
                "superionic_version": __version__,
                "torch_version": torch.__version__,
                "cpu_count": os.cpu_count(),
                "machine": platform.machine(),
                "python": sys.version.split()[0],
                "load_average": os.getloadavg(),
                "rows": [asdict(r) for r in rows],
                "summary": summary,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


KERNEL = "sprinter native kernel"
KERNEL_FLOAT32 = "sprinter native kernel float32"
TWO_COPIES = "two independent 1-rank kernel runs at once (ceiling)"


def summarise(rows: list[Row]) -> dict:
    def find(name: str, atoms: int, ranks: int = 1, threads: int = 1) -> Row | None:
        """The row of that name (NEP's rows: of that name's beginning) and layout."""
        for r in rows:
            named = r.name == name if name.startswith("sprinter") else r.name.startswith(name)
            if named and (r.atoms, r.ranks, r.threads) == (atoms, ranks, threads):
                return r
        return None

    out: dict = {"lines": []}
    kernel, nep = find(KERNEL, 3200), find("NEP_CPU (calorine CPUNEP, NEP4 6/4", 3200)
    if kernel and nep:
        out["kernel_over_nep_per_core_3200"] = kernel.per_core / nep.per_core
        out["lines"].append(
            f"kernel / NEP_CPU per core, 3200 atoms: {kernel.per_core / nep.per_core:.2f}x (target 2x)"
        )
    teacher = find("SevenNet-0", 200, threads=2)
    # On two cores the kernel may run as 2 ranks x 1 thread or 1 rank x 2 threads; a user picks
    # the faster, so the target is judged on it, and both are stated. SevenNet-0 computes in
    # float32, so the kernel's float32 is compared too.
    for name, suffix in ((KERNEL, ""), (KERNEL_FLOAT32, "_float32")):
        layouts = {"2 ranks": find(name, 3200, ranks=2), "2 threads": find(name, 3200, threads=2)}
        ratios = {
            k: r.atom_steps_per_s / teacher.atom_steps_per_s for k, r in layouts.items() if r and teacher
        }
        if not ratios:
            continue
        best = max(ratios, key=ratios.__getitem__)
        out["kernel_over_sevennet_2cores" + suffix] = ratios[best]
        out["kernel_over_sevennet_2cores_layout" + suffix] = best
        stated = ", ".join(f"{k} {v:.0f}x" for k, v in ratios.items())
        precision = "float32" if suffix else "float64"
        out["lines"].append(
            f"kernel {precision} on 2 cores / SevenNet-0 (float32, 2 threads), wall: {ratios[best]:.0f}x "
            f"({stated}; target 3000x)"
        )
    per_atom = [r.per_core for n in REPEATS if (r := find(KERNEL, n))]
    if len(per_atom) > 1:
        spread = max(per_atom) / min(per_atom) - 1
        out["kernel_size_spread"] = spread
        out["lines"].append(
            f"kernel per-core throughput 200 -> 25600 atoms varies by {100 * spread:.0f}% (target 20%)"
        )
    one, copies = find(KERNEL, 3200), find(TWO_COPIES, 3200, ranks=2)
    if one and copies:
        ceiling = copies.atom_steps_per_s / one.atom_steps_per_s
        out["two_core_ceiling"] = ceiling
        out["lines"].append(
            f"two independent 1-rank runs at once / one alone, wall: {ceiling:.2f}x "
            "(what this machine's two cores give the kernel's work with nothing shared)"
        )
    for ranks, threads in ((2, 1), (1, 2)):
        one, many = find(KERNEL, 3200), find(KERNEL, 3200, ranks, threads)
        if one and many:
            speedup = many.atom_steps_per_s / one.atom_steps_per_s
            out[f"kernel_speedup_{ranks}r{threads}t"] = speedup
            out["lines"].append(
                f"kernel {ranks} ranks x {threads} threads / 1 x 1, wall: {speedup:.2f}x (target 1.8x)"
            )
    return out


if __name__ == "__main__":
    main()
