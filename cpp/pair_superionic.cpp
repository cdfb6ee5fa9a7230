#include "pair_superionic.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "timer.h"
#include "update.h"
#include "utils.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>
#include <unordered_map>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "committee_deviation.h"
#include "device_placement.h"
#include "model.h"
#include "sprinter_kernel.h"

using namespace LAMMPS_NS;

namespace {
// Closer pairs are unphysical for any trained model; stop with the atoms named rather than
// propagate NaN or enormous forces.
constexpr double kMinDistance = 0.1;
// Below this many source atoms per thread, the edge list and force sums stay on one thread: the
// fork and join would cost more than the loop.
constexpr int kMinSourcesPerThread = 128;
// devi_warn prints this many warnings per run, then only counts.
constexpr bigint kMaxDeviWarnings = 10;

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
  // compute pair reads nextra when it is defined; settings() sets it to 4 for a committee.
  pvector = devi_values;
}

PairSuperionic::~PairSuperionic()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
  memory->destroy(member_force);
  if (devi_fp) fclose(devi_fp);
  pvector = nullptr;
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
  // A repeated pair_style line re-enters here: committee settings not given return to their defaults.
  committee_size = 1;
  devi_every = 10;
  devi_path = "model_devi.out";
  devi_warn = devi_stop = -1.0;
  graph_request = "auto";
  guard_every = 10;
  guard_every_given = false;
  guard_stop = false;
  guard_factor = -1.0;
  bool devi_keyword = false;
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
    } else if (key == "graph") {
      if (value != "auto" && value != "folded" && value != "shell")
        error->all(FLERR, "pair_style superionic: graph must be auto, folded or shell, not '{}'", value);
      graph_request = value;
    } else if (key == "committee") {
      committee_size = utils::inumeric(FLERR, value, false, lmp);
      if (committee_size < 2)
        error->all(FLERR, "pair_style superionic: committee needs K >= 2 model files, got {}; for one model leave the keyword out", committee_size);
    } else if (key == "devi_every") {
      devi_every = utils::bnumeric(FLERR, value, false, lmp);
      if (devi_every < 1) error->all(FLERR, "pair_style superionic: devi_every must be >= 1 (steps), got {}", value);
      devi_keyword = true;
    } else if (key == "devi_file") {
      devi_path = value;
      devi_keyword = true;
    } else if (key == "devi_warn" || key == "devi_stop") {
      double threshold = utils::numeric(FLERR, value, false, lmp);
      if (threshold <= 0.0) error->all(FLERR, "pair_style superionic: {} must be > 0 (eV/A), got {}", key, value);
      (key == "devi_warn" ? devi_warn : devi_stop) = threshold;
      devi_keyword = true;
    } else if (key == "guard") {
      guard_every = utils::bnumeric(FLERR, value, false, lmp);
      if (guard_every < 0) error->all(FLERR, "pair_style superionic: guard must be >= 0 (steps between checks; 0 = off), got {}", value);
      guard_every_given = true;
    } else if (key == "guard_action") {
      if (value != "warn" && value != "stop")
        error->all(FLERR, "pair_style superionic: guard_action must be warn or stop, not '{}'", value);
      guard_stop = value == "stop";
    } else if (key == "guard_factor") {
      guard_factor = utils::numeric(FLERR, value, false, lmp);
      if (!(guard_factor > 0.0) || guard_factor > 1.0)
        error->all(FLERR, "pair_style superionic: guard_factor must be in (0, 1] (floor = factor x the closest distance in the training data), got {}", value);
    } else {
      error->all(FLERR, "pair_style superionic: unknown keyword '{}'; valid keywords are device, threads, debug/edges, backend, gpus_per_node, allow_oversubscribe, precision, graph, committee, devi_every, devi_file, devi_warn, devi_stop, guard, guard_action, guard_factor", key);
    }
    iarg += 2;
  }
  if (devi_keyword && committee_size < 2)
    error->all(FLERR, "pair_style superionic: devi_every, devi_file, devi_warn and devi_stop need 'committee K' with K >= 2 model files");
  // Every member's force on every local and ghost atom travels in one reverse communication.
  comm_reverse = committee_size > 1 ? 3 * committee_size : 0;
  nextra = committee_size > 1 ? 4 : 0;
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

