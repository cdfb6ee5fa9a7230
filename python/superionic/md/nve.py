"""An NVE validation run through the real LAMMPS: energy drift, speed, a plot and a JSON summary."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from superionic import plugin_dir
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps

SOURCE_TEMPLATE = Path(__file__).resolve().parents[3] / "lammps_inputs" / "nve.in"


def nve_template() -> Path:
    """The documented template: the checkout's, or the copy installed beside the plugin."""
    if SOURCE_TEMPLATE.exists():
        return SOURCE_TEMPLATE
    return Path(plugin_dir()) / "lammps_inputs" / "nve.in"


@dataclass(frozen=True)
class NveResult:
    atoms: int
    steps: int
    timestep_ps: float
    ranks: int
    temperature_mean_K: float
    drift_eV_per_atom: float  # linear-fit change of total energy over the run
    fluctuation_eV_per_atom: float  # standard deviation of total energy about that fit
    atom_steps_per_s: float
    ns_per_day: float
    wall_s: float
    thermo_csv: str
    plot_png: str


def run_nve(
    model: Path,
    atoms: Atoms,
    elements: Sequence[str],
    workdir: Path,
    steps: int = 2000,
    timestep_ps: float = 0.001,
    temperature: float = 300.0,
    nprocs: int = 1,
    on_step: Callable[[int], None] | None = None,
) -> NveResult:
    workdir.mkdir(parents=True, exist_ok=True)
    write_lammps_data(workdir / "structure.data", atoms, elements)

    def follow(line: str) -> None:
        words = line.split()
        if on_step and words and words[0].isdigit() and len(words) == 7:
            on_step(int(words[0]))

    start = time.perf_counter()
    run = run_lammps(
        nve_template(),
        workdir,
        nprocs=nprocs,
        variables={
            "model": str(model.resolve()),
            "data": "structure.data",
            "elements": " ".join(elements),
            "T": str(temperature),
            "steps": str(steps),
            "dt": str(timestep_ps),
        },
        on_line=follow,
    )
    wall = time.perf_counter() - start
    (workdir / "lammps.out").write_text(run.output)
    rows = run.thermo()
    step = np.array([r["Step"] for r in rows])
    etotal = np.array([r["TotEng"] for r in rows])
    fit = np.polyfit(step, etotal, 1)
    loop = _loop_seconds(run.output)
    thermo_csv = workdir / "thermo.csv"
    header = list(rows[0])
    np.savetxt(
        thermo_csv,
        [[r[k] for k in header] for r in rows],
        delimiter=",",
        header=",".join(header),
        comments="",
    )
    plot = workdir / "nve.png"
    _plot(rows, plot)
    result = NveResult(
        atoms=len(atoms),
        steps=steps,
        timestep_ps=timestep_ps,
        ranks=nprocs,
        temperature_mean_K=float(np.mean([r["Temp"] for r in rows])),
        drift_eV_per_atom=float(fit[0] * (step[-1] - step[0])),
        fluctuation_eV_per_atom=float(np.std(etotal - np.polyval(fit, step))),
        atom_steps_per_s=len(atoms) * steps / loop,
        ns_per_day=steps * timestep_ps * 1e-3 / (loop / 86400.0),
        wall_s=wall,
        thermo_csv=str(thermo_csv),
        plot_png=str(plot),
    )
    (workdir / "nve.json").write_text(json.dumps(asdict(result), indent=2))
    return result


def _loop_seconds(output: str) -> float:
    for line in reversed(output.splitlines()):
        if line.startswith("Loop time of"):
            return float(line.split()[3])
    raise RuntimeError("LAMMPS printed no 'Loop time' line; the run did not complete")


def _plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    time_ps = [r["Time"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    e0 = rows[0]["TotEng"]
    top.plot(time_ps, [(r["TotEng"] - e0) * 1e6 for r in rows], label="total")
    top.set_ylabel("E_total − E_total(0)  (µeV/atom)")
    top.set_title("NVE energy conservation")
    bottom.plot(time_ps, [r["Temp"] for r in rows], color="tab:red")
    bottom.set_ylabel("T (K)")
    bottom.set_xlabel("time (ps)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
