#include "sprinter_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>
#include <sstream>

#include "metadata.h"
#include "sprinter_maths.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// The SIMD types below are GCC vector extensions; as template arguments (std::vector's element type)
// GCC warns that it drops their attribute from the argument's name, which changes nothing here: the
// type stays a 256-bit vector, and its heap storage is aligned by AlignedAllocator.
#pragma GCC diagnostic ignored "-Wignored-attributes"
// The baseline copy's helpers take and return 256-bit vectors; they are always inlined (SI_INLINE),
// so the calling convention GCC warns about is never used.
#pragma GCC diagnostic ignored "-Wpsabi"

// A `// phase:` comment names the stage of the evaluation that the lines below it belong to, up to the
// next one; bench/profile_kernel.py sums callgrind's per-line counts by these stages.

namespace superionic {
namespace {

using maths::kMaxL;

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
// Helpers taking or returning SIMD values are always inlined: an out-of-line call would pass
// 256-bit vectors through the baseline ABI.
#define SI_INLINE inline __attribute__((always_inline))
constexpr int kMaxBasis = 64;     // the per-edge basis lives in registers or on the stack
constexpr int kMaxChannels = 64;  // so do the angular channels

using maths::harmonic_offset;  // the flat index of (l, m) among the harmonics l = 1..l_max

// phase: other
void require(bool ok, const std::string &what) {
  if (!ok) throw ModelError("sprinter weights: " + what);
}

template <typename Real>
std::vector<Real> as(const std::vector<double> &v) {
  return std::vector<Real>(v.begin(), v.end());
}

int round_up(int n, int to) { return (n + to - 1) / to * to; }

}  // namespace

// One 256-bit register of Real (GCC vector extension): 4 doubles or 8 floats. The per-atom loop puts
// edges into its lanes. Without AVX the compiler splits each operation into two SSE2 ones.
template <typename Real>
struct Simd;
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(32), aligned(32)));
  typedef long long I __attribute__((vector_size(32), aligned(32)));
  static constexpr int width = 4;
};
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(32), aligned(32)));
  typedef int I __attribute__((vector_size(32), aligned(32)));
  static constexpr int width = 8;
};

// Heap storage of registers, 64-byte aligned whatever alignment the compiler gives the type: the
// baseline code (which allocates) aligns 32-byte vectors to 16 bytes only, while the AVX2 copy moves
// them with aligned 32-byte loads and stores.
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U> &) {}
  T *allocate(size_t n) { return static_cast<T *>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T *p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const AlignedAllocator &) const { return true; }
  bool operator!=(const AlignedAllocator &) const { return false; }
};
template <typename Real>
using VecStore = std::vector<typename Simd<Real>::V, AlignedAllocator<typename Simd<Real>::V>>;

// The parameters in the layouts the per-atom loop reads. Coefficients that multiply a block of edges
// are stored already broadcast (one register per coefficient), so that a multiply-add takes them
// straight from memory. MLP widths are padded to whole registers with zero weights, which keeps the
// padded neurons at zero in both passes.
template <typename Real>
struct KernelTables {
  using V = typename Simd<Real>::V;
  int S = 0, K = 0, Cr = 0, Ca = 0, L = 0, n_layers = 0;
  std::vector<int> padded;                // widths rounded up to whole registers
  std::vector<Real> radial;               // [S, S, Cr, K]
  VecStore<Real> angular;                 // [S, S, Ca, K], broadcast
  std::vector<VecStore<Real>> w_fwd;      // layer k: [S, padded_k, padded_{k+1} / width]
  std::vector<VecStore<Real>> b_fwd;      // layer k: [S, padded_{k+1} / width]
  std::vector<VecStore<Real>> w_bwd;      // layer k: [S, padded_{k+1}, padded_k / width], transposed
  std::vector<Real> freq, neg_freq_rc, slip, mean, stdev, core_r2;
  std::vector<double> energy_shift;
  Real rc = 0, inv_rc = 0, rc2 = 0, inv_rc2 = 0, scale = 0, core_a = 0;
  bool chebyshev = false, any_core = false;
};