void PairSuperionic::load_models(const std::vector<std::string> &paths)
{
  std::string device = resolve_device();
  models.clear();
  kernels.clear();
  for (const auto &path : paths) {
    try {
      models.push_back(std::make_unique<superionic::Model>(path, device));
    } catch (const superionic::ModelError &e) {
      error->all(FLERR, "pair_coeff superionic: {}", e.what());
    }
    superionic::Model &model = *models.back();
    // The native kernel runs on the CPU; 'auto' takes it unless the model was placed on a GPU.
    superionic::SprinterKernel *kernel = nullptr;
    if (backend_request == "native" && !model.native_kernel())
      error->all(FLERR, "pair_style superionic backend native: no native kernel for {}: {}; use backend torch",
                 path, model.native_unavailable_reason());
    if (backend_request == "native" || (backend_request == "auto" && model.device() == "cpu"))
      kernel = model.native_kernel();
    if (kernel) kernel->set_num_threads(threads_per_rank);
    if (kernel_precision != "model") {
      if (!kernel)
        error->all(FLERR, "pair_style superionic precision {}: applies to the native kernel only, which {} does not use; remove the keyword",
                   kernel_precision, path);
      // float32 arithmetic with float64 energy sums; forces agree with float64 to ~1e-6 relative.
      kernel->set_precision(kernel_precision == "float32" ? superionic::KernelPrecision::Float32
                                                          : superionic::KernelPrecision::Float64);
    }
    kernels.push_back(kernel);
  }

  // Members share the graph built for member 0, so they must read it the same way.
  const auto &first = models[0]->metadata();
  for (size_t k = 1; k < models.size(); k++) {
    const auto &meta = models[k]->metadata();
    std::string field, mine, theirs;
    if (meta.species != first.species) {
      field = "species (names and order)";
      mine = utils::join_words(meta.species, " ");
      theirs = utils::join_words(first.species, " ");
    } else if (meta.cutoff != first.cutoff) {
      field = "cutoff";
      mine = fmt::format("{} A", meta.cutoff);
      theirs = fmt::format("{} A", first.cutoff);
    } else if (meta.receptive_field != first.receptive_field) {
      field = "receptive field";
      mine = fmt::format("{} A", meta.receptive_field);
      theirs = fmt::format("{} A", first.receptive_field);
    }
    if (!field.empty())
      error->all(FLERR, "pair_coeff superionic: committee member {} ({}) has {} {} but member 0 ({}) has {}; all members must share species, cutoff and receptive field",
                 k, paths[k], field, mine, paths[0], theirs);
  }
}

void PairSuperionic::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  const int n_files = committee_size;
  if (narg != 2 + n_files + ntypes) {
    if (n_files == 1)
      error->all(FLERR,
                 "pair_coeff superionic: expected '* * model_file' and {} element names (one per atom type, NULL to skip a type), got {} element names",
                 ntypes, std::max(0, narg - 3));
    error->all(FLERR,
               "pair_coeff superionic: pair_style says committee {}, so expected '* *', {} model files and {} element names (one per atom type), got {} arguments after '* *'",
               n_files, n_files, ntypes, std::max(0, narg - 2));
  }
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff superionic: the first two arguments must be '* *'");

  std::vector<std::string> paths(arg + 2, arg + 2 + n_files);
  load_models(paths);
  const std::string &path = paths[0];
  const superionic::Model &model = *models[0];
  const superionic::SprinterKernel *kernel = kernels[0];
  const auto &meta = model.metadata();
  cutoff = meta.cutoff;
  receptive_field = meta.receptive_field;
  message_passing = receptive_field > cutoff;
  ghostneigh = message_passing ? 1 : 0;

  type_species.assign(ntypes + 1, -1);
  std::string type_map;
  for (int t = 1; t <= ntypes; t++) {
    std::string name = arg[1 + n_files + t];
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

  auto backend = [](const superionic::Model &m, const superionic::SprinterKernel *k) {
    return k ? k->describe() + " on each rank"
             : fmt::format("device {}, {} torch threads per rank", m.device(), superionic::Model::num_threads());
  };
  if (comm->me == 0) {
    utils::logmesg(lmp,
                   "pair superionic: model {} ({}, {}, {})\n"
                   "  species: {}\n  type map:{}\n  cutoff {} A, receptive field {} A{}\n",
                   path, meta.model_kind, meta.dtype, backend(model, kernel),
                   utils::join_words(meta.species, " "), type_map,
                   cutoff, receptive_field,
                   message_passing ? " (message passing)" : "");
    if (!kernel && backend_request == "auto" && meta.model_kind == "sprinter" && model.device() == "cpu")
      utils::logmesg(lmp, "pair superionic: {} runs through libtorch, not the native kernel: {}\n", path,
                     model.native_unavailable_reason());
    if (n_files > 1) {
      std::string limits;
      if (devi_warn > 0.0) limits += fmt::format(", warn above {} eV/A", devi_warn);
      if (devi_stop > 0.0) limits += fmt::format(", stop above {} eV/A", devi_stop);
      utils::logmesg(lmp, "pair superionic: committee of {} models; member 0 drives the dynamics, all are evaluated every {} steps (force deviation to {}{})\n",
                     n_files, devi_every, devi_path, limits);
      for (int k = 1; k < n_files; k++)
        utils::logmesg(lmp, "  member {}: {} ({}, {})\n", k, paths[k], models[k]->metadata().dtype,
                       backend(*models[k], kernels[k]));
    }
  }
  setup_guard();
}

