#include "pair_superionic.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

#include "device_placement.h"
#include "model.h"
#include "sprinter_kernel.h"

using namespace LAMMPS_NS;

namespace {
// Closer pairs are unphysical for any trained model; stop with the atoms named rather than
// propagate NaN or enormous forces.
constexpr double kMinDistance = 0.1;

// Ranks sharing this node and this rank's index among them: one GPU per node-local rank, and the
// node's cores split between ranks.
void node_local_rank(MPI_Comm world, int &local_rank, int &local_size) {
  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
}
}  // namespace

PairSuperionic::PairSuperionic(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  // The virial is tallied edge by edge, exactly, including per-atom virials.
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairSuperionic::~PairSuperionic()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

void PairSuperionic::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

void PairSuperionic::settings(int narg, char **arg)
{
  int iarg = 0;
  while (iarg < narg) {
    std::string key = arg[iarg];
    if (iarg + 1 >= narg) error->all(FLERR, "pair_style superionic: keyword '{}' needs a value", key);
    std::string value = arg[iarg + 1];
    if (key == "device") {
      try {
        superionic::check_device_request(value);
      } catch (const superionic::PlacementError &e) {
        error->all(FLERR, "pair_style superionic: {}", e.what());
      }
      device_request = value;
    } else if (key == "gpus_per_node") {
      gpus_per_node = utils::inumeric(FLERR, value, false, lmp);
      if (gpus_per_node < 0) error->all(FLERR, "pair_style superionic: gpus_per_node must be >= 0 (0 = every visible GPU)");
    } else if (key == "allow_oversubscribe") {
      allow_oversubscribe = utils::logical(FLERR, value, false, lmp) == 1;
    } else if (key == "threads") {
      num_threads = utils::inumeric(FLERR, value, false, lmp);
      if (num_threads < 0) error->all(FLERR, "pair_style superionic: threads must be >= 0 (0 = automatic)");
    } else if (key == "debug/edges") {
      debug_edges_path = value;
    } else if (key == "backend") {
      if (value != "auto" && value != "native" && value != "torch")
        error->all(FLERR, "pair_style superionic: backend must be auto, native or torch, not '{}'", value);
      backend_request = value;
    } else if (key == "precision") {
      if (value != "model" && value != "float32" && value != "float64")
        error->all(FLERR, "pair_style superionic: precision must be model, float32 or float64, not '{}'", value);
      kernel_precision = value;
    } else {
      error->all(FLERR, "pair_style superionic: unknown keyword '{}'; valid keywords are device, threads, debug/edges, backend, gpus_per_node, allow_oversubscribe, precision", key);
    }
    iarg += 2;
  }
}

std::string PairSuperionic::resolve_device()
{
  int local_rank = 0, local_size = 1;
  node_local_rank(world, local_rank, local_size);
  // Set explicitly: LAMMPS's own OpenMP setting would otherwise leave libtorch on one thread, and
  // several ranks per node would each take every core.
  int threads = num_threads;
  if (threads == 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local_size);
  superionic::Model::set_num_threads(threads);
  threads_per_rank = threads;

  superionic::PlacementRequest request{device_request, gpus_per_node, allow_oversubscribe};
  int gpus = (device_request == "cpu") ? 0 : superionic::Model::cuda_device_count();
  try {
    return superionic::place_rank(request, local_rank, local_size, gpus);
  } catch (const superionic::PlacementError &e) {
    // Nodes can differ (GPU count, ranks placed there), so only some ranks may fail here.
    error->one(FLERR, "pair_style superionic: {}", e.what());
  }
  return "cpu";
}

void PairSuperionic::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 3 + ntypes)
    error->all(FLERR,
               "pair_coeff superionic: expected '* * model_file' and {} element names (one per atom type, NULL to skip a type), got {} element names",
               ntypes, std::max(0, narg - 3));
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff superionic: the first two arguments must be '* *'");

  const std::string path = arg[2];
  std::string device = resolve_device();
  try {
    model = std::make_unique<superionic::Model>(path, device);
  } catch (const superionic::ModelError &e) {
    error->all(FLERR, "pair_coeff superionic: {}", e.what());
  }
  const auto &meta = model->metadata();
  // The native kernel runs on the CPU; 'auto' takes it unless the model was placed on a GPU.
  kernel = nullptr;
  if (backend_request == "native" && !model->native_kernel())
    error->all(FLERR, "pair_style superionic backend native: no native kernel for {}: {}; use backend torch",
               path, model->native_unavailable_reason());
  if (backend_request == "native" || (backend_request == "auto" && model->device() == "cpu"))
    kernel = model->native_kernel();
  if (kernel) kernel->set_num_threads(threads_per_rank);
  if (kernel_precision != "model") {
    if (!kernel)
      error->all(FLERR, "pair_style superionic precision {}: applies to the native kernel only, which {} does not use; remove the keyword",
                 kernel_precision, path);
    // float32 arithmetic with float64 energy sums; forces agree with float64 to ~1e-6 relative.
    kernel->set_precision(kernel_precision == "float32" ? superionic::KernelPrecision::Float32
                                                        : superionic::KernelPrecision::Float64);
  }
  cutoff = meta.cutoff;
  receptive_field = meta.receptive_field;
  message_passing = receptive_field > cutoff;
  ghostneigh = message_passing ? 1 : 0;

  type_species.assign(ntypes + 1, -1);
  std::string type_map;
  for (int t = 1; t <= ntypes; t++) {
    std::string name = arg[2 + t];
    if (name == "NULL") {
      type_map += fmt::format(" {}->NULL", t);
      continue;
    }
    int index = -1;
    for (size_t s = 0; s < meta.species.size(); s++)
      if (meta.species[s] == name) index = static_cast<int>(s);
    if (index < 0)
      error->all(FLERR, "pair_coeff superionic: element '{}' for atom type {} is not in model {}; its species are: {}",
                 name, t, path, utils::join_words(meta.species, " "));
    type_species[t] = index;
    type_map += fmt::format(" {}->{}", t, name);
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++)
      setflag[i][j] = (type_species[i] >= 0 && type_species[j] >= 0) ? 1 : 0;

  if (comm->me == 0)
    utils::logmesg(lmp,
                   "pair superionic: model {} ({}, {}, {})\n"
                   "  species: {}\n  type map:{}\n  cutoff {} A, receptive field {} A{}\n",
                   path, meta.model_kind, meta.dtype,
                   kernel ? kernel->describe() + " on each rank"
                          : fmt::format("device {}, {} torch threads per rank", model->device(),
                                        superionic::Model::num_threads()),
                   utils::join_words(meta.species, " "), type_map,
                   cutoff, receptive_field,
                   message_passing ? " (ghost atoms within the receptive field carry edges)" : "");
}

