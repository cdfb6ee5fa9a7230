// The sprinter (python/superionic/models/sprinter.py) as one Kokkos kernel, templated on the
// execution space: pair_style superionic/kk's native path, with no libtorch call in the force path.
// Independent of LAMMPS: the pair style (pair_superionic_kokkos.cpp) and the stand-alone check
// (sprinter_kokkos_check.cpp) hand it an edge list grouped by source node and views to sum into.
//
// Layout of the work, as NEP's GPU kernels (GPUMD) do it: one thread per owned atom runs, fused,
//   1. its edges: geometry, cutoff, radial basis, radial descriptors, angular moments M[c][m]
//      (sprinter_maths.h, the same source the CPU kernel compiles);
//   2. its MLP forward and backward (silu), giving dE/dq;
//   3. its edges again, recomputing the geometry instead of storing it: dE/d(edge_vec), summed into
//      the atom's own force in registers and subtracted from its neighbour's through a ScatterView
//      (duplicated per thread on a threaded host, atomic on a GPU: LAMMPS's Kokkos convention);
//      global virial and energy as a reduction, per-atom energy and virial on request.
// Nothing is stored per edge between the passes and nothing per atom outside the thread. Arithmetic
// in Real (double or float); energies, forces and virials are summed in double.
//
// Per-thread arrays are sized at compile time: Shape<8, 4, 4, 32, 3> is the trainer's default model
// (8 basis functions, 4 angular channels, l_max 4, widths up to 32, 3 layers), whose loops unroll;
// Shape<> serves any other model within the kMax* limits below (supported() says which fit).
#ifndef SUPERIONIC_SPRINTER_KOKKOS_H
#define SUPERIONIC_SPRINTER_KOKKOS_H

#include <Kokkos_Core.hpp>
#include <Kokkos_ScatterView.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "sprinter_kernel.h"
#include "sprinter_maths.h"

namespace superionic {
namespace kk {

#if KOKKOS_VERSION >= 30700
namespace kmath = Kokkos;
#else
namespace kmath = Kokkos::Experimental;  // Kokkos 3.4-3.6 (Debian bookworm's Trilinos build)
#endif

// Limits of the generic instantiation's per-thread arrays.
constexpr int kMaxBasis = 16;    // K
constexpr int kMaxAngular = 8;   // Ca
constexpr int kMaxWidth = 64;    // descriptor count Cr + l_max * Ca and every hidden width
constexpr int kMaxHidden = 4;    // hidden layers

// Compile-time sizes; 0: read from the model, bounded by the kMax* limits.
template <int K_ = 0, int Ca_ = 0, int L_ = 0, int W_ = 0, int NL_ = 0>
struct Shape {
  static constexpr int K = K_, Ca = Ca_, L = L_, W = W_, NL = NL_;
  static constexpr int KMax = K_ > 0 ? K_ : kMaxBasis;
  static constexpr int CaMax = Ca_ > 0 ? Ca_ : kMaxAngular;
  static constexpr int LMax = L_ > 0 ? L_ : maths::kMaxL;
  static constexpr int YMax = maths::harmonic_offset(LMax + 1) > 0 ? maths::harmonic_offset(LMax + 1) : 1;
  static constexpr int WMax = W_ > 0 ? W_ : kMaxWidth;
  static constexpr int HMax = NL_ > 0 ? NL_ - 1 : kMaxHidden;
};
using DefaultShape = Shape<8, 4, 4, 32, 3>;
using GenericShape = Shape<>;

// Why the Kokkos kernel cannot run these parameters ("" when it can).
inline std::string unsupported_reason(const SprinterParams &p) {
  const int D = p.radial_channels + p.l_max * p.angular_channels;
  const int n_hidden = static_cast<int>(p.widths.size()) - 2;
  int widest = 0;
  for (int w : p.widths) widest = std::max(widest, w);
  if (p.n_basis > kMaxBasis) return "n_basis " + std::to_string(p.n_basis) + " > " + std::to_string(kMaxBasis);
  if (p.angular_channels > kMaxAngular)
    return "angular_channels " + std::to_string(p.angular_channels) + " > " + std::to_string(kMaxAngular);
  if (D > kMaxWidth || widest > kMaxWidth)
    return "a layer " + std::to_string(std::max(D, widest)) + " wide (> " + std::to_string(kMaxWidth) + ")";
  if (n_hidden > kMaxHidden) return std::to_string(n_hidden) + " hidden layers (> " + std::to_string(kMaxHidden) + ")";
  return "";
}

inline bool is_default_shape(const SprinterParams &p) {
  int widest = 0;
  for (int w : p.widths) widest = std::max(widest, w);
  return p.n_basis == DefaultShape::K && p.angular_channels == DefaultShape::Ca && p.l_max == DefaultShape::L &&
         static_cast<int>(p.widths.size()) == DefaultShape::NL + 1 && widest <= DefaultShape::W;
}

// The model's parameters on the execution space's memory, in the arithmetic's precision.
template <class DeviceType, typename Real>
struct Weights {
  using RealView = Kokkos::View<Real *, DeviceType>;
  RealView radial, angular, mean, stdev, weight, bias, core_r2, slip, neg_freq_rc, freq;
  Kokkos::View<double *, DeviceType> energy_shift;
  Kokkos::Array<int, kMaxHidden + 2> width{}, w_off{}, b_off{};
  int S = 0, K = 0, Cr = 0, Ca = 0, L = 0, D = 0, n_layers = 0;
  Real rc2 = 0, inv_rc = 0, inv_rc2 = 0, f1 = 0, scale = 0, core_a = 0;
  bool chebyshev = false, any_core = false;

