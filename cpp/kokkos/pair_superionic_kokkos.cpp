#include "pair_superionic_kokkos.h"

#include "atom_kokkos.h"
#include "atom_masks.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "kokkos.h"
#include "memory_kokkos.h"
#include "neigh_list_kokkos.h"
#include "neigh_request.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "device_placement.h"
#include "metadata.h"
#include "model.h"
#include "sprinter_kernel.h"

using namespace LAMMPS_NS;

namespace {
// The same limit as pair_style superionic: closer pairs are unphysical for any trained model.
constexpr double kMinDistance = 0.1;

void node_local_rank(MPI_Comm world, int &local_rank, int &local_size) {
  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
}
}  // namespace

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
  // The base class checks every keyword and value; what it accepts is read again here.
  PairSuperionic::settings(narg, arg);
  kk_device = "cpu";
  kk_backend = "auto";
  kk_precision = "model";
  kk_gpus_per_node = 0;
  kk_allow_oversubscribe = false;
  kk_threads = 0;
  for (int iarg = 0; iarg + 1 < narg; iarg += 2) {
    const std::string key = arg[iarg], value = arg[iarg + 1];
    if (key == "device") kk_device = value;
    else if (key == "backend") kk_backend = value;
    else if (key == "precision") kk_precision = value;
    else if (key == "gpus_per_node") kk_gpus_per_node = utils::inumeric(FLERR, value, false, lmp);
    else if (key == "allow_oversubscribe") kk_allow_oversubscribe = utils::logical(FLERR, value, false, lmp) == 1;
    else if (key == "threads") kk_threads = utils::inumeric(FLERR, value, false, lmp);
    else if (key == "committee" || key == "debug/edges" || utils::strmatch(key, "^devi_"))
      error->all(FLERR, "pair_style superionic/kk: keyword '{}' is not available in the Kokkos style yet; run without -sf kk (pair_style superionic)", key);
  }
}

