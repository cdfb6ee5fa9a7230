"""Energy conservation of the deployed model: 2000 NVE steps of 512 atoms on 2 MPI ranks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from superionic.data.examples import DEMO_SPECIES, jittered_lattice
from superionic.md.nve import run_nve


def test_nve_conserves_energy(tmp_path: Path, exported) -> None:
    atoms = jittered_lattice((8, 8, 8), seed=5)
    result = run_nve(exported.path("local"), atoms, DEMO_SPECIES, tmp_path, steps=2000, nprocs=2)
    table = np.genfromtxt(result.thermo_csv, delimiter=",", names=True)
    assert table["Step"][-1] == 2000 and result.atoms == 512
    # A live system: atoms stay hot and keep trading kinetic for potential energy.
    assert table["Temp"].min() > 150.0
    assert np.ptp(table["PotEng"]) > 1e-3
    assert abs(result.drift_eV_per_atom) < 1e-5, f"linear drift {result.drift_eV_per_atom:.2e} eV/atom"
    end_to_end = abs(table["TotEng"][-1] - table["TotEng"][0])
    assert end_to_end < 1e-5, f"end-to-end change {end_to_end:.2e} eV/atom over 2000 steps"
    summary = json.loads((tmp_path / "nve.json").read_text())
    assert summary["drift_eV_per_atom"] == result.drift_eV_per_atom
    assert Path(result.plot_png).stat().st_size > 10_000
