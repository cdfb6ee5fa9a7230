"""`superionic md` with a committee: the deviation series LAMMPS writes becomes model_devi.csv row for
row, its values at every dumped frame equal superionic.md.committee.force_deviation of the same
members on that H5MD frame, the JSON's statistics are the CSV's, the progress callback reports what
the file holds, and a devi_stop run is reported as stopped and is not resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from superionic.cli import main
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.committee import force_deviation, load_members
from superionic.md.driver import MdConfig, MdError, run_md
from superionic.models import ReferencePotential

SPECIES = ["Li", "Ge", "P", "S"]
STEPS, EQ_STEPS, DUMP_EVERY, DEVI_EVERY = 200, 100, 20, 10
# Between 0.24 eV/Å (step 0) and the ~1.3 eV/Å these three members reach: a fraction strictly
# between 0 and 1, so the count is tested, not only its ends.
THRESHOLD = 0.9
# float64 members and float64 frames (committee runs store positions in double): the two
# evaluations agree to ~1e-12 eV/Å; the devi file's %.10g keeps 10 digits (1e-10 at 1 eV/Å).
TOL = 1e-8


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 125-atom LGPS-like cell and an exported committee of three analytic potentials."""
    root = tmp_path_factory.mktemp("md_committee")
    atoms = jittered_lattice((5, 5, 5), seed=21)  # 13 Å: more than twice the 5 Å receptive field
    symbols = ["Li"] * 50 + ["Ge"] * 5 + ["P"] * 10 + ["S"] * 60  # charge neutral
    atoms.set_chemical_symbols(list(np.random.default_rng(21).permutation(symbols)))
    write(root / "cell.extxyz", atoms)
    (root / "committee").mkdir()
    for k in range(3):
        export_model(ReferencePotential(SPECIES, seed=k), root / "committee" / f"member_{k}.pt")
    (root / "committee" / "committee.json").write_text(
        json.dumps({"members": [f"member_{k}.pt" for k in range(3)], "driving_member": 0})
    )
    return root / "cell.extxyz", root / "committee" / "committee.json"


def devi_rows(path: Path) -> dict[int, np.ndarray]:
    """The devi file read independently of the package: the last line of each step."""
    rows: dict[int, np.ndarray] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            values = np.array([float(w) for w in line.split()])
            rows[int(values[0])] = values[1:]
    return rows


def frames(trajectory: Path) -> list[tuple[int, Atoms]]:
    with h5py.File(trajectory, "r") as f:
        group = f["particles/all"]
        names = list(f["parameters/superionic"].attrs["type_names"])
        symbols = [names[t - 1] for t in group["species"][:]]
        positions = group["position/value"]
        assert positions.dtype == np.float64
        return [
            (int(step), Atoms(symbols, positions=positions[k], cell=group["box/edges/value"][k], pbc=True))
            for k, step in enumerate(group["position/step"][:])
        ]


