"""pair_style superionic committee K: the force deviation LAMMPS reports (devi_file and compute pair)
equals an independent Python evaluation of the same members on the frames LAMMPS integrated, on 1
and 2 ranks; member 0 alone drives the trajectory; mismatched members are refused in one line; and
devi_stop ends the run cleanly (readable H5MD trajectory, a restart that reads back).

The Python reference loads each exported member with superionic.calculator (its own neighbour list,
libtorch autograd), while LAMMPS runs the members through the native kernel and folds ghost forces
by reverse communication: two independent evaluations of the same formula.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms

from superionic.calculator import SuperionicCalculator
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps
from superionic.models.sprinter import Sprinter
from tests.unit.test_native_kernel import random_sprinter

ELEMENTS = ["Li", "Ge", "P"]
K = 3
STEPS = 10
# float64 throughout; the deviation of forces of order 1-10 eV/A agrees to ~1e-12 between the two
# evaluations, and devi_file's %.10g keeps ten significant digits (5e-10 at 10 eV/A): 1e-8 is the
# issue's bar and holds with room on both counts.
TOL = 1e-8
NVT_IN = Path(__file__).resolve().parents[2] / "lammps_inputs" / "nvt.in"


def cell() -> Atoms:
    # 125 atoms in a tilted 13 A cell: wider than twice the 4.5 A cutoff, so the Python graph and
    # LAMMPS's ghosts describe the same periodic crystal.
    return jittered_lattice((5, 5, 5), jitter=0.1, tilt=(0.6, -0.4, 0.3), species=ELEMENTS, seed=21)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("committee")
    paths = {}
    for k in range(K):
        paths[f"m{k}"] = root / f"member_{k}.pt"
        export_model(random_sprinter(2, len(ELEMENTS), seed=11 + k), paths[f"m{k}"])
    # Two species only, and a shorter cutoff: members that must be refused.
    paths["species"] = root / "two_species.pt"
    export_model(random_sprinter(2, 2, seed=20), paths["species"])
    paths["cutoff"] = root / "short_cutoff.pt"
    export_model(
        Sprinter(ELEMENTS, cutoff=4.0, n_basis=7, l_max=2, hidden=(12, 10), seed=21), paths["cutoff"]
    )
    return paths


def md_input(pair_style: str, files: list[Path], steps: int = STEPS, committee: bool = True) -> str:
    thermo = "step pe c_devi[1] c_devi[2] c_devi[3] c_devi[4]" if committee else "step pe"
    return f"""units metal
atom_style atomic
atom_modify map yes
boundary p p p
read_data structure.data
pair_style {pair_style}
pair_coeff * * {" ".join(str(f) for f in files)} {" ".join(ELEMENTS)}
{"compute devi all pair superionic" if committee else ""}
velocity all create 900 4928 mom yes rot yes dist gaussian loop all
timestep 0.001
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
fix md all nve
thermo_style custom {thermo}
thermo_modify format float %.17g
thermo 1
dump pos all custom 1 pos.dump id x y z
dump_modify pos format float %.17g sort id
run {steps}
"""


def run_md(workdir: Path, text: str, nprocs: int, check: bool = True):
    workdir.mkdir(parents=True, exist_ok=True)
    write_lammps_data(workdir / "structure.data", cell(), ELEMENTS)
    (workdir / "in.lmp").write_text(text)
    return run_lammps("in.lmp", workdir, nprocs=nprocs, check=check)


def read_positions(path: Path) -> dict[int, np.ndarray]:
    frames = {}
    for block in path.read_text().split("ITEM: TIMESTEP\n")[1:]:
        lines = block.splitlines()
        n = int(lines[2])
        rows = np.array([[float(w) for w in line.split()] for line in lines[8 : 8 + n]])
        frames[int(lines[0])] = rows[np.argsort(rows[:, 0]), 1:4]
    return frames


def read_devi(path: Path) -> dict[int, np.ndarray]:
    rows = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        words = line.split()
        rows[int(words[0])] = np.array([float(w) for w in words[1:]])
    return rows


def thermo_row(output: str, step: int) -> dict[str, float]:
    """The thermo row of ``step``, also when a log line (the devi_stop message) interrupts the block."""
    header: list[str] = []
    for line in output.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            header = words
        elif header and len(words) == len(header) and words[0] == str(step):
            return dict(zip(header, map(float, words), strict=True))
    raise AssertionError(f"no thermo row for step {step}")


@functools.cache
def calculator(path: Path) -> SuperionicCalculator:
    return SuperionicCalculator(path)


def python_deviation(files: list[Path], atoms: Atoms) -> np.ndarray:
    """[max, min, avg, devi_e] from each member's forces and energy, by the documented formula."""
    forces, energies = [], []
    for path in files:
        atoms.calc = calculator(path)
        forces.append(atoms.get_forces())
        energies.append(atoms.get_potential_energy())
    f = np.array(forces)  # [K, N, 3]
    sigma = np.sqrt(((f - f.mean(axis=0)) ** 2).sum(axis=2).mean(axis=0))
    return np.array([sigma.max(), sigma.min(), sigma.mean(), np.std(energies) / len(atoms)])


