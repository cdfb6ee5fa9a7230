"""A labelling run killed with SIGKILL continues from its partial file and gives the frames the
uninterrupted run gives (data.resume_state).

The real SevenNet-0 labels a 30-atom Li3YCl6 cell: 2 temperatures × 3 MD frames and 2 strained
frames. One run goes straight through; another is started in a separate process and killed once its
state file says 4 frames are written (mid-way through the second temperature's MD) or, in the
second case, once it is in the strained frames; rerunning the same call keeps those frames (the
labeller is not asked for them again: the kept frames are the very bytes written before the kill)
and the final file equals the straight run's, frame by frame.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from superionic.data.generate import FrameWriter, GenerateConfig, GenerationError, generate
from superionic.data.resume_state import state_path

pytestmark = pytest.mark.slow


def config(output: Path) -> GenerateConfig:
    return GenerateConfig(
        material="LYC",
        frames=8,
        temperatures=(600.0, 900.0),
        strain_fraction=0.25,
        sample_every=2,
        equilibration_steps=4,
        seed=3,
        threads=1,
        output=output,
    )


RUN = """
import sys
from pathlib import Path
from superionic.data.generate import GenerateConfig, generate
generate(GenerateConfig(material="LYC", frames=8, temperatures=(600.0, 900.0), strain_fraction=0.25,
    sample_every=2, equilibration_steps=4, seed=3, threads=1, output=Path(sys.argv[1])))
"""


def kill_when(output: Path, frames: int, phase: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", RUN, str(output)], env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    state = state_path(FrameWriter.partial_path(output))
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if state.exists():
                body = json.loads(state.read_text())
                if body["frames"] >= frames and body["phase"] == phase:
                    break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not output.exists(), "the run finished before it could be killed"


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> list:
    out = tmp_path_factory.mktemp("straight") / "lyc.extxyz.gz"
    generate(config(out))
    return read(out, ":")


@pytest.mark.parametrize(("frames", "phase"), [(4, "md"), (7, "strain")])
def test_a_killed_labelling_run_resumes_to_the_same_frames(tmp_path: Path, straight, frames: int, phase: str):
    out = tmp_path / "lyc.extxyz.gz"
    kill_when(out, frames, phase)
    partial = FrameWriter.partial_path(out)
    before = read(partial, ":", format="extxyz")
    assert len(before) >= frames
    result = generate(config(out))
    resumed = read(out, ":")
    assert result.summary["frames"] == len(resumed) == len(straight) == 8
    assert not partial.exists() and not state_path(partial).exists()
    for k, (a, b) in enumerate(zip(resumed, straight, strict=True)):
        assert a.info["sampling"] == b.info["sampling"] and a.info.get("md_step") == b.info.get("md_step"), k
        # Kept frames are the written bytes; later ones are recomputed from the restored MD and
        # generator, equal to the straight run to the labeller's float32 round-off.
        assert np.abs(a.positions - b.positions).max() < 1e-6, k
        assert abs(a.get_potential_energy() - b.get_potential_energy()) < 1e-4, k
    for k, frame in enumerate(before[:frames]):
        assert np.array_equal(frame.positions, resumed[k].positions)


def test_a_partial_file_from_other_settings_is_refused_and_kept(tmp_path: Path):
    out = tmp_path / "lyc.extxyz.gz"
    kill_when(out, 2, "md")
    partial = FrameWriter.partial_path(out)
    size = partial.stat().st_size
    other = GenerateConfig(**{**config(out).__dict__, "seed": 4})
    with pytest.raises(GenerationError, match="made with other settings"):
        generate(other)
    assert partial.stat().st_size == size


REFERENCE = """
import sys
from pathlib import Path
from superionic.data.reference_md import ReferenceMDConfig, run_reference_md
run_reference_md(ReferenceMDConfig(material="LYC", temperature=900.0, steps=48, write_every=4,
    equilibration_steps=4, seed=5, threads=1, output=Path(sys.argv[1])))
"""


def test_a_killed_teacher_run_resumes_with_its_thermostat(tmp_path: Path):
    """The teacher's own MD (Nosé–Hoover chain) continues from the frame it had reached: positions,
    momenta, the chain's variables and the unwrapping are restored, so the frames after the kill
    are those of a run that was never stopped."""
    from superionic.data.reference_md import ReferenceMDConfig, run_reference_md

    def settings(output: Path) -> ReferenceMDConfig:
        return ReferenceMDConfig(
            material="LYC", temperature=900.0, steps=48, write_every=4, equilibration_steps=4, seed=5,
            threads=1, output=output,
        )  # fmt: skip

    straight_file = tmp_path / "straight.extxyz.gz"
    run_reference_md(settings(straight_file))
    out = tmp_path / "killed.extxyz.gz"
    process = subprocess.Popen(
        [sys.executable, "-c", REFERENCE, str(out)], env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    state = state_path(FrameWriter.partial_path(out))
    try:
        while process.poll() is None and not (
            state.exists() and json.loads(state.read_text())["frames"] >= 6
        ):
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not out.exists()
    result = run_reference_md(settings(out))
    a, b = read(out, ":"), read(straight_file, ":")
    assert len(a) == len(b) == 13
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x.info["md_step"] == y.info["md_step"]
        assert np.abs(x.positions - y.positions).max() < 1e-6, k
    assert "note" not in result.summary  # the thermostat was restored exactly: no seam to report
