"""Native sprinter kernel vs the libtorch path inside LAMMPS: the parity table of issue 12.

For l_max 0..4 (4 species) and 1..3 species (l_max 4), on 1, 2 and 4 MPI ranks, one `run 0` with
`backend native` and one with `backend torch` on the same data file; prints max |dE|, max |dF|,
max |d virial| (global and per atom) and writes bench/results/kernel_parity.json.

    .venv/bin/python bench/kernel_parity.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lammps.singlepoint import single_point  # noqa: E402
from tests.lammps.test_native_kernel import cell  # noqa: E402
from tests.unit.test_native_kernel import SPECIES, random_sprinter  # noqa: E402

from superionic.export import export_model  # noqa: E402

CASES = [(lmax, 4) for lmax in range(5)] + [(4, n) for n in (1, 2, 3)]


def main() -> None:
    rows = []
    print(
        f"{'l_max':>5} {'species':>7} {'ranks':>5} {'|dE| eV':>10} {'|dE_i| eV':>10} {'|dF| eV/A':>10} "
        f"{'|dW| eV':>10} {'|dW_i| eV':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for l_max, n in CASES:
            path = Path(tmp) / f"l{l_max}s{n}.pt"
            export_model(random_sprinter(l_max, n, seed=3 * l_max + n), path)
            for ranks in (1, 2, 4):
                runs = {
                    b: single_point(
                        Path(tmp) / f"{l_max}{n}{ranks}{b}",
                        cell(n),
                        path,
                        type_names=SPECIES[:n],
                        nprocs=ranks,
                        pair_style=f"superionic backend {b}",
                    )
                    for b in ("native", "torch")
                }
                a, b = runs["native"], runs["torch"]
                row = {
                    "l_max": l_max,
                    "species": n,
                    "ranks": ranks,
                    "atoms": len(a.forces),
                    "dE": abs(a.energy - b.energy),
                    "dE_atom": float(np.abs(a.atom_energy - b.atom_energy).max()),
                    "dF": float(np.abs(a.forces - b.forces).max()),
                    "F_max": float(np.abs(b.forces).max()),
                    "dW": float(np.abs(a.virial - b.virial).max()),
                    "dW_atom": float(np.abs(a.atom_virial - b.atom_virial).max()),
                }
                rows.append(row)
                print(
                    f"{l_max:>5} {n:>7} {ranks:>5} "
                    + " ".join(f"{row[k]:>10.2e}" for k in ("dE", "dE_atom", "dF", "dW", "dW_atom")),
                    flush=True,
                )
    out = ROOT / "bench" / "results" / "kernel_parity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "kernel_parity", "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
