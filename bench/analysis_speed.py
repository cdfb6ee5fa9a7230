"""Wall time and peak memory of `superionic analyze` on a large synthetic H5MD trajectory, beside kinisi.

Writes a random walk of ``--ions`` Li atoms over ``--frames`` frames (known D) in the layout of
``fix superionic/h5md`` (float32 wrapped positions, int32 images, box per frame), then runs, each in
its own process so that peak RSS is the process's own high-water mark (``ru_maxrss``):

* ``superionic analyze FILE --ion Li`` — reader, unwrapping, drift removal, FFT MSD, window rule,
  bootstrap over atoms, collective MSD, plots, JSON: everything a user gets;
* kinisi (``DiffusionAnalyzer.from_universe`` through MDAnalysis's H5MD reader, then
  ``diffusion``), on the same file, stopped after ``--kinisi-timeout`` seconds.

Because kinisi may not finish on the full file, both also run on a ``--subset`` file (fewer frames and
ions, same walk) so that a measured ratio is printed either way. Goals from the issue: full file
< 60 s and < 2 GB for superionic, >= 10x kinisi.

    .venv/bin/python bench/analysis_speed.py [--frames 10000] [--ions 10000] [--kinisi-timeout 600]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from superionic import __version__

TIMESTEP_PS = 0.01  # between frames
D_A2_PER_PS = 0.5
BOX_A = 60.0
CHUNK_FRAMES = 250

KINISI_SCRIPT = """
import sys, time
import h5py, numpy as np, scipp as sc, MDAnalysis as mda
from kinisi.analyze import DiffusionAnalyzer
path, dt = sys.argv[1], float(sys.argv[2])
with h5py.File(path, "r") as f:
    n = f["particles/all/position/value"].shape[1]
u = mda.Universe.empty(n, trajectory=False)
u.add_TopologyAttr("type", ["Li"] * n)
u.load_new(path, format="H5MD", convert_units=False)
analysis = DiffusionAnalyzer.from_universe(
    u, specie="Li", time_step=sc.scalar(dt, unit="ps"), step_skip=sc.scalar(1), progress=False
)
analysis.diffusion(start_dt=sc.scalar(10 * dt, unit="ps"), progress=False)
print("D_cm2_per_s", float(np.median(analysis.D.values)))
"""


@dataclass
class Timing:
    tool: str
    frames: int
    ions: int
    wall_s: float | None  # None: stopped at the timeout
    peak_rss_GiB: float | None
    diffusion_cm2_per_s: float | None
    note: str = ""


def write_walk(path: Path, frames: int, ions: int, seed: int = 0) -> None:
    """Wrapped positions + images of independent Gaussian walkers, written frame-chunk by chunk."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(2.0 * D_A2_PER_PS * TIMESTEP_PS)
    current = rng.uniform(0.0, BOX_A, size=(ions, 3))
    with h5py.File(path, "w") as f:
        f.create_group("h5md").attrs["version"] = np.array([1, 1], dtype=np.int32)
        params = f.create_group("parameters/superionic")
        params.attrs["type_names"] = np.array(["Li"], dtype=object)
        params.attrs["units"] = "metal"
        group = f.create_group("particles/all")
        group.create_dataset("species", data=np.ones(ions, dtype=np.int32))
        group.create_dataset("id", data=np.arange(1, ions + 1, dtype=np.int64))
        box = group.create_group("box")
        box.attrs["dimension"] = np.int32(3)
        box.attrs["boundary"] = np.array(["periodic"] * 3, dtype=object)
        datasets = {}
        for name, shape, dtype in (
            ("position", (frames, ions, 3), np.float32),
            ("image", (frames, ions, 3), np.int32),
            ("box/edges", (frames, 3, 3), np.float64),
        ):
            element = group.create_group(name)
            datasets[name] = element.create_dataset("value", shape=shape, dtype=dtype)
            element.create_dataset("step", data=np.arange(frames, dtype=np.int64))
            element.create_dataset("time", data=np.arange(frames) * TIMESTEP_PS)
        edges = np.eye(3) * BOX_A
        for start in range(0, frames, CHUNK_FRAMES):
            n = min(CHUNK_FRAMES, frames - start)
            steps = rng.normal(0.0, sigma, size=(n, ions, 3))
            if start == 0:
                steps[0] = 0.0
            unwrapped = current + np.cumsum(steps, axis=0)
            current = unwrapped[-1]
            images = np.floor(unwrapped / BOX_A)
            datasets["position"][start : start + n] = (unwrapped - images * BOX_A).astype(np.float32)
            datasets["image"][start : start + n] = images.astype(np.int32)
            datasets["box/edges"][start : start + n] = edges


