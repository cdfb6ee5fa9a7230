// The sprinter model (python/superionic/models/sprinter.py) evaluated natively: descriptors, the
// per-species MLP, the core repulsion and their analytic derivatives, OpenMP across atoms.
// No torch header here: the loader in model.cpp reads the weights from the exported file and
// hands plain arrays over, so the same kernel runs under LAMMPS, pybind11 and the benchmarks.
#ifndef SUPERIONIC_SPRINTER_KERNEL_H
#define SUPERIONIC_SPRINTER_KERNEL_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace superionic {

// Every array is row-major float64, shaped as the module's parameter of the same name.
struct SprinterParams {
  int n_species = 0;
  int n_basis = 0;           // K
  int radial_channels = 0;   // Cr
  int angular_channels = 0;  // Ca
  int l_max = 0;             // 0..4
  double cutoff = 0.0;       // the buffer cutoff_t (A)
  double cutoff_sq = 0.0;    // the buffer cutoff_sq (A^2)
  std::vector<double> basis_freq;       // [K]
  std::vector<double> radial_coeff;     // [S, S, Cr, K]
  std::vector<double> angular_coeff;    // [S, S, Ca, K]
  std::vector<double> descriptor_mean;  // [D], D = Cr + l_max * Ca
  std::vector<double> descriptor_std;   // [D]
  std::vector<std::vector<double>> layer_weight;  // layer k: [S, in_k, out_k]
  std::vector<std::vector<double>> layer_bias;    // layer k: [S, out_k]
  std::vector<int> widths;                        // D, hidden..., 1
  std::vector<double> energy_shift;               // [S]
  double energy_scale = 1.0;
  std::vector<double> core_radius_sq;  // [S, S], 0 = no repulsion for that pair
  double core_strength = 0.0;          // eV
};

enum class KernelPrecision { Float64, Float32 };

template <typename Real>
struct KernelTables;

class SprinterKernel {
 public:
  // Checks every shape; throws ModelError naming the inconsistent field.
  explicit SprinterKernel(SprinterParams params, KernelPrecision precision = KernelPrecision::Float64);

  // The model contract (docs/conventions.md): atom_energy [n_local] and edge_grad [n_edges*3].
  // Edges may come in any order; those whose source is not owned get a zero gradient, as in the
  // torch model, whose owned-atom energy does not depend on them. Energies are accumulated in
  // float64 whatever the precision.
  void compute(const double *edge_vec, const int64_t *edge_src, const int64_t *edge_dst, int64_t n_edges,
               const int64_t *species, int64_t n_atoms, int64_t n_local, double *atom_energy,
               double *edge_grad) const;

  // 0 leaves OpenMP's default (OMP_NUM_THREADS).
  void set_num_threads(int n) { num_threads_ = n < 0 ? 0 : n; }
  int num_threads() const;
  void set_precision(KernelPrecision precision) { precision_ = precision; }
  KernelPrecision precision() const { return precision_; }
  const SprinterParams &params() const { return p_; }
  std::string describe() const;

  // Whether the library was compiled with OpenMP (otherwise the kernel runs on one thread).
  static bool openmp_enabled();

 private:
  SprinterParams p_;
  KernelPrecision precision_;
  int num_threads_ = 0;
  // Weights rearranged for the vectorised per-atom loop, one copy per precision (sprinter_kernel.cpp).
  std::shared_ptr<const KernelTables<double>> tables64_;
  std::shared_ptr<const KernelTables<float>> tables32_;

  // kCa, kK, kL > 0 fix the angular channels, basis size and l_max at compile time (the trainer's
  // defaults), so the short channel loops unroll and stay in registers; 0 reads them from the parameters.
  template <typename Real, int kCa, int kK, int kL>
  void compute_impl(const double *edge_vec, const int64_t *edge_src, const int64_t *edge_dst, int64_t n_edges,
                    const int64_t *species, int64_t n_atoms, int64_t n_local, double *atom_energy,
                    double *edge_grad) const;
};

}  // namespace superionic

#endif
