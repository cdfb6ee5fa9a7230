#include "lammps_plugin_abi.h"
#include "pair_superionic.h"
#ifdef SUPERIONIC_WITH_HDF5
#include "fix_h5md_superionic.h"
#endif

#ifndef SUPERIONIC_LAMMPS_VERSION
#error "SUPERIONIC_LAMMPS_VERSION (the host LAMMPS version string, e.g. \"22 Jul 2025\") must be defined by the build"
#endif

namespace {
void *create_pair_superionic(void *lmp) {
  return new LAMMPS_NS::PairSuperionic(static_cast<LAMMPS_NS::LAMMPS *>(lmp));
}
#ifdef SUPERIONIC_WITH_HDF5
void *create_fix_h5md(void *lmp, int argc, char **argv) {
  return new LAMMPS_NS::FixH5mdSuperionic(static_cast<LAMMPS_NS::LAMMPS *>(lmp), argc, argv);
}
#endif
}  // namespace

extern "C" void lammpsplugin_init(void *lmp, void *dso_handle, void *register_fn) {
  auto register_style = reinterpret_cast<superionic_register_fn>(register_fn);
  superionic_plugin_record record{};
  record.lammps_version = SUPERIONIC_LAMMPS_VERSION;
  record.style = "pair";
  record.name = "superionic";
  record.info = "superionic machine-learning force field (TorchScript .pt / AOTInductor .pt2)";
  record.author = "superionic developers";
  record.create.lmp_only = &create_pair_superionic;
  record.dso_handle = dso_handle;
  register_style(&record, lmp);
#ifdef SUPERIONIC_WITH_HDF5
  record.style = "fix";
  record.name = "superionic/h5md";
  record.info = "H5MD 1.1 trajectory writer (rank 0, chunked, compressed, flushed every frame)";
  record.create.lmp_args = &create_fix_h5md;
  register_style(&record, lmp);
#endif
}