template <class DeviceType>
std::string PairSuperionicKokkos<DeviceType>::resolve_device()
{
  // The rule of pair_style superionic: the node's cores split between its ranks, one GPU per
  // node-local rank.
  int local_rank = 0, local_size = 1;
  node_local_rank(world, local_rank, local_size);
  int threads = kk_threads;
  if (threads == 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local_size);
  superionic::Model::set_num_threads(threads);
  superionic::PlacementRequest request{kk_device, kk_gpus_per_node, kk_allow_oversubscribe};
  int gpus = (kk_device == "cpu") ? 0 : superionic::Model::cuda_device_count();
  try {
    return superionic::place_rank(request, local_rank, local_size, gpus);
  } catch (const superionic::PlacementError &e) {
    error->one(FLERR, "pair_style superionic/kk: {}", e.what());
  }
  return "cpu";
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::coeff(int narg, char **arg)
{
  const int ntypes = atom->ntypes;
  if (narg != 3 + ntypes)
    error->all(FLERR, "pair_coeff superionic/kk: expected '* * model_file' and {} element names (one per atom type, NULL to skip a type), got {} element names",
               ntypes, std::max(0, narg - 3));
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff superionic/kk: the first two arguments must be '* *'");
  if (!allocated) {
    allocated = 1;
    memory->create(setflag, ntypes + 1, ntypes + 1, "pair:setflag");
    memory->create(cutsq, ntypes + 1, ntypes + 1, "pair:cutsq");
    memory->create(cutghost, ntypes + 1, ntypes + 1, "pair:cutghost");
  }

  const std::string path = arg[2];
  const std::string device = resolve_device();
  try {
    model = std::make_unique<superionic::Model>(path, device);
  } catch (const superionic::ModelError &e) {
    error->all(FLERR, "pair_coeff superionic/kk: {}", e.what());
  }
  if (kk_backend == "native" && !model->native_kernel())
    error->all(FLERR, "pair_style superionic/kk backend native: no native kernel for {}: {}; use backend torch", path,
               model->native_unavailable_reason());
  kernel = nullptr;
  if (kk_backend == "native" || (kk_backend == "auto" && model->device() == "cpu")) kernel = model->native_kernel();
  if (kernel) kernel->set_num_threads(superionic::Model::num_threads());
  if (kk_precision != "model") {
    if (!kernel)
      error->all(FLERR, "pair_style superionic/kk precision {}: applies to the native kernel only, which {} does not use; remove the keyword",
                 kk_precision, path);
    kernel->set_precision(kk_precision == "float32" ? superionic::KernelPrecision::Float32
                                                    : superionic::KernelPrecision::Float64);
  }

  const auto &meta = model->metadata();
  kk_cutoff = meta.cutoff;
  kk_receptive_field = meta.receptive_field;
  kk_message_passing = kk_receptive_field > kk_cutoff;
  ghostneigh = kk_message_passing ? 1 : 0;

  auto h_type_species = Kokkos::View<int *, Kokkos::HostSpace>("superionic/kk:type_species", ntypes + 1);
  h_type_species(0) = -1;
  std::string type_map;
  for (int t = 1; t <= ntypes; t++) {
    const std::string name = arg[2 + t];
    h_type_species(t) = -1;
    if (name == "NULL") {
      type_map += fmt::format(" {}->NULL", t);
      continue;
    }
    for (size_t s = 0; s < meta.species.size(); s++)
      if (meta.species[s] == name) h_type_species(t) = static_cast<int>(s);
    if (h_type_species(t) < 0)
      error->all(FLERR, "pair_coeff superionic/kk: element '{}' for atom type {} is not in model {}; its species are: {}",
                 name, t, path, utils::join_words(meta.species, " "));
    type_map += fmt::format(" {}->{}", t, name);
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = (h_type_species(i) >= 0 && h_type_species(j) >= 0) ? 1 : 0;
  d_type_species = t_int_1d("superionic/kk:type_species", ntypes + 1);
  Kokkos::deep_copy(d_type_species, h_type_species);

  if (comm->me == 0) {
    const std::string backend =
        kernel ? kernel->describe() + " on each rank"
               : fmt::format("device {}, {} torch threads per rank", model->device(), superionic::Model::num_threads());
    utils::logmesg(lmp,
                   "pair superionic/kk: model {} ({}, {}, {})\n  species: {}\n  type map:{}\n"
                   "  cutoff {} A, receptive field {} A{}\n"
                   "  neighbour list, edges and force accumulation in Kokkos ({}); the model call on the host\n",
                   path, meta.model_kind, meta.dtype, backend, utils::join_words(meta.species, " "), type_map, kk_cutoff,
                   kk_receptive_field, kk_message_passing ? " (ghost atoms within the receptive field carry edges)" : "",
                   DeviceType::execution_space::name());
  }
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::init_style()
{
  if (!model) error->all(FLERR, "pair_style superionic/kk: pair_coeff must load a model before the run");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style superionic/kk: models use metal units (eV, Angstrom, ps); the input sets units {}. Use 'units metal'",
               update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style superionic/kk requires newton pair on: ghost-atom forces are folded into their owners by reverse communication");
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style superionic/kk requires atom IDs");

  int flags = NeighConst::REQ_FULL;
  if (kk_message_passing) flags |= NeighConst::REQ_GHOST;
  auto request = neighbor->add_request(this, flags);
  request->set_kokkos_host(std::is_same_v<DeviceType, LMPHostType> && !std::is_same_v<DeviceType, LMPDeviceType>);
  request->set_kokkos_device(std::is_same_v<DeviceType, LMPDeviceType>);

  if (kk_message_passing) {
    const double needed = kk_receptive_field + neighbor->skin;
    if (comm->cutghostuser < needed) {
      comm->cutghostuser = needed;
      if (comm->me == 0)
        utils::logmesg(lmp, "pair superionic/kk: ghost cutoff raised to {} A (receptive field + skin)\n", needed);
    }
  }
}

template <class DeviceType>
double PairSuperionicKokkos<DeviceType>::init_one(int i, int j)
{
  if (kk_message_passing) cutghost[i][j] = cutghost[j][i] = kk_cutoff;
  return kk_cutoff;
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
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::grow_edges(int64_t n_edges)
{
  if (static_cast<int64_t>(d_edge_src.extent(0)) >= n_edges && n_edges > 0) return;
  const int64_t n = std::max<int64_t>(1, n_edges + n_edges / 20);
  d_edge_src = t_i64_1d("superionic/kk:edge_src", n);
  d_edge_dst = t_i64_1d("superionic/kk:edge_dst", n);
  d_edge_vec = t_double_1d_3("superionic/kk:edge_vec", n);
  d_edge_grad = t_double_1d_3("superionic/kk:edge_grad", n);
}

template <class DeviceType>
void PairSuperionicKokkos<DeviceType>::report_close_pair(int64_t n_edges, int nlocal)
{
  // Only on the error path: find the pair on the host and name it as the base style does.
  (void) nlocal;
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
  const int n_sources = kk_message_passing ? list->inum + list->gnum : list->inum;
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
        const int s = type_species(type(i));
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
  int64_t n_local = 0;
  Kokkos::parallel_reduce(
      "superionic/kk:n_local", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, nlocal),
      KOKKOS_LAMBDA(const int i, int64_t &count) { count += type_species(type(i)) >= 0 ? 1 : 0; }, n_local);

  // Edges: count per source atom, exclusive scan, fill in the same order.
  const double cutoff_sq = kk_cutoff * kk_cutoff;
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
  double min_r_sq = cutoff_sq;
  Kokkos::parallel_reduce(
      "superionic/kk:fill_edges", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, n_sources),
      KOKKOS_LAMBDA(const int ii, double &closest) {
        const int i = d_ilist(ii);
        const int64_t node_i = node_of_atom(i);
        if (node_i < 0) return;
        int e = edge_offset(ii);
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
  if (min_r_sq < kMinDistance * kMinDistance) report_close_pair(n_edges, nlocal);

  // A rank that owns no atom of this style contributes nothing (as in pair_style superionic).
  if (n_local > 0) accumulate(n_nodes, n_local, n_edges);

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
  auto species = d_species;
  auto edge_src = d_edge_src;
  auto edge_dst = d_edge_dst;
  auto edge_vec = d_edge_vec;
  if (static_cast<int64_t>(d_atom_energy.extent(0)) < n_local)
    d_atom_energy = t_double_1d("superionic/kk:atom_energy", n_local + n_local / 20 + 1);
  auto edge_grad = d_edge_grad;
  auto atom_energy = d_atom_energy;

  // The model call: host pointers. For a host execution space the mirrors are the views
  // themselves (create_mirror_view allocates nothing and deep_copy returns at once).
  {
    auto h_vec = Kokkos::create_mirror_view(edge_vec);
    auto h_src = Kokkos::create_mirror_view(edge_src);
    auto h_dst = Kokkos::create_mirror_view(edge_dst);
    auto h_species = Kokkos::create_mirror_view(species);
    auto h_grad = Kokkos::create_mirror_view(edge_grad);
    auto h_energy = Kokkos::create_mirror_view(atom_energy);
    Kokkos::deep_copy(h_vec, edge_vec);
    Kokkos::deep_copy(h_src, edge_src);
    Kokkos::deep_copy(h_dst, edge_dst);
    Kokkos::deep_copy(h_species, species);
    Kokkos::fence("superionic/kk:before_model");
    try {
      if (kernel)
        kernel->compute(h_vec.data(), h_src.data(), h_dst.data(), n_edges, h_species.data(), n_nodes, n_local,
                        h_energy.data(), h_grad.data());
      else
        model->compute(h_vec.data(), h_src.data(), h_dst.data(), n_edges, h_species.data(), n_nodes, n_local,
                       h_energy.data(), h_grad.data());
    } catch (const superionic::ModelError &e) {
      error->one(FLERR, "pair_style superionic/kk: {}", e.what());
    }
    Kokkos::deep_copy(edge_grad, h_grad);
    Kokkos::deep_copy(atom_energy, h_energy);
  }

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

namespace LAMMPS_NS {
template class PairSuperionicKokkos<LMPDeviceType>;
#ifdef LMP_KOKKOS_GPU
template class PairSuperionicKokkos<LMPHostType>;
#endif
}  // namespace LAMMPS_NS
