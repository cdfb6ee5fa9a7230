// Python access to the C++ evaluation path, so tests compare Python, C++ and LAMMPS directly.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "device_placement.h"
#include "model.h"
#include "sprinter_kernel.h"

namespace py = pybind11;
using superionic::Model;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

py::tuple compute(Model &model, CArray<double> edge_vec, CArray<int64_t> edge_src,
                  CArray<int64_t> edge_dst, CArray<int64_t> species, int64_t n_local) {
  const int64_t n_edges = edge_src.shape(0);
  if (edge_vec.ndim() != 2 || edge_vec.shape(0) != n_edges || edge_vec.shape(1) != 3 ||
      edge_dst.shape(0) != n_edges)
    throw py::value_error("edge_vec must be [E,3] and edge_src, edge_dst [E]");
  const int64_t n_atoms = species.shape(0);
  if (n_local < 0 || n_local > n_atoms) throw py::value_error("n_local must lie in [0, len(species)]");
  py::array_t<double> atom_energy(n_local);
  py::array_t<double> edge_grad({n_edges, static_cast<int64_t>(3)});
  {
    py::gil_scoped_release release;
    model.compute(edge_vec.data(), edge_src.data(), edge_dst.data(), n_edges, species.data(), n_atoms,
                  n_local, atom_energy.mutable_data(), edge_grad.mutable_data());
  }
  return py::make_tuple(atom_energy, edge_grad);
}

// The same contract through the native sprinter kernel; precision '' follows the model's dtype,
// 'float32' trades accuracy for speed (energies still accumulated in float64); threads = 0 for
// OpenMP's default.
py::tuple compute_native(Model &model, CArray<double> edge_vec, CArray<int64_t> edge_src,
                         CArray<int64_t> edge_dst, CArray<int64_t> species, int64_t n_local,
                         const std::string &precision, int threads) {
  superionic::SprinterKernel *kernel = model.native_kernel();
  if (!kernel) throw superionic::ModelError("no native kernel for '" + model.path() + "': " +
                                            model.native_unavailable_reason());
  if (!precision.empty() && precision != "float64" && precision != "float32")
    throw py::value_error("precision must be 'float64', 'float32' or '' (the model's dtype)");
  const int64_t n_edges = edge_src.shape(0);
  if (edge_vec.ndim() != 2 || edge_vec.shape(0) != n_edges || edge_vec.shape(1) != 3 ||
      edge_dst.shape(0) != n_edges)
    throw py::value_error("edge_vec must be [E,3] and edge_src, edge_dst [E]");
  const int64_t n_atoms = species.shape(0);
  if (n_local < 0 || n_local > n_atoms) throw py::value_error("n_local must lie in [0, len(species)]");
  py::array_t<double> atom_energy(n_local);
  py::array_t<double> edge_grad({n_edges, static_cast<int64_t>(3)});
  {
    py::gil_scoped_release release;
    const auto saved_precision = kernel->precision();
    if (!precision.empty())
      kernel->set_precision(precision == "float32" ? superionic::KernelPrecision::Float32
                                                   : superionic::KernelPrecision::Float64);
    kernel->set_num_threads(threads);
    try {
      kernel->compute(edge_vec.data(), edge_src.data(), edge_dst.data(), n_edges, species.data(), n_atoms,
                      n_local, atom_energy.mutable_data(), edge_grad.mutable_data());
    } catch (...) {
      kernel->set_precision(saved_precision);
      throw;
    }
    kernel->set_precision(saved_precision);
  }
  return py::make_tuple(atom_energy, edge_grad);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "The C++ model evaluation used by pair_style superionic.";
  py::register_exception<superionic::ModelError>(m, "ModelError", PyExc_RuntimeError);
  py::class_<Model>(m, "Model")
      .def(py::init<const std::string &, const std::string &>(), py::arg("path"), py::arg("device") = "cpu")
      .def_property_readonly("metadata_json", [](const Model &mdl) { return mdl.metadata().json; })
      .def_property_readonly("species", [](const Model &mdl) { return mdl.metadata().species; })
      .def_property_readonly("cutoff", [](const Model &mdl) { return mdl.metadata().cutoff; })
      .def_property_readonly("receptive_field", [](const Model &mdl) { return mdl.metadata().receptive_field; })
      .def_property_readonly("dtype", [](const Model &mdl) { return mdl.metadata().dtype; })
      .def_property_readonly("device", &Model::device)
      .def("compute", &compute, py::arg("edge_vec"), py::arg("edge_src"), py::arg("edge_dst"),
           py::arg("species"), py::arg("n_local"),
           "Run the model contract; returns (atom_energy [n_local], edge_grad [E,3]) as float64.")
      .def_property_readonly("has_native_kernel", [](const Model &mdl) { return mdl.native_kernel() != nullptr; })
      .def_property_readonly("native_unavailable_reason", &Model::native_unavailable_reason)
      .def_property_readonly("native_description",
                             [](const Model &mdl) { return mdl.native_kernel() ? mdl.native_kernel()->describe() : ""; })
      .def("compute_native", &compute_native, py::arg("edge_vec"), py::arg("edge_src"), py::arg("edge_dst"),
           py::arg("species"), py::arg("n_local"), py::arg("precision") = "", py::arg("threads") = 0,
           "The model contract through the native sprinter kernel (no libtorch); same outputs as compute.");
  m.def("parse_metadata", [](const std::string &json, const std::string &source) {
    return superionic::parse_metadata(json, source).json;
  });
  m.attr("METADATA_FORMAT_VERSION") = superionic::kMetadataFormatVersion;
  // The pair style's rank -> device rule, exposed so that it is tested without GPUs.
  py::register_exception<superionic::PlacementError>(m, "PlacementError", PyExc_ValueError);
  m.def(
      "place_rank",
      [](const std::string &device, int local_rank, int local_size, int visible_gpus, int gpus_per_node,
         bool allow_oversubscribe) {
        return superionic::place_rank({device, gpus_per_node, allow_oversubscribe}, local_rank, local_size,
                                      visible_gpus);
      },
      py::arg("device"), py::arg("local_rank"), py::arg("local_size"), py::arg("visible_gpus"),
      py::arg("gpus_per_node") = 0, py::arg("allow_oversubscribe") = false);
}
