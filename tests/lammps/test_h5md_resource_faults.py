"""fix superionic/h5md when the disk says no: a file-size limit, a full disk, a read-only directory.

Real LAMMPS runs of the analytic reference model (125 atoms, one rank, positions in float64). The
limit is the real one the kernel enforces: ``RLIMIT_FSIZE`` (what ``ulimit -f`` sets) applied to the
running ``lmp`` with ``prlimit`` once its trajectory has a few frames (set before start-up, it would
also cap MPI's shared-memory files, which are larger than the trajectory). The full disk is a tmpfs
of a few hundred KB mounted inside the test (needs root; skipped where mounting is not allowed), the
read-only directory the same tmpfs remounted read-only.

Each fault must stop LAMMPS with one ERROR line that names the file, the step, the fault and the
frames kept; the file must stay readable with exactly those frames, equal bit for bit to the same
steps of an undisturbed run; and once space is back the run continues from its last restart file
with ``append yes`` to a trajectory with every step exactly once.
"""

from __future__ import annotations

import hashlib
import re
import resource
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from superionic.analysis.readers import load_ion_positions, open_trajectory
from superionic.data.examples import jittered_lattice
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import lammps_command, run_lammps

ELEMENTS = ["Li", "Ge", "P", "S"]
STEPS, EVERY, RESTART_EVERY = 1000, 10, 100
# After a restart the runs differ by summation order only (see test_md_resume.py): ulps that MD's
# chaos grows about tenfold per 100 steps, so positions are compared for 300 steps past the seam.
POSITION_TOL = 1e-5  # Å
COMPARED_AFTER_SEAM = 300 // EVERY  # frames
STOP_LINE = re.compile(
    r"^ERROR: fix superionic/h5md: cannot write the frame of step (\d+) to '(.+?)': (.+?); "
    r"the file keeps its (\d+) complete frames? \(steps 0-(\d+)\): (.+?), then continue from the last "
    r"restart file with 'append yes'"
)


def deck(model: Path, trajectory: Path, restarts: Path, mode: str, restart: Path | None = None) -> str:
    start = f"read_restart {restart}" if restart else "read_data structure.data"
    velocity = "" if restart else "velocity all create 1200 8271 loop all"
    return f"""units metal
atom_style atomic
{start}
pair_style superionic
pair_coeff * * {model} {" ".join(ELEMENTS)}
{velocity}
timestep 0.002
fix md all nvt temp 1200 1200 0.2
fix traj all superionic/h5md {EVERY} {trajectory} positions double types {" ".join(ELEMENTS)} {mode} yes
restart {RESTART_EVERY} {restarts}/restart.*.lammps
thermo 500
run {STEPS} upto
"""


def frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Steps and unwrapped positions (stored position + image · box) of every complete frame."""
    with h5py.File(path, "r") as f:
        g = f["particles/all"]
        steps = g["position/step"][:]
        n = len(steps)
        images = g["image/value"][:n].astype(np.float64)
        return steps, g["position/value"][:n] + np.einsum("fni,fij->fnj", images, g["box/edges/value"][:n])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, exported) -> dict:
    """The undisturbed run every faulted one is compared with."""
    root = tmp_path_factory.mktemp("undisturbed")
    write_lammps_data(root / "structure.data", jittered_lattice((5, 5, 5), seed=7), ELEMENTS)
    (root / "restarts").mkdir()
    (root / "in.lmp").write_text(
        deck(exported.path("local"), root / "traj.h5", root / "restarts", "overwrite")
    )
    run_lammps("in.lmp", root, timeout=600)
    steps, positions = frames(root / "traj.h5")
    assert list(steps) == list(range(0, STEPS + 1, EVERY))
    return {"root": root, "steps": steps, "positions": positions, "model": exported.path("local")}


def workdir(tmp: Path, reference: dict) -> Path:
    (tmp / "restarts").mkdir(parents=True)
    (tmp / "structure.data").write_bytes((reference["root"] / "structure.data").read_bytes())
    return tmp


def one_stop_line(output: str) -> re.Match:
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, output[-3000:]
    match = STOP_LINE.match(errors[0])
    assert match, errors[0]
    return match


def check_kept_and_resume(tmp: Path, trajectory: Path, stop: re.Match, reference: dict) -> None:
    """The file holds the frames before the failed step, as the undisturbed run wrote them; the
    run then continues from its newest restart file to the end, every step exactly once."""
    failed_step, kept, last = int(stop.group(1)), int(stop.group(4)), int(stop.group(5))
    assert 0 < kept < len(reference["steps"]), "the fault should land mid-run"
    assert failed_step == last + EVERY == kept * EVERY
    steps, positions = frames(trajectory)
    assert list(steps) == list(range(0, last + 1, EVERY))
    np.testing.assert_array_equal(positions, reference["positions"][:kept])
    ions = load_ion_positions(open_trajectory(trajectory), "Li")
    assert ions.positions.shape[0] == kept
    restarts = sorted((int(p.name.split(".")[1]), p) for p in (tmp / "restarts").glob("restart.*.lammps"))
    resume_step, restart = restarts[-1]
    assert resume_step < failed_step
    (tmp / "resume.lmp").write_text(deck(reference["model"], trajectory, tmp / "restarts", "append", restart))
    run_lammps("resume.lmp", tmp, timeout=600)
    steps, positions = frames(trajectory)
    assert list(steps) == list(reference["steps"]), "gap or duplicate after the resume"
    seam = resume_step // EVERY
    np.testing.assert_array_equal(positions[: seam + 1], reference["positions"][: seam + 1])
    after = slice(seam + 1, seam + 1 + COMPARED_AFTER_SEAM)
    np.testing.assert_allclose(positions[after], reference["positions"][after], rtol=0, atol=POSITION_TOL)
    assert np.all(np.isfinite(positions))


def lmp_processes(launcher: int) -> list[int]:
    """The lmp binary under the console-script launcher (it runs the binary as its child)."""
    try:
        children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [int(pid) for pid in children]


def test_file_size_limit_stops_cleanly_keeps_every_frame_and_resumes(tmp_path: Path, reference: dict) -> None:
    tmp = workdir(tmp_path, reference)
    trajectory = tmp / "traj.h5"
    (tmp / "in.lmp").write_text(deck(reference["model"], trajectory, tmp / "restarts", "overwrite"))
    proc = subprocess.Popen(
        [*lammps_command(1), "-in", "in.lmp"],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not trajectory.exists() or trajectory.stat().st_size < 60e3):
        time.sleep(0.02)
    size = trajectory.stat().st_size
    limit = size + 100_000
    targets = lmp_processes(proc.pid)
    assert targets, "lmp did not start"
    for pid in targets:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0
    stop = one_stop_line(output)
    assert stop.group(2) == str(trajectory)
    assert f"the file-size limit (ulimit -f) of {limit / 1024:.0f} KB" in stop.group(3)
    assert stop.group(6) == "raise the limit"
    assert trajectory.stat().st_size <= limit
    check_kept_and_resume(tmp, trajectory, stop, reference)


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A tmpfs of 160 KB inside the test; skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)


def test_full_disk_stops_cleanly_keeps_every_frame_and_resumes(
    tmp_path: Path, small_disk: Path, reference: dict
) -> None:
    tmp = workdir(tmp_path / "run", reference)
    trajectory = small_disk / "traj.h5"
    (tmp / "in.lmp").write_text(deck(reference["model"], trajectory, tmp / "restarts", "overwrite"))
    run = run_lammps("in.lmp", tmp, timeout=600, check=False)
    assert run.returncode != 0
    stop = one_stop_line(run.output)
    assert stop.group(3).startswith("No space left on device")
    assert stop.group(6) == "free space on its disk"
    remount(small_disk, "size=8m")  # space is back
    check_kept_and_resume(tmp, trajectory, stop, reference)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_directory_is_one_line_and_the_file_there_is_untouched(
    tmp_path: Path, small_disk: Path, reference: dict
) -> None:
    remount(small_disk, "size=8m")
    existing = small_disk / "traj.h5"
    existing.write_bytes((reference["root"] / "traj.h5").read_bytes())
    before = sha256(existing)
    remount(small_disk, "ro")
    tmp = workdir(tmp_path / "run", reference)
    restart = reference["root"] / "restarts" / "restart.1000.lammps"
    cases = {
        "new": (
            deck(reference["model"], small_disk / "new.h5", tmp / "restarts", "overwrite"),
            "cannot create",
        ),
        "append": (
            deck(reference["model"], existing, tmp / "restarts", "append", restart),
            "cannot append to",
        ),
    }
    for name, (text, words) in cases.items():
        (tmp / f"{name}.lmp").write_text(text)
        run = run_lammps(f"{name}.lmp", tmp, timeout=300, check=False)
        errors = [line for line in run.output.splitlines() if line.startswith("ERROR")]
        assert run.returncode != 0 and len(errors) == 1, run.output[-2000:]
        assert words in errors[0] and "Read-only file system" in errors[0], errors[0]
    assert sha256(existing) == before and not (small_disk / "new.h5").exists()
    _, positions = frames(existing)
    np.testing.assert_array_equal(positions, reference["positions"])


def test_an_append_to_a_truncated_file_names_the_truncation(tmp_path: Path, reference: dict) -> None:
    tmp = workdir(tmp_path, reference)
    whole = (reference["root"] / "traj.h5").read_bytes()
    cut = tmp / "cut.h5"
    cut.write_bytes(whole[: len(whole) // 2])
    restart = reference["root"] / "restarts" / "restart.1000.lammps"
    (tmp / "in.lmp").write_text(deck(reference["model"], cut, tmp / "restarts", "append", restart))
    run = run_lammps("in.lmp", tmp, timeout=300, check=False)
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR")]
    assert run.returncode != 0 and len(errors) == 1, run.output[-2000:]
    assert "cannot append to" in errors[0] and "the file is truncated" in errors[0], errors[0]
    assert cut.read_bytes() == whole[: len(whole) // 2]
