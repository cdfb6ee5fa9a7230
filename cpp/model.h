// The only interface to libtorch. No torch header appears here, so the pair style and LAMMPS
// headers never meet torch headers (the boundary deepmd-kit keeps too).
#ifndef SUPERIONIC_MODEL_H
#define SUPERIONIC_MODEL_H

#include <cstdint>
#include <memory>
#include <string>

#include "metadata.h"

namespace superionic {

class SprinterKernel;

class Model {
 public:
  // Loads a TorchScript (.pt) or AOTInductor (.pt2) file, chosen by extension, onto `device`
  // ("cpu", "cuda" or "cuda:N"). Throws ModelError with a one-line message on any failure.
  Model(const std::string &path, const std::string &device);
  ~Model();
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;

  const ModelMetadata &metadata() const;
  const std::string &path() const;
  std::string device() const;

  // Runs the model contract. Inputs are plain arrays: edge_vec [n_edges*3], edge_src/edge_dst
  // [n_edges], species [n_atoms], owned atoms first. Outputs: atom_energy [n_local] and
  // edge_grad [n_edges*3], always float64 whatever the model dtype. Throws ModelError.
  void compute(const double *edge_vec, const int64_t *edge_src, const int64_t *edge_dst,
               int64_t n_edges, const int64_t *species, int64_t n_atoms, int64_t n_local,
               double *atom_energy, double *edge_grad);

  // The native kernel (sprinter_kernel.h) holding this model's weights, for sprinter models;
  // nullptr otherwise, with the reason in native_unavailable_reason().
  SprinterKernel *native_kernel() const;
  const std::string &native_unavailable_reason() const;

  static int cuda_device_count();
  static void set_num_threads(int n);
  static int num_threads();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace superionic

#endif