std::string PairSuperionic::pair_name(int a, int b) const
{
  // Alphabetical, as the analysis names pairs: one name for one pair in logs and JSON.
  const auto &names = models[0]->metadata().species;
  return names[a] < names[b] ? names[a] + "-" + names[b] : names[b] + "-" + names[a];
}

void PairSuperionic::setup_guard()
{
  const auto &meta = models[0]->metadata();
  guard_floor_sq.clear();
  if (guard_every == 0) {
    if (comm->me == 0) utils::logmesg(lmp, "pair superionic: guard off (guard 0)\n");
    return;
  }
  if (meta.pair_floor.empty()) {
    if (guard_every_given || guard_stop || guard_factor > 0.0)
      error->all(FLERR, "pair_style superionic guard: model {} carries no distance floors (exported before they existed, or an analytic model); re-export it from its checkpoint with superionic export, or remove the guard keywords",
                 models[0]->path());
    if (comm->me == 0)
      utils::logmesg(lmp, "pair superionic: guard off: model {} carries no distance floors; re-export it from its checkpoint to have them\n",
                     models[0]->path());
    return;
  }
  const size_t n = meta.species.size();
  const double factor = guard_factor > 0.0 ? guard_factor : meta.floor_factor;
  guard_floor_sq.resize(n * n);
  std::string floors;
  for (size_t a = 0; a < n; a++)
    for (size_t b = 0; b < n; b++) {
      const double floor = guard_factor > 0.0 ? guard_factor * meta.pair_closest[a * n + b] : meta.pair_floor[a * n + b];
      guard_floor_sq[a * n + b] = floor * floor;
      if (b >= a) floors += fmt::format(" {} {:.3f}", pair_name(a, b), floor);
    }
  if (comm->me == 0)
    utils::logmesg(lmp, "pair superionic: guard every {} steps, {} at a pair closer than its floor ({} x the closest distance of that pair in the training data), floors (A):{}\n",
                   guard_every, guard_stop ? "stop" : "warn", factor, floors);
}

void PairSuperionic::init_style()
{
  if (models.empty()) error->all(FLERR, "pair_style superionic: pair_coeff must load a model before the run");
  if (static_cast<int>(models.size()) != committee_size)
    error->all(FLERR, "pair_style superionic: pair_style says committee {} but pair_coeff loaded {} model files; repeat pair_coeff after changing the committee",
               committee_size, models.size());
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style superionic: models use metal units (eV, Angstrom, ps); the input sets units {}. Use 'units metal'",
               update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style superionic requires newton pair on: ghost-atom forces are folded into their owners by reverse communication");
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style superionic requires atom IDs");

  // On one rank every atom is owned, so the periodic graph can be folded onto the owned atoms: each
  // edge to a ghost image points to the image's owner, with the image's own edge_vec. That graph is
  // the Python one, exact for any number of message-passing rounds, and needs ghosts only out to
  // cutoff + skin instead of a shell as thick as the receptive field.
  folded_graph = false;
  if (message_passing) {
    if (graph_request == "folded" && comm->nprocs > 1)
      error->all(FLERR, "pair_style superionic graph folded: needs one MPI rank (every atom owned), this run has {}; use graph auto or graph shell",
                 comm->nprocs);
    folded_graph = graph_request == "folded" || (graph_request == "auto" && comm->nprocs == 1);
  }
  ghostneigh = (message_passing && !folded_graph) ? 1 : 0;

  int flags = NeighConst::REQ_FULL;
  if (ghostneigh) flags |= NeighConst::REQ_GHOST;
  neighbor->add_request(this, flags);

  if (ghostneigh) {
    // Message passing reaches receptive_field; ghosts must cover it at any time between
    // neighbour-list rebuilds, hence the skin.
    double needed = receptive_field + neighbor->skin;
    if (comm->cutghostuser < needed) {
      comm->cutghostuser = needed;
      if (comm->me == 0)
        utils::logmesg(lmp, "pair superionic: ghost cutoff raised to {} A (receptive field + skin)\n", needed);
    }
  }
  if (message_passing && comm->me == 0 && graph_logged != static_cast<int>(folded_graph)) {
    if (folded_graph)
      utils::logmesg(lmp, "pair superionic: graph folded: one MPI rank, so the model sees the owned atoms only and each edge to a periodic image points to its owner (exact; ghosts out to cutoff + skin). 'graph shell' evaluates the ghost shell instead\n");
    else
      utils::logmesg(lmp, "pair superionic: graph shell: the model also evaluates the ghost atoms within its receptive field, {} A (exact on any number of ranks)\n",
                     receptive_field);
  }
  if (message_passing) graph_logged = static_cast<int>(folded_graph);

  if (committee_size > 1) {
    open_devi_file();
    devi_steps_run = devi_warnings_run = 0;
    devi_max_run = 0.0;
  }
  guard_checks_run = guard_breaches_run = 0;
  guard_first_step = -1;
  guard_closest_sq.assign(guard_floor_sq.size(), std::numeric_limits<double>::infinity());
}

