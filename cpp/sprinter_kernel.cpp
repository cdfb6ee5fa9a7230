#include "sprinter_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "metadata.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// A `// phase:` comment names the stage of the evaluation that the lines below it belong to, up to the
// next one; bench/profile_kernel.py sums callgrind's per-line counts by these stages.

namespace superionic {
namespace {

constexpr int kMaxL = 4;

// x86-64 GCC builds carry a second copy of the per-atom loop for AVX2 + FMA (see use_avx2).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SI_X86_DISPATCH 1
#else
#define SI_X86_DISPATCH 0
#endif

// Loops over channels and neurons are short and alias-free; say so, or the compiler keeps them
// scalar (a dot product is not vectorised without permission to reorder its sum).
#ifdef _OPENMP
#define SI_SIMD _Pragma("omp simd")
#define SI_SIMD_SUM(acc) _Pragma(SI_STR(omp simd reduction(+ : acc)))
#define SI_STR(x) #x
#else
#define SI_SIMD
#define SI_SIMD_SUM(acc)
#endif
constexpr int kMaxBasis = 64;  // the per-edge basis lives on the stack

// Flat index of (l, m) among the harmonics l = 1..l_max: l = 1 starts at 0, l = 2 at 3, ...
constexpr int harmonic_offset(int l) { return l * l - 1; }

// Schmidt semi-normalised real harmonics, exactly the polynomials of sprinter.real_harmonics.
// phase: edge forward: harmonics Y_lm
template <typename Real>
inline void harmonics(const Real *u, int l_max, Real *Y) {
  const Real x = u[0], y = u[1], z = u[2];
  const Real SQ3 = Real(1.7320508075688772), SQ5 = Real(2.23606797749979), SQ10 = Real(3.1622776601683795);
  const Real SQ15 = Real(3.872983346207417), SQ35 = Real(5.916079783099616), SQ70 = Real(8.366600265340756);
  const Real SQ3_8 = Real(0.6123724356957945), SQ5_8 = Real(0.7905694150420949);
  Y[0] = x;
  Y[1] = y;
  Y[2] = z;
  if (l_max >= 2) {
    Real *Y2 = Y + 3;
    Y2[0] = (3 * z * z - 1) / 2;
    Y2[1] = SQ3 * x * z;
    Y2[2] = SQ3 * y * z;
    Y2[3] = SQ3 / 2 * (x * x - y * y);
    Y2[4] = SQ3 * x * y;
  }
  if (l_max >= 3) {
    Real *Y3 = Y + 8;
    const Real z2 = 5 * z * z;
    Y3[0] = z * (z2 - 3) / 2;
    Y3[1] = SQ3_8 * x * (z2 - 1);
    Y3[2] = SQ3_8 * y * (z2 - 1);
    Y3[3] = SQ15 / 2 * z * (x * x - y * y);
    Y3[4] = SQ15 * x * y * z;
    Y3[5] = SQ5_8 * x * (x * x - 3 * y * y);
    Y3[6] = SQ5_8 * y * (3 * x * x - y * y);
  }
  if (l_max >= 4) {
    Real *Y4 = Y + 15;
    const Real z2 = 7 * z * z;
    const Real zz = z * z;
    Y4[0] = (35 * zz * zz - 30 * zz + 3) / 8;
    Y4[1] = SQ10 / 4 * x * z * (z2 - 3);
    Y4[2] = SQ10 / 4 * y * z * (z2 - 3);
    Y4[3] = SQ5 / 4 * (x * x - y * y) * (z2 - 1);
    Y4[4] = SQ5 / 2 * x * y * (z2 - 1);
    Y4[5] = SQ70 / 4 * x * z * (x * x - 3 * y * y);
    Y4[6] = SQ70 / 4 * y * z * (3 * x * x - y * y);
    Y4[7] = SQ35 / 8 * (x * x * x * x - 6 * x * x * y * y + y * y * y * y);
    Y4[8] = SQ35 / 2 * x * y * (x * x - y * y);
  }
}

// g = sum_idx w[idx] * grad Y_idx(u), the gradient taken in R^3 (projection onto the sphere is
// done by the caller, matching autograd through u = v / |v|).
// phase: edge backward: harmonics gradient
template <typename Real>
inline void harmonics_grad(const Real *u, int l_max, const Real *w, Real *g) {
  const Real x = u[0], y = u[1], z = u[2];
  const Real SQ3 = Real(1.7320508075688772), SQ5 = Real(2.23606797749979), SQ10 = Real(3.1622776601683795);
  const Real SQ15 = Real(3.872983346207417), SQ35 = Real(5.916079783099616), SQ70 = Real(8.366600265340756);
  const Real SQ3_8 = Real(0.6123724356957945), SQ5_8 = Real(0.7905694150420949);
  Real gx = w[0], gy = w[1], gz = w[2];
  if (l_max >= 2) {
    const Real *W = w + 3;
    gz += W[0] * 3 * z;
    gx += W[1] * SQ3 * z;
    gz += W[1] * SQ3 * x;
    gy += W[2] * SQ3 * z;
    gz += W[2] * SQ3 * y;
    gx += W[3] * SQ3 * x;
    gy -= W[3] * SQ3 * y;
    gx += W[4] * SQ3 * y;
    gy += W[4] * SQ3 * x;
  }
  if (l_max >= 3) {
    const Real *W = w + 8;
    const Real a = 5 * z * z - 1;
    gz += W[0] * (15 * z * z - 3) / 2;
    gx += W[1] * SQ3_8 * a;
    gz += W[1] * SQ3_8 * 10 * x * z;
    gy += W[2] * SQ3_8 * a;
    gz += W[2] * SQ3_8 * 10 * y * z;
    gx += W[3] * SQ15 * x * z;
    gy -= W[3] * SQ15 * y * z;
    gz += W[3] * SQ15 / 2 * (x * x - y * y);
    gx += W[4] * SQ15 * y * z;
    gy += W[4] * SQ15 * x * z;
    gz += W[4] * SQ15 * x * y;
    gx += W[5] * SQ5_8 * 3 * (x * x - y * y);
    gy -= W[5] * SQ5_8 * 6 * x * y;
    gx += W[6] * SQ5_8 * 6 * x * y;
    gy += W[6] * SQ5_8 * 3 * (x * x - y * y);
  }
  if (l_max >= 4) {
    const Real *W = w + 15;
    const Real zz = z * z;
    const Real b = 7 * zz - 1;
    const Real c = 7 * zz * z - 3 * z;
    const Real d = 21 * zz - 3;
    const Real xx_yy = x * x - y * y;
    gz += W[0] * (140 * zz * z - 60 * z) / 8;
    gx += W[1] * SQ10 / 4 * c;
    gz += W[1] * SQ10 / 4 * x * d;
    gy += W[2] * SQ10 / 4 * c;
    gz += W[2] * SQ10 / 4 * y * d;
    gx += W[3] * SQ5 / 4 * 2 * x * b;
    gy -= W[3] * SQ5 / 4 * 2 * y * b;
    gz += W[3] * SQ5 / 4 * xx_yy * 14 * z;
    gx += W[4] * SQ5 / 2 * y * b;
    gy += W[4] * SQ5 / 2 * x * b;
    gz += W[4] * SQ5 / 2 * x * y * 14 * z;
    gx += W[5] * SQ70 / 4 * 3 * xx_yy * z;
    gy -= W[5] * SQ70 / 4 * 6 * x * y * z;
    gz += W[5] * SQ70 / 4 * x * (x * x - 3 * y * y);
    gx += W[6] * SQ70 / 4 * 6 * x * y * z;
    gy += W[6] * SQ70 / 4 * 3 * xx_yy * z;
    gz += W[6] * SQ70 / 4 * y * (3 * x * x - y * y);
    gx += W[7] * SQ35 / 8 * (4 * x * x * x - 12 * x * y * y);
    gy += W[7] * SQ35 / 8 * (4 * y * y * y - 12 * x * x * y);
    gx += W[8] * SQ35 / 2 * (3 * x * x * y - y * y * y);
    gy += W[8] * SQ35 / 2 * (x * x * x - 3 * x * y * y);
  }
  g[0] = gx;
  g[1] = gy;
  g[2] = gz;
}

// phase: other
void require(bool ok, const std::string &what) {
  if (!ok) throw ModelError("sprinter weights: " + what);
}

template <typename Real>
std::vector<Real> as(const std::vector<double> &v) {
  return std::vector<Real>(v.begin(), v.end());
}

// Per-thread work arrays, grown to the largest neighbourhood seen.
template <typename Real>
struct Scratch {
  std::vector<Real> u, r, db, h, Y, core;  // per edge of the current atom
  std::vector<Real> basis_sum, radial_w, M, q, T, act, grad_a, grad_b, dEdh, dEdY, w;
  std::vector<int64_t> pair;
};

// What the per-atom loop reads, prepared once per call by compute_impl.
template <typename Real>
struct Pass {
  const double *edge_vec;
  const int64_t *edge_dst, *species;
  double *atom_energy, *edge_grad;
  int64_t n_local;
  const int64_t *first, *edge_order;  // atom i's edges: first[i]..first[i+1], through edge_order if set
  const Real *radial_coeff, *angular_coeff, *angular_t;
  const Real *const *weight, *const *bias;
  const Real *slip, *freq, *mean, *stdev, *core_r2;
  Real rc, rc2, scale, core_a;
  bool chebyshev;
};

// The per-atom loop twice: for the baseline (generic x86-64: SSE2) and, where GCC can target it, for
// AVX2 with FMA, taken at run time when the CPU has both. The short channel loops (4 angular
// channels, 8 basis functions, 32 neurons) then take one 256-bit operation where SSE2 needs two to
// eight, and multiply-adds fuse.
#define SI_ATOMS atoms
#include "sprinter_kernel_impl.h"
#undef SI_ATOMS
#if SI_X86_DISPATCH
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SI_ATOMS atoms_avx2
#include "sprinter_kernel_impl.h"
#undef SI_ATOMS
#pragma GCC pop_options
#else
// Without the second copy the dispatch below always takes the baseline.
template <typename Real, int kCa, int kK, int kL>
void atoms_avx2(const SprinterParams &p, const Pass<Real> &c) {
  atoms<Real, kCa, kK, kL>(p, c);
}
#endif

// The AVX2 copy where the CPU has AVX2 and FMA. SUPERIONIC_KERNEL_ISA=generic keeps the baseline, for
// comparisons: fused multiply-adds round differently, by about one ulp per operation.
bool use_avx2() {
#if SI_X86_DISPATCH
  static const bool chosen = [] {
    const char *isa = std::getenv("SUPERIONIC_KERNEL_ISA");
    const bool generic = isa && std::string(isa) == "generic";
    return !generic && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return chosen;
#else
  return false;
#endif
}

}  // namespace

SprinterKernel::SprinterKernel(SprinterParams params, KernelPrecision precision)
    : p_(std::move(params)), precision_(precision) {
  const int S = p_.n_species, K = p_.n_basis, Cr = p_.radial_channels, Ca = p_.angular_channels;
  require(S >= 1 && K >= 1 && Cr >= 1 && Ca >= 1, "species, n_basis and channel counts must be positive");
  require(p_.l_max >= 0 && p_.l_max <= kMaxL, "l_max must lie in 0..4, got " + std::to_string(p_.l_max));
  require(p_.cutoff > 0 && p_.cutoff_sq > 0, "cutoff must be positive");
  const size_t SS = static_cast<size_t>(S) * S;
  const int D = Cr + p_.l_max * Ca;
  require(p_.basis_freq.size() == static_cast<size_t>(K), "basis_freq must have n_basis entries");
  require(p_.radial_coeff.size() == SS * Cr * K, "radial_coeff must be [S, S, Cr, K]");
  require(p_.angular_coeff.size() == SS * Ca * K, "angular_coeff must be [S, S, Ca, K]");
  require(p_.descriptor_mean.size() == static_cast<size_t>(D) && p_.descriptor_std.size() == static_cast<size_t>(D),
          "descriptor_mean/std must have Cr + l_max*Ca = " + std::to_string(D) + " entries");
  require(p_.widths.size() >= 2 && p_.widths.front() == D && p_.widths.back() == 1,
          "layer widths must run from the descriptor count to 1");
  require(p_.layer_weight.size() + 1 == p_.widths.size() && p_.layer_bias.size() == p_.layer_weight.size(),
          "one weight and one bias per layer");
  for (size_t k = 0; k < p_.layer_weight.size(); k++) {
    require(p_.layer_weight[k].size() == static_cast<size_t>(S) * p_.widths[k] * p_.widths[k + 1],
            "layers." + std::to_string(k) + ".weight must be [S, in, out]");
    require(p_.layer_bias[k].size() == static_cast<size_t>(S) * p_.widths[k + 1],
            "layers." + std::to_string(k) + ".bias must be [S, out]");
  }
  require(p_.energy_shift.size() == static_cast<size_t>(S), "energy_shift must have one entry per species");
  require(p_.core_radius_sq.size() == SS, "core_radius_sq must be [S, S]");
  require(K <= kMaxBasis, "n_basis above " + std::to_string(kMaxBasis) + " is not supported by the native kernel");

  // The trainer's basis is cos(k*pi*x): cos and sin of every k follow from k = 1 by recurrence,
  // one cos and one sin per edge instead of K of each. The stored frequencies are pi*k rounded
  // through float32 (torch.pi * arange), so each k is corrected by the small angle
  // delta_k = x * (freq_k - k * freq_1) (|delta| < 1e-5), to second order: exact in float64.
  chebyshev_ = K >= 2;
  for (int k = 0; k < K && chebyshev_; k++) {
    const double slip = p_.basis_freq[k] - k * p_.basis_freq[std::min(1, K - 1)];
    chebyshev_ = std::abs(slip) <= 1e-5;
    freq_slip_.push_back(slip);
  }

  radial_coeff_f_ = as<float>(p_.radial_coeff);
  angular_coeff_f_ = as<float>(p_.angular_coeff);
  // [S, S, K, Ca]: the forward pass runs over channels fastest.
  angular_t_.resize(p_.angular_coeff.size());
  for (size_t pair = 0; pair < SS; pair++)
    for (int c = 0; c < Ca; c++)
      for (int k = 0; k < K; k++)
        angular_t_[(pair * K + k) * Ca + c] = p_.angular_coeff[(pair * Ca + c) * K + k];
  angular_t_f_ = as<float>(angular_t_);
  for (size_t k = 0; k < p_.layer_weight.size(); k++) {
    layer_weight_f_.push_back(as<float>(p_.layer_weight[k]));
    layer_bias_f_.push_back(as<float>(p_.layer_bias[k]));
  }
}

int SprinterKernel::num_threads() const {
#ifdef _OPENMP
  return num_threads_ > 0 ? num_threads_ : omp_get_max_threads();
#else
  return 1;
#endif
}

bool SprinterKernel::openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

std::string SprinterKernel::describe() const {
  std::ostringstream out;
  out << "native sprinter kernel (" << (precision_ == KernelPrecision::Float32 ? "float32" : "float64")
      << ", l_max " << p_.l_max << ", " << p_.n_species << " species, "
      << (use_avx2() ? "AVX2+FMA" : "baseline ISA") << ", " << num_threads() << " OpenMP threads)";
  return out.str();
}

void SprinterKernel::compute(const double *edge_vec, const int64_t *edge_src, const int64_t *edge_dst,
                             int64_t n_edges, const int64_t *species, int64_t n_atoms, int64_t n_local,
                             double *atom_energy, double *edge_grad) const {
  const bool defaults = p_.angular_channels == 4 && p_.n_basis == 8 && p_.l_max == 4;
  const bool f32 = precision_ == KernelPrecision::Float32;
  if (defaults && f32)
    compute_impl<float, 4, 8, 4>(edge_vec, edge_src, edge_dst, n_edges, species, n_atoms, n_local, atom_energy, edge_grad);
  else if (defaults)
    compute_impl<double, 4, 8, 4>(edge_vec, edge_src, edge_dst, n_edges, species, n_atoms, n_local, atom_energy, edge_grad);
  else if (f32)
    compute_impl<float, 0, 0, 0>(edge_vec, edge_src, edge_dst, n_edges, species, n_atoms, n_local, atom_energy, edge_grad);
  else
    compute_impl<double, 0, 0, 0>(edge_vec, edge_src, edge_dst, n_edges, species, n_atoms, n_local, atom_energy, edge_grad);
}

// phase: setup: checks, edge grouping, per-atom scratch
template <typename Real, int kCa, int kK, int kL>
void SprinterKernel::compute_impl(const double *edge_vec, const int64_t *edge_src, const int64_t *edge_dst,
                                  int64_t n_edges, const int64_t *species, int64_t n_atoms, int64_t n_local,
                                  double *atom_energy, double *edge_grad) const {
  const int S = p_.n_species;
  const int n_layers = static_cast<int>(p_.layer_weight.size());

  if (n_local < 0 || n_local > n_atoms) throw ModelError("n_local must lie in [0, n_atoms]");
  for (int64_t a = 0; a < n_atoms; a++)
    if (species[a] < 0 || species[a] >= S)
      throw ModelError("species index " + std::to_string(species[a]) + " of atom " + std::to_string(a) +
                       " is outside the model's " + std::to_string(S) + " species");

  // Edges grouped by owned source atom. The pair style emits them grouped already; anything else
  // (the Python bindings accept any order) is grouped here by a counting sort.
  std::vector<int64_t> first(n_local + 1, 0);
  bool grouped = true;
  int64_t previous = -1;
  for (int64_t e = 0; e < n_edges; e++) {
    const int64_t s = edge_src[e], d = edge_dst[e];
    if (s < 0 || s >= n_atoms || d < 0 || d >= n_atoms)
      throw ModelError("edge " + std::to_string(e) + " joins atoms outside [0, n_atoms)");
    if (s < previous) grouped = false;
    previous = s;
    if (s < n_local) first[s + 1]++;
    else {
      edge_grad[3 * e] = edge_grad[3 * e + 1] = edge_grad[3 * e + 2] = 0.0;
    }
  }
  for (int64_t i = 0; i < n_local; i++) first[i + 1] += first[i];
  std::vector<int64_t> order;
  if (!grouped) {
    order.resize(first[n_local]);
    std::vector<int64_t> fill(first.begin(), first.end() - 1);
    for (int64_t e = 0; e < n_edges; e++)
      if (edge_src[e] < n_local) order[fill[edge_src[e]]++] = e;
  }

  const Real *radial_coeff, *angular_coeff, *angular_t;
  std::vector<const Real *> weight(n_layers), bias(n_layers);
  if constexpr (sizeof(Real) == sizeof(double)) {
    radial_coeff = p_.radial_coeff.data();
    angular_coeff = p_.angular_coeff.data();
    angular_t = angular_t_.data();
    for (int k = 0; k < n_layers; k++) {
      weight[k] = p_.layer_weight[k].data();
      bias[k] = p_.layer_bias[k].data();
    }
  } else {
    radial_coeff = radial_coeff_f_.data();
    angular_coeff = angular_coeff_f_.data();
    angular_t = angular_t_f_.data();
    for (int k = 0; k < n_layers; k++) {
      weight[k] = layer_weight_f_[k].data();
      bias[k] = layer_bias_f_[k].data();
    }
  }
  const std::vector<Real> slip = as<Real>(freq_slip_);
  const std::vector<Real> freq = as<Real>(p_.basis_freq), mean = as<Real>(p_.descriptor_mean),
                          stdev = as<Real>(p_.descriptor_std), core_r2 = as<Real>(p_.core_radius_sq);
  const Real rc = static_cast<Real>(p_.cutoff), rc2 = static_cast<Real>(p_.cutoff_sq);
  const Real scale = static_cast<Real>(p_.energy_scale);
  const Real core_a = static_cast<Real>(p_.core_strength);
  const bool chebyshev = chebyshev_;
  const int64_t *edge_order = grouped ? nullptr : order.data();

  const Pass<Real> pass{edge_vec, edge_dst, species, atom_energy, edge_grad, n_local, first.data(), edge_order,
                        radial_coeff, angular_coeff, angular_t, weight.data(), bias.data(), slip.data(),
                        freq.data(), mean.data(), stdev.data(), core_r2.data(), rc, rc2, scale, core_a,
                        chebyshev};
  // Each thread calls the per-atom loop as a function of its own: GCC outlines an OpenMP parallel
  // region into a function that does not inherit a `#pragma GCC target`, so the AVX2 copy has to
  // begin inside the region.
  const bool avx2 = use_avx2();
#ifdef _OPENMP
  const int threads = num_threads();
#pragma omp parallel num_threads(threads)
#endif
  {
    if (avx2)
      atoms_avx2<Real, kCa, kK, kL>(p_, pass);
    else
      atoms<Real, kCa, kK, kL>(p_, pass);
  }
}

// phase: other
#define SI_INSTANTIATE(Real, ca, k, l)                                                                   \
  template void SprinterKernel::compute_impl<Real, ca, k, l>(const double *, const int64_t *, const int64_t *, \
                                                             int64_t, const int64_t *, int64_t, int64_t,       \
                                                             double *, double *) const;
SI_INSTANTIATE(double, 4, 8, 4)
SI_INSTANTIATE(float, 4, 8, 4)
SI_INSTANTIATE(double, 0, 0, 0)
SI_INSTANTIATE(float, 0, 0, 0)

}  // namespace superionic
