#!/usr/bin/env bash
# Compiles pair_style superionic/kk (cpp/kokkos/*.cpp) with nvcc for a Kokkos CUDA build, without a
# GPU and without the CUDA images: the CUDA 13.0 compiler comes from NVIDIA's PyPI wheels, LAMMPS's
# KOKKOS headers from the pinned Debian source tarball docker/Dockerfile builds, and Kokkos 5.2.2's
# headers from Debian's libkokkos-dev (it installs every backend's headers, Cuda/ included), whose
# one generated header, KokkosCore_config.h, is switched from OpenMP to Serial + CUDA + the chosen
# architecture the way Kokkos's CMake writes it for the Dockerfile's GPU variant. The Kokkos source
# tarball the Dockerfile names is not served by the Debian mirror reachable from the development
# machine, hence the headers of Debian's build of the same version.
#
# Prints one line per translation unit and architecture: compiled (with the size of its device code)
# or the first compiler error; exit status 1 if any failed. For the Kokkos-native sprinter kernel
# (cpp/kokkos/sprinter_kokkos.h, compiled inside pair_superionic_kokkos.cpp) it also prints what
# ptxas reports for each of its CUDA instantiations (float64/float32, default/generic shape,
# atomic force sums): registers per thread, stack frame, spill bytes; it fails if none was compiled.
# Only compilation is checked: nothing is linked or run, and cpp/model.cpp (libtorch) is not compiled
# here. The same unit also compiles the Kokkos::Serial instantiation (superionic/kk/host).
#
#   bash docker/cuda_compile_check.sh            # Hopper (sm_90) and Ampere (sm_80)
#   CUDACHECK_ARCHS="HOPPER90" bash docker/cuda_compile_check.sh
#
# Downloads and the assembled trees are cached in CUDACHECK_DIR (default /var/tmp/cudacheck), so a
# rerun only compiles.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${CUDACHECK_DIR:-/var/tmp/cudacheck}
archs=${CUDACHECK_ARCHS:-HOPPER90 AMPERE80}
t0=$(date +%s)
mkdir -p "$work/dl"
cd "$work"

say() { printf '%s\n' "$*"; }
die() { say "cuda_compile_check: $*" >&2; exit 2; }

# The pins of docker/Dockerfile, read from it so that the two cannot drift apart.
dockerfile_arg() { sed -n "s/^ARG $1=//p" "$repo/docker/Dockerfile" | head -1; }
debian_pool=$(dockerfile_arg DEBIAN_POOL)
lammps_deb=$(dockerfile_arg LAMMPS_DEB)
lammps_sha=$(dockerfile_arg LAMMPS_SHA256)
kokkos_version=$(dockerfile_arg KOKKOS_VERSION)
[ -n "$debian_pool" ] && [ -n "$lammps_deb" ] && [ -n "$lammps_sha" ] && [ -n "$kokkos_version" ] ||
  die "docker/Dockerfile lacks one of ARG DEBIAN_POOL, LAMMPS_DEB, LAMMPS_SHA256, KOKKOS_VERSION"
# Debian sid's libkokkos-dev of that Kokkos version (Debian revision 2).
kokkos_deb="libkokkos-dev_${kokkos_version}-2_amd64.deb"
kokkos_deb_sha=4a8f580267c100400c53cad45b5b7962cf0343df0fe7b1ab00ffcbd0f929d1a7

fetch() {  # url file sha256
  if [ ! -e "$2" ] || ! echo "$3  $2" | sha256sum -c --quiet - >/dev/null 2>&1; then
    curl -fsSL -o "$2.part" "$1" || die "download failed: $1"
    mv "$2.part" "$2"
  fi
  echo "$3  $2" | sha256sum -c --quiet - || die "SHA-256 mismatch: $2 (from $1)"
}

# --- sources ---------------------------------------------------------------------------------
fetch "$debian_pool/l/lammps/lammps_${lammps_deb}.orig.tar.gz" dl/lammps.tar.gz "$lammps_sha"
fetch "$debian_pool/k/kokkos/$kokkos_deb" dl/libkokkos-dev.deb "$kokkos_deb_sha"
if [ ! -e lammps/.done ]; then
  rm -rf lammps && mkdir lammps
  # Only headers (tar's * crosses /, so src/*.h takes src/KOKKOS/*.h too); -I names src, src/KOKKOS.
  tar -xzf dl/lammps.tar.gz -C lammps --wildcards 'src/*.h' 'src/fmt/*' 'src/nlohmann/*'
  touch lammps/.done
fi
if [ ! -e kokkos-deb/.done ]; then
  rm -rf kokkos-deb && dpkg-deb -x dl/libkokkos-dev.deb kokkos-deb && touch kokkos-deb/.done
fi

