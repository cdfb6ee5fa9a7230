#include "pair_superionic_kokkos.h"

#include "atom_kokkos.h"
#include "atom_masks.h"
#include "comm.h"
#include "error.h"
#include "kokkos.h"
#include "memory_kokkos.h"
#include "neigh_list_kokkos.h"
#include "neigh_request.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <unordered_map>

#include "model.h"
#include "sprinter_kernel.h"

using namespace LAMMPS_NS;

namespace {
// The same limit as pair_style superionic: closer pairs are unphysical for any trained model.
constexpr double kMinDistance = 0.1;

// Where the views of an execution space live, as Model::evaluate needs to know. Host spaces
// (OpenMP, Serial, Threads): host memory. A GPU space: its device, and on CUDA its stream.
template <class ExecSpace>
struct KokkosArraySpace {
  static superionic::ArraySpace get()
  {
    static_assert(Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename ExecSpace::memory_space>::accessible,
                  "pair_style superionic/kk runs on host, CUDA and HIP execution spaces only");
    return superionic::ArraySpace{};
  }
};

#ifdef KOKKOS_ENABLE_CUDA
template <>
struct KokkosArraySpace<Kokkos::Cuda> {
  static superionic::ArraySpace get()
  {
    // The default instance, which LAMMPS's kernels (default RangePolicy) run on.
    const Kokkos::Cuda space;
    superionic::ArraySpace where;
    where.kind = superionic::ArraySpace::Kind::Gpu;
    where.device = space.cuda_device();
    if (superionic::Model::shares_cuda_streams()) where.cuda_stream = static_cast<void *>(space.cuda_stream());
    return where;
  }
};
#endif

#ifdef KOKKOS_ENABLE_HIP
template <>
struct KokkosArraySpace<Kokkos::HIP> {
  static superionic::ArraySpace get()
  {
    // ROCm builds of torch address the GPU as cuda:N; no stream is shared, so the call fences Kokkos
    // before the model and waits for the GPU after it.
    const Kokkos::HIP space;
    superionic::ArraySpace where;
    where.kind = superionic::ArraySpace::Kind::Gpu;
    where.device = space.hip_device();
    return where;
  }
};
#endif

std::string describe(const superionic::ArraySpace &where)
{
  if (where.kind == superionic::ArraySpace::Kind::Host) return "host memory, read and written in place";
  if (where.cuda_stream) return fmt::format("GPU {} memory, read and written in place on Kokkos's CUDA stream", where.device);
  return fmt::format("GPU {} memory, read and written in place (Kokkos fenced before, the GPU synchronised after)",
                     where.device);
}
}  // namespace

template <class DeviceType>
superionic::ArraySpace PairSuperionicKokkos<DeviceType>::array_space()
{
  return KokkosArraySpace<typename DeviceType::execution_space>::get();
}

template <class DeviceType>
PairSuperionicKokkos<DeviceType>::PairSuperionicKokkos(LAMMPS *lmp) : PairSuperionic(lmp)
{
  respa_enable = 0;
  kokkosable = 1;
  atomKK = (AtomKokkos *) atom;
  execution_space = ExecutionSpaceFromDevice<DeviceType>::space;
  datamask_read = X_MASK | F_MASK | TYPE_MASK | ENERGY_MASK | VIRIAL_MASK;
  datamask_modify = F_MASK | ENERGY_MASK | VIRIAL_MASK;
}

