// Allegro models compiled by nequip (`nequip-compile --mode aotinductor --target pair_allegro`,
// files named *.nequip.pt2) behind the superionic model contract (docs/conventions.md), so that
// pair_style superionic runs them with its own graph, ranks and ghost atoms. The second file that
// calls libtorch, beside model.cpp; no torch header appears here. See docs/nequip.md.
#ifndef SUPERIONIC_NEQUIP_MODEL_H
#define SUPERIONIC_NEQUIP_MODEL_H

#include <cstdint>
#include <memory>
#include <string>

#include "metadata.h"

namespace superionic {

// True for paths that name a nequip-compiled AOTInductor package.
bool is_nequip_package_path(const std::string &path);

class NequipModel {
 public:
  // Loads the package and translates its metadata (r_max, type_names, num_types, allow_tf32,
  // nequip_aoti_inputs/outputs) into ModelMetadata. Throws ModelError with a one-line message.
  NequipModel(const std::string &path, const std::string &device);
  ~NequipModel();
  NequipModel(const NequipModel &) = delete;
  NequipModel &operator=(const NequipModel &) = delete;

  const ModelMetadata &metadata() const;

  // The superionic contract (model.h, Model::compute), evaluated through pair_allegro's inputs.
  void compute(const double *edge_vec, const int64_t *edge_src, const int64_t *edge_dst, int64_t n_edges,
               const int64_t *species, int64_t n_atoms, int64_t n_local, double *atom_energy,
               double *edge_grad);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace superionic

#endif