void PairSuperionic::init_style()
{
  if (!model) error->all(FLERR, "pair_style superionic: pair_coeff must load a model before the run");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style superionic: models use metal units (eV, Angstrom, ps); the input sets units {}. Use 'units metal'",
               update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style superionic requires newton pair on: ghost-atom forces are folded into their owners by reverse communication");
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style superionic requires atom IDs");

  int flags = NeighConst::REQ_FULL;
  if (message_passing) flags |= NeighConst::REQ_GHOST;
  neighbor->add_request(this, flags);

  if (message_passing) {
    // Message passing reaches receptive_field; ghosts must cover it at any time between
    // neighbour-list rebuilds, hence the skin.
    double needed = receptive_field + neighbor->skin;
    if (comm->cutghostuser < needed) {
      comm->cutghostuser = needed;
      if (comm->me == 0)
        utils::logmesg(lmp, "pair superionic: ghost cutoff raised to {} A (receptive field + skin)\n", needed);
    }
  }
}

double PairSuperionic::init_one(int i, int j)
{
  if (message_passing) cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

void PairSuperionic::build_graph()
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int *type = atom->type;
  double **x = atom->x;

  node_of_atom.assign(nall, -1);
  atom_of_node.clear();
  species.clear();
  for (int i = 0; i < nall; i++) {
    int s = type_species[type[i]];
    if (s < 0) continue;
    node_of_atom[i] = static_cast<int64_t>(atom_of_node.size());
    atom_of_node.push_back(i);
    species.push_back(s);
  }

  edge_src.clear();
  edge_dst.clear();
  edge_vec.clear();
  const double cutoff_sq = cutoff * cutoff;
  const int n_sources = message_passing ? list->inum + list->gnum : list->inum;
  for (int ii = 0; ii < n_sources; ii++) {
    const int i = list->ilist[ii];
    const int64_t node_i = node_of_atom[i];
    if (node_i < 0) continue;
    const int *jlist = list->firstneigh[i];
    const int jnum = list->numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const int64_t node_j = node_of_atom[j];
      if (node_j < 0) continue;
      const double dx = x[j][0] - x[i][0];
      const double dy = x[j][1] - x[i][1];
      const double dz = x[j][2] - x[i][2];
      const double r_sq = dx * dx + dy * dy + dz * dz;
      if (r_sq >= cutoff_sq) continue;
      if (r_sq < kMinDistance * kMinDistance)
        error->one(FLERR, "pair_style superionic: atoms {} and {} are {:.4g} A apart (< {} A) at step {}; the structure overlaps or the time step is too large",
                   atom->tag[i], atom->tag[j], std::sqrt(r_sq), kMinDistance, update->ntimestep);
      edge_src.push_back(node_i);
      edge_dst.push_back(node_j);
      edge_vec.push_back(dx);
      edge_vec.push_back(dy);
      edge_vec.push_back(dz);
    }
  }
}

