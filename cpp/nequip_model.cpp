#include "nequip_model.h"

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/torch.h>

#include <algorithm>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace superionic {
namespace {

std::string first_line(const std::exception &e) {
  std::string text = e.what();
  if (auto *c10 = dynamic_cast<const c10::Error *>(&e)) text = c10->what_without_backtrace();
  return text.substr(0, text.find('\n'));
}

std::vector<std::string> words(const std::string &text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace

bool is_nequip_package_path(const std::string &path) {
  const std::string suffix = ".nequip.pt2";
  return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct NequipModel::Impl {
  std::string path;
  ModelMetadata meta;
  torch::Device device{torch::kCPU};
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> package;
  std::vector<std::string> inputs, outputs;
  int energy_out = -1, forces_out = -1;
  std::vector<double> edge_cutoff_sq;  // [num_types^2] from per_edge_type_cutoff; empty: r_max for all
};

NequipModel::NequipModel(const std::string &path, const std::string &device) : impl_(new Impl) {
  Impl &m = *impl_;
  m.path = path;
  m.device = torch::Device(device);
  std::unordered_map<std::string, std::string> meta;
  try {
    auto index = m.device.is_cuda() ? m.device.index() : static_cast<c10::DeviceIndex>(-1);
    m.package = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", false, 1, index);
    meta = m.package->get_metadata();
  } catch (const std::exception &e) {
    throw ModelError("'" + path + "' is not a loadable nequip AOTInductor package: " + first_line(e) +
                     "; compile it with nequip-compile --mode aotinductor");
  }
  auto field = [&](const std::string &key) -> std::string {
    auto it = meta.find(key);
    if (it == meta.end() || it->second.empty())
      throw ModelError("'" + path + "' has no '" + key +
                       "' in its metadata, so it was not compiled by nequip-compile; compile it with nequip-compile "
                       "--mode aotinductor --target pair_allegro");
    return it->second;
  };
  const std::string fix = "; compile an Allegro model with nequip-compile --mode aotinductor --target pair_allegro";
  m.inputs = words(field("nequip_aoti_inputs"));
  m.outputs = words(field("nequip_aoti_outputs"));
  for (const auto &name : m.inputs)
    if (name != "pos" && name != "edge_index" && name != "atom_types")
      throw ModelError("'" + path + "' takes the input '" + name +
                       "': it was compiled for pair_nequip (message passing over the whole cell), which "
                       "pair_style superionic does not run" + fix);
  for (size_t k = 0; k < m.outputs.size(); k++) {
    if (m.outputs[k] == "atomic_energy") m.energy_out = static_cast<int>(k);
    if (m.outputs[k] == "forces") m.forces_out = static_cast<int>(k);
  }
  if (m.inputs.size() != 3 || m.energy_out < 0 || m.forces_out < 0)
    throw ModelError("'" + path + "' takes inputs '" + field("nequip_aoti_inputs") + "' and returns '" +
                     field("nequip_aoti_outputs") + "', not pos edge_index atom_types -> atomic_energy forces" + fix);

  ModelMetadata &md = m.meta;
  md.format_version = kMetadataFormatVersion;
  md.model_kind = "nequip-allegro";
  md.species = words(field("type_names"));
  md.units = "metal";  // nequip is unit-agnostic; pair_allegro, like this pair style, runs metal units
  md.device = m.device.str();
  md.dtype = meta.count("model_dtype") ? meta["model_dtype"] : "float64";
  try {
    md.cutoff = std::stod(field("r_max"));
    if (std::stoi(field("num_types")) != static_cast<int>(md.species.size()))
      throw ModelError("'" + path + "': num_types " + field("num_types") + " but " +
                       std::to_string(md.species.size()) + " type_names; the file is damaged, compile it again");
    bool allow_tf32 = std::stoi(field("allow_tf32")) != 0;
    at::globalContext().setAllowTF32CuBLAS(allow_tf32);
    at::globalContext().setAllowTF32CuDNN(allow_tf32);
    auto cut = meta.find("per_edge_type_cutoff");
    if (cut != meta.end() && !cut->second.empty()) {
      for (const auto &w : words(cut->second)) {
        double c = std::stod(w);
        m.edge_cutoff_sq.push_back(c * c);
      }
      if (m.edge_cutoff_sq.size() != md.species.size() * md.species.size())
        throw ModelError("'" + path + "': per_edge_type_cutoff has " + std::to_string(m.edge_cutoff_sq.size()) +
                         " entries, expected num_types^2; the file is damaged, compile it again");
    }
  } catch (const std::logic_error &) {  // stod/stoi on a non-number
    throw ModelError("'" + path + "': r_max, num_types, allow_tf32 or per_edge_type_cutoff is not a number in its "
                     "metadata; the file is damaged, compile it again");
  }
  // Allegro is strictly local: an atom's energy depends only on neighbours within r_max.
  md.receptive_field = md.cutoff;
  md.json = "{\"model_kind\": \"nequip-allegro\", \"r_max\": " + field("r_max") + ", \"type_names\": \"" +
            field("type_names") + "\"}";
}

NequipModel::~NequipModel() = default;

const ModelMetadata &NequipModel::metadata() const { return impl_->meta; }

void NequipModel::compute(const double *edge_vec, const int64_t *edge_src, const int64_t *edge_dst,
                          int64_t n_edges, const int64_t *species, int64_t /*n_atoms*/, int64_t n_local,
                          double *atom_energy, double *edge_grad) {
  Impl &m = *impl_;
  // The contract gives edge vectors, not positions. Allegro sees only r_j - r_i of the edges it
  // is handed, so each edge gets its own copy of its neighbour, placed at edge_vec from a centre
  // at the origin: the forces on those copies are then -dE/d(edge_vec), i.e. -edge_grad, and a
  // copy that centres no edge only adds a constant to the energy of a non-owned node.
  const size_t n_types = m.meta.species.size();
  std::vector<int64_t> kept;
  kept.reserve(n_edges);
  for (int64_t e = 0; e < n_edges; e++) {
    if (edge_src[e] >= n_local)
      throw ModelError("model '" + m.path + "' is strictly local but was given an edge centred on a ghost atom");
    if (!m.edge_cutoff_sq.empty()) {
      const double *d = edge_vec + 3 * e;
      double r_sq = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
      if (r_sq > m.edge_cutoff_sq[species[edge_src[e]] * n_types + species[edge_dst[e]]]) continue;
    }
    kept.push_back(e);
  }
  const int64_t n_kept = static_cast<int64_t>(kept.size());
  const int64_t n_nodes = n_local + n_kept;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  torch::Tensor pos = torch::zeros({n_nodes, 3}, f64);
  torch::Tensor types = torch::empty({n_nodes}, i64);
  torch::Tensor index = torch::empty({2, n_kept}, i64);
  double *p = pos.data_ptr<double>();
  int64_t *t = types.data_ptr<int64_t>();
  int64_t *centre = index.data_ptr<int64_t>();
  int64_t *neighbour = centre + n_kept;
  std::copy(species, species + n_local, t);
  for (int64_t k = 0; k < n_kept; k++) {
    const int64_t e = kept[k];
    std::copy(edge_vec + 3 * e, edge_vec + 3 * e + 3, p + 3 * (n_local + k));
    t[n_local + k] = species[edge_dst[e]];
    centre[k] = edge_src[e];
    neighbour[k] = n_local + k;
  }
  try {
    std::vector<torch::Tensor> in;
    for (const auto &name : m.inputs)
      in.push_back((name == "pos" ? pos : name == "edge_index" ? index : types).to(m.device));
    auto out = m.package->run(in);
    auto energy = out.at(m.energy_out).to(torch::kCPU, torch::kFloat64).contiguous();
    auto forces = out.at(m.forces_out).to(torch::kCPU, torch::kFloat64).contiguous();
    if (energy.numel() != n_nodes || forces.numel() != 3 * n_nodes)
      throw ModelError("model '" + m.path + "' returned " + std::to_string(energy.numel()) + " atomic energies and " +
                       std::to_string(forces.numel() / 3) + " forces for " + std::to_string(n_nodes) + " atoms");
    std::copy(energy.data_ptr<double>(), energy.data_ptr<double>() + n_local, atom_energy);
    std::fill(edge_grad, edge_grad + 3 * n_edges, 0.0);
    const double *f = forces.data_ptr<double>();
    for (int64_t k = 0; k < n_kept; k++)
      for (int c = 0; c < 3; c++) edge_grad[3 * kept[k] + c] = -f[3 * (n_local + k) + c];
  } catch (const ModelError &) {
    throw;
  } catch (const std::exception &e) {
    throw ModelError("model '" + m.path + "' failed: " + first_line(e));
  }
}

}  // namespace superionic
