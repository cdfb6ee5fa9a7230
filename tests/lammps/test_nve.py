"""Energy conservation of the deployed model: 2000 NVE steps of 512 atoms on 2 MPI ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from superionic.data.examples import jittered_lattice
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps

TEMPLATE = Path(__file__).resolve().parents[2] / "lammps_inputs" / "nve.in"


def test_nve_conserves_energy(tmp_path: Path, exported) -> None:
    write_lammps_data(tmp_path / "structure.data", jittered_lattice((8, 8, 8), seed=5), ["Li", "Ge", "P", "S"])
    run = run_lammps(
        TEMPLATE,
        tmp_path,
        nprocs=2,
        variables={
            "model": str(exported.path("local")),
            "data": "structure.data",
            "elements": "Li Ge P S",
            "T": "300",
            "steps": "2000",
            "dt": "0.001",
        },
    )
    rows = run.thermo()
    assert rows[-1]["Step"] == 2000
    etotal = np.array([row["TotEng"] for row in rows])  # eV/atom (thermo_modify norm yes)
    temperature = np.array([row["Temp"] for row in rows])
    # A live system: atoms move and exchange kinetic and potential energy all run long.
    assert temperature.min() > 300.0
    assert np.ptp([row["PotEng"] for row in rows]) > 1e-3
    steps = np.array([row["Step"] for row in rows])
    slope = np.polyfit(steps, etotal, 1)[0]
    drift_fit = abs(slope * (steps[-1] - steps[0]))
    drift_ends = abs(etotal[-1] - etotal[0])
    assert drift_fit < 1e-5, f"linear drift {drift_fit:.2e} eV/atom over 2000 steps"
    assert drift_ends < 1e-5, f"end-to-end change {drift_ends:.2e} eV/atom over 2000 steps"