  Weights() = default;
  // Call unsupported_reason() first: this copies without checking the limits.
  explicit Weights(const SprinterParams &p) {
    S = p.n_species;
    K = p.n_basis;
    Cr = p.radial_channels;
    Ca = p.angular_channels;
    L = p.l_max;
    D = Cr + L * Ca;
    n_layers = static_cast<int>(p.layer_weight.size());
    std::vector<double> w, b;
    for (int k = 0; k < n_layers; k++) {
      width[k] = p.widths[k];
      w_off[k] = static_cast<int>(w.size());
      b_off[k] = static_cast<int>(b.size());
      w.insert(w.end(), p.layer_weight[k].begin(), p.layer_weight[k].end());
      b.insert(b.end(), p.layer_bias[k].begin(), p.layer_bias[k].end());
    }
    width[n_layers] = p.widths[n_layers];
    // The CPU kernel's basis rule (SprinterKernel's constructor): the trainer's frequencies are
    // pi*k rounded through float32, so cos/sin of k follow from k = 1 by recurrence, each corrected
    // by its small slip; other frequencies take cos and sin directly.
    std::vector<double> slip_k, neg;
    chebyshev = K >= 2;
    for (int k = 0; k < K; k++) {
      const double s = p.basis_freq[k] - k * p.basis_freq[std::min(1, K - 1)];
      chebyshev = chebyshev && std::abs(s) <= 1e-5;
      slip_k.push_back(s);
      neg.push_back(-p.basis_freq[k] / p.cutoff);
    }
    radial = upload("radial_coeff", p.radial_coeff);
    angular = upload("angular_coeff", p.angular_coeff);
    mean = upload("descriptor_mean", p.descriptor_mean);
    stdev = upload("descriptor_std", p.descriptor_std);
    weight = upload("layer_weight", w);
    bias = upload("layer_bias", b);
    core_r2 = upload("core_radius_sq", p.core_radius_sq);
    slip = upload("slip", slip_k);
    neg_freq_rc = upload("neg_freq_rc", neg);
    freq = upload("basis_freq", p.basis_freq);
    energy_shift = Kokkos::View<double *, DeviceType>("superionic/kk:energy_shift", p.energy_shift.size());
    auto h_shift = Kokkos::create_mirror_view(energy_shift);
    for (size_t k = 0; k < p.energy_shift.size(); k++) h_shift(k) = p.energy_shift[k];
    Kokkos::deep_copy(energy_shift, h_shift);
    rc2 = static_cast<Real>(p.cutoff_sq);
    inv_rc = static_cast<Real>(1.0 / p.cutoff);
    inv_rc2 = static_cast<Real>(1.0 / p.cutoff_sq);
    f1 = static_cast<Real>(K > 1 ? p.basis_freq[1] : 0.0);
    scale = static_cast<Real>(p.energy_scale);
    core_a = static_cast<Real>(p.core_strength);
    any_core = p.core_strength != 0 &&
               std::any_of(p.core_radius_sq.begin(), p.core_radius_sq.end(), [](double r) { return r > 0; });
  }

