"""Our single-origin MSD of Li against LAMMPS's own compute msd on the same run.

Drift convention: we remove the displacement of the whole system's centre of mass. The run starts
with zero total momentum and Nosé–Hoover conserves it, so that displacement stays at round-off and
LAMMPS's `compute msd ... com no` measures the same thing (asserted, not assumed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from superionic.analysis.diffusion import tracer_diffusion
from superionic.analysis.msd import msd_fft, msd_single_origin
from superionic.analysis.readers import load_ion_positions, open_trajectory
from superionic.data.examples import jittered_lattice
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps


def test_single_origin_msd_equals_compute_msd(tmp_path: Path, exported) -> None:
    write_lammps_data(
        tmp_path / "structure.data", jittered_lattice((6, 6, 6), seed=12), ["Li", "Ge", "P", "S"]
    )
    (tmp_path / "in.lmp").write_text(f"""units metal
atom_style atomic
read_data structure.data
pair_style superionic
pair_coeff * * {exported.path("local")} Li Ge P S
group li type 1
velocity all create 1500 991 mom yes rot yes loop all
timestep 0.002
fix md all nvt temp 1500 1500 0.2
compute msd li msd com no
fix msd_out all ave/time 10 1 10 c_msd[1] c_msd[2] c_msd[3] c_msd[4] file msd.txt format " %.17g"
fix traj all superionic/h5md 10 traj.h5 positions double types Li Ge P S
thermo 100
run 1500
""")
    run_lammps("in.lmp", tmp_path, nprocs=2)
    lammps = np.loadtxt(tmp_path / "msd.txt")  # step, x, y, z, total
    ions = load_ion_positions(open_trajectory(tmp_path / "traj.h5"), "Li")
    ours = msd_single_origin(ions.positions)
    assert ions.unwrapped_by == "images"
    steps = np.rint(ions.times_ps / 0.002).astype(int)
    rows = {int(s): k for k, s in enumerate(lammps[:, 0])}
    matched = np.array([lammps[rows[s], 1:4] for s in steps[1:]])
    np.testing.assert_allclose(ours[1:], matched, rtol=1e-6)
    np.testing.assert_allclose(ours[1:].sum(1), np.array([lammps[rows[s], 4] for s in steps[1:]]), rtol=1e-6)

    # The windowed (all-origin) MSD agrees with the single-origin one within its statistical spread.
    windowed = msd_fft(ions.positions).sum(1)
    single = ours.sum(1)
    lag = len(windowed) // 5
    spread = np.std(
        [
            np.mean(np.sum((ions.positions[k + lag] - ions.positions[k]) ** 2, axis=1))
            for k in range(len(windowed) - lag)
        ]
    )
    assert abs(windowed[lag] - single[lag]) < 3 * spread
    assert tracer_diffusion(ions.positions, ions.times_ps, n_bootstrap=200).diffusion_cm2_per_s > 0
    ions.close()
