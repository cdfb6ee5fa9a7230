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

// Where the arrays of Model::evaluate live, and how the call is ordered with the work that filled
// them and the work that reads its outputs (pair_style superionic/kk passes its Kokkos views).
struct ArraySpace {
  enum class Kind { Host, Gpu };
  Kind kind = Kind::Host;
  int device = -1;  // Gpu: the device index, torch's cuda:N (ROCm builds of torch call it cuda too)
  // Gpu: the cudaStream_t that filled the inputs and will read the outputs; the model runs on it,
  // so nothing waits. nullptr: the caller has finished its work on the inputs (a fence), and the
  // call returns once the GPU has finished the model. Needs shares_cuda_streams().
  void *cuda_stream = nullptr;
};

// The model contract's inputs (see Model::compute), borrowed, all in one ArraySpace.
struct EdgeGraph {
  const double *edge_vec = nullptr;  // [n_edges][3], r_j - r_i
  const int64_t *edge_src = nullptr, *edge_dst = nullptr;
  int64_t n_edges = 0;
  const int64_t *species = nullptr;  // [n_atoms], owned atoms first
  int64_t n_atoms = 0, n_local = 0;
};

// float64 and contiguous, in the ArraySpace of the inputs; owned by the Model and valid until its
// next evaluate or compute.
struct ModelOutputs {
  const double *atom_energy = nullptr;  // [n_local]
  const double *edge_grad = nullptr;    // [n_edges][3], dE/d(edge_vec)
};

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

  // The same contract on arrays in `space`, without staging copies: the inputs are wrapped where
  // they are (torch::from_blob on the matching device), and the outputs stay on that device.
  // compute() is this call on host arrays plus a copy into the caller's arrays. Throws ModelError.
  ModelOutputs evaluate(const EdgeGraph &graph, const ArraySpace &space);

  // The native kernel (sprinter_kernel.h) holding this model's weights, for sprinter models;
  // nullptr otherwise, with the reason in native_unavailable_reason().
  SprinterKernel *native_kernel() const;
  const std::string &native_unavailable_reason() const;

  static int cuda_device_count();
  // Whether evaluate() can run on a caller's CUDA stream (built against a CUDA torch with its headers).
  static bool shares_cuda_streams();
  static void set_num_threads(int n);
  static int num_threads();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace superionic

#endif