 private:
  static RealView upload(const char *name, const std::vector<double> &v) {
    RealView d(std::string("superionic/kk:") + name, std::max<size_t>(1, v.size()));
    auto h = Kokkos::create_mirror_view(d);
    for (size_t k = 0; k < v.size(); k++) h(k) = static_cast<Real>(v[k]);
    Kokkos::deep_copy(d, h);
    return d;
  }
};

// The reduction of one call: this rank's energy and its global virial (xx yy zz xy xz yz, eV).
struct EnergyVirial {
  double energy = 0.0;
  double v[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  KOKKOS_INLINE_FUNCTION EnergyVirial() {}
  KOKKOS_INLINE_FUNCTION void operator+=(const EnergyVirial &o) {
    energy += o.energy;
    for (int k = 0; k < 6; k++) v[k] += o.v[k];
  }
};

// The graph, grouped by source: node n < n_local owns edges first(n) .. first(n) + count(n) - 1.
template <class DeviceType>
struct Graph {
  Kokkos::View<const double *[3], Kokkos::LayoutRight, DeviceType> edge_vec;  // r_j - r_i
  Kokkos::View<const int64_t *, DeviceType> edge_dst;                         // node j
  Kokkos::View<const int *, DeviceType> first, count;                         // [n_local]
  Kokkos::View<const int64_t *, DeviceType> species;                          // [nodes]
  Kokkos::View<const int64_t *, DeviceType> row;                              // node -> row of f, eatom, vatom
};

// Where the results go. FScatter and VScatter are ScatterViews over [rows][3] and [rows][6]; EView a
// [rows] view. Unused outputs may be views of extent 0: the flags decide what is written.
template <class FScatter, class EView, class VScatter>
struct Outputs {
  FScatter f;
  EView eatom;
  VScatter vatom;
  bool per_atom_energy = false, per_atom_virial = false, global_virial = false;
};

// The fused kernel. parallel_reduce over owned nodes [0, n_local) with an EnergyVirial.
// Optional extras for the stand-alone check: atom_energy [n_local] and edge_grad [n_edges][3].
template <class DeviceType, typename Real, class Sh, class Out>
struct SprinterForce {
  typedef EnergyVirial value_type;
  Weights<DeviceType, Real> w;
  Graph<DeviceType> g;
  Out out;
  Kokkos::View<double *, DeviceType> atom_energy;
  Kokkos::View<double *[3], Kokkos::LayoutRight, DeviceType> edge_grad;

  // Unit vector, 1/r, r, r^2, and the basis with its r-derivative, for edge e.
  KOKKOS_INLINE_FUNCTION void geometry(int e, Real &x, Real &y, Real &z, Real &r, Real &r2, Real &inv_r,
                                       Real *basis, Real *dbasis, int K) const {
    const Real x0 = static_cast<Real>(g.edge_vec(e, 0)), y0 = static_cast<Real>(g.edge_vec(e, 1)),
               z0 = static_cast<Real>(g.edge_vec(e, 2));
    r2 = x0 * x0 + y0 * y0 + z0 * z0;
    r = kmath::sqrt(r2);
    inv_r = Real(1) / r;
    x = x0 * inv_r;
    y = y0 * inv_r;
    z = z0 * inv_r;
    const Real xr = r * w.inv_rc;
    Real fc, dfc;
    maths::envelope<Real, Real>(r, r2, w.rc2, w.inv_rc2, fc, dfc);
    if (w.chebyshev) {
      const Real theta = (xr < Real(1) ? xr : Real(1)) * w.f1;
      maths::chebyshev_basis<Real, Real>(K, kmath::cos(theta), kmath::sin(theta), xr, fc, dfc, w.slip.data(),
                                         w.neg_freq_rc.data(), basis, dbasis, 1);
    } else {
      for (int k = 0; k < K; k++) {
        const Real ck = kmath::cos(xr * w.freq(k)), sk = kmath::sin(xr * w.freq(k));
        basis[k] = ck * fc;
        dbasis[k] = w.neg_freq_rc(k) * sk * fc + ck * dfc;
      }
    }
  }

