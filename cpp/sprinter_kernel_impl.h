// The per-atom loop of the native sprinter kernel, included twice by sprinter_kernel.cpp: once for
// the build's baseline instruction set and once under `#pragma GCC target("avx2,fma")`, SI_ATOMS
// naming the copy. Each OpenMP thread of SprinterKernel::compute_impl runs one copy on the Pass it
// prepared. Not a public header: it relies on the helpers sprinter_kernel.cpp defines before it.
#ifndef SI_ATOMS
#error "sprinter_kernel_impl.h is included by sprinter_kernel.cpp only"
#endif

// phase: setup: per-thread scratch
template <typename Real, int kCa, int kK, int kL>
void SI_ATOMS(const SprinterParams &p_, const Pass<Real> &c) {
  const int S = p_.n_species, Cr = p_.radial_channels;
  const int K = kK > 0 ? kK : p_.n_basis;
  const int Ca = kCa > 0 ? kCa : p_.angular_channels;
  const int L = kL > 0 ? kL : p_.l_max;
  const int nY = harmonic_offset(L + 1);
  const int D = Cr + L * Ca;
  const int n_layers = static_cast<int>(p_.layer_weight.size());
  int max_width = 0;
  for (int w : p_.widths) max_width = std::max(max_width, w);
  const double *edge_vec = c.edge_vec;
  const int64_t *edge_dst = c.edge_dst, *species = c.species, *first = c.first, *edge_order = c.edge_order;
  double *atom_energy = c.atom_energy, *edge_grad = c.edge_grad;
  const int64_t n_local = c.n_local;
  const Real *radial_coeff = c.radial_coeff, *angular_coeff = c.angular_coeff, *angular_t = c.angular_t;
  const Real *const *weight = c.weight, *const *bias = c.bias;
  const Real *slip = c.slip, *freq = c.freq, *mean = c.mean, *stdev = c.stdev, *core_r2 = c.core_r2;
  const Real rc = c.rc, rc2 = c.rc2, scale = c.scale, core_a = c.core_a;
  const bool chebyshev = c.chebyshev;
  {
    Scratch<Real> s;
    s.basis_sum.resize(static_cast<size_t>(S) * K);
    s.radial_w.resize(static_cast<size_t>(S) * K);
    s.M.resize(static_cast<size_t>(Ca) * nY);
    s.T.resize(static_cast<size_t>(Ca) * nY);
    s.q.resize(D);
    s.act.resize(static_cast<size_t>(n_layers) * max_width);  // silu' of each hidden layer
    s.grad_a.resize(max_width);
    s.grad_b.resize(max_width);
    s.dEdh.resize(Ca);
    s.dEdY.resize(nY);
    s.w.resize(K);
    std::vector<Real> hidden(max_width), next(max_width), cs(K), sn(K);

#ifdef _OPENMP
#pragma omp for schedule(dynamic, 16)
#endif
    for (int64_t i = 0; i < n_local; i++) {
      const int64_t begin = first[i], n = first[i + 1] - first[i];
      const int64_t si = species[i];
      if (static_cast<int64_t>(s.r.size()) < n) {
        s.u.resize(3 * n);
        s.r.resize(n);
        s.db.resize(n * K);
        s.h.resize(n * Ca);
        s.Y.resize(n * nY);
        s.core.resize(n);
        s.pair.resize(n);
      }
      std::fill(s.basis_sum.begin(), s.basis_sum.end(), Real(0));
      std::fill(s.M.begin(), s.M.end(), Real(0));
      double core_energy = 0.0;

      // phase: edge forward: geometry, cutoff
      for (int64_t t = 0; t < n; t++) {
        const int64_t e = edge_order ? edge_order[begin + t] : begin + t;
        const Real v[3] = {static_cast<Real>(edge_vec[3 * e]), static_cast<Real>(edge_vec[3 * e + 1]),
                           static_cast<Real>(edge_vec[3 * e + 2])};
        const int64_t pair = si * S + species[edge_dst[e]];
        s.pair[t] = pair;
        const Real r2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        const Real r = std::sqrt(r2);
        const Real x = r / rc;
        s.r[t] = r;
        Real *u = &s.u[3 * t];
        u[0] = v[0] / r;
        u[1] = v[1] / r;
        u[2] = v[2] / r;
        Real fc = 0, dfc_dr = 0;
        if (r2 < rc2) {
          const Real omx = 1 - r2 / rc2;
          fc = omx * omx * omx;
          dfc_dr = -6 * r * omx * omx / rc2;
        }
        // phase: edge forward: radial basis (cos/sin recurrence), per-species sums
        if (chebyshev) {
          const Real theta = x * freq[1];
          const Real c1 = std::cos(theta), s1 = std::sin(theta);
          cs[0] = 1;
          sn[0] = 0;
          cs[1] = c1;
          sn[1] = s1;
          for (int k = 2; k < K; k++) {
            cs[k] = 2 * c1 * cs[k - 1] - cs[k - 2];
            sn[k] = 2 * c1 * sn[k - 1] - sn[k - 2];
          }
          for (int k = 0; k < K; k++) {
            const Real d = x * slip[k];
            if (d == 0) continue;
            const Real cd = 1 - d * d / 2, sd = d - d * d * d / 6;
            const Real c = cs[k] * cd - sn[k] * sd;
            sn[k] = sn[k] * cd + cs[k] * sd;
            cs[k] = c;
          }
        } else {
          for (int k = 0; k < K; k++) {
            cs[k] = std::cos(x * freq[k]);
            sn[k] = std::sin(x * freq[k]);
          }
        }
        Real basis[kMaxBasis];
        Real *db = &s.db[t * K];
        for (int k = 0; k < K; k++) {
          basis[k] = cs[k] * fc;
          db[k] = -freq[k] / rc * sn[k] * fc + cs[k] * dfc_dr;
        }
        // The radial coefficients depend on the edge only through the neighbour's species: sum the
        // basis per species first, contract once per atom.
        Real *B = &s.basis_sum[(pair - si * S) * K];
        for (int k = 0; k < K; k++) B[k] += basis[k];
        // phase: edge forward: angular moments h, M
        if (L > 0) {
          // Channel-fastest layouts: h[c], AT[k][c], M[m][c], T[m][c].
          const Real *AT = angular_t + pair * Ca * K;
          Real *h = &s.h[t * Ca];
          Real *Y = &s.Y[t * nY];
          harmonics(u, L, Y);
          for (int c = 0; c < Ca; c++) h[c] = 0;
          for (int k = 0; k < K; k++) {
            const Real bk = basis[k];
            const Real *ATk = AT + k * Ca;
            SI_SIMD for (int c = 0; c < Ca; c++) h[c] += bk * ATk[c];
          }
          Real *M = s.M.data();
          for (int m = 0; m < nY; m++) {
            const Real ym = Y[m];
            Real *Mm = M + m * Ca;
            SI_SIMD for (int c = 0; c < Ca; c++) Mm[c] += ym * h[c];
          }
        }
        // phase: edge forward: core repulsion
        // Core repulsion 0.5 A (R/r^2 - 1)^3 below r = sqrt(R): its gradient is a multiple of v.
        s.core[t] = 0;
        const Real R = core_r2[pair];
        const Real ratio = R / r2;
        if (ratio > 1) {
          const Real excess = ratio - 1;
          core_energy += 0.5 * static_cast<double>(core_a) * static_cast<double>(excess * excess * excess);
          s.core[t] = -3 * core_a * excess * excess * R / (r2 * r2);
        }
      }

      // phase: descriptors q, standardisation
      // Descriptors and their standardisation.
      for (int c = 0; c < Cr; c++) s.q[c] = 0;
      for (int sj = 0; sj < S; sj++) {
        const Real *C = radial_coeff + (si * S + sj) * Cr * K;
        const Real *B = &s.basis_sum[sj * K];
        for (int c = 0; c < Cr; c++) {
          Real acc = 0;
          SI_SIMD_SUM(acc) for (int k = 0; k < K; k++) acc += C[c * K + k] * B[k];
          s.q[c] += acc;
        }
      }
      for (int l = 1; l <= L; l++) {
        Real *ql = &s.q[Cr + (l - 1) * Ca];
        for (int c = 0; c < Ca; c++) ql[c] = 0;
        for (int m = harmonic_offset(l); m < harmonic_offset(l + 1); m++) {
          const Real *Mm = &s.M[m * Ca];
          SI_SIMD for (int c = 0; c < Ca; c++) ql[c] += Mm[c] * Mm[c];
        }
      }
      for (int d = 0; d < D; d++) hidden[d] = (s.q[d] - mean[d]) / stdev[d];

      // phase: MLP forward
      // Per-species MLP, silu between layers; pre-activations kept for the backward pass.
      Real out = 0;
      for (int k = 0; k < n_layers; k++) {
        const int in = p_.widths[k], width = p_.widths[k + 1];
        const Real *W = weight[k] + si * in * width;
        const Real *b = bias[k] + si * width;
        for (int o = 0; o < width; o++) next[o] = b[o];
        for (int a = 0; a < in; a++) {
          const Real ha = hidden[a];
          const Real *Wa = W + a * width;
          Real *nx = next.data();
          SI_SIMD for (int o = 0; o < width; o++) nx[o] += ha * Wa[o];
        }
        if (k + 1 < n_layers) {
          // silu'(a) = sig(a) (1 + a (1 - sig(a))), kept for the backward pass.
          Real *dsilu = &s.act[k * max_width];
          for (int o = 0; o < width; o++) {
            const Real a = next[o];
            const Real sig = 1 / (1 + std::exp(-a));
            hidden[o] = a * sig;
            dsilu[o] = sig * (1 + a * (1 - sig));
          }
        } else {
          out = next[0];
        }
      }
      atom_energy[i] = p_.energy_shift[si] + static_cast<double>(scale) * static_cast<double>(out) + core_energy;

      // phase: MLP backward
      // Backward through the MLP: grad_a holds dE/d(layer output), ending as dE/d(standardised q).
      s.grad_a[0] = scale;
      for (int k = n_layers - 1; k >= 0; k--) {
        const int in = p_.widths[k], width = p_.widths[k + 1];
        const Real *W = weight[k] + si * in * width;
        for (int a = 0; a < in; a++) {
          const Real *Wa = W + a * width;
          const Real *ga = s.grad_a.data();
          Real acc = 0;
          SI_SIMD_SUM(acc) for (int o = 0; o < width; o++) acc += Wa[o] * ga[o];
          s.grad_b[a] = acc;
        }
        if (k > 0) {
          const Real *dsilu = &s.act[(k - 1) * max_width];
          for (int a = 0; a < in; a++) s.grad_b[a] *= dsilu[a];
        }
        std::swap(s.grad_a, s.grad_b);
      }
      // phase: dE/dq to dE/dM, radial weights
      Real *G = s.grad_a.data();  // dE/dq after the division by the standard deviation
      for (int d = 0; d < D; d++) G[d] /= stdev[d];
      for (int l = 1; l <= L; l++) {
        const Real *Gl = G + Cr + (l - 1) * Ca;
        for (int m = harmonic_offset(l); m < harmonic_offset(l + 1); m++)
          for (int c = 0; c < Ca; c++) s.T[m * Ca + c] = 2 * Gl[c] * s.M[m * Ca + c];
      }

      // dE/d(basis) through the radial descriptors, once per neighbour species.
      for (int sj = 0; sj < S; sj++) {
        const Real *C = radial_coeff + (si * S + sj) * Cr * K;
        Real *Wr = &s.radial_w[sj * K];
        for (int k = 0; k < K; k++) Wr[k] = 0;
        for (int c = 0; c < Cr; c++) {
          const Real g = G[c];
          const Real *Cc = C + c * K;
          SI_SIMD for (int k = 0; k < K; k++) Wr[k] += g * Cc[k];
        }
      }

      // phase: edge backward: angular (dE/dh, dE/dY, basis weights)
      // Backward per edge: through h and Y (angular), the radial sums and the basis.
      for (int64_t t = 0; t < n; t++) {
        const int64_t e = edge_order ? edge_order[begin + t] : begin + t;
        const int64_t pair = s.pair[t];
        const Real *Wr = &s.radial_w[(pair - si * S) * K];
        for (int k = 0; k < K; k++) s.w[k] = Wr[k];
        const Real *u = &s.u[3 * t];
        const Real r = s.r[t];
        Real gY[3] = {0, 0, 0};
        if (L > 0) {
          const Real *A = angular_coeff + pair * Ca * K;
          const Real *h = &s.h[t * Ca];
          const Real *Y = &s.Y[t * nY];
          Real *dh = s.dEdh.data();
          for (int c = 0; c < Ca; c++) dh[c] = 0;
          for (int m = 0; m < nY; m++) {
            const Real *Tm = &s.T[m * Ca];
            const Real ym = Y[m];
            Real acc = 0;
            SI_SIMD_SUM(acc) for (int c = 0; c < Ca; c++) {
              dh[c] += ym * Tm[c];
              acc += Tm[c] * h[c];
            }
            s.dEdY[m] = acc;
          }
          Real *w = s.w.data();
          for (int c = 0; c < Ca; c++) {
            const Real dhc = dh[c];
            const Real *Ac = A + c * K;
            SI_SIMD for (int k = 0; k < K; k++) w[k] += dhc * Ac[k];
          }
          harmonics_grad(u, L, s.dEdY.data(), gY);
        }
        // phase: edge backward: dE/dr, edge gradient
        const Real *db = &s.db[t * K];
        Real dEdr = 0;
        for (int k = 0; k < K; k++) dEdr += s.w[k] * db[k];
        const Real gu = gY[0] * u[0] + gY[1] * u[1] + gY[2] * u[2];
        const Real core = s.core[t];
        for (int a = 0; a < 3; a++)
          edge_grad[3 * e + a] = static_cast<double>(dEdr * u[a] + (gY[a] - gu * u[a]) / r + core * r * u[a]);
      }
    }
  }
}
