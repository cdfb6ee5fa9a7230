#include "model.h"

#include <c10/util/hash.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>
#include <torch/torch.h>
#ifdef SUPERIONIC_TORCH_CUDA
// Only with a CUDA torch (CMake defines it): the model then runs on the caller's CUDA stream.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <cmath>
#include <fstream>
#include <optional>
#include <unordered_map>

#include "model_file.h"
#include "nequip_model.h"
#include "sprinter_kernel.h"

namespace superionic {
namespace {

// Torch messages carry C++ back-traces and advice paragraphs; users get the first sentence.
std::string first_line(const std::string &text) {
  std::string line = text.substr(0, text.find('\n'));
  auto sentence_end = line.find(". ");
  return sentence_end == std::string::npos ? line : line.substr(0, sentence_end + 1);
}

std::string torch_message(const std::exception &e) {
  if (auto *c10 = dynamic_cast<const c10::Error *>(&e)) return first_line(c10->what_without_backtrace());
  return first_line(e.what());
}

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

using TensorMap = std::unordered_map<std::string, torch::Tensor>;

// The sprinter's parameters and buffers (python/superionic/models/sprinter.py) as plain float64
// arrays for the native kernel. Names are the module's attribute paths. Scalar buffers missing
// from a file are rebuilt from the metadata exactly as the module builds them.
std::unique_ptr<SprinterKernel> sprinter_kernel(const TensorMap &tensors, const ModelMetadata &meta,
                                                std::string &why_not) {
  auto find = [&](const std::string &name) -> const torch::Tensor * {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  };
  auto values = [](const torch::Tensor &t) {
    auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  for (const char *name : {"radial_coeff", "angular_coeff", "descriptor_mean", "descriptor_std", "energy_shift",
                           "energy_scale", "core_radius_sq", "core_strength", "layers.0.weight"})
    if (!find(name)) {
      why_not = std::string("the file holds no '") + name + "' tensor";
      return nullptr;
    }
  const auto &radial = *find("radial_coeff");
  const auto &angular = *find("angular_coeff");
  if (radial.dim() != 4 || angular.dim() != 4) {
    why_not = "radial_coeff/angular_coeff are not 4-dimensional";
    return nullptr;
  }
  SprinterParams p;
  p.n_species = static_cast<int>(radial.size(0));
  p.radial_channels = static_cast<int>(radial.size(2));
  p.n_basis = static_cast<int>(radial.size(3));
  p.angular_channels = static_cast<int>(angular.size(2));
  p.radial_coeff = values(radial);
  p.angular_coeff = values(angular);
  p.descriptor_mean = values(*find("descriptor_mean"));
  p.descriptor_std = values(*find("descriptor_std"));
  const int n_desc = static_cast<int>(p.descriptor_mean.size());
  // descriptors = Cr radial + l_max * Ca angular, so l_max follows from the descriptor count.
  if ((n_desc - p.radial_channels) % p.angular_channels != 0) {
    why_not = "descriptor count does not match the channel counts";
    return nullptr;
  }
  p.l_max = (n_desc - p.radial_channels) / p.angular_channels;
  p.cutoff = find("cutoff_t") ? values(*find("cutoff_t"))[0] : meta.cutoff;
  p.cutoff_sq = find("cutoff_sq") ? values(*find("cutoff_sq"))[0] : meta.cutoff * meta.cutoff;
  if (find("basis_freq")) {
    p.basis_freq = values(*find("basis_freq"));
  } else {
    for (int k = 0; k < p.n_basis; k++) p.basis_freq.push_back(M_PI * k);
  }
  p.widths.push_back(n_desc);
  for (int k = 0; find("layers." + std::to_string(k) + ".weight"); k++) {
    const auto &w = *find("layers." + std::to_string(k) + ".weight");
    const auto *b = find("layers." + std::to_string(k) + ".bias");
    if (w.dim() != 3 || !b) {
      why_not = "layer " + std::to_string(k) + " is not a [S, in, out] weight with a bias";
      return nullptr;
    }
    p.widths.push_back(static_cast<int>(w.size(2)));
    p.layer_weight.push_back(values(w));
    p.layer_bias.push_back(values(*b));
  }
  p.energy_shift = values(*find("energy_shift"));
  p.energy_scale = values(*find("energy_scale"))[0];
  p.core_radius_sq = values(*find("core_radius_sq"));
  p.core_strength = values(*find("core_strength"))[0];
  if (static_cast<size_t>(p.n_species) != meta.species.size()) {
    why_not = "the weights have " + std::to_string(p.n_species) + " species, the metadata " +
              std::to_string(meta.species.size());
    return nullptr;
  }
  auto precision = meta.dtype == "float32" ? KernelPrecision::Float32 : KernelPrecision::Float64;
  try {
    return std::make_unique<SprinterKernel>(std::move(p), precision);
  } catch (const ModelError &e) {
    why_not = e.what();
    return nullptr;
  }
}

// The weights a sprinter's .pt2 carries beside its compiled code (export.py, weights_text), as
// tensors named like the .pt path's. `digest` is the SHA-1 compiled into the package's metadata;
// an entry that is missing, of another format or not matching it is a damaged file.
TensorMap package_weights(const std::string &path, const std::string &digest) {
  const std::string entry = kWeightsEntry;
  const std::string fix = "; the file is damaged: export it again with superionic export";
  std::string text;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord(entry))
      throw ModelError("'" + path + "' names sprinter weights in its compiled metadata but has no " + entry + fix);
    auto record = reader.getRecord(entry);
    text.assign(static_cast<const char *>(std::get<0>(record).get()), std::get<1>(record));
  } catch (const ModelError &) {
    throw;
  } catch (const std::exception &e) {
    throw ModelError("'" + path + "': cannot read " + entry + " (" + torch_message(e) + ")" + fix);
  }
  int version = weights_format_version(text);
  if (version < 0)
    throw ModelError("'" + path + "': " + entry + " does not start with '" + kWeightsHeader + " N'" + fix);
  if (version != kWeightsFormatVersion)
    throw ModelError("'" + path + "': " + entry + " has weights format " + std::to_string(version) +
                     " but this superionic reads format " + std::to_string(kWeightsFormatVersion) +
                     "; export the model again with this superionic or run it with the one that wrote it");
  std::string actual = c10::sha1(text).str();
  if (actual != digest)
    throw ModelError("'" + path + "': " + entry + " does not match the compiled model (SHA-1 " + actual.substr(0, 12) +
                     ", compiled metadata says " + digest.substr(0, 12) + ")" + fix);
  TensorMap tensors;
  for (auto &array : parse_weights_text(text, "'" + path + "'")) {
    auto values = torch::tensor(array.values, torch::TensorOptions().dtype(torch::kFloat64));
    tensors[array.name] = values.reshape(array.shape);
  }
  return tensors;
}

}  // namespace

