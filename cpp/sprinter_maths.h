// The sprinter's per-edge maths (python/superionic/models/sprinter.py), written once for both native
// kernels: the CPU kernel (sprinter_kernel_impl.h), where V is a SIMD register holding W edges, and
// pair_style superionic/kk's Kokkos kernel (cpp/kokkos/sprinter_kokkos.h), where V is one scalar on
// any Kokkos execution space, a GPU included. Real is the arithmetic's scalar type (double or float).
//
// Every function is a template over (V, Real) built from +, -, *, / and the conditional operator,
// which mean the same for a scalar and for a GCC vector (lane by lane); the CPU kernel's inlined
// copies therefore compile to the instructions they compiled to before this header existed. No
// library call appears here: the cos/sin of the first basis frequency, the exp of the MLP and the
// square root are the callers' (the CPU kernel's own polynomials; Kokkos's math functions).
#ifndef SUPERIONIC_SPRINTER_MATHS_H
#define SUPERIONIC_SPRINTER_MATHS_H

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SI_MATHS_HD __host__ __device__
#else
#define SI_MATHS_HD
#endif
#define SI_MATHS_FN SI_MATHS_HD inline __attribute__((always_inline))

namespace superionic {
namespace maths {

constexpr int kMaxL = 4;
// Flat index of (l, m) among the harmonics l = 1..l_max: l = 1 starts at 0, l = 2 at 3, ...
SI_MATHS_HD constexpr int harmonic_offset(int l) { return l * l - 1; }
// The harmonics of l = 1..kMaxL: 24.
constexpr int kMaxHarmonics = harmonic_offset(kMaxL + 1);

// The smooth cutoff fc = (1 - r^2/rc^2)^3 inside the cutoff, 0 outside, and dfc = d fc / dr.
template <typename V, typename Real>
SI_MATHS_FN void envelope(V r, V r2, Real rc2, Real inv_rc2, V &fc, V &dfc) {
  const V one = V{} + Real(1), zero = V{};
  const auto inside = r2 < rc2;
  const V omx = one - r2 * inv_rc2;
  fc = inside ? omx * omx * omx : zero;
  dfc = inside ? Real(-6) * inv_rc2 * r * omx * omx : zero;
}

// The radial basis f_k = cos(k pi x) fc and its r-derivative for k = 0..K-1, x = r / rc, from c1, s1 =
// cos, sin of the first frequency times min(x, 1) by the Chebyshev recurrence. The stored frequencies
// are pi*k rounded through float32 (torch.pi * arange), so each k is corrected by the small angle
// slip_k * x (|delta| < 1e-5), to second order: exact in float64. neg_freq_rc[k] = -freq_k / rc.
// basis[k] and dbasis[k * dstride] receive the values.
template <typename V, typename Real>
SI_MATHS_FN void chebyshev_basis(int K, V c1, V s1, V xr, V fc, V dfc, const Real *slip_k, const Real *neg_freq_rc,
                                 V *basis, V *dbasis, int dstride) {
  const V one = V{} + Real(1), zero = V{};
  const V two_c1 = c1 + c1;
  V cm2 = one, sm2 = zero, cm1 = c1, sm1 = s1;
  for (int k = 0; k < K; k++) {
    V ck, sk;
    if (k == 0) {
      ck = one;
      sk = zero;
    } else if (k == 1) {
      ck = c1;
      sk = s1;
    } else {
      ck = two_c1 * cm1 - cm2;
      sk = two_c1 * sm1 - sm2;
      cm2 = cm1;
      sm2 = sm1;
      cm1 = ck;
      sm1 = sk;
    }
    const Real slip = slip_k[k];
    if (slip != 0) {
      const V d = xr * slip;
      const V cd = one - d * d * Real(0.5), sd = d - d * d * d * Real(1.0 / 6.0);
      const V cc = ck * cd - sk * sd;
      sk = sk * cd + ck * sd;
      ck = cc;
    }
    basis[k] = ck * fc;
    dbasis[k * dstride] = neg_freq_rc[k] * sk * fc + ck * dfc;
  }
}

// Schmidt semi-normalised real harmonics of the unit vector (x, y, z), exactly the polynomials of
// sprinter.real_harmonics; Y[m * stride] receives harmonic m (l = 1..l_max, harmonic_offset order).
template <typename V, typename Real>
SI_MATHS_FN void harmonics(V x, V y, V z, int l_max, V *Y, int stride) {
  const Real SQ3 = Real(1.7320508075688772), SQ5 = Real(2.23606797749979), SQ10 = Real(3.1622776601683795);
  const Real SQ15 = Real(3.872983346207417), SQ35 = Real(5.916079783099616), SQ70 = Real(8.366600265340756);
  const Real SQ3_8 = Real(0.6123724356957945), SQ5_8 = Real(0.7905694150420949);
#define SI_Y(m) Y[(m) * stride]
  SI_Y(0) = x;
  SI_Y(1) = y;
  SI_Y(2) = z;
  if (l_max >= 2) {
    const V xx_yy = x * x - y * y;
    SI_Y(3) = (Real(3) * z * z - Real(1)) * Real(0.5);
    SI_Y(4) = SQ3 * x * z;
    SI_Y(5) = SQ3 * y * z;
    SI_Y(6) = SQ3 / 2 * xx_yy;
    SI_Y(7) = SQ3 * x * y;
  }
  if (l_max >= 3) {
    const V z2 = Real(5) * z * z;
    SI_Y(8) = z * (z2 - Real(3)) * Real(0.5);
    SI_Y(9) = SQ3_8 * x * (z2 - Real(1));
    SI_Y(10) = SQ3_8 * y * (z2 - Real(1));
    SI_Y(11) = SQ15 / 2 * z * (x * x - y * y);
    SI_Y(12) = SQ15 * x * y * z;
    SI_Y(13) = SQ5_8 * x * (x * x - Real(3) * y * y);
    SI_Y(14) = SQ5_8 * y * (Real(3) * x * x - y * y);
  }
  if (l_max >= 4) {
    const V z2 = Real(7) * z * z;
    const V zz = z * z;
    SI_Y(15) = (Real(35) * zz * zz - Real(30) * zz + Real(3)) * Real(0.125);
    SI_Y(16) = SQ10 / 4 * x * z * (z2 - Real(3));
    SI_Y(17) = SQ10 / 4 * y * z * (z2 - Real(3));
    SI_Y(18) = SQ5 / 4 * (x * x - y * y) * (z2 - Real(1));
    SI_Y(19) = SQ5 / 2 * x * y * (z2 - Real(1));
    SI_Y(20) = SQ70 / 4 * x * z * (x * x - Real(3) * y * y);
    SI_Y(21) = SQ70 / 4 * y * z * (Real(3) * x * x - y * y);
    SI_Y(22) = SQ35 / 8 * (x * x * x * x - Real(6) * x * x * y * y + y * y * y * y);
    SI_Y(23) = SQ35 / 2 * x * y * (x * x - y * y);
  }
#undef SI_Y
}

// g = sum_m w[m] * grad Y_m(u), the gradient taken in R^3 (the projection onto the sphere is
// edge_gradient's, matching autograd through u = v / |v|).
template <typename V, typename Real>
SI_MATHS_FN void harmonics_grad(V x, V y, V z, int l_max, const V *w, V &gx, V &gy, V &gz) {
  const Real SQ3 = Real(1.7320508075688772), SQ5 = Real(2.23606797749979), SQ10 = Real(3.1622776601683795);
  const Real SQ15 = Real(3.872983346207417), SQ35 = Real(5.916079783099616), SQ70 = Real(8.366600265340756);
  const Real SQ3_8 = Real(0.6123724356957945), SQ5_8 = Real(0.7905694150420949);
  gx = w[0];
  gy = w[1];
  gz = w[2];
  if (l_max >= 2) {
    const V *W = w + 3;
    gz += W[0] * Real(3) * z;
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
    const V *W = w + 8;
    const V a = Real(5) * z * z - Real(1);
    const V xx_yy = x * x - y * y;
    gz += W[0] * (Real(15) * z * z - Real(3)) * Real(0.5);
    gx += W[1] * SQ3_8 * a;
    gz += W[1] * (SQ3_8 * 10) * x * z;
    gy += W[2] * SQ3_8 * a;
    gz += W[2] * (SQ3_8 * 10) * y * z;
    gx += W[3] * SQ15 * x * z;
    gy -= W[3] * SQ15 * y * z;
    gz += W[3] * (SQ15 / 2) * xx_yy;
    gx += W[4] * SQ15 * y * z;
    gy += W[4] * SQ15 * x * z;
    gz += W[4] * SQ15 * x * y;
    gx += W[5] * (SQ5_8 * 3) * xx_yy;
    gy -= W[5] * (SQ5_8 * 6) * x * y;
    gx += W[6] * (SQ5_8 * 6) * x * y;
    gy += W[6] * (SQ5_8 * 3) * xx_yy;
  }
  if (l_max >= 4) {
    const V *W = w + 15;
    const V zz = z * z;
    const V b = Real(7) * zz - Real(1);
    const V c = Real(7) * zz * z - Real(3) * z;
    const V d = Real(21) * zz - Real(3);
    const V xx_yy = x * x - y * y;
    gz += W[0] * (Real(140) * zz * z - Real(60) * z) * Real(0.125);
    gx += W[1] * (SQ10 / 4) * c;
    gz += W[1] * (SQ10 / 4) * x * d;
    gy += W[2] * (SQ10 / 4) * c;
    gz += W[2] * (SQ10 / 4) * y * d;
    gx += W[3] * (SQ5 / 4 * 2) * x * b;
    gy -= W[3] * (SQ5 / 4 * 2) * y * b;
    gz += W[3] * (SQ5 / 4 * 14) * xx_yy * z;
    gx += W[4] * (SQ5 / 2) * y * b;
    gy += W[4] * (SQ5 / 2) * x * b;
    gz += W[4] * (SQ5 / 2 * 14) * x * y * z;
    gx += W[5] * (SQ70 / 4 * 3) * xx_yy * z;
    gy -= W[5] * (SQ70 / 4 * 6) * x * y * z;
    gz += W[5] * (SQ70 / 4) * x * (x * x - Real(3) * y * y);
    gx += W[6] * (SQ70 / 4 * 6) * x * y * z;
    gy += W[6] * (SQ70 / 4 * 3) * xx_yy * z;
    gz += W[6] * (SQ70 / 4) * y * (Real(3) * x * x - y * y);
    gx += W[7] * (SQ35 / 8) * (Real(4) * x * x * x - Real(12) * x * y * y);
    gy += W[7] * (SQ35 / 8) * (Real(4) * y * y * y - Real(12) * x * x * y);
    gx += W[8] * (SQ35 / 2) * (Real(3) * x * x * y - y * y * y);
    gy += W[8] * (SQ35 / 2) * (x * x * x - Real(3) * x * y * y);
  }
}

// Core repulsion 0.5 A (R/r^2 - 1)^3 below r = sqrt(R), R the species pair's core_radius_sq: its
// energy and d_core = dE/dr (its edge gradient is d_core * u, added to the radial part).
template <typename V, typename Real>
SI_MATHS_FN void core_repulsion(V Rc, V r, V r2, Real core_a, V &energy, V &d_core) {
  const V one = V{} + Real(1), zero = V{};
  const V ratio = Rc / r2;
  const auto over = ratio > one;
  const V ex = ratio - one;
  energy = over ? (Real(0.5) * core_a) * ex * ex * ex : zero;
  d_core = over ? (Real(-3) * core_a) * ex * ex * Rc * r / (r2 * r2) : zero;
}

// dE/d(edge_vec) from the radial derivative dE/dr (the basis and the core) and the harmonics'
// gradient g in R^3, projected onto the sphere through u = v / r.
template <typename V>
SI_MATHS_FN void edge_gradient(V radial_part, V x, V y, V z, V inv_r, V gx, V gy, V gz, V &fx, V &fy, V &fz) {
  const V gu = gx * x + gy * y + gz * z;
  fx = radial_part * x + (gx - gu * x) * inv_r;
  fy = radial_part * y + (gy - gu * y) * inv_r;
  fz = radial_part * z + (gz - gu * z) * inv_r;
}

}  // namespace maths
}  // namespace superionic

#endif