def run_measured(command: list[str], timeout: float) -> tuple[float | None, float | None, str]:
    """Wall time and the child's own peak RSS (GNU time), or (None, None) at the timeout."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        wrapped = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *command]
        start = time.perf_counter()
        try:
            done = subprocess.run(wrapped, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, None, ""
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr[-2000:]}")
        kib = float(Path(rss.name).read_text().split()[-1])
    return wall, kib / 2**20, done.stdout


def measure(path: Path, frames: int, ions: int, kinisi_timeout: float, workdir: Path) -> list[Timing]:
    results = []
    out = workdir / f"analysis_{frames}x{ions}"
    superionic = [str(Path(sys.executable).parent / "superionic"), "analyze", str(path), "--ion", "Li"]
    wall, rss, stdout = run_measured([*superionic, "--temperature", "1000", "-o", str(out)], 3600)
    report = json.loads((out / "transport_Li.json").read_text())
    value = report["tracer"]["diffusion_cm2_per_s"]
    results.append(Timing("superionic analyze", frames, ions, wall, rss, value))
    if kinisi_timeout <= 0:
        return results
    script = workdir / "kinisi_run.py"
    script.write_text(KINISI_SCRIPT)
    command = [sys.executable, str(script), str(path), str(TIMESTEP_PS)]
    wall, rss, stdout = run_measured(command, kinisi_timeout)
    value = float(stdout.split()[-1]) if wall is not None else None
    note = "" if wall is not None else f"did not finish in {kinisi_timeout:.0f} s (stopped)"
    results.append(Timing("kinisi", frames, ions, wall, rss, value, note))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--ions", type=int, default=10_000)
    parser.add_argument("--subset", type=int, nargs=2, default=(1000, 1000), metavar=("FRAMES", "IONS"))
    parser.add_argument(
        "--kinisi-timeout", type=float, default=600.0, help="s, for the full file; 0 skips kinisi"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--json", type=Path, default=Path("bench/analysis_speed.json"))
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="superionic_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[Timing] = []
    for frames, ions, timeout in (
        (args.subset[0], args.subset[1], 3600.0 if args.kinisi_timeout > 0 else 0.0),
        (args.frames, args.ions, args.kinisi_timeout),
    ):
        path = workdir / f"walk_{frames}x{ions}.h5"
        start = time.perf_counter()
        write_walk(path, frames, ions)
        print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - start:.0f} s")
        rows.extend(measure(path, frames, ions, timeout, workdir))
        path.unlink()

    print(f"\nknown D = {D_A2_PER_PS * 1e-4:.4g} cm²/s; {os.cpu_count()} cores, {platform.processor()}")
    print(f"{'tool':<20}{'frames':>8}{'ions':>8}{'wall (s)':>10}{'peak RSS (GiB)':>16}{'D (cm²/s)':>12}")
    for row in rows:
        wall = f"{row.wall_s:.1f}" if row.wall_s is not None else "> timeout"
        rss = f"{row.peak_rss_GiB:.2f}" if row.peak_rss_GiB is not None else "-"
        d = f"{row.diffusion_cm2_per_s:.4g}" if row.diffusion_cm2_per_s is not None else "-"
        print(f"{row.tool:<20}{row.frames:>8}{row.ions:>8}{wall:>10}{rss:>16}{d:>12}  {row.note}")
    for frames, ions in sorted({(r.frames, r.ions) for r in rows if r.tool == "kinisi"}):
        ours, theirs = (
            next(r for r in rows if r.tool == tool and r.frames == frames)
            for tool in ("superionic analyze", "kinisi")
        )
        if theirs.wall_s is not None:
            print(f"{frames}x{ions}: kinisi / superionic wall time = {theirs.wall_s / ours.wall_s:.1f}")
        else:
            print(f"{frames}x{ions}: kinisi / superionic wall time > {args.kinisi_timeout / ours.wall_s:.1f}")
    args.json.write_text(
        json.dumps({"superionic_version": __version__, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    )
    print(f"numbers in {args.json}")


if __name__ == "__main__":
    main()