struct Model::Impl {
  std::string path;
  ModelMetadata meta;
  torch::Device device{torch::kCPU};
  torch::Dtype dtype = torch::kFloat64;
  std::optional<torch::jit::Module> script;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> package;
  std::unique_ptr<SprinterKernel> kernel;
  std::string kernel_note = "the native kernel implements sprinter models only";
  std::string weights_digest;  // .pt2: kWeightsDigestKey of the compiled metadata, if any
  std::unique_ptr<NequipModel> nequip;  // *.nequip.pt2: an Allegro model behind the same contract
  torch::Tensor energy_out, grad_out;   // the last evaluate()'s outputs, which it hands out by pointer

  void attach_native_kernel() {
    if (meta.model_kind != "sprinter") return;
    TensorMap tensors;
    if (package) {
      // AOTInductor compiles the weights into its library; only the weights entry gives them back.
      if (weights_digest.empty()) {
        kernel_note = "it was exported before .pt2 files carried the sprinter weights, so AOTInductor runs it; "
                      "export it again with superionic export for the native kernel";
        return;
      }
      tensors = package_weights(path, weights_digest);  // throws ModelError: a damaged file
    }
    try {
      if (script) {
        for (const auto &item : script->named_parameters(true)) tensors[item.name] = item.value;
        for (const auto &item : script->named_buffers(true)) tensors[item.name] = item.value;
      }
    } catch (const std::exception &e) {
      kernel_note = "its weights could not be read: " + torch_message(e);
      return;
    }
    kernel = sprinter_kernel(tensors, meta, kernel_note);
  }