void PairSuperionic::open_devi_file()
{
  // devi_fp exists on rank 0 only; the path, set on every rank, keeps this decision collective.
  if (devi_fp_path == devi_path) return;
  int ok = 1;
  std::string why;
  if (comm->me == 0) {
    if (devi_fp) fclose(devi_fp);
    // Appending keeps one file across a resumed run; the header goes only into a new or empty file.
    devi_fp = fopen(devi_path.c_str(), "a");
    if (!devi_fp) {
      ok = 0;
      why = utils::getsyserror();
    } else {
      fseek(devi_fp, 0, SEEK_END);
      if (ftell(devi_fp) == 0) {
        fputs("# step max_devi_f min_devi_f avg_devi_f devi_e (eV/A, eV/A, eV/A, eV/atom)\n", devi_fp);
        fflush(devi_fp);
      }
    }
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, world);
  if (!ok)
    error->one(FLERR, "pair_style superionic devi_file {}: cannot open it for appending: {}; choose a writable path",
               devi_path, why);
  devi_fp_path = devi_path;
}

double PairSuperionic::init_one(int i, int j)
{
  if (ghostneigh) cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

void PairSuperionic::build_graph()
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int *type = atom->type;
  double **x = atom->x;

  // Folded graph: only owned atoms are nodes, and a ghost stands for its owner's node.
  const int n_node_atoms = folded_graph ? nlocal : nall;
  node_of_atom.assign(nall, -1);
  atom_of_node.clear();
  species.clear();
  for (int i = 0; i < n_node_atoms; i++) {
    int s = type_species[type[i]];
    if (s < 0) continue;
    node_of_atom[i] = static_cast<int64_t>(atom_of_node.size());
    atom_of_node.push_back(i);
    species.push_back(s);
  }
  if (folded_graph && nall > nlocal) {
    const tagint *tag = atom->tag;
    // atom->map prefers the owned copy of a tag; without an atom map, a map of the owned atoms.
    std::unordered_map<tagint, int> owned;
    const bool have_map = atom->map_style != Atom::MAP_NONE;
    if (!have_map) {
      owned.reserve(nlocal);
      for (int i = 0; i < nlocal; i++) owned.emplace(tag[i], i);
    }
    for (int g = nlocal; g < nall; g++) {
      int owner = -1;
      if (have_map) {
        owner = atom->map(tag[g]);
      } else {
        auto found = owned.find(tag[g]);
        if (found != owned.end()) owner = found->second;
      }
      if (owner < 0 || owner >= nlocal)
        error->one(FLERR, "pair_style superionic graph folded: ghost atom {} has no owned copy on this rank; use graph shell",
                   tag[g]);
      node_of_atom[g] = node_of_atom[owner];
    }
  }

  // Edges in neighbour-list order whatever the thread count: each thread takes a contiguous range
  // of source atoms. With one thread the edges are written in one pass into storage sized by the
  // neighbour count; with several, a counting pass gives each source its offset and a second pass
  // fills, so that no thread waits on another and the order stays the serial one.
  const double cutoff_sq = cutoff * cutoff;
  const int n_sources = ghostneigh ? list->inum + list->gnum : list->inum;
  const int threads = std::max(1, std::min(threads_per_rank, n_sources / kMinSourcesPerThread));
  graph_threads = threads;
  if (threads != graph_threads_logged && comm->me == 0)
    utils::logmesg(lmp, "pair superionic: edge list and force sums on {} thread{} per rank ({} sources)\n",
                   threads, threads == 1 ? "" : "s", n_sources);
  graph_threads_logged = threads;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const int64_t *node = node_of_atom.data();
  // The first pair closer than kMinDistance, as (source index, neighbour index); reported after
  // the parallel region, where LAMMPS's error handler may be called.
  int overlap_ii = -1, overlap_jj = -1;

  // Emits source ii's edges; returns the neighbour index of a pair closer than kMinDistance, or -1.
  auto scan = [&](int ii, auto &&emit) -> int {
    const int i = ilist[ii];
    const int64_t node_i = node[i];
    if (node_i < 0) return -1;
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const int64_t node_j = node[j];
      if (node_j < 0) continue;
      const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
      const double r_sq = dx * dx + dy * dy + dz * dz;
      if (r_sq >= cutoff_sq) continue;
      if (r_sq < kMinDistance * kMinDistance) return jj;
      emit(node_i, node_j, dx, dy, dz);
    }
    return -1;
  };

  // Sizes the edge arrays (resize keeps the capacity of earlier steps and initialises only what
  // grows) and returns an emitter for scan that writes edges from index e on, advancing e.
  auto edges_from = [&](size_t n_edges) {
    edge_src.resize(n_edges);
    edge_dst.resize(n_edges);
    edge_vec.resize(3 * n_edges);
    return [src = edge_src.data(), dst = edge_dst.data(), vec = edge_vec.data()](int64_t &e) {
      return [src, dst, vec, &e](int64_t a, int64_t b, double dx, double dy, double dz) {
        src[e] = a;
        dst[e] = b;
        vec[3 * e] = dx;
        vec[3 * e + 1] = dy;
        vec[3 * e + 2] = dz;
        e++;
      };
    };
  };

  if (threads == 1) {
    size_t bound = 0;
    for (int ii = 0; ii < n_sources; ii++) bound += numneigh[ilist[ii]];
    int64_t e = 0;
    auto store = edges_from(bound)(e);
    for (int ii = 0; ii < n_sources && overlap_ii < 0; ii++)
      if ((overlap_jj = scan(ii, store)) >= 0) overlap_ii = ii;
    edge_src.resize(e);
    edge_dst.resize(e);
    edge_vec.resize(3 * e);
  } else {
    edge_offset.resize(static_cast<size_t>(n_sources) + 1);
    int64_t *offset = edge_offset.data();
    bool overlap = false;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) reduction(|| : overlap)