# One 200-step committee run of 125 atoms (3 members): ~10 s on the 2-core machine.
def test_committee_md_series_equals_python_deviation(tmp_path: Path, setup) -> None:
    structure, committee = setup
    seen = []
    config = MdConfig(
        structure=str(structure),
        model=str(committee),
        temperatures=[1200.0],
        steps=STEPS,
        eq_steps=EQ_STEPS,
        dump_every=DUMP_EVERY,
        restart_every=100,
        seed=4711,
        output=str(tmp_path / "md"),
        devi_every=DEVI_EVERY,
        devi_threshold=THRESHOLD,
    )
    summary = run_md(config, on_devi=lambda t, d: seen.append(d))
    directory = tmp_path / "md" / "T1200K"
    raw = devi_rows(directory / "model_devi.out")
    table = np.genfromtxt(directory / "model_devi.csv", delimiter=",", names=True)
    # Every deviation step, the first included, once, in order, and the CSV is the file row for row.
    assert table["step"].astype(int).tolist() == list(range(0, STEPS + 1, DEVI_EVERY)) == sorted(raw)
    for row in table:
        np.testing.assert_array_equal(
            [row["max_devi_f"], row["min_devi_f"], row["avg_devi_f"], row["devi_e"]], raw[int(row["step"])]
        )
    # At every dumped frame, LAMMPS's deviation is the Python evaluation of the same members.
    members = load_members([committee.parent / f"member_{k}.pt" for k in range(3)])
    dumped = frames(directory / "traj.h5")
    assert [s for s, _ in dumped] == list(range(EQ_STEPS, STEPS + 1, DUMP_EVERY))
    worst = 0.0
    for step, atoms in dumped:
        python = force_deviation(members, atoms)
        lammps = raw[step]
        expected = [python.max, python.min, python.mean, python.devi_e]
        np.testing.assert_allclose(lammps, expected, rtol=0, atol=TOL, err_msg=f"step {step}")
        worst = max(worst, float(np.abs(lammps - expected).max()))
    print(f"\n[committee md] {len(dumped)} frames, largest |LAMMPS - Python| {worst:.2e}")

    # The JSON's statistics are the CSV's.
    block = summary.runs[0].committee
    assert block == json.loads((directory / "run.json").read_text())["committee"]
    assert json.loads((tmp_path / "md" / "md_summary.json").read_text())["runs"][0]["committee"] == block
    fraction = float(np.mean(table["max_devi_f"] > THRESHOLD))
    assert 0 < fraction < 1
    assert block["fraction_above_threshold"] == fraction and block["deviation_steps"] == len(table)
    assert block["max_devi_f_max"] == table["max_devi_f"].max()
    assert block["max_devi_f_mean"] == pytest.approx(table["max_devi_f"].mean(), rel=1e-12)
    assert block["stopped_at_step"] is None and block["series"] == "model_devi.csv"
    # ... and under "production", the same statistics over the trajectory's steps only.
    production = table[table["step"] >= EQ_STEPS]
    part = block["production"]
    assert part["from_step"] == EQ_STEPS and part["deviation_steps"] == len(production) < len(table)
    assert part["fraction_above_threshold"] == float(np.mean(production["max_devi_f"] > THRESHOLD))
    assert part["max_devi_f_max"] == production["max_devi_f"].max()
    # The progress line was fed from the file while LAMMPS wrote it.
    assert len(seen) >= 2 and seen[-1].step == STEPS and seen[-1].fraction_above_threshold == fraction
    for d in seen:
        assert d.latest_max_devi_f == raw[d.step][0]


# A committee run on 2 ranks (the maximum, hence the stop, is global) that stops at step 10, then a
# refused rerun: ~10 s.
def test_devi_stop_is_reported_as_stopped_and_not_resumed(tmp_path: Path, setup, capsys) -> None:
    structure, committee = setup
    args = [
        "md", str(structure), str(committee), "-T", "1200", "--steps", "200", "--eq-steps", "0",
        "--dump-every", "10", "--restart-every", "100", "--devi-every", "10", "--devi-stop", "0.6",
        "--np", "2", "-o", str(tmp_path / "md"),
    ]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    directory = tmp_path / "md" / "T1200K"
    block = json.loads((directory / "run.json").read_text())["committee"]
    rows = devi_rows(directory / "model_devi.out")
    # The first step above 0.6 eV/Å is where it stopped (step 0 is at 0.24 eV/Å).
    first = min(s for s, v in rows.items() if v[0] > 0.6)
    assert block["stopped_at_step"] == first == max(rows) and first > 0
    assert f"STOPPED by --devi-stop 0.6 at step {first}" in out
    # The trajectory is complete and readable up to the stop; the restart the input writes exists.
    assert [s for s, _ in frames(directory / "traj.h5")] == list(range(0, first + 1, 10))
    assert (directory / "restart.final.lammps").stat().st_size > 0
    # Not resumed, not taken for finished: one line saying why and what to do.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"was stopped by devi_stop at step {first}" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1


