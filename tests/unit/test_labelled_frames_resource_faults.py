"""`superionic data generate` when the disk says no (issue 25, part 6): a file-size limit or a full
disk while labelled frames are written, and a read-only output directory.

Real runs of the SevenNet-0 labeller on the 30-atom Li3YCl6 cell. The limit is the kernel's
``RLIMIT_FSIZE`` set with ``prlimit`` on the running command once its partial file holds a frame
(Python ignores SIGXFSZ, so the next append fails with EFBIG); the full disk and the read-only
directory are a tmpfs mounted inside the test (root only; skipped elsewhere). Each must end in one
line naming the file, the reason and the fix; the frames already written must stay readable; and
the same command, once the fault is gone, must resume and finish with those frames unchanged.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import iread, read

SUPERIONIC = [sys.executable, "-m", "superionic.cli"]
FRAMES = 6


def command(output: Path) -> list[str]:
    return [
        *SUPERIONIC, "data", "generate", "LYC", "--frames", str(FRAMES), "--temperatures", "300",
        "--sample-every", "2", "--equilibration-steps", "2", "--threads", "1", "-o", str(output),
    ]  # fmt: skip


def complete_frames(path: Path) -> list[Atoms]:
    """The frames of an extxyz file up to one cut off mid-write, read without touching the file."""
    frames: list[Atoms] = []
    try:
        for atoms in iread(path, index=":", format="extxyz"):
            frames.append(atoms)
    except Exception:  # the frame the fault cut off; ase raises several types for it
        pass
    return frames


def partial_of(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def run_until_first_frame(output: Path) -> subprocess.Popen:
    proc = subprocess.Popen(command(output), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = partial_of(output)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and len(complete_frames(partial)) >= 1:
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no first frame: {proc.stderr.read() if proc.stderr else ''}")


def check_one_line_then_resume(proc: subprocess.Popen, output: Path, words: tuple[str, ...]) -> None:
    _, err = proc.communicate(timeout=600)
    lines = [line for line in err.splitlines() if line.startswith("superionic:")]
    assert proc.returncode == 2 and len(lines) == 1, err[-3000:]
    assert "Traceback" not in err and "internal error" not in err
    assert lines[0].startswith(f"superionic: {partial_of(output)}: cannot write the labelled frames (")
    assert "every complete frame written so far is kept" in lines[0] and "(it resumes)" in lines[0]
    missing = [w for w in words if w not in lines[0]]
    assert not missing, f"message lacks {missing}: {lines[0]}"
    kept = complete_frames(partial_of(output))
    assert 1 <= len(kept) < FRAMES, "the fault should land mid-run"
    return_kept = [(a.positions.copy(), a.get_potential_energy()) for a in kept]
    resumed = subprocess.run(command(output), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = read(output, ":")
    assert len(done) == FRAMES
    for (positions, energy), frame in zip(return_kept, done, strict=False):
        np.testing.assert_array_equal(frame.positions, positions)
        assert frame.get_potential_energy() == energy


def test_file_size_limit_while_frames_are_written(tmp_path: Path) -> None:
    output = tmp_path / "lyc.extxyz.gz"
    proc = run_until_first_frame(output)
    size = partial_of(output).stat().st_size
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (size + 1000, resource.RLIM_INFINITY))
    check_one_line_then_resume(proc, output, ("File too large", "raise the file-size limit (ulimit -f)"))


@pytest.fixture()
def tmpfs(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_while_frames_are_written(tmpfs: Path) -> None:
    output = tmpfs / "lyc.extxyz.gz"
    proc = run_until_first_frame(output)
    used = sum(p.stat().st_blocks * 512 for p in tmpfs.rglob("*") if p.is_file())
    subprocess.run(["mount", "-o", f"remount,size={used + 4096}", str(tmpfs)], check=True)
    try:
        _, err = proc.communicate(timeout=600)  # the run stops by itself at the next frame
    finally:  # space is back
        subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs)], check=True)
    lines = [line for line in err.splitlines() if line.startswith("superionic:")]
    assert proc.returncode == 2 and len(lines) == 1, err[-3000:]
    assert "No space left on device" in lines[0] and "free space on its disk" in lines[0], lines[0]
    kept = complete_frames(partial_of(output))
    assert 1 <= len(kept) < FRAMES
    resumed = subprocess.run(command(output), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = read(output, ":")
    assert len(done) == FRAMES
    for before, after in zip(kept, done, strict=False):
        np.testing.assert_array_equal(before.positions, after.positions)


def test_read_only_output_directory_is_refused_before_the_labeller_loads(tmpfs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    output = tmpfs / "new" / "lyc.extxyz.gz"
    started = time.monotonic()
    run = subprocess.run(command(output), capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stderr.splitlines() if line.startswith("superionic:")]
    assert run.returncode == 2 and len(lines) == 1, run.stderr[-3000:]
    expected = f"superionic: {output}: cannot write in {tmpfs} (Read-only file system)"
    assert lines[0] == f"{expected}; give -o in a writable directory"
    assert time.monotonic() - started < 60, "refused only after the labeller ran"
    assert not any(tmpfs.iterdir())
