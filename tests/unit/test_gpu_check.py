"""bench/gpu_check.sh on a machine without a GPU: one line, exit status 77, nothing written; and
its dry-run plan (``--dry-run``), which needs neither a GPU nor the bundle.

The GPU path itself can only run where a GPU is lent; its rehearsal on the CPU
(``bash bench/gpu_check.sh --rehearse-on-cpu``) builds the plugin and runs LAMMPS, which is too slow
for the unit tests.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.sh"


def has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    return listed.returncode == 0 and "GPU" in listed.stdout


@pytest.mark.skipif(has_gpu(), reason="this machine has a GPU; the script would run the full check")
def test_no_gpu_stops_at_once(tmp_path: Path) -> None:
    results, work = tmp_path / "gpu.json", tmp_path / "w"
    start = time.monotonic()
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "GPU_CHECK_RESULTS": str(results), "GPU_CHECK_WORK": str(work)},
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 77, done.stdout + done.stderr
    assert done.stdout == "gpu_check: no GPU on this machine (nvidia-smi lists none); nothing checked\n"
    assert done.stderr == ""
    # "At once": before unpacking, building or importing torch (each takes seconds).
    assert elapsed < 5.0
    assert not results.exists() and not work.exists()


def test_unknown_argument_is_one_line() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert (
        done.stderr == "gpu_check: unknown argument '--bogus'; use --rehearse-on-cpu, --dry-run or nothing\n"
    )


def test_dry_run_prints_the_plan(tmp_path: Path) -> None:
    """The issue's sizes, the three paths, 2 ranks on one GPU, and a plan inside 8 minutes."""
    results, work = tmp_path / "gpu.json", tmp_path / "w"
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "GPU_CHECK_RESULTS": str(results), "GPU_CHECK_WORK": str(work)},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("gpu_check --dry-run: what a run would do, within 480 s\n")
    rows = [line.split() for line in out.splitlines() if line.startswith("    ") and "_" in line.split()[0]]
    assert len(rows) == 18
    sizes = {int(row[-3]) for row in rows}
    assert {3200, 25600, 102400, 110592} <= sizes
    kinds = {row[0].split("_")[0] for row in rows}
    assert kinds == {"kk", "kkgeneric", "torch", "lj"}
    assert any(row[-1] == "2" for row in rows), "2 ranks on one GPU"
    # every timed run is capped (start-up + warm-up + 5 s); runs that would end past the budget are skipped
    assert "each timed run: at most 20 s with start-up; 18 runs" in out
    assert not results.exists() and not work.exists()
