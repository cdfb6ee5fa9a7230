"""Energy conservation of the native sprinter kernel in float32 and float64 over 100 ps of NVE on LGPS.

One sprinter is trained briefly on the committed LGPS frames (or given with ``--model``) and
exported once; ``pair_style superionic precision float32|float64`` then runs the same weights in
either precision. A float64 NVT run equilibrates the cell; both NVE runs start from the very same
positions and velocities (its ``write_data``) and run side by side, one rank each. Reported per
precision: the drift of the total energy (slope of a linear fit against time, meV/atom/ns), the RMS
fluctuation about that fit, the end-to-end change and the mean temperature. The float32 forces are
compared with the float64 ones on the same frames: the float64 run's dumped frames are re-evaluated
in float32 with LAMMPS's ``rerun``.

    nice -n 19 .venv/bin/python bench/nve_float32.py [--model m.pt] [--epochs 20] [--nve-ps 100]

Output (ignored by git): ``bench/results/nve_float32/`` (inputs, logs, thermo CSV, dumps, PNG) and
``bench/results/nve_float32.json``; the figures are written up in ``docs/results/float32_nve.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from superionic import __version__
from superionic.data.materials import build_structure
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsRun, lammps_command, run_lammps

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "LGPS" / "sevennet.extxyz.gz"
ELEMENTS = ["Li", "Ge", "P", "S"]
PRECISIONS = ("float64", "float32")


@dataclass(frozen=True)
class NveFigures:
    precision: str
    atoms: int
    steps: int
    timestep_fs: float
    duration_ps: float
    temperature_mean_K: float
    drift_meV_per_atom_per_ns: float  # slope of the linear fit of E_total(t)
    fluctuation_rms_meV_per_atom: float  # RMS of E_total about that fit
    end_to_end_meV_per_atom: float
    cpu_share: float  # LAMMPS's "% CPU use" / 100
    atom_steps_per_cpu_s: float  # the run's own speed, per core of CPU time


@dataclass(frozen=True)
class ForceFigures:
    frames: int
    atoms: int
    max_abs_dF_eV_per_A: float  # max over frames, atoms and components of |F32 - F64|
    rms_dF_eV_per_A: float  # RMS over all components
    rms_F_eV_per_A: float  # RMS force component, for scale
    max_abs_dE_eV: float  # total energy of a frame, float32 vs float64


def train_model(work: Path, epochs: int, max_minutes: float) -> Path:
    """A short training of the trainer's default sprinter on the committed LGPS frames, exported .pt."""
    from superionic.export import export_model
    from superionic.train.checkpoint import model_from_checkpoint
    from superionic.train.config import config_from_dict
    from superionic.train.trainer import Trainer

    model_path = work / "lgps_sprinter.pt"
    if model_path.exists():
        return model_path
    config = config_from_dict(
        {
            "data": {"train": [str(DATA)], "val_fraction": 0.1},
            "model": {"kind": "sprinter", "cutoff": 5.0, "l_max": 4},
            "training": {
                "epochs": epochs,
                "seed": 0,
                "batch_size": 4,
                "lr": 0.003,
                "max_minutes": max_minutes,
                "threads": 1,
            },
            "output": str(work / "train"),
        },
        "nve_float32",
    )
    trained = Trainer(config, overwrite=True).run()
    model, _, payload = model_from_checkpoint(trained.checkpoint)
    export_model(model, model_path, data_hash=payload["data_hash"])
    return model_path


def equilibrate(
    work: Path, model: Path, supercell: tuple[int, int, int], temperature: float, steps: int
) -> Path:
    """float64 NVT at ``temperature``; its final positions and velocities start both NVE runs."""
    state = work / "equilibrated.data"
    if state.exists():
        return state
    atoms = build_structure("LGPS", seed=0, supercell=supercell)
    write_lammps_data(work / "start.data", atoms, ELEMENTS)
    text = f"""units metal
atom_style atomic
boundary p p p
read_data start.data
pair_style superionic precision float64
pair_coeff * * {model.resolve()} {" ".join(ELEMENTS)}
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
minimize 0.0 1.0e-4 200 200
reset_timestep 0
velocity all create {temperature} 4928459 mom yes rot yes dist gaussian
timestep 0.001
thermo_style custom step time temp pe ke etotal press
thermo 500
fix thermostat all nvt temp {temperature} {temperature} 0.1
run {steps}
write_data equilibrated.data
"""
    (work / "equilibrate.in").write_text(text)
    run = run_lammps(work / "equilibrate.in", work)
    (work / "equilibrate.out").write_text(run.output)
    return state


def nve_input(
    model: Path, precision: str, steps: int, timestep_ps: float, thermo_every: int, dump_every: int
) -> str:
    return f"""units metal
atom_style atomic
boundary p p p
read_data equilibrated.data
pair_style superionic precision {precision}
pair_coeff * * {model.resolve()} {" ".join(ELEMENTS)}
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
timestep {timestep_ps}
thermo_style custom step time temp pe ke etotal
thermo_modify norm yes format float %.15g
thermo {thermo_every}
dump frames all custom {dump_every} nve_{precision}.dump id type x y z fx fy fz
dump_modify frames sort id format float %.17g
fix integrate all nve
run {steps}
"""


