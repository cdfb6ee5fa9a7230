"""The build refuses to go on without HDF5 (fix superionic/h5md is what the analysis reads), with
one line that names the fix, instead of silently leaving the trajectory writer out."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.slow  # a CMake configure that finds torch, LAMMPS and pybind11 first: ~10–30 s
def test_cmake_without_hdf5_stops_with_one_clear_line(tmp_path: Path) -> None:
    cmake = shutil.which("cmake", path=str(BIN)) or shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed (bash .ci/setup installs it into .venv)")
    site = next((BIN.parent / "lib").glob("python3*/site-packages"))
    configure = [
        cmake, "-S", str(REPO), "-B", str(tmp_path / "build"), "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_PREFIX_PATH={site}", f"-DPython_EXECUTABLE={sys.executable}",
        f"-DPython3_EXECUTABLE={sys.executable}", "-DSKBUILD_PROJECT_VERSION=0.0",
    ]  # fmt: skip
    ninja = shutil.which("ninja", path=str(BIN))
    if ninja:
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    # As if the HDF5 C library were absent: find_package(HDF5) reports it not found.
    run = subprocess.run(
        [*configure, "-DCMAKE_DISABLE_FIND_PACKAGE_HDF5=TRUE"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0
    # CMake wraps a message over several lines of its report; joined, it is one sentence.
    text = " ".join(run.stderr.split())
    assert (
        "superionic: the HDF5 C library was not found; install it "
        "(Debian/Ubuntu: apt-get install libhdf5-dev)" in text
    )
    assert "-DSUPERIONIC_WITH_HDF5=OFF" in text
    assert text.count("CMake Error") == 1, run.stderr