  std::vector<torch::Tensor> run(std::vector<torch::Tensor> inputs) {
    if (package) return package->run(inputs);
    std::vector<torch::jit::IValue> args(inputs.begin(), inputs.end());
    auto out = script->forward(args).toTuple();
    return {out->elements()[0].toTensor(), out->elements()[1].toTensor()};
  }
};

Model::Model(const std::string &path, const std::string &device) : impl_(new Impl) {
  impl_->path = path;
  if (!std::ifstream(path).good())
    throw ModelError("cannot open model file '" + path + "'; check the path given to pair_coeff");
  require_exported_model(path);  // names what a wrong file is before libtorch's stream reader sees it
  try {
    impl_->device = torch::Device(device);
  } catch (const std::exception &e) {
    throw ModelError("unknown device '" + device + "': " + torch_message(e));
  }
  if (impl_->device.is_cuda() && !torch::cuda::is_available())
    throw ModelError("device '" + device + "' requested but this libtorch sees no CUDA device");
  if (is_nequip_package_path(path)) {
    impl_->nequip = std::make_unique<NequipModel>(path, impl_->device.str());
    impl_->meta = impl_->nequip->metadata();
    return;
  }

  std::string json;
  if (ends_with(path, ".pt2")) {
    try {
      auto index = impl_->device.is_cuda() ? impl_->device.index() : static_cast<c10::DeviceIndex>(-1);
      impl_->package = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", false, 1, index);
      auto meta = impl_->package->get_metadata();
      auto it = meta.find(kMetadataName);
      if (it != meta.end()) json = it->second;
      auto digest = meta.find(kWeightsDigestKey);
      if (digest != meta.end()) impl_->weights_digest = digest->second;
    } catch (const std::exception &e) {
      throw ModelError("'" + path + "' is not a loadable AOTInductor package: " + torch_message(e));
    }
  } else if (ends_with(path, ".pt")) {
    try {
      torch::jit::ExtraFilesMap extra{{kMetadataName, ""}};
      impl_->script = torch::jit::load(path, impl_->device, extra);
      impl_->script->eval();
      json = extra[kMetadataName];
    } catch (const std::exception &e) {
      throw ModelError("'" + path + "' is not a loadable TorchScript model: " + torch_message(e));
    }
  } else {
    throw ModelError("model file '" + path + "' has an unknown extension; use .pt (TorchScript) or .pt2 (AOTInductor)");
  }
  impl_->meta = parse_metadata(json, path);
  impl_->dtype = impl_->meta.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
  if (impl_->package) {
    bool compiled_for_cuda = impl_->meta.device.rfind("cuda", 0) == 0;
    if (compiled_for_cuda != impl_->device.is_cuda())
      throw ModelError("'" + path + "' was compiled for " + impl_->meta.device + " and cannot run on " +
                       device + "; export it again for that device or use the .pt file");
  }
  impl_->attach_native_kernel();
}

Model::~Model() = default;

SprinterKernel *Model::native_kernel() const { return impl_->kernel.get(); }
const std::string &Model::native_unavailable_reason() const { return impl_->kernel_note; }

const ModelMetadata &Model::metadata() const { return impl_->meta; }
const std::string &Model::path() const { return impl_->path; }
std::string Model::device() const { return impl_->device.str(); }

void Model::compute(const double *edge_vec, const int64_t *edge_src, const int64_t *edge_dst,
                    int64_t n_edges, const int64_t *species, int64_t n_atoms, int64_t n_local,
                    double *atom_energy, double *edge_grad) {
  ModelOutputs out = evaluate({edge_vec, edge_src, edge_dst, n_edges, species, n_atoms, n_local}, ArraySpace{});
  std::copy(out.atom_energy, out.atom_energy + n_local, atom_energy);
  std::copy(out.edge_grad, out.edge_grad + 3 * n_edges, edge_grad);
}

