"""`superionic conductivity` killed with SIGKILL at ten seeded moments spread over its stages.

The tiny job of `_conductivity_job` runs once straight through, and once again in another work
directory where it is killed (SIGKILL, no chance to clean up) as soon as each of ten conditions
holds, plus a seeded delay of up to 0.3 s: twice while labelling, twice while training the
committee, twice in active learning, twice in the production MD, twice in the teacher's MD. After
every kill the same command is rerun. The test shows that no finished unit of work is redone:

- a finished stage is skipped (state.json's log) and its files keep their modification times;
- labelled frames: the rerun says it resumes from at least the frames the partial file held at the
  kill, and the final frames equal the straight run's to the file's last digit (the labeller's MD
  is continued from its saved positions, momenta and random state, not restarted);
- committee members: the rerun resumes a member from its checkpoint, and the final weights equal
  the straight run's to float32 round-off of the labels;
- MD: a temperature whose run finished keeps its trajectory untouched;
- the teacher's MD resumes from its partial file;

and that the final files are complete: every stage done, the report present and naming the same
frames, committee and temperatures. The table of kills, what each rerun skipped and the wall time
is written to kills.json in the test's directory and printed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.io import read

from superionic.train.checkpoint import load_checkpoint

from ._conductivity_job import SUPERIONIC, job_args, write_job_inputs

STAGES = ["label", "train", "learn", "md", "analysis", "teacher", "report"]


def _state_frames(path: Path) -> int:
    try:
        return int(json.loads(path.read_text())["frames"])
    except (OSError, ValueError, KeyError):
        return 0


def _label_frames(w: Path) -> int:
    return _state_frames(w / "label" / "frames.extxyz.gz.partial.state.json")


def _teacher_frames(w: Path) -> int:
    return max((_state_frames(p) for p in (w / "teacher").glob("*.partial.state.json")), default=0)


# (name, condition on the work directory): each kill waits for its condition.
MOMENTS: list[tuple[str, Callable[[Path], bool]]] = [
    ("label: 2 frames labelled", lambda w: _label_frames(w) >= 2),
    ("label: 7 frames labelled", lambda w: _label_frames(w) >= 7),
    ("train: member 0 has a checkpoint", lambda w: (w / "train" / "member_0" / "last.ckpt").exists()),
    ("train: member 1 has a checkpoint", lambda w: (w / "train" / "member_1" / "last.ckpt").exists()),
    ("learn: round 0 MD started", lambda w: any((w / "learn").glob("round_000/md/T*K/*"))),
    ("learn: round 1 started", lambda w: (w / "learn" / "round_001").exists()),
    ("md: D pilots started", lambda w: any((w / "md" / "pilots").glob("transport/T*K/*"))),
    ("md: production started", lambda w: any((w / "md" / "production").glob("T*K/*"))),
    ("teacher: 3 frames of its MD", lambda w: _teacher_frames(w) >= 3),
    ("teacher: 8 frames of its MD", lambda w: _teacher_frames(w) >= 8),
]


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    handle = log.open("w")
    return subprocess.Popen(
        [str(SUPERIONIC), "conductivity", *args], cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT
    )


def _events(workdir: Path) -> list[dict]:
    return json.loads((workdir / "state.json").read_text())["log"]


def _done_stages(workdir: Path) -> list[str]:
    try:
        stages = json.loads((workdir / "state.json").read_text())["stages"]
    except (OSError, ValueError):
        return []
    return [s for s in STAGES if stages.get(s, {}).get("done")]


def _stage_files(workdir: Path, stages: list[str]) -> dict[Path, int]:
    state = json.loads((workdir / "state.json").read_text())["stages"]
    files = {}
    for stage in stages:
        for name in state[stage]["outputs"].get("files", []):
            path = workdir / name
            if path.is_file():
                files[path] = path.stat().st_mtime_ns
    return files


def _finished_md(workdir: Path) -> dict[Path, int]:
    return {
        traj: traj.stat().st_mtime_ns
        for traj in workdir.glob("md/**/traj.h5")
        if (traj.parent / "restart.final.lammps").exists()
    }


@pytest.mark.slow
def test_ten_sigkills_redo_no_finished_work(tmp_path: Path) -> None:
    pytest.importorskip("sevenn")
    cif, train_config = write_job_inputs(tmp_path)

    straight = tmp_path / "straight"
    start = time.perf_counter()
    process = _start(job_args(cif, train_config, straight), tmp_path, tmp_path / "straight.log")
    assert process.wait() == 0, (tmp_path / "straight.log").read_text()[-3000:]
    straight_s = time.perf_counter() - start

    workdir = tmp_path / "killed"
    args = job_args(cif, train_config, workdir)
    rng = np.random.default_rng(20261208)
    table = []
    attempts_s = 0.0
    previous: dict | None = None
    for k, (name, condition) in enumerate(MOMENTS):
        log = tmp_path / f"attempt_{k}.log"
        seen = len(_events(workdir)) if (workdir / "state.json").exists() else 0
        begin = time.perf_counter()
        process = _start(args, tmp_path, log)
        while not condition(workdir) and process.poll() is None:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.3)))
        alive = process.poll() is None
        if alive:
            process.send_signal(signal.SIGKILL)
        process.wait()
        attempts_s += time.perf_counter() - begin
        assert alive, f"the job finished before the kill '{name}': {log.read_text()[-2000:]}"
        text = log.read_text()
        row = {
            "kill": k + 1,
            "moment": name,
            "attempt_s": round(time.perf_counter() - begin, 1),
            "done_at_kill": _done_stages(workdir),
            "label_frames_at_kill": _label_frames(workdir),
            "teacher_frames_at_kill": _teacher_frames(workdir),
        }
        if previous is not None:
            # What this attempt (a resume of the previous kill) did not redo.
            skipped = [e["stage"] for e in _events(workdir)[seen:] if e["event"] == "skipped"]
            row["skipped_on_resume"] = sorted(set(skipped) & set(previous["done_at_kill"]), key=STAGES.index)
            assert set(previous["done_at_kill"]) <= set(row["done_at_kill"])
            for path, mtime in previous["files"].items():
                assert path.stat().st_mtime_ns == mtime, f"{path} rewritten after kill {k}"
            if previous["label_frames_at_kill"] > 0 and "label" not in previous["done_at_kill"]:
                found = [int(n) for n in re.findall(r"resuming from (\d+) labelled frames", text)]
                assert found and found[0] >= previous["label_frames_at_kill"], text[-2000:]
                row["label_resumed_from"] = found[0]
            if previous["teacher_frames_at_kill"] > 0 and "teacher" not in previous["done_at_kill"]:
                assert "resumes from its partial file" in text, text[-2000:]
            if previous["moment"].startswith("train") and "train" not in previous["done_at_kill"]:
                assert "resumes from its checkpoint" in text, text[-2000:]
        row["files"] = _stage_files(workdir, row["done_at_kill"]) | _finished_md(workdir)
        table.append(row)
        previous = row

    # The last rerun finishes.
    begin = time.perf_counter()
    final_log = tmp_path / "final.log"
    process = _start(args, tmp_path, final_log)
    assert process.wait() == 0, final_log.read_text()[-3000:]
    attempts_s += time.perf_counter() - begin
    for path, mtime in previous["files"].items():
        assert path.stat().st_mtime_ns == mtime, f"{path} rewritten by the last rerun"
    assert _done_stages(workdir) == STAGES

    # Complete and consistent: the frames and the committee are the straight run's. Not bit for
    # bit: the labeller computes in float32 and a resumed MD continues from the saved float64
    # state, so positions agree to the extxyz file's last digit (1e-8 Å) and labels to float32's;
    # a restarted labelling would differ by whole Å.
    a = read(straight / "label" / "frames.extxyz.gz", ":")
    b = read(workdir / "label" / "frames.extxyz.gz", ":")
    assert len(a) == len(b) == 12
    position_gap = max(float(np.abs(x.positions - y.positions).max()) for x, y in zip(a, b, strict=True))
    force_gap = max(float(np.abs(x.get_forces() - y.get_forces()).max()) for x, y in zip(a, b, strict=True))
    assert position_gap < 1e-6 and force_gap < 1e-3, (position_gap, force_gap)
    for member in ("member_0", "member_1"):
        one = load_checkpoint(straight / "train" / member / "last.ckpt")
        two = load_checkpoint(workdir / "train" / member / "last.ckpt")
        assert one["state"]["epoch"] == two["state"]["epoch"]
        for key, tensor in one["model"].items():
            torch.testing.assert_close(two["model"][key], tensor, rtol=1e-4, atol=1e-6, msg=f"{member} {key}")
    report = json.loads((workdir / "conductivity.json").read_text())
    reference = json.loads((straight / "conductivity.json").read_text())
    assert [r["temperature_K"] for r in report["temperatures"]] == [1000.0, 1400.0]
    assert report["model"]["learn"]["frames_added"] == reference["model"]["learn"]["frames_added"]
    assert report["deviation"]["band_eV_per_A"] == pytest.approx(
        reference["deviation"]["band_eV_per_A"], rel=1e-6
    )
    for row in report["temperatures"]:
        assert (workdir / row["trajectory"]).is_file() and row["integrity"] is not None

    summary = {
        "straight_run_s": round(straight_s, 1),
        "label_position_gap_A": position_gap,
        "label_force_gap_eV_per_A": force_gap,
        "killed_and_resumed_s": round(attempts_s, 1),
        "kills": [{k: v for k, v in row.items() if k != "files"} for row in table],
    }
    (tmp_path / "kills.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
