"""Checkpoints when the disk says no: a file-size limit or a full disk while `superionic train`
writes one (issue 25, part 6).

The limit is the kernel's own ``RLIMIT_FSIZE`` (what ``ulimit -f`` sets), applied with ``prlimit`` to
the running trainer once its first checkpoint exists (Python ignores SIGXFSZ, so the next write
fails with EFBIG); the full disk is a tmpfs mounted inside the test and shrunk to less than one more
checkpoint once the first is written (root only; skipped elsewhere). Either way the run must stop
with one line naming the checkpoint, the system's reason and the fix; the checkpoint on disk must be
the last complete one (it loads, and no temporary file is left); and `--resume` once the limit is
gone must finish with weights equal, bit for bit, to those of a run that never met the fault.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ase.io import write

from superionic.train.checkpoint import load_checkpoint
from tests.unit.test_training import labelled_frames, write_config

SUPERIONIC = [sys.executable, "-m", "superionic.cli"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reference.extxyz"
    write(path, labelled_frames(24))
    return path


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> dict:
    root = tmp_path_factory.mktemp("straight")
    config = write_config(root, dataset, checkpoint_every=1)
    subprocess.run([*SUPERIONIC, "train", str(config)], check=True, capture_output=True, timeout=600)
    return torch.load(root / "run" / "last.ckpt", weights_only=True)


def start(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*SUPERIONIC, "train", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    assert path.exists() and proc.poll() is None, "the run ended before its first checkpoint"


def check_stop_and_resume(
    proc: subprocess.Popen, config: Path, words: tuple[str, ...], straight: dict
) -> None:
    _, err = proc.communicate(timeout=600)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2, err
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    checkpoint = config.parent / "run" / "last.ckpt"
    assert lines[0].startswith(f"superionic: {checkpoint}: cannot write the checkpoint (")
    assert "the previous last.ckpt is intact" in lines[0] and "then rerun with --resume" in lines[0]
    missing = [w for w in words if w not in lines[0]]
    assert not missing, f"message lacks {missing}: {lines[0]}"
    kept = load_checkpoint(checkpoint)  # the last complete one: it loads
    assert 0 < kept["state"]["global_step"] < straight["state"]["global_step"]
    assert not list(checkpoint.parent.glob("*.tmp")), "a temporary checkpoint was left behind"


def resume_equals_straight(config: Path, straight: dict) -> None:
    resumed = subprocess.run(
        [*SUPERIONIC, "train", str(config), "--resume"], capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = torch.load(config.parent / "run" / "last.ckpt", weights_only=True)
    assert done["state"]["global_step"] == straight["state"]["global_step"]
    for part in ("model", "ema"):
        for name, tensor in straight[part].items():
            assert torch.equal(tensor, done[part][name]), f"{part}.{name} differs after the resume"


def test_file_size_limit_keeps_the_last_checkpoint_and_resumes(
    tmp_path: Path, dataset: Path, straight: dict
) -> None:
    config = write_config(tmp_path, dataset, checkpoint_every=1)
    checkpoint = tmp_path / "run" / "last.ckpt"
    proc = start(config)
    wait_for(checkpoint, proc)
    # Half a checkpoint: every later checkpoint fails; the log lines and metrics stay far below it.
    limit = checkpoint.stat().st_size // 2
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    check_stop_and_resume(proc, config, ("File too large", "the file-size limit (ulimit -f)"), straight)
    resume_equals_straight(config, straight)


def test_full_disk_keeps_the_last_checkpoint_and_resumes(
    tmp_path: Path, dataset: Path, straight: dict
) -> None:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip() or 'not root'})")
    try:
        config = write_config(mount, dataset, checkpoint_every=1)
        checkpoint = mount / "run" / "last.ckpt"
        proc = start(config)
        wait_for(checkpoint, proc)
        used = sum(p.stat().st_blocks * 512 for p in mount.rglob("*") if p.is_file())
        room = used + checkpoint.stat().st_size // 2 + 64 * 1024  # the log's next pages, not a checkpoint
        subprocess.run(["mount", "-o", f"remount,size={room}", str(mount)], check=True)
        check_stop_and_resume(proc, config, ("No space left on device", "free space on its disk"), straight)
        subprocess.run(["mount", "-o", "remount,size=8m", str(mount)], check=True)  # space is back
        resume_equals_straight(config, straight)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