template <class DeviceType>
PairSuperionicKokkos<DeviceType>::~PairSuperionicKokkos()
{
  if (copymode) return;
  memoryKK->destroy_kokkos(k_eatom, eatom);
  memoryKK->destroy_kokkos(k_vatom, vatom);
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::settings(int narg, char **arg)
{
  // The base class checks every keyword and value; this style refuses the ones it does not implement.
  PairSuperionic::settings(narg, arg);
  device_given = false;
  for (int iarg = 0; iarg + 1 < narg; iarg += 2) {
    const std::string key = arg[iarg];
    if (key == "device") device_given = true;
    if (key == "committee" || key == "debug/edges" || utils::strmatch(key, "^devi_"))
      error->all(FLERR, "pair_style superionic/kk: keyword '{}' is not available in the Kokkos style yet; run without -sf kk (pair_style superionic)", key);
    // The physical-sanity guard (docs/guard.md) is checked in pair_style superionic's compute(),
    // which this style replaces: asking for it here would be a guard that never runs.
    if ((key == "guard" && std::string(arg[iarg + 1]) != "0") || key == "guard_action" || key == "guard_factor")
      error->all(FLERR, "pair_style superionic/kk: keyword '{}': the distance guard is not available in the Kokkos style yet; run without -sf kk (pair_style superionic) or set guard 0", key);
  }
}

template <class DeviceType>
std::string PairSuperionicKokkos<DeviceType>::resolve_device()
{
  const superionic::ArraySpace where = array_space();
  // Host spaces: pair_style superionic's rule (threads split between the node's ranks, device keyword).
  if (where.kind == superionic::ArraySpace::Kind::Host) return PairSuperionic::resolve_device();
  // A GPU space: the model runs on the GPU Kokkos gave this rank (-k on g N), next to the views.
  if (num_threads > 0) superionic::Model::set_num_threads(num_threads);
  threads_per_rank = superionic::Model::num_threads();
  const std::string kokkos_gpu = fmt::format("cuda:{}", where.device);
  if (device_given && device_request != "cuda" && device_request != "auto" && device_request != kokkos_gpu)
    error->one(FLERR, "pair_style superionic/kk: device {} but Kokkos runs this rank on GPU {}, where the edges are; drop the device keyword (the model then runs on that GPU) or run without -sf kk",
               device_request, where.device);
  // The Kokkos-native kernel takes the weights from a host copy of the model: no CUDA libtorch needed.
  if (load_on_host) return "cpu";
  if (superionic::Model::cuda_device_count() == 0)
    error->one(FLERR, "pair_style superionic/kk: this LAMMPS runs Kokkos on GPU {}, but the torch superionic was built against sees no CUDA device (a CPU-only torch wheel?); rebuild superionic against the CUDA torch wheel",
               where.device);
  return kokkos_gpu;
}

namespace {
// Whether the Kokkos-native kernel takes the model in `path` (a sprinter within its limits), read on
// the host; "" if it does, else why not.
std::string native_refusal(const std::string &path)
{
  try {
    superionic::Model probe(path, "cpu");
    const superionic::SprinterKernel *kernel = probe.native_kernel();
    if (!kernel) return probe.native_unavailable_reason();
    return superionic::kk::unsupported_reason(kernel->params());
  } catch (const superionic::ModelError &e) {
    return e.what();
  }
}
}  // namespace

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::coeff(int narg, char **arg)
{
  const superionic::ArraySpace where = array_space();
  const bool gpu = where.kind == superionic::ArraySpace::Kind::Gpu;
  // On a GPU space the base class would load the model onto the GPU for libtorch. A sprinter the
  // Kokkos kernel takes needs its weights only, read from a host copy (see resolve_device).
  load_on_host = false;
  std::string gpu_refusal;
  if (gpu && backend_request != "torch" && narg >= 3) {
    gpu_refusal = native_refusal(arg[2]);
    load_on_host = gpu_refusal.empty();
    if (backend_request == "native" && !load_on_host)
      error->all(FLERR, "pair_style superionic/kk backend native: the Kokkos kernel cannot run {}: {}; use backend auto or torch",
                 arg[2], gpu_refusal);
  }
  // Models (placed by resolve_device above), type map, cutoffs, setflag and the log: the base's.
  PairSuperionic::coeff(narg, arg);
  // The base armed its guard from the model's floors; this style's compute() does not run it.
  if (!guard_floor_sq.empty()) {
    guard_floor_sq.clear();
    if (comm->me == 0)
      utils::logmesg(lmp, "pair superionic/kk: the distance guard is not run by the Kokkos style (docs/guard.md); run without -sf kk to have it\n");
  }

  native_kk = 0;
  std::string how;
  if (kernels[0]) {
    const superionic::SprinterParams &params = kernels[0]->params();
    const std::string why = superionic::kk::unsupported_reason(params);
    if (why.empty()) {
      const bool f32 = kernels[0]->precision() == superionic::KernelPrecision::Float32;
      native_kk = f32 ? 2 : 1;
      // SUPERIONIC_KK_SHAPE=generic runs the default model on the runtime-sized instantiation too:
      // on a GPU the two trade registers against stack (docs/gpu.md), which only a GPU run can rank.
      const char *shape_env = std::getenv("SUPERIONIC_KK_SHAPE");
      const bool force_generic = shape_env && std::string(shape_env) == "generic";
      native_default_shape = superionic::kk::is_default_shape(params) && !force_generic;
      if (f32)
        weights32 = superionic::kk::Weights<DeviceType, float>(params);
      else
        weights64 = superionic::kk::Weights<DeviceType, double>(params);
      how = fmt::format("the Kokkos-native sprinter kernel ({}, {} shape, {} species, l_max {}), no libtorch call",
                        f32 ? "float32 arithmetic, float64 sums" : "float64",
                        native_default_shape ? "default" : "generic", params.n_species, params.l_max);
    } else if (gpu) {
      error->all(FLERR, "pair_style superionic/kk: the Kokkos kernel cannot run {}: {}; use backend torch", models[0]->path(), why);
    } else {
      how = fmt::format("host memory, in place (native kernel; the Kokkos kernel cannot run it: {})", why);
    }
  } else {
    how = describe(where);
    if (gpu && !gpu_refusal.empty() && backend_request == "auto")
      how += fmt::format(" (libtorch: {})", gpu_refusal);
  }

  const int ntypes = atom->ntypes;
  auto h_type_species = Kokkos::View<int *, Kokkos::HostSpace>("superionic/kk:type_species", ntypes + 1);
  for (int t = 0; t <= ntypes; t++) h_type_species(t) = t == 0 ? -1 : type_species[t];
  d_type_species = t_int_1d("superionic/kk:type_species", ntypes + 1);
  Kokkos::deep_copy(d_type_species, h_type_species);

  if (comm->me == 0)
    utils::logmesg(lmp,
                   "pair superionic/kk: model {}: neighbour list, edges and force sums as Kokkos kernels ({}); "
                   "the model call on {}\n",
                   models[0]->path(), DeviceType::execution_space::name(), how);
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::init_style()
{
  // The base's run checks, its neighbour request (full; with ghost neighbours for a ghost-shell
  // graph) and ghost cutoff; the request is then made a Kokkos one.
  PairSuperionic::init_style();
  NeighRequest *request = neighbor->find_request(this);
  if (!request) error->all(FLERR, "pair_style superionic/kk: no neighbour-list request was made by pair_style superionic");
  request->set_kokkos_host(std::is_same_v<DeviceType, LMPHostType> && !std::is_same_v<DeviceType, LMPDeviceType>);
  request->set_kokkos_device(std::is_same_v<DeviceType, LMPDeviceType>);
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::grow_atoms(int nall, int nsources)
{
  if (static_cast<int>(d_node_of_atom.extent(0)) < nall) {
    // 5 % headroom: the atom count of a rank drifts a little between re-neighbourings.
    const int n = nall + nall / 20 + 1;
    d_node_of_atom = t_i64_1d("superionic/kk:node_of_atom", n);
    d_atom_of_node = t_i64_1d("superionic/kk:atom_of_node", n);
    d_species = t_i64_1d("superionic/kk:species", n);
  }
  if (static_cast<int>(d_edge_count.extent(0)) < nsources + 1) {
    const int n = nsources + nsources / 20 + 2;
    d_edge_count = t_int_1d("superionic/kk:edge_count", n);
    d_edge_offset = t_int_1d("superionic/kk:edge_offset", n);
  }
  if (native_kk && static_cast<int>(d_node_first.extent(0)) < nsources + 1) {
    const int n = nsources + nsources / 20 + 2;
    d_node_first = t_int_1d("superionic/kk:node_first", n);
    d_node_count = t_int_1d("superionic/kk:node_count", n);
  }
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::grow_edges(int64_t n_edges)
{
  if (static_cast<int64_t>(d_edge_src.extent(0)) >= n_edges && n_edges > 0) return;
  const int64_t n = std::max<int64_t>(1, n_edges + n_edges / 20);
  d_edge_src = t_i64_1d("superionic/kk:edge_src", n);
  d_edge_dst = t_i64_1d("superionic/kk:edge_dst", n);
  d_edge_vec = t_double_1d_3("superionic/kk:edge_vec", n);
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::report_close_pair(int64_t n_edges)
{
  // Only on the error path: find the pair on the host and name it as the base style does.
  auto h_src = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_edge_src);
  auto h_dst = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_edge_dst);
  auto h_vec = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_edge_vec);
  auto h_atom = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_atom_of_node);
  atomKK->sync(Host, TAG_MASK);
  for (int64_t e = 0; e < n_edges; e++) {
    const double r_sq = h_vec(e, 0) * h_vec(e, 0) + h_vec(e, 1) * h_vec(e, 1) + h_vec(e, 2) * h_vec(e, 2);
    if (r_sq >= kMinDistance * kMinDistance) continue;
    const int i = static_cast<int>(h_atom(h_src(e)));
    const int j = static_cast<int>(h_atom(h_dst(e)));
    error->one(FLERR, "pair_style superionic/kk: atoms {} and {} are {:.4g} A apart (< {} A) at step {}; the structure overlaps or the time step is too large",
               atom->tag[i], atom->tag[j], std::sqrt(r_sq), kMinDistance, update->ntimestep);
  }
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::fold_ghosts(int nlocal, int nall)
{
  // Ghosts change only when the neighbour list is rebuilt; their owners are found on the host then
  // (one rank: every ghost is an image of an owned atom), like pair_style superionic does each step.
  if (ghost_owner_build != neighbor->ncalls || static_cast<int>(d_ghost_owner.extent(0)) < nall - nlocal) {
    if (static_cast<int>(d_ghost_owner.extent(0)) < nall - nlocal)
      d_ghost_owner = t_int_1d("superionic/kk:ghost_owner", nall - nlocal + (nall - nlocal) / 20 + 1);
    atomKK->sync(Host, TAG_MASK);
    const tagint *tag = atom->tag;
    std::unordered_map<tagint, int> owned;
    owned.reserve(nlocal);
    for (int i = 0; i < nlocal; i++) owned.emplace(tag[i], i);
    auto h_owner = Kokkos::create_mirror_view(d_ghost_owner);
    for (int g = nlocal; g < nall; g++) {
      auto found = owned.find(tag[g]);
      if (found == owned.end())
        error->one(FLERR, "pair_style superionic/kk graph folded: ghost atom {} has no owned copy on this rank; use graph shell",
                   tag[g]);
      h_owner(g - nlocal) = found->second;
    }
    Kokkos::deep_copy(d_ghost_owner, h_owner);
    ghost_owner_build = neighbor->ncalls;
  }
  auto node_of_atom = d_node_of_atom;
  auto ghost_owner = d_ghost_owner;
  Kokkos::parallel_for(
      "superionic/kk:fold_ghosts", Kokkos::RangePolicy<typename DeviceType::execution_space>(nlocal, nall),
      KOKKOS_LAMBDA(const int g) { node_of_atom(g) = node_of_atom(ghost_owner(g - nlocal)); });
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::compute(int eflag_in, int vflag_in)
{
  ev_init(eflag_in, vflag_in, 0);
  if (eflag_atom) {
    memoryKK->destroy_kokkos(k_eatom, eatom);
    memoryKK->create_kokkos(k_eatom, eatom, maxeatom, "pair:eatom");
  }
  if (vflag_atom) {
    memoryKK->destroy_kokkos(k_vatom, vatom);
    memoryKK->create_kokkos(k_vatom, vatom, maxvatom, "pair:vatom");
  }

  atomKK->sync(execution_space, datamask_read);
  atomKK->modified(execution_space, datamask_modify);
  auto x = atomKK->k_x.view<DeviceType>();
  auto type = atomKK->k_type.view<DeviceType>();
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;

  auto *k_list = static_cast<NeighListKokkos<DeviceType> *>(list);
  auto d_ilist = k_list->d_ilist;
  auto d_numneigh = k_list->d_numneigh;
  auto d_neighbors = k_list->d_neighbors;
  // The base class chose the graph in init_style: ghost shell (ghost neighbours requested, ghosts
  // are nodes and sources) or, for message passing on one rank, folded (ghosts stand for their owners).
  const bool ghost_shell = ghostneigh != 0;
  const bool folded = message_passing && !ghost_shell;
  const int n_sources = ghost_shell ? list->inum + list->gnum : list->inum;
  const int n_node_atoms = folded ? nlocal : nall;
  grow_atoms(nall, n_sources);

  // Nodes: atoms of a mapped type, in LAMMPS's order (owned atoms first), numbered by a scan.
  auto type_species = d_type_species;
  auto node_of_atom = d_node_of_atom;
  auto atom_of_node = d_atom_of_node;
  auto species = d_species;
  int64_t n_nodes = 0;
  Kokkos::parallel_scan(
      "superionic/kk:nodes", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, nall),
      KOKKOS_LAMBDA(const int i, int64_t &count, const bool final) {
        const int s = i < n_node_atoms ? type_species(type(i)) : -1;
        if (final) node_of_atom(i) = s >= 0 ? count : -1;
        if (s >= 0) {
          if (final) {
            atom_of_node(count) = i;
            species(count) = s;
          }
          count++;
        }
      },
      n_nodes);
  if (folded && nall > nlocal) fold_ghosts(nlocal, nall);
  int64_t n_local = 0;
  Kokkos::parallel_reduce(
      "superionic/kk:n_local", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, nlocal),
      KOKKOS_LAMBDA(const int i, int64_t &count) { count += type_species(type(i)) >= 0 ? 1 : 0; }, n_local);

  // Edges: count per source atom, exclusive scan, fill in the same order.
  const double cutoff_sq = cutoff * cutoff;
  auto edge_count = d_edge_count;
  Kokkos::parallel_for(
      "superionic/kk:count_edges", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, n_sources),
      KOKKOS_LAMBDA(const int ii) {
        const int i = d_ilist(ii);
        int count = 0;
        if (node_of_atom(i) >= 0) {
          const int jnum = d_numneigh(i);
          for (int jj = 0; jj < jnum; jj++) {
            const int j = d_neighbors(i, jj) & NEIGHMASK;
            if (node_of_atom(j) < 0) continue;
            const double dx = x(j, 0) - x(i, 0), dy = x(j, 1) - x(i, 1), dz = x(j, 2) - x(i, 2);
            if (dx * dx + dy * dy + dz * dz < cutoff_sq) count++;
          }
        }
        edge_count(ii) = count;
      });
  auto edge_offset = d_edge_offset;
  int64_t n_edges = 0;
  Kokkos::parallel_scan(
      "superionic/kk:edge_offsets", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, n_sources),
      KOKKOS_LAMBDA(const int ii, int64_t &offset, const bool final) {
        if (final) edge_offset(ii) = static_cast<int>(offset);
        offset += edge_count(ii);
      },
      n_edges);
  grow_edges(n_edges);
  auto edge_src = d_edge_src;
  auto edge_dst = d_edge_dst;
  auto edge_vec = d_edge_vec;
  // The Kokkos-native kernel reads each owned node's edges by node (a sprinter is strictly local:
  // the sources are the owned atoms).
  const bool node_ranges = native_kk != 0;
  auto node_first = d_node_first;
  auto node_count = d_node_count;
  double min_r_sq = cutoff_sq;
  Kokkos::parallel_reduce(
      "superionic/kk:fill_edges", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, n_sources),
      KOKKOS_LAMBDA(const int ii, double &closest) {
        const int i = d_ilist(ii);
        const int64_t node_i = node_of_atom(i);
        if (node_i < 0) return;
        int e = edge_offset(ii);
        if (node_ranges) {
          node_first(node_i) = e;
          node_count(node_i) = edge_count(ii);
        }
        const int jnum = d_numneigh(i);
        for (int jj = 0; jj < jnum; jj++) {
          const int j = d_neighbors(i, jj) & NEIGHMASK;
          const int64_t node_j = node_of_atom(j);
          if (node_j < 0) continue;
          const double dx = x(j, 0) - x(i, 0), dy = x(j, 1) - x(i, 1), dz = x(j, 2) - x(i, 2);
          const double r_sq = dx * dx + dy * dy + dz * dz;
          if (r_sq >= cutoff_sq) continue;
          if (r_sq < closest) closest = r_sq;
          edge_src(e) = node_i;
          edge_dst(e) = node_j;
          edge_vec(e, 0) = dx;
          edge_vec(e, 1) = dy;
          edge_vec(e, 2) = dz;
          e++;
        }
      },
      Kokkos::Min<double>(min_r_sq));
  if (min_r_sq < kMinDistance * kMinDistance) report_close_pair(n_edges);

  // A rank that owns no atom of this style contributes nothing (as in pair_style superionic).
  if (n_local > 0) {
    if (native_kk)
      run_native(n_local);
    else
      accumulate(n_nodes, n_local, n_edges);
  }

  if (eflag_atom) {
    k_eatom.template modify<DeviceType>();
    k_eatom.sync_host();
  }
  if (vflag_atom) {
    k_vatom.template modify<DeviceType>();
    k_vatom.sync_host();
  }
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::accumulate(int64_t n_nodes, int64_t n_local, int64_t n_edges)
{
  auto f = atomKK->k_f.view<DeviceType>();
  auto atom_of_node = d_atom_of_node;
  auto edge_src = d_edge_src;
  auto edge_dst = d_edge_dst;
  auto edge_vec = d_edge_vec;

  // The model call on the views' own memory, host or GPU alike: only the ArraySpace differs. With a
  // shared CUDA stream the model queues behind the edge kernels; otherwise they are fenced first.
  const superionic::ArraySpace where = array_space();
  if (!where.cuda_stream) Kokkos::fence("superionic/kk:before_model");
  const double *energy_ptr = nullptr, *grad_ptr = nullptr;
  try {
    if (kernels[0]) {
      // The native kernel (host spaces only, see coeff) writes into views of this style.
      if (static_cast<int64_t>(d_atom_energy.extent(0)) < n_local)
        d_atom_energy = t_double_1d("superionic/kk:atom_energy", n_local + n_local / 20 + 1);
      if (static_cast<int64_t>(d_edge_grad.extent(0)) < n_edges)
        d_edge_grad = t_double_1d_3("superionic/kk:edge_grad", n_edges + n_edges / 20 + 1);
      kernels[0]->compute(edge_vec.data(), edge_src.data(), edge_dst.data(), n_edges, d_species.data(), n_nodes,
                          n_local, d_atom_energy.data(), d_edge_grad.data());
      energy_ptr = d_atom_energy.data();
      grad_ptr = d_edge_grad.data();
    } else {
      superionic::EdgeGraph graph{edge_vec.data(), edge_src.data(), edge_dst.data(), n_edges,
                                  d_species.data(), n_nodes, n_local};
      const superionic::ModelOutputs out = models[0]->evaluate(graph, where);
      energy_ptr = out.atom_energy;
      grad_ptr = out.edge_grad;
    }
  } catch (const superionic::ModelError &e) {
    error->one(FLERR, "pair_style superionic/kk: {}", e.what());
  }
  // The outputs, read where they lie (the model's own tensors on the torch path).
  Kokkos::View<const double *, DeviceType, Kokkos::MemoryTraits<Kokkos::Unmanaged>> atom_energy(energy_ptr, n_local);
  Kokkos::View<const double *[3], Kokkos::LayoutRight, DeviceType, Kokkos::MemoryTraits<Kokkos::Unmanaged>> edge_grad(
      grad_ptr, n_edges);

  if (eflag_global || eflag_atom) {
    double energy = 0.0;
    const bool per_atom = eflag_atom;
    typename AT::t_kkacc_1d d_eatom;
    if (per_atom) d_eatom = k_eatom.template view<DeviceType>();
    Kokkos::parallel_reduce(
        "superionic/kk:energy", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, n_local),
        KOKKOS_LAMBDA(const int64_t n, double &sum) {
          sum += atom_energy(n);
          if (per_atom) d_eatom(atom_of_node(n)) += atom_energy(n);
        },
        energy);
    if (eflag_global) eng_vdwl += energy;
  }

  // edge_vec = r_j - r_i, so F_i = -dE/dr_i = +edge_grad and F_j = -edge_grad. LAMMPS's pair
  // virial is (r_i - r_j) (x) f_i = -edge_vec (x) edge_grad, order xx yy zz xy xz yz.
  const bool global_virial = vflag_global, atom_virial = vflag_atom;
  typename AT::t_kkacc_1d_6 d_vatom;
  if (atom_virial) d_vatom = k_vatom.template view<DeviceType>();
  double v0 = 0.0, v1 = 0.0, v2 = 0.0, v3 = 0.0, v4 = 0.0, v5 = 0.0;
  Kokkos::parallel_reduce(
      "superionic/kk:forces", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, n_edges),
      KOKKOS_LAMBDA(const int64_t e, double &w0, double &w1, double &w2, double &w3, double &w4, double &w5) {
        const int i = static_cast<int>(atom_of_node(edge_src(e)));
        const int j = static_cast<int>(atom_of_node(edge_dst(e)));
        const double g0 = edge_grad(e, 0), g1 = edge_grad(e, 1), g2 = edge_grad(e, 2);
        Kokkos::atomic_add(&f(i, 0), g0);
        Kokkos::atomic_add(&f(i, 1), g1);
        Kokkos::atomic_add(&f(i, 2), g2);
        Kokkos::atomic_add(&f(j, 0), -g0);
        Kokkos::atomic_add(&f(j, 1), -g1);
        Kokkos::atomic_add(&f(j, 2), -g2);
        if (global_virial || atom_virial) {
          const double d0 = edge_vec(e, 0), d1 = edge_vec(e, 1), d2 = edge_vec(e, 2);
          const double v[6] = {-d0 * g0, -d1 * g1, -d2 * g2, -d0 * g1, -d0 * g2, -d1 * g2};
          w0 += v[0];
          w1 += v[1];
          w2 += v[2];
          w3 += v[3];
          w4 += v[4];
          w5 += v[5];
          if (atom_virial)
            for (int k = 0; k < 6; k++) {
              Kokkos::atomic_add(&d_vatom(i, k), 0.5 * v[k]);
              Kokkos::atomic_add(&d_vatom(j, k), 0.5 * v[k]);
            }
        }
      },
      v0, v1, v2, v3, v4, v5);
  if (global_virial) {
    virial[0] += v0;
    virial[1] += v1;
    virial[2] += v2;
    virial[3] += v3;
    virial[4] += v4;
    virial[5] += v5;
  }
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::run_native(int64_t n_local)
{
  namespace kk = superionic::kk;
  if (native_kk == 2) {
    if (native_default_shape)
      run_native_as<float, kk::DefaultShape>(n_local, weights32);
    else
      run_native_as<float, kk::GenericShape>(n_local, weights32);
  } else {
    if (native_default_shape)
      run_native_as<double, kk::DefaultShape>(n_local, weights64);
    else
      run_native_as<double, kk::GenericShape>(n_local, weights64);
  }
}