#endif
    for (int ii = 0; ii < n_sources; ii++) {
      int64_t count = 0;
      auto tally = [&](int64_t, int64_t, double, double, double) { count++; };
      if (!overlap && scan(ii, tally) >= 0) overlap = true;
      offset[ii + 1] = count;
    }
    if (overlap) {
      // The message names the first overlapping pair in list order, as on one thread.
      auto none = [](int64_t, int64_t, double, double, double) {};
      for (int ii = 0; ii < n_sources && overlap_ii < 0; ii++)
        if ((overlap_jj = scan(ii, none)) >= 0) overlap_ii = ii;
    } else {
      offset[0] = 0;
      for (int ii = 0; ii < n_sources; ii++) offset[ii + 1] += offset[ii];
      const auto emitter = edges_from(static_cast<size_t>(offset[n_sources]));
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
      for (int ii = 0; ii < n_sources; ii++) {
        int64_t e = offset[ii];
        scan(ii, emitter(e));
      }
    }
  }
  if (overlap_ii >= 0) {
    const int i = ilist[overlap_ii];
    const int j = firstneigh[i][overlap_jj] & NEIGHMASK;
    const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
    error->one(FLERR, "pair_style superionic: atoms {} and {} are {:.4g} A apart (< {} A) at step {}; the structure overlaps or the time step is too large",
               atom->tag[i], atom->tag[j], std::sqrt(dx * dx + dy * dy + dz * dz), kMinDistance, update->ntimestep);
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

void PairSuperionic::evaluate(int member, int64_t n_nodes, int64_t n_local, int64_t n_edges)
{
  try {
    if (kernels[member])
      kernels[member]->compute(edge_vec.data(), edge_src.data(), edge_dst.data(), n_edges, species.data(),
                               n_nodes, n_local, atom_energy.data(), edge_grad.data());
    else
      models[member]->compute(edge_vec.data(), edge_src.data(), edge_dst.data(), n_edges, species.data(),
                              n_nodes, n_local, atom_energy.data(), edge_grad.data());
  } catch (const superionic::ModelError &e) {
    error->one(FLERR, "pair_style superionic: {}", e.what());
  }
}

void PairSuperionic::add_forces(int64_t n_edges)
{
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

void PairSuperionic::add_forces_threaded()
{
  // The sources' forces go straight into atom->f (a thread's sources are its own atoms); the
  // destinations' into a scratch row per thread, summed over threads afterwards in atom order.
  const int threads = graph_threads;
  const int nall = atom->nlocal + atom->nghost;
  const int n_sources = static_cast<int>(edge_offset.size()) - 1;
  const int64_t *offset = edge_offset.data();
  const int64_t *src = edge_src.data(), *dst = edge_dst.data(), *atom_of = atom_of_node.data();
  const double *grad = edge_grad.data(), *vec = edge_vec.data();
  double **f = atom->f;
  force_scratch.resize(static_cast<size_t>(threads) * 3 * nall);
  double *scratch = force_scratch.data();
  double v_sum[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  const bool want_virial = vflag_global;
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) reduction(+ : v_sum[:6])
#endif
  {
#if defined(_OPENMP)
    const int t = omp_get_thread_num();
#else
    const int t = 0;
#endif
    double *mine = scratch + static_cast<size_t>(t) * 3 * nall;
    std::fill(mine, mine + 3 * static_cast<size_t>(nall), 0.0);
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
    for (int ii = 0; ii < n_sources; ii++) {
      if (offset[ii] == offset[ii + 1]) continue;
      double fi[3] = {0.0, 0.0, 0.0};
      for (int64_t e = offset[ii]; e < offset[ii + 1]; e++) {
        const double *g = grad + 3 * e;
        double *fj = mine + 3 * atom_of[dst[e]];
        for (int c = 0; c < 3; c++) {
          fi[c] += g[c];
          fj[c] -= g[c];
        }
        if (want_virial) {
          const double *d = vec + 3 * e;
          v_sum[0] -= d[0] * g[0];
          v_sum[1] -= d[1] * g[1];
          v_sum[2] -= d[2] * g[2];
          v_sum[3] -= d[0] * g[1];
          v_sum[4] -= d[0] * g[2];
          v_sum[5] -= d[1] * g[2];
        }
      }
      double *f_src = f[atom_of[src[offset[ii]]]];
      for (int c = 0; c < 3; c++) f_src[c] += fi[c];
    }
    // The implicit barrier of the loop above: every thread's scratch is complete.
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
    for (int a = 0; a < nall; a++)
      for (int c = 0; c < 3; c++) {
        double sum = 0.0;
        for (int u = 0; u < threads; u++) sum += scratch[(static_cast<size_t>(u) * nall + a) * 3 + c];
        f[a][c] += sum;
      }
  }
  for (int k = 0; k < 6; k++) virial[k] += v_sum[k];
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

  if (!guard_floor_sq.empty() && update->ntimestep % guard_every == 0) guard_check(n_local, n_edges);

  const bool deviation_step = committee_size > 1 && update->ntimestep % devi_every == 0;
  const int K = committee_size;
  if (deviation_step) {
    if (member_force_rows < atom->nmax || member_force_cols != 3 * K) {
      memory->destroy(member_force);
      member_force_rows = atom->nmax;
      member_force_cols = 3 * K;
      memory->create(member_force, member_force_rows, member_force_cols, "pair:member_force");
    }
    const int nall = nlocal + atom->nghost;
    if (nall > 0) std::fill(&member_force[0][0], &member_force[0][0] + static_cast<size_t>(nall) * 3 * K, 0.0);
    member_energy.assign(K, 0.0);
  }

  // A rank that owns no atom of this style contributes nothing (energy, forces and virial are 0),
  // but still takes part in the deviation's communication below.
  if (n_local > 0) {
    atom_energy.resize(n_local);
    edge_grad.resize(3 * n_edges);
    evaluate(0, n_nodes, n_local, n_edges);
    check_finite(n_local, n_edges);

    if (eflag_global)
      for (int64_t n = 0; n < n_local; n++) eng_vdwl += atom_energy[n];
    if (eflag_atom)
      for (int64_t n = 0; n < n_local; n++) eatom[atom_of_node[n]] += atom_energy[n];

    if (graph_threads > 1 && !vflag_atom)
      add_forces_threaded();
    else
      add_forces(n_edges);

    // Member 0's forces are also kept apart from atom->f, which may hold other styles' forces.
    for (int k = 0; deviation_step && k < K; k++) {
      if (k > 0) evaluate(k, n_nodes, n_local, n_edges);
      for (int64_t n = 0; n < n_local; n++) member_energy[k] += atom_energy[n];
      for (int64_t e = 0; e < n_edges; e++) {
        double *fi = &member_force[atom_of_node[edge_src[e]]][3 * k];
        double *fj = &member_force[atom_of_node[edge_dst[e]]][3 * k];
        const double *g = &edge_grad[3 * e];
        for (int c = 0; c < 3; c++) {
          fi[c] += g[c];
          fj[c] -= g[c];
        }
      }
    }
  }

  if (deviation_step) committee_deviation(n_local);
}

void PairSuperionic::guard_check(int64_t n_local, int64_t n_edges)
{
  // Every edge whose source this rank owns, against its pair's floor; the closest approach of each
  // pair is kept for the run. The decision and the first breach's description are global.
  const int n = static_cast<int>(models[0]->metadata().species.size());
  std::vector<double> closest(guard_floor_sq.size(), std::numeric_limits<double>::infinity());
  double worst = std::numeric_limits<double>::infinity();  // smallest (r / floor)^2 below 1
  int64_t worst_edge = -1;
  bigint below = 0;
  for (int64_t e = 0; e < n_edges; e++) {
    if (edge_src[e] >= n_local) continue;
    const double *d = &edge_vec[3 * e];
    const double r_sq = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    const int pair = static_cast<int>(species[edge_src[e]] * n + species[edge_dst[e]]);
    closest[pair] = std::min(closest[pair], r_sq);
    const double ratio = r_sq / guard_floor_sq[pair];
    if (ratio < 1.0) {
      below++;
      if (ratio < worst) {
        worst = ratio;
        worst_edge = e;
      }
    }
  }
  std::vector<double> global(closest.size());
  MPI_Allreduce(closest.data(), global.data(), static_cast<int>(closest.size()), MPI_DOUBLE, MPI_MIN, world);
  for (size_t k = 0; k < global.size(); k++) guard_closest_sq[k] = std::min(guard_closest_sq[k], global[k]);
  bigint below_all = 0;
  MPI_Allreduce(&below, &below_all, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  guard_checks_run++;
  if (below_all == 0) return;
  guard_breaches_run++;
  const bigint step = update->ntimestep;
  const bool first = guard_first_step < 0;
  if (first) guard_first_step = step;
  if (guard_stop_step != step && (first || guard_stop)) {
    // The rank holding the worst pair describes it: distance, floor, species pair, atom IDs.
    struct {
      double ratio;
      int rank;
    } mine{worst, comm->me}, owner{0.0, 0};
    MPI_Allreduce(&mine, &owner, 1, MPI_DOUBLE_INT, MPI_MINLOC, world);
    double what[5] = {0.0, 0.0, 0.0, 0.0, 0.0};
    if (comm->me == owner.rank && worst_edge >= 0) {
      const int64_t e = worst_edge;
      const int pair = static_cast<int>(species[edge_src[e]] * n + species[edge_dst[e]]);
      what[0] = std::sqrt(worst * guard_floor_sq[pair]);
      what[1] = static_cast<double>(pair);
      what[2] = static_cast<double>(atom->tag[atom_of_node[edge_src[e]]]);
      what[3] = static_cast<double>(atom->tag[atom_of_node[edge_dst[e]]]);
      what[4] = static_cast<double>(below);
    }
    MPI_Bcast(what, 5, MPI_DOUBLE, owner.rank, world);
    if (comm->me == 0) {
      const int pair = static_cast<int>(what[1]);
      const auto &meta = models[0]->metadata();
      const double floor = std::sqrt(guard_floor_sq[pair]);
      const std::string name = pair_name(pair / n, pair % n);
      const std::string where = fmt::format(
          "{} atoms {} and {} are {:.3f} A apart at step {}, below the floor {:.3f} A ({:.3g} x {:.3f} A, the closest {} pair in the training data{})",
          name, static_cast<tagint>(what[2]), static_cast<tagint>(what[3]), what[0], step, floor,
          floor / meta.pair_closest[pair], meta.pair_closest[pair], name,
          meta.pair_closest[pair] >= meta.cutoff ? ", i.e. never within the cutoff" : "");
      if (guard_stop)
        utils::logmesg(lmp, "pair superionic: guard stop: {}; stopping the run (restart files are written)\n", where);
      else
        error->warning(FLERR, "pair superionic: guard: {}; the model is outside its training data and its dynamics are not to be trusted from here (further breaches are counted and reported at the end of the run)",
                       where);
    }
  }
  if (guard_stop) {
    guard_stop_step = step;
    timer->force_timeout();
  }
}

void PairSuperionic::check_finite(int64_t n_local, int64_t n_edges)
{
  // One sum over every output: a NaN or an infinity anywhere makes it non-finite, so the usual
  // step costs a pass of additions and the search below runs only when something is wrong.
  double sum = 0.0;
  for (int64_t k = 0; k < n_local; k++) sum += atom_energy[k];
  for (int64_t k = 0; k < 3 * n_edges; k++) sum += edge_grad[k];
  if (std::isfinite(sum)) return;
  const auto &names = models[0]->metadata().species;
  auto describe = [&](int64_t node) {
    return fmt::format("{} ({})", atom->tag[atom_of_node[node]], names[species[node]]);
  };
  std::string what = "forces";
  std::string atoms;
  for (int64_t k = 0; k < n_local && atoms.empty(); k++)
    if (!std::isfinite(atom_energy[k])) {
      what = "energy";
      atoms = "atom " + describe(k);
    }
  for (int64_t e = 0; e < n_edges && atoms.empty(); e++)
    for (int c = 0; c < 3; c++)
      if (!std::isfinite(edge_grad[3 * e + c])) {
        const double *d = &edge_vec[3 * e];
        atoms = fmt::format("atoms {} and {}, {:.4g} A apart", describe(edge_src[e]), describe(edge_dst[e]),
                            std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]));
        break;
      }
  error->one(FLERR, "pair_style superionic: the model's {} are not finite at step {} ({}); the atoms were driven where the model has no data: see the guard's warnings above, lower the time step, or add training data there",
             what, update->ntimestep, atoms);
}

void PairSuperionic::committee_deviation(int64_t n_local)
{
  const int K = committee_size;
  // Fold the ghosts' contributions into their owners: each owned atom then holds every member's full force.
  comm->reverse_comm(this);

  superionic::DeviationSummary local;
  for (int64_t n = 0; n < n_local; n++) local.add(superionic::force_deviation(member_force[atom_of_node[n]], K));
  double max_devi = 0.0, min_devi = 0.0, sum_devi = 0.0;
  bigint count = 0, local_count = local.count;
  MPI_Allreduce(&local.max, &max_devi, 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(&local.min, &min_devi, 1, MPI_DOUBLE, MPI_MIN, world);
  MPI_Allreduce(&local.sum, &sum_devi, 1, MPI_DOUBLE, MPI_SUM, world);
  MPI_Allreduce(&local_count, &count, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  std::vector<double> energy(K, 0.0);
  MPI_Allreduce(member_energy.data(), energy.data(), K, MPI_DOUBLE, MPI_SUM, world);

  if (count == 0) min_devi = 0.0;
  const double avg_devi = count > 0 ? sum_devi / static_cast<double>(count) : 0.0;
  const double devi_e = count > 0 ? superionic::population_std(energy.data(), K) / static_cast<double>(count) : 0.0;
  const bigint step = update->ntimestep;

  // compute pair sums pvector over ranks, so only rank 0 holds the values.
  const double values[4] = {max_devi, avg_devi, min_devi, devi_e};
  for (int q = 0; q < 4; q++) devi_values[q] = comm->me == 0 ? values[q] : 0.0;

  if (comm->me == 0 && devi_fp) {
    fprintf(devi_fp, "%lld %.10g %.10g %.10g %.10g\n", static_cast<long long>(step), max_devi, min_devi,
            avg_devi, devi_e);
    fflush(devi_fp);
  }
  devi_steps_run++;
  devi_max_run = std::max(devi_max_run, max_devi);

  if (devi_warn > 0.0 && max_devi > devi_warn) {
    devi_warnings_run++;
    if (comm->me == 0) {
      if (devi_warnings_run <= kMaxDeviWarnings)
        error->warning(FLERR, "pair superionic: max force deviation {:.6g} eV/A > devi_warn {} at step {}",
                       max_devi, devi_warn, step);
      else if (devi_warnings_run == kMaxDeviWarnings + 1)
        error->warning(FLERR, "pair superionic: more than {} steps above devi_warn {} in this run; further ones are counted and reported at the end of the run",
                       kMaxDeviWarnings, devi_warn);
    }
  }
  if (devi_stop > 0.0 && max_devi > devi_stop) {
    // A following run re-evaluates the stop step in its setup; say it once.
    if (devi_stop_step != step && comm->me == 0)
      utils::logmesg(lmp, "pair superionic: max force deviation {:.6g} eV/A > devi_stop {} at step {}; stopping the run\n",
                     max_devi, devi_stop, step);
    devi_stop_step = step;
    // As fix halt's 'error soft': the run loop ends after this step and later run commands do
    // nothing, while the input's other commands (write_restart, ...) still execute.
    timer->force_timeout();
  }
}

int PairSuperionic::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  for (int i = first; i < first + n; i++)
    for (int c = 0; c < member_force_cols; c++) buf[m++] = member_force[i][c];
  return m;
}

void PairSuperionic::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int i = 0; i < n; i++) {
    double *row = member_force[list[i]];
    for (int c = 0; c < member_force_cols; c++) row[c] += buf[m++];
  }
}