@pytest.mark.parametrize(
    ("devi_every", "nprocs", "backend"),
    [(1, 1, "auto"), (1, 2, "auto"), (5, 1, "torch"), (5, 2, "auto")],
)
def test_deviation_equals_python(tmp_path: Path, models, devi_every: int, nprocs: int, backend: str) -> None:
    files = [models[f"m{k}"] for k in range(K)]
    style = f"superionic threads 1 backend {backend} committee {K} devi_every {devi_every} devi_file devi.out"
    run = run_md(tmp_path, md_input(style, files), nprocs)
    assert "member 0 drives the dynamics" in run.output
    # Every member runs through the path the backend keyword picks: the native kernel or libtorch.
    path_name = "torch threads per rank" if backend == "torch" else "native sprinter kernel"
    assert sum(path_name in line for line in run.output.splitlines() if "member_" in line) == K
    devi = read_devi(tmp_path / "devi.out")
    assert (tmp_path / "devi.out").read_text().startswith("# step max_devi_f min_devi_f avg_devi_f devi_e")
    assert sorted(devi) == list(range(0, STEPS + 1, devi_every))

    positions = read_positions(tmp_path / "pos.dump")
    reference = cell()
    expected = {}
    for step in devi:
        atoms = reference.copy()
        atoms.positions = positions[step]
        expected[step] = python_deviation(files, atoms)
        np.testing.assert_allclose(devi[step], expected[step], rtol=0, atol=TOL, err_msg=f"step {step}")
    assert expected[0][0] > 10 * TOL, "members this different must disagree visibly"

    # compute pair: [1] max, [2] avg, [3] min, [4] devi_e, from the latest deviation step.
    rows = run.thermo()
    assert [int(r["Step"]) for r in rows] == list(range(STEPS + 1))
    for row in rows:
        latest = expected[int(row["Step"]) // devi_every * devi_every]
        got = np.array([row[f"c_devi[{q}]"] for q in range(1, 5)])
        np.testing.assert_allclose(got, latest[[0, 2, 1, 3]], rtol=0, atol=TOL, err_msg=f"step {row['Step']}")


@pytest.mark.slow
def test_member_zero_drives_the_trajectory(tmp_path: Path, models) -> None:
    files = [models[f"m{k}"] for k in range(K)]
    committee = run_md(tmp_path / "committee", md_input(f"superionic committee {K} devi_every 1", files), 2)
    single = run_md(tmp_path / "single", md_input("superionic", files[:1], committee=False), 2)
    a = read_positions(tmp_path / "committee" / "pos.dump")[STEPS]
    b = read_positions(tmp_path / "single" / "pos.dump")[STEPS]
    # The same arithmetic on the same rank decomposition: equal to round-off of the dump's 17 digits.
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    pe_committee = [r["PotEng"] for r in committee.thermo()]
    pe_single = [r["PotEng"] for r in single.thermo()]
    np.testing.assert_allclose(pe_committee, pe_single, rtol=1e-12)
    # The default devi_file, written where LAMMPS runs.
    assert len(read_devi(tmp_path / "committee" / "model_devi.out")) == STEPS + 1


@pytest.mark.parametrize(("odd", "field"), [("species", "species"), ("cutoff", "cutoff")])
def test_mismatched_members_are_refused(tmp_path: Path, models, odd: str, field: str) -> None:
    files = [models["m0"], models[odd], models["m1"]]
    run = run_md(tmp_path, md_input(f"superionic committee {K}", files), 1, check=False)
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR")]
    assert run.returncode != 0
    assert len(errors) == 1, run.output[-2000:]
    assert field in errors[0] and str(models[odd]) in errors[0] and str(models["m0"]) in errors[0]
    assert "member 1" in errors[0]


def test_wrong_number_of_files_is_refused(tmp_path: Path, models) -> None:
    files = [models["m0"], models["m1"]]
    run = run_md(tmp_path, md_input(f"superionic committee {K}", files), 1, check=False)
    assert run.returncode != 0
    assert "committee 3, so expected '* *', 3 model files and 3 element names" in (run.error_line or "")


def nvt(workdir: Path, models, pair_args: str, nprocs: int = 2):
    """lammps_inputs/nvt.in with a committee, all 30 steps in the production run (which has the H5MD fix)."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_lammps_data(workdir / "structure.data", cell(), ELEMENTS)
    variables = {
        "model": " ".join(str(models[f"m{k}"]) for k in range(K)),
        "data": "structure.data",
        "elements": " ".join(ELEMENTS),
        "T": "900",
        "eq_steps": "0",
        "steps": "30",
        "dt": "0.001",
        "dump_every": "2",
        "thermo_every": "2",
        "restart_every": "10",
        "threads": "1",
        "committee": "1",
        "pair_args": f"committee {K} devi_every 2 {pair_args}",
    }
    return run_lammps(NVT_IN, workdir, nprocs=nprocs, variables=variables)


@pytest.mark.slow
def test_devi_stop_ends_the_run_cleanly(tmp_path: Path, models) -> None:
    free = nvt(tmp_path / "free", models, "devi_warn 1e-6")
    series = read_devi(tmp_path / "free" / "model_devi.out")
    assert sorted(series) == list(range(0, 31, 2))
    # nvt.in prints the committee's max and mean deviation in thermo: the devi_file's values.
    for row in free.thermo():
        step = int(row["Step"])
        assert row["c_devi[1]"] == pytest.approx(series[step][0], rel=1e-9)  # thermo's %.10g
        assert row["c_devi[2]"] == pytest.approx(series[step][2], rel=1e-9)
    # devi_warn: all 16 deviation steps are above 1e-6; 10 are printed, then one line says the rest
    # are counted, and the end-of-run line has the count.
    warnings = [line for line in free.output.splitlines() if "> devi_warn" in line]
    assert len(warnings) == 10
    assert free.output.count("further ones are counted") == 1
    assert "committee deviation evaluated on 16 steps" in free.output
    assert "16 of them above devi_warn 1e-06 eV/A" in free.output

    # The threshold halfway between the running maximum and the last later step that exceeds it:
    # the first deviation step above it is that step, so the run must stop exactly there.
    steps = sorted(series)
    stop_step, below = None, 0.0
    for k, step in enumerate(steps[1:], start=1):
        before = max(series[s][0] for s in steps[:k])
        if series[step][0] > before:
            stop_step, below = step, before
    assert stop_step is not None, "the free run's deviation never rose above its earlier maximum"
    threshold = float(0.5 * (below + series[stop_step][0]))

    run = nvt(tmp_path / "stop", models, f"devi_stop {threshold!r}")
    assert run.returncode == 0
    stopped = read_devi(tmp_path / "stop" / "model_devi.out")
    assert max(stopped) == stop_step
    for step in stopped:  # the same trajectory up to the stop (same ranks, same arithmetic)
        np.testing.assert_allclose(stopped[step], series[step], rtol=1e-12)
    line = re.search(
        r"pair superionic: max force deviation (\S+) eV/A > devi_stop (\S+) at step (\d+); stopping the run",
        run.output,
    )
    assert line is not None and int(line.group(3)) == stop_step
    assert run.output.count("; stopping the run") == 1
    # The run loop ended with the stop step: LAMMPS's own count of the steps it ran.
    loops = re.findall(r"^Loop time of \S+ on \d+ procs for (\d+) steps", run.output, re.MULTILINE)
    assert [int(n) for n in loops] == [stop_step]
    final = thermo_row(run.output, stop_step)

    with h5py.File(tmp_path / "stop" / "traj.h5", "r") as f:
        frames = f["particles/all/position/step"][:]
        assert len(frames) >= 1 and frames[-1] <= stop_step
        assert np.isfinite(f["particles/all/position/value"][len(frames) - 1]).all()

    restart = tmp_path / "stop" / "restart.final.lammps"
    assert restart.exists()
    (tmp_path / "stop" / "reread.in").write_text(
        f"""units metal
atom_style atomic
read_restart restart.final.lammps
pair_style superionic threads 1
pair_coeff * * {models["m0"]} {" ".join(ELEMENTS)}
thermo_style custom step pe
thermo_modify format float %.10g
run 0
"""
    )
    reread = run_lammps("reread.in", tmp_path / "stop", nprocs=1)
    assert int(reread.thermo()[-1]["Step"]) == stop_step
    # The restart holds the stop step's positions: member 0's energy there is the stopped run's.
    assert reread.thermo()[-1]["PotEng"] == pytest.approx(final["PotEng"], rel=1e-9)