def test_committee_requests_that_cannot_run_are_one_line(tmp_path: Path, setup, capsys) -> None:
    structure, committee = setup
    base = ["md", str(structure), "-T", "1200", "--steps", "200", "--eq-steps", "100", "-o", str(tmp_path)]
    cases = [
        # dump frames between deviation steps would carry no deviation
        (
            [str(committee), "--dump-every", "25", "--devi-every", "10"],
            "--dump-every 25 is not a multiple of --devi-every 10",
        ),
        ([str(committee.parent / "member_0.pt"), "--devi-stop", "0.5"], "--devi-stop need a committee"),
        (
            [str(committee.parent / "member_0.pt"), "--committee", str(committee.parent / "member_0.pt")],
            "twice",
        ),
    ]
    export_model(ReferencePotential(["Li", "P", "S", "Ge"]), tmp_path / "other.pt")
    cases.append(
        (
            [str(committee.parent / "member_0.pt"), "--committee", str(tmp_path / "other.pt")],
            "other.pt has species ['Li', 'P', 'S', 'Ge'] but member 0",
        )
    )
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "committee.json").write_text(
        json.dumps({"members": [str(committee.parent / "member_0.pt"), "gone.pt"]})
    )
    cases.append(([str(tmp_path / "broken")], "committee.json: members[1] = gone.pt: no such file"))
    for extra, message in cases:
        assert main([*base[:2], extra[0], *base[2:], *extra[1:]]) == 2, extra
        err = capsys.readouterr().err
        assert message in err, err
        assert len(err.strip().splitlines()) == 1
    with pytest.raises(MdError, match="--devi-every 0: must be an integer >= 1"):
        run_md(
            MdConfig(str(structure), str(committee), [1200.0], steps=200, eq_steps=100, devi_every=0,
                     output=str(tmp_path / "x"))
        )  # fmt: skip


@pytest.mark.slow  # a 400-step committee run killed after step 200 and resumed: ~50 s
def test_killed_committee_run_resumes_one_series(tmp_path: Path, setup) -> None:
    structure, committee = setup
    args = [
        sys.executable, "-m", "superionic.cli", "md", str(structure), str(committee), "-T", "1200",
        "--steps", "400", "--eq-steps", "100", "--dump-every", "20", "--restart-every", "100",
        "--devi-every", "10", "--devi-threshold", str(THRESHOLD), "-o", str(tmp_path / "md"),
    ]  # fmt: skip
    directory = tmp_path / "md" / "T1200K"
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while (
        time.monotonic() < deadline
        and proc.poll() is None
        and not (directory / "restart.200.lammps").exists()
    ):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # the killed rank releases its HDF5 lock
    assert not (directory / "restart.final.lammps").exists(), "the kill should land mid-run"
    before = devi_rows(directory / "model_devi.out")
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    assert "resumed from step" in done.stdout
    lines = [ln for ln in (directory / "model_devi.out").read_text().splitlines() if not ln.startswith("#")]
    raw = devi_rows(directory / "model_devi.out")
    assert len(lines) > len(raw), "the resumed run repeats steps from its restart on"
    assert set(before) <= set(raw)
    table = np.genfromtxt(directory / "model_devi.csv", delimiter=",", names=True)
    assert table["step"].astype(int).tolist() == list(range(0, 401, 10))
    block = json.loads((directory / "run.json").read_text())["committee"]
    assert block["deviation_steps"] == 41
    assert block["fraction_above_threshold"] == float(np.mean(table["max_devi_f"] > THRESHOLD))
    # The series still belongs to the trajectory: frames after the seam match the Python deviation.
    members = load_members([committee.parent / f"member_{k}.pt" for k in range(3)])
    for step, atoms in frames(directory / "traj.h5")[-3:]:
        python = force_deviation(members, atoms)
        np.testing.assert_allclose(raw[step], [python.max, python.min, python.mean, python.devi_e], atol=TOL)