ModelOutputs Model::evaluate(const EdgeGraph &graph, const ArraySpace &space) {
  Impl &m = *impl_;
  const bool on_gpu = space.kind == ArraySpace::Kind::Gpu;
  try {
    const torch::Device where =
        on_gpu ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(space.device)) : torch::Device(torch::kCPU);
#ifdef SUPERIONIC_TORCH_CUDA
    // Every torch kernel below, the model's included, queues behind the caller's work on its stream,
    // and the caller's next kernels queue behind them: no host synchronisation either way.
    std::optional<c10::cuda::CUDAStreamGuard> on_caller_stream;
    if (on_gpu && space.cuda_stream)
      on_caller_stream.emplace(
          c10::cuda::getStreamFromExternal(static_cast<cudaStream_t>(space.cuda_stream), where.index()));
#else
    if (on_gpu && space.cuda_stream)
      throw ModelError("this superionic was built against a torch without CUDA headers, so it cannot run on a CUDA "
                       "stream; rebuild it against the CUDA torch wheel");
#endif
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(where);
    auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(where);
    // from_blob borrows the caller's memory on its device; .to() copies only when the model's device
    // or dtype differ from the arrays'.
    auto vec = torch::from_blob(const_cast<double *>(graph.edge_vec), {graph.n_edges, 3}, f64);
    auto src = torch::from_blob(const_cast<int64_t *>(graph.edge_src), {graph.n_edges}, i64);
    auto dst = torch::from_blob(const_cast<int64_t *>(graph.edge_dst), {graph.n_edges}, i64);
    auto spc = torch::from_blob(const_cast<int64_t *>(graph.species), {graph.n_atoms}, i64);
    torch::Tensor energy, grad;
    if (m.nequip) {
      // nequip_model.cpp builds pair_allegro's inputs on the host, so device arrays pass through it.
      auto host = [](const torch::Tensor &t) { return t.to(torch::kCPU).contiguous(); };
      auto h_vec = host(vec), h_src = host(src), h_dst = host(dst), h_spc = host(spc);
      energy = torch::empty({graph.n_local}, torch::TensorOptions().dtype(torch::kFloat64));
      grad = torch::empty({graph.n_edges, 3}, torch::TensorOptions().dtype(torch::kFloat64));
      m.nequip->compute(h_vec.data_ptr<double>(), h_src.data_ptr<int64_t>(), h_dst.data_ptr<int64_t>(),
                        graph.n_edges, h_spc.data_ptr<int64_t>(), graph.n_atoms, graph.n_local,
                        energy.data_ptr<double>(), grad.data_ptr<double>());
    } else {
      auto nloc = torch::full({}, graph.n_local, torch::TensorOptions().dtype(torch::kInt64).device(m.device));
      auto out = m.run({vec.to(m.device, m.dtype), src.to(m.device), dst.to(m.device), spc.to(m.device), nloc});
      energy = out[0];
      grad = out[1];
    }
    if (energy.numel() != graph.n_local || grad.numel() != 3 * graph.n_edges)
      throw ModelError("model returned " + std::to_string(energy.numel()) + " atom energies and " +
                       std::to_string(grad.numel() / 3) + " edge gradients, expected " +
                       std::to_string(graph.n_local) + " and " + std::to_string(graph.n_edges));
    // No copy for a float64 model on the arrays' device: the outputs are the model's own tensors.
    m.energy_out = energy.to(where, torch::kFloat64).contiguous();
    m.grad_out = grad.to(where, torch::kFloat64).contiguous();
    if (on_gpu && !space.cuda_stream) torch::cuda::synchronize(space.device);
    return {m.energy_out.data_ptr<double>(), m.grad_out.data_ptr<double>()};
  } catch (const ModelError &) {
    throw;
  } catch (const std::exception &e) {
    throw ModelError("model '" + m.path + "' failed: " + torch_message(e));
  }
}

int Model::cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

bool Model::shares_cuda_streams() {
#ifdef SUPERIONIC_TORCH_CUDA
  return true;
#else
  return false;
#endif
}

void Model::set_num_threads(int n) {
  if (n > 0) torch::set_num_threads(n);
}

int Model::num_threads() { return torch::get_num_threads(); }

}  // namespace superionic