# --- CUDA 13.0 (the Dockerfile's nvidia/cuda:13.0.1 images) and MPI headers from PyPI -----------
cat >dl/requirements.txt <<'EOF'
nvidia-cuda-nvcc==13.0.88 --hash=sha256:56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03
nvidia-cuda-crt==13.0.88 --hash=sha256:2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4
nvidia-nvvm==13.0.88 --hash=sha256:c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cccl==13.0.85 --hash=sha256:e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649
mpich==5.0.2 --hash=sha256:8fed465ebff269ea2ebac179a25de02671ddf8df476e0f115be089015015cfd4
EOF
if [ ! -e venv/.done ]; then
  rm -rf venv && python3 -m venv venv
  venv/bin/pip download -q --no-deps --require-hashes -r dl/requirements.txt -d dl/wheels ||
    die "pip download of the CUDA 13.0 wheels failed (is PyPI reachable?)"
  venv/bin/pip install -q --no-index --no-deps --require-hashes -r dl/requirements.txt --find-links dl/wheels ||
    die "pip install of the CUDA 13.0 wheels into $work/venv failed"
  touch venv/.done
fi
cuda_home=$(echo "$work"/venv/lib/python3*/site-packages/nvidia/cu13)
nvcc="$cuda_home/bin/nvcc"
[ -x "$nvcc" ] || die "no nvcc in $cuda_home (the nvidia-cuda-nvcc wheel's layout changed?)"
mpi_include="$work/venv/include"
[ -e "$mpi_include/mpi.h" ] || die "no mpi.h in $mpi_include (the mpich wheel's layout changed?)"

# --- a Kokkos CUDA configuration per architecture ----------------------------------------------
# Debian's KokkosCore_config.h is that of -DKokkos_ENABLE_OPENMP=ON. The Dockerfile's GPU variant
# configures -DKokkos_ENABLE_SERIAL=ON -DKokkos_ENABLE_CUDA=ON -DKokkos_ARCH_<arch>=ON, for which
# Kokkos's CMake defines KOKKOS_ENABLE_SERIAL, KOKKOS_ENABLE_CUDA, KOKKOS_ARCH_<arch> and its family
# (KOKKOS_ARCH_HOPPER, KOKKOS_ARCH_AMPERE), lists those backends in the three backend headers and
# has desul define DESUL_ATOMICS_ENABLE_CUDA.
# Each edit must find its line, so a different Debian header stops the check instead of passing.
make_kokkos_config() {  # arch dir
  local arch=$1 dir=$2 family=${1%%[0-9]*}
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r kokkos-deb/usr/include/kokkos "$dir/include"
  local cfg="$dir/include/KokkosCore_config.h" line
  for line in "/\* #undef KOKKOS_ENABLE_SERIAL \*/" "#define KOKKOS_ENABLE_OPENMP" \
              "/\* #undef KOKKOS_ENABLE_CUDA \*/" "/\* #undef KOKKOS_ARCH_${arch} \*/" \
              "/\* #undef KOKKOS_ARCH_${family} \*/"; do
    grep -qx "$line" "$cfg" || die "Debian's KokkosCore_config.h has no line '$line'; update make_kokkos_config"
  done
  sed -i -e "s|^/\* #undef KOKKOS_ENABLE_SERIAL \*/$|#define KOKKOS_ENABLE_SERIAL|" \
         -e "s|^#define KOKKOS_ENABLE_OPENMP$|/* #undef KOKKOS_ENABLE_OPENMP */|" \
         -e "s|^/\* #undef KOKKOS_ENABLE_CUDA \*/$|#define KOKKOS_ENABLE_CUDA|" \
         -e "s|^/\* #undef KOKKOS_ARCH_${arch} \*/$|#define KOKKOS_ARCH_${arch}|" \
         -e "s|^/\* #undef KOKKOS_ARCH_${family} \*/$|#define KOKKOS_ARCH_${family}|" "$cfg"
  # Kokkos's embedded desul writes its own configuration; CUDA atomics need its lock arrays.
  local desul="$dir/include/desul/atomics/Config.hpp"
  grep -qx "/\* #undef DESUL_ATOMICS_ENABLE_CUDA \*/" "$desul" ||
    die "Debian's desul/atomics/Config.hpp has no line '/* #undef DESUL_ATOMICS_ENABLE_CUDA */'; update make_kokkos_config"
  sed -i "s|^/\* #undef DESUL_ATOMICS_ENABLE_CUDA \*/$|#define DESUL_ATOMICS_ENABLE_CUDA|" "$desul"
  printf '#ifndef KOKKOS_FWD_HPP_\n#define KOKKOS_FWD_HPP_\n#include <fwd/Kokkos_Fwd_SERIAL.hpp>\n#include <fwd/Kokkos_Fwd_CUDA.hpp>\n#endif\n' \
    >"$dir/include/KokkosCore_Config_FwdBackend.hpp"
  printf '#ifndef KOKKOS_DECLARE_HPP_\n#define KOKKOS_DECLARE_HPP_\n#include <decl/Kokkos_Declare_SERIAL.hpp>\n#include <decl/Kokkos_Declare_CUDA.hpp>\n#endif\n' \
    >"$dir/include/KokkosCore_Config_DeclareBackend.hpp"
  printf '#ifndef KOKKOS_SETUP_HPP_\n#define KOKKOS_SETUP_HPP_\n#include <setup/Kokkos_Setup_Cuda.hpp>\n#endif\n' \
    >"$dir/include/KokkosCore_Config_SetupBackend.hpp"
}

