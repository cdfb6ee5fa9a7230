// The second plugin, superionickkplugin.so: pair_style superionic/kk (and superionic/kk/host
// where the Kokkos device is a GPU). Loaded beside superionicplugin.so from LAMMPS_PLUGIN_PATH;
// `-sf kk` turns `pair_style superionic` into `superionic/kk`.
#include "lammps_plugin_abi.h"
#include "pair_superionic_kokkos.h"

#ifndef SUPERIONIC_LAMMPS_VERSION
#error "SUPERIONIC_LAMMPS_VERSION (the host LAMMPS version string) must be defined by the build"
#endif

namespace {
void *create_device(void *lmp) {
  return new LAMMPS_NS::PairSuperionicKokkos<LMPDeviceType>(static_cast<LAMMPS_NS::LAMMPS *>(lmp));
}
#ifdef LMP_KOKKOS_GPU
void *create_host(void *lmp) {
  return new LAMMPS_NS::PairSuperionicKokkos<LMPHostType>(static_cast<LAMMPS_NS::LAMMPS *>(lmp));
}
#endif
}  // namespace

extern "C" void lammpsplugin_init(void *lmp, void *dso_handle, void *register_fn) {
  auto register_style = reinterpret_cast<superionic_register_fn>(register_fn);
  superionic_plugin_record record{};
  record.lammps_version = SUPERIONIC_LAMMPS_VERSION;
  record.style = "pair";
  record.info = "superionic machine-learning force field, Kokkos style (edges and forces in Kokkos views)";
  record.author = "superionic developers";
  record.dso_handle = dso_handle;
  record.create.lmp_only = &create_device;
  record.name = "superionic/kk";
  register_style(&record, lmp);
  record.name = "superionic/kk/device";
  register_style(&record, lmp);
#ifdef LMP_KOKKOS_GPU
  record.create.lmp_only = &create_host;
#endif
  record.name = "superionic/kk/host";
  register_style(&record, lmp);
}