  KOKKOS_INLINE_FUNCTION void operator()(const int i, EnergyVirial &ev) const {
    constexpr int KMax = Sh::KMax, CaMax = Sh::CaMax, YMax = Sh::YMax, WMax = Sh::WMax, HMax = Sh::HMax;
    const int S = w.S, Cr = w.Cr, D = w.D, n_layers = w.n_layers;
    const int K = Sh::K > 0 ? Sh::K : w.K;
    const int Ca = Sh::Ca > 0 ? Sh::Ca : w.Ca;
    const int L = Sh::L > 0 ? Sh::L : w.L;
    const int nY = maths::harmonic_offset(L + 1);
    const int si = static_cast<int>(g.species(i));
    const int begin = g.first(i), end = begin + g.count(i);
    const Real *radial_i = w.radial.data() + static_cast<size_t>(si) * S * Cr * K;  // [sj][ch][k]
    const Real *angular_i = w.angular.data() + static_cast<size_t>(si) * S * Ca * K;

    // 1. Descriptors: radial sums straight into q, angular moments M[c][m].
    Real q[WMax];
    Real M[CaMax][YMax];
    for (int d = 0; d < Cr; d++) q[d] = 0;
    for (int c = 0; c < Ca; c++)
      for (int m = 0; m < nY; m++) M[c][m] = 0;
    double core_energy = 0.0;
    for (int e = begin; e < end; e++) {
      const int sj = static_cast<int>(g.species(g.edge_dst(e)));
      Real x, y, z, r, r2, inv_r, basis[KMax], dbasis[KMax];
      geometry(e, x, y, z, r, r2, inv_r, basis, dbasis, K);
      const Real *C = radial_i + static_cast<size_t>(sj) * Cr * K;
      for (int ch = 0; ch < Cr; ch++) {
        Real acc = 0;
        for (int k = 0; k < K; k++) acc += C[ch * K + k] * basis[k];
        q[ch] += acc;
      }
      if (L > 0) {
        const Real *A = angular_i + static_cast<size_t>(sj) * Ca * K;
        Real Y[YMax];
        maths::harmonics<Real, Real>(x, y, z, L, Y, 1);
        for (int c = 0; c < Ca; c++) {
          Real h = 0;
          for (int k = 0; k < K; k++) h += A[c * K + k] * basis[k];
          for (int m = 0; m < nY; m++) M[c][m] += h * Y[m];
        }
      }
      if (w.any_core) {
        Real e_core, d_core;
        maths::core_repulsion<Real, Real>(w.core_r2(si * S + sj), r, r2, w.core_a, e_core, d_core);
        core_energy += static_cast<double>(e_core);
      }
    }
    for (int l = 1; l <= L; l++)
      for (int c = 0; c < Ca; c++) {
        Real acc = 0;
        for (int m = maths::harmonic_offset(l); m < maths::harmonic_offset(l + 1); m++) acc += M[c][m] * M[c][m];
        q[Cr + (l - 1) * Ca + c] = acc;
      }

    // 2. The species' MLP, silu between layers; ds keeps silu' for the backward pass.
    Real a[WMax], b[WMax], ds[HMax][WMax];
    for (int d = 0; d < D; d++) a[d] = (q[d] - w.mean(d)) / w.stdev(d);
    for (int k = 0; k < n_layers; k++) {
      const int n_in = w.width[k], n_out = w.width[k + 1];
      const Real *Wk = w.weight.data() + w.w_off[k] + static_cast<size_t>(si) * n_in * n_out;
      const Real *bk = w.bias.data() + w.b_off[k] + static_cast<size_t>(si) * n_out;
      for (int o = 0; o < n_out; o++) b[o] = bk[o];
      for (int p = 0; p < n_in; p++) {
        const Real in = a[p];
        for (int o = 0; o < n_out; o++) b[o] += in * Wk[p * n_out + o];
      }
      if (k + 1 < n_layers) {
        for (int o = 0; o < n_out; o++) {
          const Real sig = Real(1) / (Real(1) + kmath::exp(-b[o]));
          ds[k][o] = sig * (Real(1) + b[o] * (Real(1) - sig));
          a[o] = b[o] * sig;
        }
      } else {
        a[0] = b[0];
      }
    }
    const double energy = w.energy_shift(si) + static_cast<double>(w.scale) * static_cast<double>(a[0]) + core_energy;
    // dE/d(layer input), last layer first; b ends as dE/d(standardised q).
    b[0] = w.scale;
    for (int k = n_layers - 1; k >= 0; k--) {
      const int n_in = w.width[k], n_out = w.width[k + 1];
      const Real *Wk = w.weight.data() + w.w_off[k] + static_cast<size_t>(si) * n_in * n_out;
      for (int p = 0; p < n_in; p++) {
        Real acc = 0;
        for (int o = 0; o < n_out; o++) acc += b[o] * Wk[p * n_out + o];
        a[p] = k > 0 ? acc * ds[k - 1][p] : acc;
      }
      for (int p = 0; p < n_in; p++) b[p] = a[p];
    }
    // G = dE/dq in b; the angular part into M as T[c][m] = 2 G_l(c) M[c][m] = dE/dM[c][m].
    for (int d = 0; d < D; d++) b[d] = b[d] / w.stdev(d);
    for (int l = 1; l <= L; l++)
      for (int c = 0; c < Ca; c++) {
        const Real two_g = 2 * b[Cr + (l - 1) * Ca + c];
        for (int m = maths::harmonic_offset(l); m < maths::harmonic_offset(l + 1); m++) M[c][m] *= two_g;
      }

    // 3. The edges again: dE/d(edge_vec), forces, virial.
    auto f = out.f.access();
    auto vatom = out.vatom.access();
    const int64_t row_i = g.row(i);
    double fi[3] = {0.0, 0.0, 0.0}, vi[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    const bool virial = out.global_virial || out.per_atom_virial;
    for (int e = begin; e < end; e++) {
      const int64_t j = g.edge_dst(e);
      const int sj = static_cast<int>(g.species(j));
      Real x, y, z, r, r2, inv_r, basis[KMax], dbasis[KMax];
      geometry(e, x, y, z, r, r2, inv_r, basis, dbasis, K);
      const Real *C = radial_i + static_cast<size_t>(sj) * Cr * K;
      Real wk[KMax];  // dE/d(basis_k)
      for (int k = 0; k < K; k++) wk[k] = 0;
      for (int ch = 0; ch < Cr; ch++)
        for (int k = 0; k < K; k++) wk[k] += b[ch] * C[ch * K + k];
      Real gx = 0, gy = 0, gz = 0;
      if (L > 0) {
        const Real *A = angular_i + static_cast<size_t>(sj) * Ca * K;
        Real Y[YMax], dY[YMax];
        maths::harmonics<Real, Real>(x, y, z, L, Y, 1);
        for (int m = 0; m < nY; m++) dY[m] = 0;
        for (int c = 0; c < Ca; c++) {
          Real h = 0, dh = 0;
          for (int k = 0; k < K; k++) h += A[c * K + k] * basis[k];
          for (int m = 0; m < nY; m++) {
            dY[m] += h * M[c][m];
            dh += Y[m] * M[c][m];
          }
          for (int k = 0; k < K; k++) wk[k] += dh * A[c * K + k];
        }
        maths::harmonics_grad<Real, Real>(x, y, z, L, dY, gx, gy, gz);
      }
      Real dEdr = 0;
      for (int k = 0; k < K; k++) dEdr += wk[k] * dbasis[k];
      if (w.any_core) {
        Real e_core, d_core;
        maths::core_repulsion<Real, Real>(w.core_r2(si * S + sj), r, r2, w.core_a, e_core, d_core);
        dEdr += d_core;
      }
      Real fx, fy, fz;
      maths::edge_gradient<Real>(dEdr, x, y, z, inv_r, gx, gy, gz, fx, fy, fz);
      // edge_vec = r_j - r_i: F_i += dE/d(edge_vec), F_j -= it; virial -edge_vec (x) dE/d(edge_vec).
      const double g0 = fx, g1 = fy, g2 = fz;
      if (edge_grad.extent(0) > 0) {
        edge_grad(e, 0) = g0;
        edge_grad(e, 1) = g1;
        edge_grad(e, 2) = g2;
      }
      const int64_t row_j = g.row(j);
      fi[0] += g0;
      fi[1] += g1;
      fi[2] += g2;
      f(row_j, 0) -= g0;
      f(row_j, 1) -= g1;
      f(row_j, 2) -= g2;
      if (virial) {
        const double d0 = g.edge_vec(e, 0), d1 = g.edge_vec(e, 1), d2 = g.edge_vec(e, 2);
        const double v[6] = {-d0 * g0, -d1 * g1, -d2 * g2, -d0 * g1, -d0 * g2, -d1 * g2};
        if (out.global_virial)
          for (int k = 0; k < 6; k++) ev.v[k] += v[k];
        if (out.per_atom_virial)
          for (int k = 0; k < 6; k++) {
            vi[k] += 0.5 * v[k];
            vatom(row_j, k) += 0.5 * v[k];
          }
      }
    }
    f(row_i, 0) += fi[0];
    f(row_i, 1) += fi[1];
    f(row_i, 2) += fi[2];
    if (out.per_atom_virial)
      for (int k = 0; k < 6; k++) vatom(row_i, k) += vi[k];
    if (out.per_atom_energy) out.eatom(row_i) += energy;
    if (atom_energy.extent(0) > 0) atom_energy(i) = energy;
    ev.energy += energy;
  }
};

}  // namespace kk
}  // namespace superionic

#endif