sm_of() {
  case $1 in
    HOPPER90) echo 90 ;; AMPERE80) echo 80 ;; AMPERE86) echo 86 ;; ADA89) echo 89 ;;
    *) die "unknown architecture $1 (HOPPER90, AMPERE80, AMPERE86, ADA89)" ;;
  esac
}

lammps_version=$(sed -n 's/^#define LAMMPS_VERSION "\(.*\)"/\1/p' lammps/src/version.h)
say "nvcc: $("$nvcc" --version | sed -n 's/^Cuda compilation tools, //p'); host compiler: $(g++ --version | head -1)"
say "Kokkos ${kokkos_version} (Debian $kokkos_deb headers, Serial + CUDA config); LAMMPS '$lammps_version' ($lammps_deb)"

# --- compile -------------------------------------------------------------------------------------
# What CMakeLists.txt gives superionickkplugin (C++20, its definitions and include directories) plus
# the flags Kokkos::kokkos carries for nvcc (-extended-lambda, -Wext-lambda-captures-this, -arch).
failed=0
mkdir -p obj
for arch in $archs; do
  sm=$(sm_of "$arch")
  make_kokkos_config "$arch" "kokkos-$arch"
  for tu in cpp/kokkos/pair_superionic_kokkos.cpp cpp/kokkos/plugin_kokkos.cpp; do
    name=$(basename "$tu" .cpp)
    out="obj/${name}.sm_${sm}.o" log="obj/${name}.sm_${sm}.log"
    start=$(date +%s)
    if nice -n 19 "$nvcc" -x cu -std=c++20 -ccbin g++ -O3 -DNDEBUG -Xcompiler -fPIC,-Wall,-Wextra \
         -arch="sm_${sm}" -extended-lambda -Wext-lambda-captures-this -Xptxas -v \
         "-DSUPERIONIC_LAMMPS_VERSION=\"$lammps_version\"" -DLAMMPS_SMALLBIG -DLMP_KOKKOS \
         -DLMP_KOKKOS_DOUBLE_DOUBLE -DLMP_KOKKOS_LAYOUT_LEGACY -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX \
         -I"$repo/cpp" -I"$repo/cpp/kokkos" -I"$work/lammps/src" -I"$work/lammps/src/KOKKOS" \
         -I"$mpi_include" -isystem "$work/kokkos-$arch/include" \
         -c "$repo/$tu" -o "$out" >"$log" 2>&1; then
      # Device code proves the CUDA instantiations were compiled, not only parsed.
      fatbin_hex=$(objdump -h "$out" | awk '$2 == ".nv_fatbin" {print $3}')
      fatbin=$((16#${fatbin_hex:-0}))
      warnings=$(grep -c 'warning' "$log" || true)
      say "$tu [$arch sm_$sm]: compiled in $(($(date +%s) - start)) s (.nv_fatbin ${fatbin:-0} bytes, $warnings warning lines; $work/$log)"
      [ "$warnings" = 0 ] || failed=1
      if [ "$name" = pair_superionic_kokkos ]; then
        # ptxas -v: "Compiling entry function '<mangled>' for 'sm_NN'", then its stack/spill and
        # register lines. The sprinter's are the entries naming SprinterForce.
        summary=$(awk '
          /Compiling entry function/ { entry = $0; sprinter = (entry ~ /SprinterForce/) }
          sprinter && /bytes stack frame/ { match($0, /[0-9]+ bytes stack frame/); stack = substr($0, RSTART, RLENGTH)
                                             match($0, /[0-9]+ bytes spill stores/); spill = substr($0, RSTART, RLENGTH) }
          sprinter && /Used [0-9]+ registers/ {
            match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 5)
            real = (entry ~ /SprinterForceI(N6Kokkos|NS_)4CudaEf/) ? "float32" : "float64"
            shape = (entry ~ /ShapeILi8ELi4ELi4ELi32ELi3EE/) ? "default" : "generic"
            n++; printf "    sprinter kernel %d (%s shape, %s): %s, %s, %s\n", n, shape, real, regs, stack, spill
            sprinter = 0
          }' "$log")
        if [ -z "$summary" ]; then
          failed=1
          say "  no SprinterForce kernel in the device code: the Kokkos-native sprinter was not compiled for CUDA"
        else
          say "$summary"
        fi
      fi
    else
      failed=1
      say "$tu [$arch sm_$sm]: FAILED: $(grep -m1 -E 'error' "$log" || tail -1 "$log")"
    fi
  done
done
say "total wall time $(($(date +%s) - t0)) s; $([ "$failed" = 0 ] && echo "all compiled" || echo "some FAILED")"
exit "$failed"
