// The Kokkos sprinter kernel (sprinter_kokkos.h) outside LAMMPS, on the default execution space of
// the Kokkos it is compiled against: Kokkos::Serial with Debian bookworm's Trilinos Kokkos 3.4, which
// is how tests/lammps/test_kokkos_parity.py runs it on the development machine (the CPU image's
// Kokkos 5.2.2 has no Serial backend). The test compares what it prints with the CPU kernel and
// libtorch on the same graph.
//
//   sprinter_kokkos_check INPUT OUTPUT float64|float32
//
// INPUT: whitespace-separated records `name count v1 ... vcount`: the SprinterParams fields
// (n_species, n_basis, radial_channels, angular_channels, l_max, cutoff, cutoff_sq, energy_scale,
// core_strength, basis_freq, radial_coeff, angular_coeff, descriptor_mean, descriptor_std,
// energy_shift, core_radius_sq, widths, layer_weight_K, layer_bias_K) and the model contract's graph
// (edge_vec, edge_src, edge_dst, species, n_local). OUTPUT: a line `# <execution space>, <shape>`, then
// records: energy, virial [6], atom_energy [n_local], edge_grad [n_edges * 3], forces [n_atoms * 3].
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "sprinter_kokkos.h"

namespace {

using Records = std::map<std::string, std::vector<double>>;
using ExecSpace = Kokkos::DefaultExecutionSpace;
using Device = Kokkos::Device<ExecSpace, ExecSpace::memory_space>;

Records read_records(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  Records records;
  std::string name;
  size_t count = 0;
  while (in >> name >> count) {
    std::vector<double> &values = records[name];
    values.resize(count);
    for (size_t k = 0; k < count; k++)
      if (!(in >> values[k])) throw std::runtime_error("record " + name + " is short");
  }
  return records;
}

const std::vector<double> &field(const Records &r, const std::string &name) {
  auto it = r.find(name);
  if (it == r.end()) throw std::runtime_error("input has no record " + name);
  return it->second;
}

superionic::SprinterParams params_of(const Records &r) {
  superionic::SprinterParams p;
  auto scalar = [&](const char *name) { return field(r, name).at(0); };
  p.n_species = static_cast<int>(scalar("n_species"));
  p.n_basis = static_cast<int>(scalar("n_basis"));
  p.radial_channels = static_cast<int>(scalar("radial_channels"));
  p.angular_channels = static_cast<int>(scalar("angular_channels"));
  p.l_max = static_cast<int>(scalar("l_max"));
  p.cutoff = scalar("cutoff");
  p.cutoff_sq = scalar("cutoff_sq");
  p.energy_scale = scalar("energy_scale");
  p.core_strength = scalar("core_strength");
  p.basis_freq = field(r, "basis_freq");
  p.radial_coeff = field(r, "radial_coeff");
  p.angular_coeff = field(r, "angular_coeff");
  p.descriptor_mean = field(r, "descriptor_mean");
  p.descriptor_std = field(r, "descriptor_std");
  p.energy_shift = field(r, "energy_shift");
  p.core_radius_sq = field(r, "core_radius_sq");
  for (double wv : field(r, "widths")) p.widths.push_back(static_cast<int>(wv));
  for (size_t k = 0; k + 1 < p.widths.size(); k++) {
    p.layer_weight.push_back(field(r, "layer_weight_" + std::to_string(k)));
    p.layer_bias.push_back(field(r, "layer_bias_" + std::to_string(k)));
  }
  return p;
}

template <class V>
void put(FILE *out, const char *name, const V &values, size_t n) {
  std::fprintf(out, "%s %zu", name, n);
  for (size_t k = 0; k < n; k++) std::fprintf(out, " %.17g", static_cast<double>(values[k]));
  std::fprintf(out, "\n");
}

template <typename Real, class Sh>
void run(const superionic::SprinterParams &p, const Records &r, FILE *out) {
  namespace kk = superionic::kk;
  const std::vector<double> &vec = field(r, "edge_vec"), &src = field(r, "edge_src"), &dst = field(r, "edge_dst"),
                            &spec = field(r, "species");
  const int64_t n_edges = static_cast<int64_t>(src.size()), n_atoms = static_cast<int64_t>(spec.size());
  const int64_t n_local = static_cast<int64_t>(field(r, "n_local").at(0));
  // Group the owned sources' edges (a stable counting sort); the others carry no owned energy.
  std::vector<int> first(n_local + 1, 0);
  for (int64_t e = 0; e < n_edges; e++)
    if (src[e] < n_local) first[static_cast<int64_t>(src[e]) + 1]++;
  std::partial_sum(first.begin(), first.end(), first.begin());
  std::vector<int> fill(first.begin(), first.end() - 1), order(first[n_local]);
  for (int64_t e = 0; e < n_edges; e++)
    if (src[e] < n_local) order[fill[static_cast<int64_t>(src[e])]++] = static_cast<int>(e);

  const int64_t n_owned_edges = static_cast<int64_t>(order.size());
  Kokkos::View<double *[3], Kokkos::LayoutRight, Device> d_vec("edge_vec", n_owned_edges),
      d_grad("edge_grad", n_owned_edges), d_f("f", n_atoms);
  Kokkos::View<int64_t *, Device> d_dst("edge_dst", n_owned_edges), d_species("species", n_atoms),
      d_row("row", n_atoms);
  Kokkos::View<int *, Device> d_first("first", n_local), d_count("count", n_local);
  Kokkos::View<double *, Device> d_energy("atom_energy", n_local), d_eatom("eatom", n_atoms);
  Kokkos::View<double *[6], Kokkos::LayoutRight, Device> d_vatom("vatom", n_atoms);
  auto h_vec = Kokkos::create_mirror_view(d_vec);
  auto h_dst = Kokkos::create_mirror_view(d_dst);
  for (int64_t k = 0; k < n_owned_edges; k++) {
    for (int a = 0; a < 3; a++) h_vec(k, a) = vec[3 * order[k] + a];
    h_dst(k) = static_cast<int64_t>(dst[order[k]]);
  }
  auto h_species = Kokkos::create_mirror_view(d_species);
  auto h_row = Kokkos::create_mirror_view(d_row);
  for (int64_t n = 0; n < n_atoms; n++) {
    h_species(n) = static_cast<int64_t>(spec[n]);
    h_row(n) = n;
  }
  auto h_first = Kokkos::create_mirror_view(d_first);
  auto h_count = Kokkos::create_mirror_view(d_count);
  for (int64_t n = 0; n < n_local; n++) {
    h_first(n) = first[n];
    h_count(n) = first[n + 1] - first[n];
  }
  Kokkos::deep_copy(d_vec, h_vec);
  Kokkos::deep_copy(d_dst, h_dst);
  Kokkos::deep_copy(d_species, h_species);
  Kokkos::deep_copy(d_row, h_row);
  Kokkos::deep_copy(d_first, h_first);
  Kokkos::deep_copy(d_count, h_count);

  kk::Graph<Device> graph{d_vec, d_dst, d_first, d_count, d_species, d_row};
  auto f_scatter = Kokkos::Experimental::create_scatter_view(d_f);
  auto v_scatter = Kokkos::Experimental::create_scatter_view(d_vatom);
  using Out = kk::Outputs<decltype(f_scatter), decltype(d_eatom), decltype(v_scatter)>;
  Out outputs{f_scatter, d_eatom, v_scatter, true, true, true};
  kk::SprinterForce<Device, Real, Sh, Out> kernel{kk::Weights<Device, Real>(p), graph, outputs, d_energy, d_grad};
  kk::EnergyVirial total;
  Kokkos::parallel_reduce("sprinter_kokkos_check", Kokkos::RangePolicy<ExecSpace>(0, n_local), kernel, total);
  Kokkos::Experimental::contribute(d_f, f_scatter);
  Kokkos::Experimental::contribute(d_vatom, v_scatter);

  auto h_grad = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_grad);
  auto h_energy = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_energy);
  auto h_f = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_f);
  auto h_eatom = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_eatom);
  auto h_vatom = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_vatom);
  std::vector<double> grad(3 * n_edges, 0.0), forces(3 * n_atoms), energy(n_local), eatom(n_atoms), vatom(6 * n_atoms);
  for (int64_t k = 0; k < n_owned_edges; k++)
    for (int a = 0; a < 3; a++) grad[3 * order[k] + a] = h_grad(k, a);
  for (int64_t n = 0; n < n_atoms; n++) {
    for (int a = 0; a < 3; a++) forces[3 * n + a] = h_f(n, a);
    for (int a = 0; a < 6; a++) vatom[6 * n + a] = h_vatom(n, a);
    eatom[n] = h_eatom(n);
  }
  for (int64_t n = 0; n < n_local; n++) energy[n] = h_energy(n);
  std::fprintf(out, "# %s, %s\n", ExecSpace::name(), Sh::K > 0 ? "default shape" : "generic shape");
  std::fprintf(out, "energy 1 %.17g\n", total.energy);
  put(out, "virial", total.v, 6);
  put(out, "atom_energy", energy, energy.size());
  put(out, "edge_grad", grad, grad.size());
  put(out, "forces", forces, forces.size());
  put(out, "eatom", eatom, eatom.size());
  put(out, "vatom", vatom, vatom.size());
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: sprinter_kokkos_check INPUT OUTPUT float64|float32\n");
    return 2;
  }
  Kokkos::initialize(argc, argv);
  int status = 0;
  try {
    const Records records = read_records(argv[1]);
    const superionic::SprinterParams params = params_of(records);
    const std::string why = superionic::kk::unsupported_reason(params);
    if (!why.empty()) throw std::runtime_error("the Kokkos kernel does not take this model: " + why);
    FILE *out = std::fopen(argv[2], "w");
    if (!out) throw std::runtime_error(std::string("cannot write ") + argv[2]);
    const bool f32 = std::string(argv[3]) == "float32";
    const bool shape = superionic::kk::is_default_shape(params);
    if (f32 && shape)
      run<float, superionic::kk::DefaultShape>(params, records, out);
    else if (f32)
      run<float, superionic::kk::GenericShape>(params, records, out);
    else if (shape)
      run<double, superionic::kk::DefaultShape>(params, records, out);
    else
      run<double, superionic::kk::GenericShape>(params, records, out);
    std::fclose(out);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "sprinter_kokkos_check: %s\n", e.what());
    status = 1;
  }
  Kokkos::finalize();
  return status;
}