namespace {

template <typename Real>
std::shared_ptr<const KernelTables<Real>> make_tables(const SprinterParams &p, const std::vector<double> &slip,
                                                      bool chebyshev) {
  using V = typename Simd<Real>::V;
  constexpr int VL = Simd<Real>::width;
  auto t = std::make_shared<KernelTables<Real>>();
  const int S = p.n_species, K = p.n_basis, Ca = p.angular_channels;
  t->S = S;
  t->K = K;
  t->Cr = p.radial_channels;
  t->Ca = Ca;
  t->L = p.l_max;
  t->n_layers = static_cast<int>(p.layer_weight.size());
  t->radial = as<Real>(p.radial_coeff);
  t->angular.resize(p.angular_coeff.size());
  for (size_t k = 0; k < p.angular_coeff.size(); k++) t->angular[k] = V{} + static_cast<Real>(p.angular_coeff[k]);
  for (int w : p.widths) t->padded.push_back(round_up(w, VL));
  for (int k = 0; k < t->n_layers; k++) {
    const int in = p.widths[k], out = p.widths[k + 1], ip = t->padded[k], op = t->padded[k + 1];
    const int ci = ip / VL, co = op / VL;
    VecStore<Real> wf(static_cast<size_t>(S) * ip * co, V{}), bf(static_cast<size_t>(S) * co, V{}),
        wb(static_cast<size_t>(S) * op * ci, V{});
    const std::vector<double> &W = p.layer_weight[k], &b = p.layer_bias[k];
    for (int s = 0; s < S; s++) {
      for (int o = 0; o < out; o++) bf[static_cast<size_t>(s) * co + o / VL][o % VL] = static_cast<Real>(b[s * out + o]);
      for (int a = 0; a < in; a++)
        for (int o = 0; o < out; o++) {
          const Real w = static_cast<Real>(W[(static_cast<size_t>(s) * in + a) * out + o]);
          wf[(static_cast<size_t>(s) * ip + a) * co + o / VL][o % VL] = w;
          wb[(static_cast<size_t>(s) * op + o) * ci + a / VL][a % VL] = w;
        }
    }
    t->w_fwd.push_back(std::move(wf));
    t->b_fwd.push_back(std::move(bf));
    t->w_bwd.push_back(std::move(wb));
  }
  t->freq = as<Real>(p.basis_freq);
  for (int k = 0; k < K; k++) t->neg_freq_rc.push_back(static_cast<Real>(-p.basis_freq[k] / p.cutoff));
  t->slip = as<Real>(slip);
  t->mean = as<Real>(p.descriptor_mean);
  t->stdev = as<Real>(p.descriptor_std);
  t->core_r2 = as<Real>(p.core_radius_sq);
  t->energy_shift = p.energy_shift;
  t->rc = static_cast<Real>(p.cutoff);
  t->inv_rc = static_cast<Real>(1.0 / p.cutoff);
  t->rc2 = static_cast<Real>(p.cutoff_sq);
  t->inv_rc2 = static_cast<Real>(1.0 / p.cutoff_sq);
  t->scale = static_cast<Real>(p.energy_scale);
  t->core_a = static_cast<Real>(p.core_strength);
  t->chebyshev = chebyshev;
  t->any_core = p.core_strength != 0 &&
                std::any_of(p.core_radius_sq.begin(), p.core_radius_sq.end(), [](double r) { return r > 0; });
  return t;
}

// What the per-atom loop reads, prepared once per call by compute_impl.
template <typename Real>
struct Pass {
  const KernelTables<Real> *t;
  const double *edge_vec;
  const int64_t *edge_dst, *species;
  double *atom_energy, *edge_grad;
  int64_t n_local;
  const int64_t *first, *edge_order;  // atom i's edges: first[i]..first[i+1], through edge_order if set
};

// The per-atom loop twice: for the baseline (generic x86-64: SSE2) and, where GCC can target it, for
// AVX2 with FMA, taken at run time when the CPU has both. Each copy brings its own helpers (its own
// namespace), so that every vector operation is compiled for the copy's instruction set.
#define SI_ATOMS atoms
#define SI_ISA isa_baseline
#define SI_AVX 0
#include "sprinter_kernel_impl.h"
#undef SI_AVX
#undef SI_ISA
#undef SI_ATOMS
#if SI_X86_DISPATCH
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SI_ATOMS atoms_avx2
#define SI_ISA isa_avx2
#define SI_AVX 1  // GCC's target pragma does not define __AVX__
#include "sprinter_kernel_impl.h"
#undef SI_AVX
#undef SI_ISA
#undef SI_ATOMS
#pragma GCC pop_options
#else
// Without the second copy the dispatch below always takes the baseline.
template <typename Real, int kCa, int kK, int kL>
void atoms_avx2(const Pass<Real> &c) {
  atoms<Real, kCa, kK, kL>(c);
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
  require(Ca <= kMaxChannels,
          "angular_channels above " + std::to_string(kMaxChannels) + " are not supported by the native kernel");

  // The trainer's basis is cos(k*pi*x): cos and sin of every k follow from k = 1 by recurrence,
  // one cos and one sin per edge instead of K of each. The stored frequencies are pi*k rounded
  // through float32 (torch.pi * arange), so each k is corrected by the small angle
  // delta_k = x * (freq_k - k * freq_1) (|delta| < 1e-5), to second order: exact in float64.
  bool chebyshev = K >= 2;
  std::vector<double> freq_slip;
  for (int k = 0; k < K; k++) {
    const double slip = p_.basis_freq[k] - k * p_.basis_freq[std::min(1, K - 1)];
    chebyshev = chebyshev && std::abs(slip) <= 1e-5;
    freq_slip.push_back(slip);
  }

  tables64_ = make_tables<double>(p_, freq_slip, chebyshev);
  tables32_ = make_tables<float>(p_, freq_slip, chebyshev);
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

  if (n_local < 0 || n_local > n_atoms) throw ModelError("n_local must lie in [0, n_atoms]");
#ifdef _OPENMP
  const int threads = num_threads();
#endif
  // Checks and edge grouping run on every thread too: done serially they cost as much as a tenth
  // of the per-atom loop, which caps what a second thread can gain.
  bool bad_species = false;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(|| : bad_species)
#endif
  for (int64_t a = 0; a < n_atoms; a++) bad_species = bad_species || species[a] < 0 || species[a] >= S;
  if (bad_species)
    for (int64_t a = 0; a < n_atoms; a++)
      if (species[a] < 0 || species[a] >= S)
        throw ModelError("species index " + std::to_string(species[a]) + " of atom " + std::to_string(a) +
                         " is outside the model's " + std::to_string(S) + " species");
  bool bad_edge = false, grouped = true;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(|| : bad_edge) reduction(&& : grouped)
#endif
  for (int64_t e = 0; e < n_edges; e++) {
    const int64_t s = edge_src[e], d = edge_dst[e];
    bad_edge = bad_edge || s < 0 || s >= n_atoms || d < 0 || d >= n_atoms;
    grouped = grouped && (e == 0 || s >= edge_src[e - 1]);
  }
  if (bad_edge)
    for (int64_t e = 0; e < n_edges; e++)
      if (edge_src[e] < 0 || edge_src[e] >= n_atoms || edge_dst[e] < 0 || edge_dst[e] >= n_atoms)
        throw ModelError("edge " + std::to_string(e) + " joins atoms outside [0, n_atoms)");

  // Edges grouped by owned source atom: first[i]..first[i+1]. The pair style emits them grouped
  // already, and then first[] is set where the source changes; anything else (the Python bindings
  // accept any order) is grouped here by a counting sort.
  std::vector<int64_t> first(n_local + 1, 0);
  std::vector<int64_t> order;
  if (grouped) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (int64_t e = 0; e < n_edges; e++) {
      const int64_t s = edge_src[e], previous = e > 0 ? edge_src[e - 1] : -1;
      if (s >= n_local) edge_grad[3 * e] = edge_grad[3 * e + 1] = edge_grad[3 * e + 2] = 0.0;
      for (int64_t x = previous + 1; x <= std::min(s, n_local); x++) first[x] = e;
    }
    const int64_t last = n_edges > 0 ? edge_src[n_edges - 1] : -1;
    for (int64_t x = last + 1; x <= n_local; x++) first[x] = n_edges;
  } else {
    for (int64_t e = 0; e < n_edges; e++) {
      const int64_t s = edge_src[e];
      if (s < n_local)
        first[s + 1]++;
      else
        edge_grad[3 * e] = edge_grad[3 * e + 1] = edge_grad[3 * e + 2] = 0.0;
    }
    for (int64_t i = 0; i < n_local; i++) first[i + 1] += first[i];
    order.resize(first[n_local]);
    std::vector<int64_t> fill(first.begin(), first.end() - 1);
    for (int64_t e = 0; e < n_edges; e++)
      if (edge_src[e] < n_local) order[fill[edge_src[e]]++] = e;
  }

  const KernelTables<Real> *tables;
  if constexpr (sizeof(Real) == sizeof(double))
    tables = tables64_.get();
  else
    tables = tables32_.get();
  const int64_t *edge_order = grouped ? nullptr : order.data();
  const Pass<Real> pass{tables, edge_vec, edge_dst, species, atom_energy, edge_grad, n_local, first.data(), edge_order};
  // Each thread calls the per-atom loop as a function of its own: GCC outlines an OpenMP parallel
  // region into a function that does not inherit a `#pragma GCC target`, so the AVX2 copy has to
  // begin inside the region.
  const bool avx2 = use_avx2();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    if (avx2)
      atoms_avx2<Real, kCa, kK, kL>(pass);
    else
      atoms<Real, kCa, kK, kL>(pass);
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
