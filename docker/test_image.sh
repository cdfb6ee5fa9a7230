#!/usr/bin/env bash
# Builds the CPU variant of docker/Dockerfile (Kokkos OpenMP) with podman from nothing but the
# Debian mirror and PyPI, then runs inside it: the LAMMPS parity tests of the local model on 1 and
# 2 ranks, pair_style superionic/kk against superionic on 1 and 2 ranks, a Kokkos MD run
# (-k on -sf kk), and a short `superionic md`.
#
#   sudo bash docker/test_image.sh            # log: docker/test_image.log
#   sudo TEST_IMAGE_FROM_NOTHING=1 bash docker/test_image.sh
#                                             # empties podman's image store and build cache first
#
# No docker daemon is needed. Podman runs here as root with the settings this kind of sandbox
# requires: host network (no netavark), explicit ulimits (raising them is refused), the runc
# runtime (crun refuses the cgroup set-up). The base image is made with debootstrap because
# public image registries are out of reach; on a normal machine `--build-arg BASE_IMAGE=debian:bookworm`
# does the same.
set -euo pipefail
cd "$(dirname "$0")/.."
log=${TEST_IMAGE_LOG:-docker/test_image.log}
base=localhost/superionic-base:bookworm
image=localhost/superionic:cpu
jobs=${BUILD_JOBS:-2}
start=$SECONDS
: >"$log"
say() { echo "test_image [$(date -u +%H:%M:%S), $((SECONDS - start)) s] $*" | tee -a "$log"; }

[ "$(id -u)" = 0 ] || { echo "test_image: run as root (podman without a daemon, rootful)" >&2; exit 2; }
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null; then
  say "installing podman, buildah, runc, debootstrap (Debian packages)"
  apt-get install -y -qq podman buildah runc debootstrap >>"$log" 2>&1
fi

conf_dir=$(mktemp -d)
archive=$(mktemp -d /var/tmp/superionic-context.XXXX)
trap 'rm -rf "$conf_dir" "$archive"' EXIT
cat >"$conf_dir/containers.conf" <<'EOF'
[containers]
netns = "host"
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$conf_dir/containers.conf"
limits=(--ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

if [ "${TEST_IMAGE_FROM_NOTHING:-0}" = 1 ]; then
  say "from nothing: removing every podman image and the build cache"
  podman system prune --all --force >>"$log" 2>&1
  podman rmi --all --force >>"$log" 2>&1 || true
  say "podman store now holds $(podman images --all --quiet | wc -l) images"
fi
if ! podman image exists "$base"; then
  say "debootstrap bookworm (minbase) -> $base"
  root=$(mktemp -d /var/tmp/superionic-base.XXXX)
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >>"$log" 2>&1
  tar -C "$root" -c . | podman import - "$base" >>"$log" 2>&1
  rm -rf "$root"
fi
say "base image ready: $(podman image inspect --format '{{.Size}}' "$base") bytes"
# The build context is the committed tree (git archive HEAD), Dockerfile included: uncommitted
# edits of a shared working tree stay out of the image, and the log names what was built.
# TEST_IMAGE_WORKTREE=1 builds the working tree as it is instead (while developing the Dockerfile).
if [ "${TEST_IMAGE_WORKTREE:-0}" = 1 ]; then
  ctx=$PWD
  say "context: the working tree at commit $(git rev-parse --short HEAD), $(git status --short | wc -l) paths differ:"
  git status --short | tee -a "$log"
else
  ctx=$archive
  git archive HEAD | tar -x -C "$ctx"
  say "context: git archive of commit $(git rev-parse HEAD) ($(git log -1 --format=%cI HEAD))"
fi

# pip inside the build needs this machine's CA bundle (TLS goes through its proxy), and torch
# comes from the wheel folder pip is configured with here, if there is one (PyPI's torch for Linux
# is the CUDA build).
# Kokkos: Debian sid's build of 5.2.2, because the Kokkos source tarball is not reachable from here.
build_args=(--build-arg VARIANT=cpu --build-arg KOKKOS_FROM=debian-sid
  --build-arg "BASE_IMAGE=$base" --build-arg "RUNTIME_IMAGE=$base"
  --build-arg TORCH_INDEX_URL= --build-arg "BUILD_JOBS=$jobs"
  --build-arg PIP_CERT=/etc/ssl/certs/host-ca.crt --build-arg SSL_CERT_FILE=/etc/ssl/certs/host-ca.crt)
volumes=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt:ro)
wheels=${PIP_FIND_LINKS:-}
if [ -n "$wheels" ] && [ -d "$wheels" ]; then
  volumes+=(--volume "$wheels:/wheels:ro")
  build_args+=(--build-arg PIP_FIND_LINKS=/wheels)
