// The per-atom loop of the native sprinter kernel, included twice by sprinter_kernel.cpp: once for
// the build's baseline instruction set and once under `#pragma GCC target("avx2,fma")`, SI_ATOMS
// naming the copy and SI_ISA the namespace of its helpers. Each OpenMP thread of
// SprinterKernel::compute_impl runs one copy on the Pass it prepared. Not a public header: it relies
// on the definitions sprinter_kernel.cpp makes before it.
//
// Layout: an atom's edges are sorted by the neighbour's species and padded to whole registers; every
// per-edge quantity is stored structure-of-arrays, one register of W edges (W = 4 doubles or 8 floats)
// per block, and the per-edge arithmetic runs on blocks, W edges per instruction. The species-pair
// coefficients are the same for a whole block except where the sorted species change inside it; such
// blocks evaluate each species present and select lane by lane. The angular moments, the one part that
// sums over edges, are register-blocked over the harmonics and reduced across lanes once per atom.
#ifndef SI_ATOMS
#error "sprinter_kernel_impl.h is included by sprinter_kernel.cpp only"
#endif

namespace SI_ISA {

// phase: other
template <typename Real>
using Vec = typename Simd<Real>::V;

template <typename Real>
SI_INLINE Vec<Real> splat(Real x) {
  return Vec<Real>{} + x;
}

// phase: edge forward: geometry, cutoff
template <typename Real>
SI_INLINE Vec<Real> vsqrt(Vec<Real> x) {
#if SI_AVX
  if constexpr (sizeof(Real) == sizeof(double))
    return __builtin_ia32_sqrtpd256(x);
  else
    return __builtin_ia32_sqrtps256(x);
#else
  Vec<Real> r = x;
  for (int l = 0; l < Simd<Real>::width; l++) r[l] = std::sqrt(x[l]);
  return r;
#endif
}

// phase: lane sums (angular moments, radial basis sums)
// out[j] = sum of the lanes of acc[j], j < n; a transposing add tree reduces W registers at a time.
template <typename Real>
SI_INLINE void reduce_lanes(const Vec<Real> *acc, int n, Real *out) {
  using V = Vec<Real>;
  using I = typename Simd<Real>::I;
  constexpr int W = Simd<Real>::width;
  int j = 0;
#if !defined(__clang__)
  for (; j + W <= n; j += W) {
    const V *a = acc + j;
    V r;
    if constexpr (W == 4) {
      const V t0 = __builtin_shuffle(a[0], a[1], I{0, 4, 2, 6}) + __builtin_shuffle(a[0], a[1], I{1, 5, 3, 7});
      const V t1 = __builtin_shuffle(a[2], a[3], I{0, 4, 2, 6}) + __builtin_shuffle(a[2], a[3], I{1, 5, 3, 7});
      r = __builtin_shuffle(t0, t1, I{0, 1, 4, 5}) + __builtin_shuffle(t0, t1, I{2, 3, 6, 7});
    } else {
      V t[4], u[2];
      for (int p = 0; p < 4; p++)
        t[p] = __builtin_shuffle(a[2 * p], a[2 * p + 1], I{0, 8, 2, 10, 4, 12, 6, 14}) +
               __builtin_shuffle(a[2 * p], a[2 * p + 1], I{1, 9, 3, 11, 5, 13, 7, 15});
      for (int p = 0; p < 2; p++)
        u[p] = __builtin_shuffle(t[2 * p], t[2 * p + 1], I{0, 1, 8, 9, 4, 5, 12, 13}) +
               __builtin_shuffle(t[2 * p], t[2 * p + 1], I{2, 3, 10, 11, 6, 7, 14, 15});
      r = __builtin_shuffle(u[0], u[1], I{0, 1, 2, 3, 8, 9, 10, 11}) +
          __builtin_shuffle(u[0], u[1], I{4, 5, 6, 7, 12, 13, 14, 15});
    }
    __builtin_memcpy(out + j, &r, sizeof r);
  }
#endif
  for (; j < n; j++) {
    Real s = 0;
    for (int l = 0; l < W; l++) s += acc[j][l];
    out[j] = s;
  }
}

// phase: MLP forward
// exp(x) for the silu: Cody-Waite reduction by ln 2, Taylor series to r^12 (|r| <= ln2/2, truncation
// 2e-16 relative), 2^n assembled in the exponent bits. Clamped to |x| <= 700 (float: 80), where
// silu is linear or zero to far below round-off.
template <typename Real>
SI_INLINE Vec<Real> vexp(Vec<Real> x) {
  using V = Vec<Real>;
  using I = typename Simd<Real>::I;
  constexpr bool f64 = sizeof(Real) == sizeof(double);
  const V lim = splat<Real>(f64 ? Real(700) : Real(80));
  x = x > lim ? lim : x;
  x = x < -lim ? -lim : x;
  const V shift = splat<Real>(f64 ? Real(6755399441055744.0) : Real(12582912.0f));  // 1.5 * 2^52, 1.5 * 2^23
  const V t = x * Real(1.4426950408889634) + shift;
  const V n = t - shift;
  V r = x - n * (f64 ? Real(6.93147180369123816490e-01) : Real(0.693359375f));
  r = r - n * (f64 ? Real(1.90821492927058770002e-10) : Real(-2.12194440e-4f));
  V p = splat<Real>(Real(1.0 / 479001600.0));
  p = p * r + Real(1.0 / 39916800.0);
  p = p * r + Real(1.0 / 3628800.0);
  p = p * r + Real(1.0 / 362880.0);
  p = p * r + Real(1.0 / 40320.0);
  p = p * r + Real(1.0 / 5040.0);
  p = p * r + Real(1.0 / 720.0);
  p = p * r + Real(1.0 / 120.0);
  p = p * r + Real(1.0 / 24.0);
  p = p * r + Real(1.0 / 6.0);
  p = p * r + Real(0.5);
  p = p * r + Real(1);
  p = p * r + Real(1);
  // Vector casts between equal sizes reinterpret the bits (GCC vector extension).
  const I bits = ((I)t - (I)shift + (f64 ? 1023 : 127)) << (f64 ? 52 : 23);
  return p * (V)bits;
}

// phase: edge forward: radial basis (cos/sin recurrence), per-species sums
// cos and sin of theta in [0, pi + 1e-6]: phi = theta - pi/2 in [-pi/2, pi/2], Taylor series of
// sin phi to phi^19 and cos phi to phi^20 (truncation below 3e-16).
template <typename Real>
SI_INLINE void vsincos(Vec<Real> theta, Vec<Real> &c, Vec<Real> &s) {
  using V = Vec<Real>;
  const V phi = theta - Real(1.5707963267948966);
  const V z = phi * phi;
  V sp = splat<Real>(Real(-1.0 / 121645100408832000.0));
  sp = sp * z + Real(1.0 / 355687428096000.0);
  sp = sp * z + Real(-1.0 / 1307674368000.0);
  sp = sp * z + Real(1.0 / 6227020800.0);
  sp = sp * z + Real(-1.0 / 39916800.0);
  sp = sp * z + Real(1.0 / 362880.0);
  sp = sp * z + Real(-1.0 / 5040.0);
  sp = sp * z + Real(1.0 / 120.0);
  sp = sp * z + Real(-1.0 / 6.0);
  sp = sp * z + Real(1);
  V cp = splat<Real>(Real(1.0 / 2432902008176640000.0));
  cp = cp * z + Real(-1.0 / 6402373705728000.0);
  cp = cp * z + Real(1.0 / 20922789888000.0);
  cp = cp * z + Real(-1.0 / 87178291200.0);
  cp = cp * z + Real(1.0 / 479001600.0);
  cp = cp * z + Real(-1.0 / 3628800.0);
  cp = cp * z + Real(1.0 / 40320.0);
  cp = cp * z + Real(-1.0 / 720.0);
  cp = cp * z + Real(1.0 / 24.0);
  cp = cp * z + Real(-0.5);
  cp = cp * z + Real(1);
  c = -(sp * phi);  // cos(phi + pi/2) = -sin(phi)
  s = cp;           // sin(phi + pi/2) = cos(phi)
}

// out[j] = sum_b Y_j(b) * h(b) over the n blocks, for MB consecutive harmonics held in registers;
// block b's values lie at Y[b * stride + j] and h[b * stride].
// phase: edge forward: angular moments h, M
template <typename Real, int MB>
SI_INLINE void moment_rows(const Vec<Real> *Y, const Vec<Real> *h, int n, size_t stride, Vec<Real> *out) {
  Vec<Real> acc[MB];
  for (int j = 0; j < MB; j++) acc[j] = Vec<Real>{};
  for (int b = 0; b < n; b++) {
    const Vec<Real> hb = h[b * stride];
    for (int j = 0; j < MB; j++) acc[j] += Y[b * stride + j] * hb;
  }
  for (int j = 0; j < MB; j++) out[j] = acc[j];
}

// out[chunk] = bias + sum_a in[a] * W[a][chunk]: one dense layer for NC output registers kept in
// registers (NC = 0: any count, accumulated in memory).
// phase: MLP: dense layers (forward and backward)
template <typename Real, int NC>
SI_INLINE void dense_rows(const Real *in, int n_in, const Vec<Real> *W, const Vec<Real> *bias, Vec<Real> *out,
                          int nc) {
  using V = Vec<Real>;
  if constexpr (NC > 0) {
    V acc[NC];
    for (int j = 0; j < NC; j++) acc[j] = bias ? bias[j] : V{};
    for (int a = 0; a < n_in; a++) {
      const V x = splat<Real>(in[a]);
      const V *Wa = W + a * NC;
      for (int j = 0; j < NC; j++) acc[j] += x * Wa[j];
    }
    for (int j = 0; j < NC; j++) out[j] = acc[j];
  } else {
    for (int j = 0; j < nc; j++) out[j] = bias ? bias[j] : V{};
    for (int a = 0; a < n_in; a++) {
      const V x = splat<Real>(in[a]);
      const V *Wa = W + a * nc;
      for (int j = 0; j < nc; j++) out[j] += x * Wa[j];
    }
  }
}

template <typename Real>
SI_INLINE void dense(const Real *in, int n_in, const Vec<Real> *W, const Vec<Real> *bias, Vec<Real> *out, int nc) {
  switch (nc) {
    case 1: dense_rows<Real, 1>(in, n_in, W, bias, out, nc); break;
    case 2: dense_rows<Real, 2>(in, n_in, W, bias, out, nc); break;
    case 3: dense_rows<Real, 3>(in, n_in, W, bias, out, nc); break;
    case 4: dense_rows<Real, 4>(in, n_in, W, bias, out, nc); break;
    case 5: dense_rows<Real, 5>(in, n_in, W, bias, out, nc); break;
    case 6: dense_rows<Real, 6>(in, n_in, W, bias, out, nc); break;
    case 7: dense_rows<Real, 7>(in, n_in, W, bias, out, nc); break;
    case 8: dense_rows<Real, 8>(in, n_in, W, bias, out, nc); break;
    default: dense_rows<Real, 0>(in, n_in, W, bias, out, nc); break;
  }
}

}  // namespace SI_ISA