void PairSuperionic::write_debug_edges()
{
  // One file per rank, edges whose source atom this rank owns: "tag_i tag_j dx dy dz".
  std::string name = fmt::format("{}.{}", debug_edges_path, comm->me);
  FILE *out = fopen(name.c_str(), "w");
  if (!out) error->one(FLERR, "pair_style superionic: cannot write debug edges to {}: {}", name, utils::getsyserror());
  const int nlocal = atom->nlocal;
  for (size_t e = 0; e < edge_src.size(); e++) {
    int i = static_cast<int>(atom_of_node[edge_src[e]]);
    if (i >= nlocal) continue;
    int j = static_cast<int>(atom_of_node[edge_dst[e]]);
    fmt::print(out, "{} {} {:.17g} {:.17g} {:.17g}\n", atom->tag[i], atom->tag[j], edge_vec[3 * e],
               edge_vec[3 * e + 1], edge_vec[3 * e + 2]);
  }
  fclose(out);
}

void PairSuperionic::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  build_graph();
  if (!debug_edges_path.empty()) write_debug_edges();

  const int nlocal = atom->nlocal;
  const int64_t n_nodes = static_cast<int64_t>(atom_of_node.size());
  int64_t n_local = 0;
  while (n_local < n_nodes && atom_of_node[n_local] < nlocal) n_local++;
  const int64_t n_edges = static_cast<int64_t>(edge_src.size());

  // A rank that owns no atom of this style contributes nothing: energy, forces and virial are 0.
  if (n_local == 0) return;

  atom_energy.resize(n_local);
  edge_grad.resize(3 * n_edges);
  try {
    if (kernel)
      kernel->compute(edge_vec.data(), edge_src.data(), edge_dst.data(), n_edges, species.data(), n_nodes,
                      n_local, atom_energy.data(), edge_grad.data());
    else
      model->compute(edge_vec.data(), edge_src.data(), edge_dst.data(), n_edges, species.data(), n_nodes,
                     n_local, atom_energy.data(), edge_grad.data());
  } catch (const superionic::ModelError &e) {
    error->one(FLERR, "pair_style superionic: {}", e.what());
  }

  if (eflag_global)
    for (int64_t n = 0; n < n_local; n++) eng_vdwl += atom_energy[n];
  if (eflag_atom)
    for (int64_t n = 0; n < n_local; n++) eatom[atom_of_node[n]] += atom_energy[n];

  double **f = atom->f;
  for (int64_t e = 0; e < n_edges; e++) {
    const int i = static_cast<int>(atom_of_node[edge_src[e]]);
    const int j = static_cast<int>(atom_of_node[edge_dst[e]]);
    const double *g = &edge_grad[3 * e];
    // edge_vec = r_j - r_i, so F_i = -dE/dr_i = +edge_grad and F_j = -edge_grad.
    f[i][0] += g[0];
    f[i][1] += g[1];
    f[i][2] += g[2];
    f[j][0] -= g[0];
    f[j][1] -= g[1];
    f[j][2] -= g[2];
    if (vflag_either) {
      const double *d = &edge_vec[3 * e];
      // LAMMPS's pair virial is (r_i - r_j) (x) f_i = -edge_vec (x) edge_grad, order xx yy zz xy xz yz.
      const double v[6] = {-d[0] * g[0], -d[1] * g[1], -d[2] * g[2],
                           -d[0] * g[1], -d[0] * g[2], -d[1] * g[2]};
      if (vflag_global)
        for (int k = 0; k < 6; k++) virial[k] += v[k];
      if (vflag_atom)
        for (int k = 0; k < 6; k++) {
          vatom[i][k] += 0.5 * v[k];
          vatom[j][k] += 0.5 * v[k];
        }
    }
  }
}
