"""superionic: machine-learning force fields for solid-state electrolytes, from training to conductivity."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# OpenMP threads that spin while waiting steal the cores that MPI ranks, labellers and LAMMPS share
# with torch; measured here, 2 spinning threads made a training step 14x slower than 1. Passive
# waiting is set before torch loads and is inherited by the lmp processes superionic starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

PLUGIN_FILE = "superionicplugin.so"


def plugin_dir() -> str:
    """Directory holding ``superionicplugin.so``; the ``lammps.plugins`` entry point returns it.

    The plugin is installed beside the compiled ``_core`` module, which is where an editable
    install keeps it too (the Python sources may live elsewhere). Every ``import lammps`` calls
    this, so it must not raise: without the compiled part it names this package's directory and
    LAMMPS simply finds no plugin there.
    """
    spec = importlib.util.find_spec("superionic._core")
    if spec is None or spec.origin is None:
        return str(Path(__file__).resolve().parent)
    return str(Path(spec.origin).resolve().parent)