// phase: setup: per-thread scratch
template <typename Real, int kCa, int kK, int kL>
void SI_ATOMS(const Pass<Real> &c) {
  using namespace SI_ISA;
  using V = Vec<Real>;
  constexpr int W = Simd<Real>::width;
  constexpr int CaMax = kCa > 0 ? kCa : kMaxChannels;
  constexpr int KMax = kK > 0 ? kK : kMaxBasis;
  const KernelTables<Real> &t = *c.t;
  const int S = t.S, Cr = t.Cr;
  const int K = kK > 0 ? kK : t.K;
  const int Ca = kCa > 0 ? kCa : t.Ca;
  const int L = kL > 0 ? kL : t.L;
  const int nY = harmonic_offset(L + 1);
  const int nYp = round_up(nY, 4);  // moment rows go by 8 and 4
  const int D = Cr + L * Ca;
  const int n_layers = t.n_layers;
  int max_chunks = 0;
  for (int w : t.padded) max_chunks = std::max(max_chunks, w / W);
  const double *edge_vec = c.edge_vec;
  const int64_t *edge_dst = c.edge_dst, *species = c.species, *first = c.first, *edge_order = c.edge_order;
  double *atom_energy = c.atom_energy, *edge_grad = c.edge_grad;
  const Real *radial = t.radial.data();
  const V *angular = t.angular.data();
  const Real rc2 = t.rc2, inv_rc = t.inv_rc, inv_rc2 = t.inv_rc2, scale = t.scale, core_a = t.core_a;
  const Real f1 = t.freq.size() > 1 ? t.freq[1] : Real(0);
  const V one = splat<Real>(1), zero = V{};
  Real slip_k[KMax], neg_freq_rc[KMax];  // locals: the compiler need not reload them after each store
  for (int k = 0; k < K; k++) {
    slip_k[k] = t.slip[k];
    neg_freq_rc[k] = t.neg_freq_rc[k];
  }

  // Per-thread work arrays; the per-edge ones grow to the largest neighbourhood seen.
  // Block b of an atom's edges is the record soa[b * R ...]: unit vector, 1/r, core-repulsion factor,
  // species (as Real), then the basis derivatives, the harmonics and h, W edges per register.
  enum { kX, kY, kZ, kR, kCore, kSpecies, kFixed };
  const int oDb = kFixed, oY = kFixed + K, oH = kFixed + K + nYp;
  const size_t R = static_cast<size_t>(kFixed + K + nYp + Ca);
  int capacity = 0;  // blocks
  VecStore<Real> soa;
  std::vector<int64_t> eidx, raw_e;
  std::vector<int> spec, raw_s, count(S + 1);
  std::vector<char> present(S);  // species among this atom's neighbours
  VecStore<Real> racc(static_cast<size_t>(S) * K), Wr(static_cast<size_t>(S) * K), Mv(static_cast<size_t>(Ca) * nYp),
      Tb(static_cast<size_t>(std::max(1, nY * Ca)));
  std::vector<Real> M(static_cast<size_t>(Ca) * nYp), Bs(static_cast<size_t>(S) * K), q(D), G(D);
  VecStore<Real> act(static_cast<size_t>(n_layers + 1) * max_chunks), dsilu(static_cast<size_t>(n_layers) * max_chunks),
      grad_a(max_chunks), grad_b(max_chunks);

#ifdef _OPENMP
#pragma omp for schedule(dynamic, 16)
#endif
  for (int64_t i = 0; i < c.n_local; i++) {
    const int64_t begin = first[i], n = first[i + 1] - first[i];
    const int si = static_cast<int>(species[i]);
    const int nb = static_cast<int>((n + W - 1) / W);
    if (nb > capacity) {
      capacity = nb;
      soa.assign(R * capacity, V{});  // rows of Y past nY stay zero
      eidx.resize(static_cast<size_t>(capacity) * W);
      spec.resize(static_cast<size_t>(capacity) * W);
      raw_e.resize(static_cast<size_t>(capacity) * W);
      raw_s.resize(static_cast<size_t>(capacity) * W);
    }
    const int np = nb * W;
    V *const rec = soa.data();

    // phase: edge forward: gather, sort by neighbour species
    std::fill(count.begin(), count.end(), 0);
    for (int64_t k = 0; k < n; k++) {
      const int64_t e = edge_order ? edge_order[begin + k] : begin + k;
      const int sj = static_cast<int>(species[edge_dst[e]]);
      raw_e[k] = e;
      raw_s[k] = sj;
      count[sj + 1]++;
    }
    for (int s = 0; s < S; s++) present[s] = count[s + 1] > 0;
    for (int s = 0; s < S; s++) count[s + 1] += count[s];
    auto lane = [&](int slot, int field) -> Real & {
      return reinterpret_cast<Real *>(rec + (slot / W) * R + field)[slot % W];
    };
    for (int64_t k = 0; k < n; k++) {
      const int sj = raw_s[k];
      const int slot = count[sj]++;
      const int64_t e = raw_e[k];
      eidx[slot] = e;
      spec[slot] = sj;
      lane(slot, kSpecies) = static_cast<Real>(sj);
      lane(slot, kX) = static_cast<Real>(edge_vec[3 * e]);
      lane(slot, kY) = static_cast<Real>(edge_vec[3 * e + 1]);
      lane(slot, kZ) = static_cast<Real>(edge_vec[3 * e + 2]);
    }
    // Padding lanes: far outside the cutoff and every core radius, so they add nothing; the species
    // of the last edge keeps the last block uniform.
    for (int k = static_cast<int>(n); k < np; k++) {
      eidx[k] = -1;
      spec[k] = spec[n - 1];
      lane(k, kSpecies) = static_cast<Real>(spec[n - 1]);
      lane(k, kX) = Real(1e4);
      lane(k, kY) = lane(k, kZ) = 0;
    }

    std::fill(racc.begin(), racc.end(), V{});
    double core_energy = 0.0;
    V core_acc = zero;
    const V *A_i = angular + static_cast<size_t>(si) * S * Ca * K;  // [sj][c][k]
    for (int b = 0; b < nb; b++) {
      // phase: edge forward: geometry, cutoff
      const int lo = spec[b * W], hi = spec[b * W + W - 1];
      V *const q_b = rec + b * R;
      const V x0 = q_b[kX], y0 = q_b[kY], z0 = q_b[kZ];
      const V r2 = x0 * x0 + y0 * y0 + z0 * z0;
      const V r = vsqrt<Real>(r2);
      const V inv_r = one / r;
      const V x = x0 * inv_r, y = y0 * inv_r, z = z0 * inv_r;
      q_b[kX] = x;
      q_b[kY] = y;
      q_b[kZ] = z;
      q_b[kR] = inv_r;
      const V xr = r * inv_rc;
      V fc, dfc;
      maths::envelope<V, Real>(r, r2, rc2, inv_rc2, fc, dfc);

      // phase: edge forward: radial basis (cos/sin recurrence), per-species sums
      V basis[KMax];
      if (t.chebyshev) {
        V c1, s1;
        vsincos<Real>((xr < one ? xr : one) * f1, c1, s1);
        maths::chebyshev_basis<V, Real>(K, c1, s1, xr, fc, dfc, slip_k, neg_freq_rc, basis, q_b + oDb, 1);
      } else {
        for (int k = 0; k < K; k++) {
          V ck, sk;
          for (int l = 0; l < W; l++) {
            ck[l] = std::cos(xr[l] * t.freq[k]);
            sk[l] = std::sin(xr[l] * t.freq[k]);
          }
          basis[k] = ck * fc;
          q_b[oDb + k] = neg_freq_rc[k] * sk * fc + ck * dfc;
        }
      }
      // The radial coefficients depend on the edge only through the neighbour's species: sum the
      // basis per species, contract once per atom.
      if (lo == hi) {
        V *B = &racc[static_cast<size_t>(lo) * K];
        for (int k = 0; k < K; k++) B[k] += basis[k];
      } else {
        const V sv = q_b[kSpecies];
        for (int s = lo; s <= hi; s++) {
          if (!present[s]) continue;
          const auto mine = sv == splat<Real>(Real(s));
          V *B = &racc[static_cast<size_t>(s) * K];
          for (int k = 0; k < K; k++) B[k] += mine ? basis[k] : zero;
        }
      }
      // phase: edge forward: angular moments h, M
      if (L > 0) {
        V hv[CaMax];
        auto contract = [&](int s, V *out) {
          const V *A = A_i + static_cast<size_t>(s) * Ca * K;
          for (int ch = 0; ch < Ca; ch++) {
            V a = zero;
            for (int k = 0; k < K; k++) a += basis[k] * A[ch * K + k];
            out[ch] = a;
          }
        };
        if (lo == hi) {
          contract(lo, hv);
        } else {
          const V sv = q_b[kSpecies];
          V tmp[CaMax];
          for (int ch = 0; ch < Ca; ch++) hv[ch] = zero;
          for (int s = lo; s <= hi; s++) {
            if (!present[s]) continue;
            contract(s, tmp);
            const auto mine = sv == splat<Real>(Real(s));
            for (int ch = 0; ch < Ca; ch++) hv[ch] = mine ? tmp[ch] : hv[ch];
          }
        }
        for (int ch = 0; ch < Ca; ch++) q_b[oH + ch] = hv[ch];
        maths::harmonics<V, Real>(x, y, z, L, q_b + oY, 1);
      }
      // phase: edge forward: core repulsion
      // Core repulsion 0.5 A (R/r^2 - 1)^3 below r = sqrt(R): its gradient is a multiple of v.
      if (t.any_core) {
        V Rc;
        if (lo == hi) {
          Rc = splat<Real>(t.core_r2[si * S + lo]);
        } else {
          const V sv = q_b[kSpecies];
          Rc = zero;
          for (int s = lo; s <= hi; s++)
            if (present[s]) Rc = sv == splat<Real>(Real(s)) ? splat<Real>(t.core_r2[si * S + s]) : Rc;
        }
        V e_core, d_core;
        maths::core_repulsion<V, Real>(Rc, r, r2, core_a, e_core, d_core);
        if constexpr (sizeof(Real) == sizeof(double))
          core_acc += e_core;
        else
          for (int l = 0; l < W; l++) core_energy += static_cast<double>(e_core[l]);
        q_b[kCore] = d_core;
      } else {
        q_b[kCore] = zero;
      }
    }
    if constexpr (sizeof(Real) == sizeof(double))
      for (int l = 0; l < W; l++) core_energy += core_acc[l];

    // phase: edge forward: angular moments h, M
    // M[c][m] = sum over edges of h_c Y_m: harmonics 8 (then 4) at a time in registers, one channel's
    // h streamed past them, the lanes summed once per atom.
    if (L > 0 && nb > 0) {
      for (int ch = 0; ch < Ca; ch++) {
        const V *hc = rec + oH + ch;
        V *out = &Mv[static_cast<size_t>(ch) * nYp];
        int m0 = 0;
        for (; m0 + 8 <= nYp; m0 += 8) moment_rows<Real, 8>(rec + oY + m0, hc, nb, R, out + m0);
        if (m0 < nYp) moment_rows<Real, 4>(rec + oY + m0, hc, nb, R, out + m0);
      }
      reduce_lanes<Real>(Mv.data(), Ca * nYp, M.data());
    } else {
      std::fill(M.begin(), M.end(), Real(0));
    }

    // phase: descriptors q, standardisation
    reduce_lanes<Real>(racc.data(), S * K, Bs.data());
    for (int ch = 0; ch < Cr; ch++) q[ch] = 0;
    for (int sj = 0; sj < S; sj++) {
      const Real *C = radial + static_cast<size_t>(si * S + sj) * Cr * K;
      const Real *B = &Bs[static_cast<size_t>(sj) * K];
      for (int ch = 0; ch < Cr; ch++) {
        Real acc = 0;
        SI_SIMD_SUM(acc) for (int k = 0; k < K; k++) acc += C[ch * K + k] * B[k];
        q[ch] += acc;
      }
    }
    for (int l = 1; l <= L; l++) {
      Real *ql = &q[Cr + (l - 1) * Ca];
      for (int ch = 0; ch < Ca; ch++) {
        const Real *Mc = &M[static_cast<size_t>(ch) * nYp];
        Real acc = 0;
        for (int m = harmonic_offset(l); m < harmonic_offset(l + 1); m++) acc += Mc[m] * Mc[m];
        ql[ch] = acc;
      }
    }
    Real *hidden = reinterpret_cast<Real *>(act.data());
    for (int d = 0; d < D; d++) hidden[d] = (q[d] - t.mean[d]) / t.stdev[d];
    for (int d = D; d < t.padded[0]; d++) hidden[d] = 0;

    // phase: MLP forward
    // Per-species MLP, silu between layers, over whole registers of neurons; act holds each
    // layer's output (the next one's input), dsilu the silu' kept for the backward pass.
    for (int k = 0; k < n_layers; k++) {
      const int in = t.padded[k], nc = t.padded[k + 1] / W;
      const V *Wk = t.w_fwd[k].data() + static_cast<size_t>(si) * in * nc;
      const V *bk = t.b_fwd[k].data() + static_cast<size_t>(si) * nc;
      const Real *input = reinterpret_cast<const Real *>(&act[static_cast<size_t>(k) * max_chunks]);
      V *output = &act[static_cast<size_t>(k + 1) * max_chunks];
      dense<Real>(input, in, Wk, bk, output, nc);
      if (k + 1 < n_layers) {
        // silu'(a) = sig(a) (1 + a (1 - sig(a))).
        V *ds = &dsilu[static_cast<size_t>(k) * max_chunks];
        for (int j = 0; j < nc; j++) {
          const V a = output[j];
          const V sig = one / (one + vexp<Real>(-a));
          output[j] = a * sig;
          ds[j] = sig * (one + a * (one - sig));
        }
      }
    }
    const Real out = act[static_cast<size_t>(n_layers) * max_chunks][0];
    atom_energy[i] = t.energy_shift[si] + static_cast<double>(scale) * static_cast<double>(out) + core_energy;

    // phase: MLP backward
    // grad_a holds dE/d(layer output), ending as dE/d(standardised q).
    grad_a[0] = zero;
    grad_a[0][0] = scale;
    for (int k = n_layers - 1; k >= 0; k--) {
      const int in_rows = t.padded[k + 1], nc = t.padded[k] / W;
      const V *Wk = t.w_bwd[k].data() + static_cast<size_t>(si) * in_rows * nc;
      dense<Real>(reinterpret_cast<const Real *>(grad_a.data()), in_rows, Wk, nullptr, grad_b.data(), nc);
      if (k > 0) {
        const V *ds = &dsilu[static_cast<size_t>(k - 1) * max_chunks];
        for (int j = 0; j < nc; j++) grad_b[j] *= ds[j];
      }
      std::swap(grad_a, grad_b);
    }
    // phase: dE/dq to dE/dM, radial weights
    const Real *gq = reinterpret_cast<const Real *>(grad_a.data());
    for (int d = 0; d < D; d++) G[d] = gq[d] / t.stdev[d];
    for (int l = 1; l <= L; l++) {
      const Real *Gl = &G[Cr + (l - 1) * Ca];
      for (int m = harmonic_offset(l); m < harmonic_offset(l + 1); m++)
        for (int ch = 0; ch < Ca; ch++) Tb[m * Ca + ch] = splat<Real>(2 * Gl[ch] * M[static_cast<size_t>(ch) * nYp + m]);
    }
    // dE/d(basis) through the radial descriptors, once per neighbour species.
    for (int sj = 0; sj < S; sj++) {
      const Real *C = radial + static_cast<size_t>(si * S + sj) * Cr * K;
      Real wr[kMaxBasis];
      for (int k = 0; k < K; k++) wr[k] = 0;
      for (int ch = 0; ch < Cr; ch++) {
        const Real g = G[ch];
        const Real *Cc = C + ch * K;
        SI_SIMD for (int k = 0; k < K; k++) wr[k] += g * Cc[k];
      }
      for (int k = 0; k < K; k++) Wr[static_cast<size_t>(sj) * K + k] = splat<Real>(wr[k]);
    }

    // phase: edge backward: angular (dE/dh, dE/dY, basis weights)
    // Backward per block: through h and Y (angular), the radial sums and the basis.
    for (int b = 0; b < nb; b++) {
      const int lo = spec[b * W], hi = spec[b * W + W - 1];
      const V *const q_b = rec + b * R;
      const V x = q_b[kX], y = q_b[kY], z = q_b[kZ];
      V gx = zero, gy = zero, gz = zero;
      V dh[CaMax];
      if (L > 0) {
        V hv[CaMax];
        for (int ch = 0; ch < Ca; ch++) {
          hv[ch] = q_b[oH + ch];
          dh[ch] = zero;
        }
        V dY[harmonic_offset(kMaxL + 1)];
        for (int m = 0; m < nY; m++) {
          const V ym = q_b[oY + m];
          const V *T = &Tb[m * Ca];
          V acc = hv[0] * T[0];
          for (int ch = 1; ch < Ca; ch++) acc += hv[ch] * T[ch];
          dY[m] = acc;
          for (int ch = 0; ch < Ca; ch++) dh[ch] += ym * T[ch];
        }
        maths::harmonics_grad<V, Real>(x, y, z, L, dY, gx, gy, gz);
      }
      // phase: edge backward: dE/dr, edge gradient
      auto radial_grad = [&](int s, V &acc) {
        const V *A = A_i + static_cast<size_t>(s) * Ca * K;
        const V *Ws = &Wr[static_cast<size_t>(s) * K];
        acc = zero;
        for (int k = 0; k < K; k++) {
          V w = Ws[k];
          if (L > 0)
            for (int ch = 0; ch < Ca; ch++) w += dh[ch] * A[ch * K + k];
          acc += w * q_b[oDb + k];
        }
      };
      V dEdr;
      if (lo == hi) {
        radial_grad(lo, dEdr);
      } else {
        const V sv = q_b[kSpecies];
        dEdr = zero;
        for (int s = lo; s <= hi; s++) {
          if (!present[s]) continue;
          V g;
          radial_grad(s, g);
          dEdr = sv == splat<Real>(Real(s)) ? g : dEdr;
        }
      }
      const V inv_r = q_b[kR];
      V fx, fy, fz;
      maths::edge_gradient<V>(dEdr + q_b[kCore], x, y, z, inv_r, gx, gy, gz, fx, fy, fz);
      for (int l = 0; l < W; l++) {
        const int64_t e = eidx[b * W + l];
        if (e < 0) break;
        edge_grad[3 * e] = static_cast<double>(fx[l]);
        edge_grad[3 * e + 1] = static_cast<double>(fy[l]);
        edge_grad[3 * e + 2] = static_cast<double>(fz[l]);
      }
    }
  }
}