template <class DeviceType>
template <typename Real, class Shape>
void PairSuperionicKokkos<DeviceType>::run_native_as(int64_t n_local, const superionic::kk::Weights<DeviceType, Real> &weights)
{
  namespace kk = superionic::kk;
  namespace kx = Kokkos::Experimental;
  using exec = typename DeviceType::execution_space;
  auto f = atomKK->k_f.template view<DeviceType>();
  typename AT::t_kkacc_1d d_eatom;
  typename AT::t_kkacc_1d_6 d_vatom;
  if (eflag_atom) d_eatom = k_eatom.template view<DeviceType>();
  if (vflag_atom) d_vatom = k_vatom.template view<DeviceType>();
  const kk::Graph<DeviceType> graph{d_edge_vec, d_edge_dst, d_node_first, d_node_count, d_species, d_atom_of_node};
  kk::EnergyVirial total;
  // LAMMPS's convention for sums into shared rows: a copy per thread on a threaded host space (no
  // atomics, a fixed order), atomics on a GPU, plain adds on one thread.
  auto launch = [&](auto f_sum, auto v_sum) {
    using Out = kk::Outputs<decltype(f_sum), decltype(d_eatom), decltype(v_sum)>;
    const Out out{f_sum, d_eatom, v_sum, eflag_atom != 0, vflag_atom != 0, vflag_global != 0};
    const kk::SprinterForce<DeviceType, Real, Shape, Out> kernel{weights, graph, out, {}, {}};
    Kokkos::parallel_reduce("superionic/kk:sprinter", Kokkos::RangePolicy<exec>(0, n_local), kernel, total);
    kx::contribute(f, f_sum);
    if (vflag_atom) kx::contribute(d_vatom, v_sum);
  };
  auto shared = [&]() {
    launch(kx::create_scatter_view<kx::ScatterSum, kx::ScatterNonDuplicated>(f),
           kx::create_scatter_view<kx::ScatterSum, kx::ScatterNonDuplicated>(d_vatom));
  };
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename DeviceType::memory_space>::accessible) {
    if (exec().concurrency() > 1)
      launch(kx::create_scatter_view<kx::ScatterSum, kx::ScatterDuplicated>(f),
             kx::create_scatter_view<kx::ScatterSum, kx::ScatterDuplicated>(d_vatom));
    else
      shared();
  } else {
    shared();
  }
  if (eflag_global) eng_vdwl += total.energy;
  if (vflag_global)
    for (int k = 0; k < 6; k++) virial[k] += total.v[k];
}

namespace LAMMPS_NS {
template class PairSuperionicKokkos<LMPDeviceType>;
#ifdef LMP_KOKKOS_GPU
template class PairSuperionicKokkos<LMPHostType>;
#endif
}  // namespace LAMMPS_NS