fi
say "podman build (CPU variant, $jobs jobs)"
build_start=$SECONDS
# --format docker: the OCI image format has no SHELL instruction, and the RUN lines use bash.
podman build --format docker --network host "${limits[@]}" "${volumes[@]}" "${build_args[@]}" \
  -f "$ctx/docker/Dockerfile" -t "$image" "$ctx" >>"$log" 2>&1 || {
  say "FAILED: podman build (last lines of $log above)"
  tail -20 "$log"
  exit 1
}
say "image built in $((SECONDS - build_start)) s: $(podman image inspect --format '{{.Size}}' "$image") bytes"

run() { podman run --rm --network host "${limits[@]}" "$image" bash -c "$1" >>"$log" 2>&1; }
say "parity tests inside the image (local model, 1 and 2 ranks, OpenMPI)"
run 'cd /opt/superionic && python -m pytest -q -p no:cacheprovider tests/lammps/test_parity.py \
  -k "test_run0_matches_python and local and not 4"' || { say "FAILED: parity tests"; exit 1; }
# As root, in one container: Debian's Trilinos Kokkos (Kokkos 3.4, Serial backend) for the
# Kokkos::Serial run of the sprinter kernel outside LAMMPS; this image's Kokkos is OpenMP only. Its
# CMake files clash with libkokkos-dev's, so its two packages are unpacked under a prefix instead.
say "pair_style superionic/kk vs superionic (Kokkos OpenMP, -k on t 1|2 -sf kk, 1 and 2 ranks), the Kokkos-native sprinter vs the CPU kernel and libtorch, and its kernel on Kokkos::Serial"
run_root() { podman run --rm --network host "${limits[@]}" --user root -e OMPI_ALLOW_RUN_AS_ROOT=1 \
  -e OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$image" bash -c "$1" >>"$log" 2>&1; }
run_root 'set -e; apt-get -o Acquire::Check-Valid-Until=false update -qq
cd /tmp && apt-get download -qq -t bookworm libtrilinos-kokkos-dev libtrilinos-kokkos-13.2 2> /dev/null
for deb in libtrilinos-kokkos*.deb; do dpkg-deb -x "$deb" /opt/serial-kokkos; done
cd /opt/superionic && SUPERIONIC_SERIAL_KOKKOS=/opt/serial-kokkos \
  python -m pytest -q -s -p no:cacheprovider tests/lammps/test_kokkos_parity.py' ||
  { say "FAILED: superionic/kk parity"; exit 1; }
say "Kokkos (OpenMP) LAMMPS, -sf kk (pair_style superionic/kk), 2 ranks x 1 thread, 20 NVE steps"
run 'set -e; cd /tmp && superionic export-reference -o ref.pt && python - <<EOF
from superionic.data.examples import jittered_lattice
from superionic.md.lammps_data import write_lammps_data
write_lammps_data("d.data", jittered_lattice((6, 6, 6), seed=1), ["Li", "Ge", "P", "S"])
EOF
printf "%s\n" "units metal" "atom_style atomic" "read_data d.data" "pair_style superionic" \
  "pair_coeff * * ref.pt Li Ge P S" "velocity all create 300 1" "fix 1 all nve" "run 20" > in.kk
mpirun -np 2 lmp -k on t 1 -sf kk -in in.kk | tee out.kk
grep -q "Loop time of .* on 2 procs for 20 steps with 216 atoms" out.kk
grep -q "pair superionic/kk: model" out.kk' || { say "FAILED: Kokkos run"; exit 1; }
say "short superionic md inside the image (LGPS 2x2x1, 200 atoms, reference model, 2 ranks, 300 steps)"
run 'set -e; cd /tmp && superionic export-reference -o ref.pt && python -c "
from superionic.data.materials import build_structure
build_structure(\"LGPS\", seed=0, supercell=(2, 2, 1)).write(\"lgps.extxyz\")" &&
superionic md lgps.extxyz ref.pt -T 600 --steps 300 --eq-steps 100 --dump-every 20 --np 2 -o md &&
ls -l md/*/traj.h5' || { say "FAILED: superionic md"; exit 1; }
say "PASSED: image built and tested in $((SECONDS - start)) s"