void PairSuperionic::finish()
{
  if (!guard_floor_sq.empty() && comm->me == 0 && guard_checks_run > 0) {
    // Two fixed-format lines that superionic md reads into its run.json.
    std::string first;
    if (guard_first_step >= 0) first = fmt::format(", the first at step {}", guard_first_step);
    utils::logmesg(lmp, "pair superionic: guard summary: {} checks every {} steps, {} with a pair below its floor{}\n",
                   guard_checks_run, guard_every, guard_breaches_run, first);
    const int n = static_cast<int>(models[0]->metadata().species.size());
    std::string closest;
    for (int a = 0; a < n; a++)
      for (int b = a; b < n; b++) {
        const double c = guard_closest_sq[a * n + b];
        closest += fmt::format(" {} {} {:.4f}", pair_name(a, b), std::isfinite(c) ? fmt::format("{:.4f}", std::sqrt(c)) : "none",
                               std::sqrt(guard_floor_sq[a * n + b]));
      }
    utils::logmesg(lmp, "pair superionic: guard closest (pair, closest A, floor A):{}\n", closest);
  }
  if (committee_size < 2 || comm->me != 0) return;
  std::string warned;
  if (devi_warn > 0.0) warned = fmt::format("; {} of them above devi_warn {} eV/A", devi_warnings_run, devi_warn);
  utils::logmesg(lmp, "pair superionic: committee deviation evaluated on {} steps of this run, largest max_devi_f {:.6g} eV/A{}\n",
                 devi_steps_run, devi_max_run, warned);
}