def rerun_input(model: Path, precision: str, source: str) -> str:
    return f"""units metal
atom_style atomic
boundary p p p
read_data equilibrated.data
pair_style superionic precision {precision}
pair_coeff * * {model.resolve()} {" ".join(ELEMENTS)}
neighbor 1.0 bin
thermo_style custom step pe
thermo_modify norm no format float %.15g
thermo 1
dump frames all custom 1 rerun_{precision}.dump id type x y z fx fy fz
dump_modify frames sort id format float %.17g
rerun {source} dump x y z box yes
"""


def run_side_by_side(work: Path, inputs: dict[str, str]) -> dict[str, LammpsRun]:
    """Start one single-rank lmp per input at once, so both precisions share the machine equally."""
    procs = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, text in inputs.items():
        (work / f"{name}.in").write_text(text)
        log = (work / f"{name}.out").open("w")
        cmd = [*lammps_command(1), "-in", f"{name}.in"]
        procs[name] = (subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    runs = {}
    for name, (proc, log) in procs.items():
        code = proc.wait()
        log.close()
        run = LammpsRun(code, (work / f"{name}.out").read_text())
        if code != 0 or run.error_line:
            raise RuntimeError(f"{work / (name + '.out')}: {run.error_line or f'lmp exited with {code}'}")
        runs[name] = run
    return runs


def read_dump(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(positions, forces) per frame of a sorted ``dump custom id type x y z fx fy fz``."""
    frames = []
    lines = path.read_text().splitlines()
    k = 0
    while k < len(lines):
        if lines[k].startswith("ITEM: NUMBER OF ATOMS"):
            n = int(lines[k + 1])
            start = next(j for j in range(k, len(lines)) if lines[j].startswith("ITEM: ATOMS")) + 1
            table = np.array([line.split() for line in lines[start : start + n]], dtype=float)
            frames.append((table[:, 2:5], table[:, 5:8]))
            k = start + n
        else:
            k += 1
    return frames


def loop_cpu(output: str) -> tuple[float, float]:
    """(loop seconds, CPU share) of the last run LAMMPS reports."""
    seconds, share = float("nan"), float("nan")
    for line in output.splitlines():
        if line.startswith("Loop time of"):
            seconds = float(line.split()[3])
        if "% CPU use with" in line:
            share = float(line.split("%")[0]) / 100.0
    return seconds, share


def nve_figures(run: LammpsRun, precision: str, atoms: int, timestep_ps: float) -> tuple[NveFigures, dict]:
    rows = run.thermo()
    t = np.array([r["Time"] for r in rows])
    e = np.array([r["TotEng"] for r in rows])
    fit = np.polyfit(t, e, 1)
    steps = int(rows[-1]["Step"] - rows[0]["Step"])
    seconds, share = loop_cpu(run.output)
    figures = NveFigures(
        precision=precision,
        atoms=atoms,
        steps=steps,
        timestep_fs=timestep_ps * 1e3,
        duration_ps=float(t[-1] - t[0]),
        temperature_mean_K=float(np.mean([r["Temp"] for r in rows])),
        drift_meV_per_atom_per_ns=float(fit[0] * 1e6),  # eV/atom/ps -> meV/atom/ns
        fluctuation_rms_meV_per_atom=float(np.sqrt(np.mean((e - np.polyval(fit, t)) ** 2)) * 1e3),
        end_to_end_meV_per_atom=float((e[-1] - e[0]) * 1e3),
        cpu_share=share,
        atom_steps_per_cpu_s=atoms * steps / (seconds * share),
    )
    series = {"time_ps": t.tolist(), "etotal_eV_per_atom": e.tolist(), "temp_K": [r["Temp"] for r in rows]}
    return figures, series


def force_figures(work: Path, rerun: dict[str, LammpsRun]) -> ForceFigures:
    f64 = read_dump(work / "rerun_float64.dump")
    f32 = read_dump(work / "rerun_float32.dump")
    e64 = np.array([r["PotEng"] for r in rerun["rerun_float64"].thermo()])
    e32 = np.array([r["PotEng"] for r in rerun["rerun_float32"].thermo()])
    if len(f64) != len(f32) or len(e64) != len(e32):
        raise RuntimeError("the float32 and float64 reruns evaluated different numbers of frames")
    d = np.concatenate([(b[1] - a[1]).ravel() for a, b in zip(f64, f32, strict=True)])
    f = np.concatenate([a[1].ravel() for a in f64])
    return ForceFigures(
        frames=len(f64),
        atoms=len(f64[0][0]),
        max_abs_dF_eV_per_A=float(np.abs(d).max()),
        rms_dF_eV_per_A=float(np.sqrt(np.mean(d**2))),
        rms_F_eV_per_A=float(np.sqrt(np.mean(f**2))),
        max_abs_dE_eV=float(np.abs(e32 - e64).max()),
    )


def plot(series: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6), sharex=True)
    for precision, s in series.items():
        e = np.asarray(s["etotal_eV_per_atom"])
        top.plot(s["time_ps"], (e - e[0]) * 1e3, label=precision, lw=0.8)
        bottom.plot(s["time_ps"], s["temp_K"], label=precision, lw=0.6)
    top.set_ylabel("E_total − E_total(0)  (meV/atom)")
    top.set_title("LGPS, NVE, native sprinter kernel in float32 and float64")
    top.legend()
    bottom.set_ylabel("T (K)")
    bottom.set_xlabel("time (ps)")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=RESULTS / "nve_float32")
    parser.add_argument(
        "--model", type=Path, default=None, help="an exported sprinter .pt (default: train one)"
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max-train-minutes", type=float, default=15.0)
    parser.add_argument("--supercell", type=int, nargs=3, default=(2, 2, 2), help="of the 50-atom LGPS cell")
    parser.add_argument("--temperature", type=float, default=800.0, help="K, of the NVT equilibration")
    parser.add_argument("--eq-ps", type=float, default=5.0)
    parser.add_argument("--nve-ps", type=float, default=100.0)
    parser.add_argument("--timestep-ps", type=float, default=0.001)
    parser.add_argument("--thermo-every", type=int, default=100)
    parser.add_argument("--force-frames", type=int, default=11, help="frames of the float64 run re-evaluated")
    args = parser.parse_args()

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = args.model.resolve() if args.model else train_model(work, args.epochs, args.max_train_minutes)
    eq_steps = round(args.eq_ps / 0.001)
    equilibrate(work, model, tuple(args.supercell), args.temperature, eq_steps)
    steps = round(args.nve_ps / args.timestep_ps)
    dump_every = max(1, steps // (args.force_frames - 1))
    inputs = {
        f"nve_{p}": nve_input(model, p, steps, args.timestep_ps, args.thermo_every, dump_every)
        for p in PRECISIONS
    }
    runs = run_side_by_side(work, inputs)
    reruns = run_side_by_side(
        work, {f"rerun_{p}": rerun_input(model, p, "nve_float64.dump") for p in PRECISIONS}
    )

    atoms = int(
        next(
            line.split()[0]
            for line in (work / "equilibrated.data").read_text().splitlines()
            if "atoms" in line
        )
    )
    nve, series = {}, {}
    for p in PRECISIONS:
        nve[p], series[p] = nve_figures(runs[f"nve_{p}"], p, atoms, args.timestep_ps)
    forces = force_figures(work, reruns)
    # The rerun in float64 must reproduce the forces the float64 run dumped: otherwise the frames
    # compared are not the frames run.
    dumped = read_dump(work / "nve_float64.dump")
    rerun64 = read_dump(work / "rerun_float64.dump")
    replay = max(float(np.abs(a[1] - b[1]).max()) for a, b in zip(dumped, rerun64, strict=True))
    plot(series, work / "float32_nve.png")

    summary = {
        "superionic_version": __version__,
        "host": platform.node(),
        "model": str(model),
        "training_epochs": None if args.model else args.epochs,
        "temperature_K": args.temperature,
        "equilibration_ps": args.eq_ps,
        "nve": {p: asdict(f) for p, f in nve.items()},
        "forces_float32_vs_float64": asdict(forces),
        "rerun_float64_vs_dumped_max_dF": replay,
        "series": series,
        "wall_s": time.perf_counter() - start,
    }
    (work / "nve_float32.json").write_text(json.dumps(summary, indent=2))
    (RESULTS / "nve_float32.json").write_text(json.dumps(summary, indent=2))

    print(
        f"LGPS {atoms} atoms, NVE {args.nve_ps:g} ps at dt = {args.timestep_ps * 1e3:g} fs "
        f"after {args.eq_ps:g} ps NVT"
    )
    print(
        "| precision | <T> K | drift meV/atom/ns | RMS fluct. meV/atom | end-to-end meV/atom "
        "| atom-steps/CPU-s |"
    )
    print("|---|---|---|---|---|---|")
    for f in nve.values():
        print(
            f"| {f.precision} | {f.temperature_mean_K:.0f} | {f.drift_meV_per_atom_per_ns:+.4f} | "
            f"{f.fluctuation_rms_meV_per_atom:.4f} | {f.end_to_end_meV_per_atom:+.4f} | "
            f"{f.atom_steps_per_cpu_s:,.0f} |"
        )
    print(
        f"forces float32 vs float64 on {forces.frames} frames x {forces.atoms} atoms: max |dF| "
        f"{forces.max_abs_dF_eV_per_A:.2e} eV/A, RMS dF {forces.rms_dF_eV_per_A:.2e} eV/A "
        f"(RMS F {forces.rms_F_eV_per_A:.3f}), max |dE| {forces.max_abs_dE_eV:.2e} eV; "
        f"float64 rerun vs dumped {replay:.1e}"
    )
    print(f"JSON {RESULTS / 'nve_float32.json'}; plot {work / 'float32_nve.png'}")


if __name__ == "__main__":
    main()
