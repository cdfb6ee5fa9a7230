/* pair_style superionic: runs an exported superionic model (see docs/conventions.md).
   Built as a plugin here; the PairStyle line lets the same file compile into a LAMMPS source tree. */
#ifdef PAIR_CLASS
// clang-format off
PairStyle(superionic,PairSuperionic);
// clang-format on
#else

#ifndef LMP_PAIR_SUPERIONIC_H
#define LMP_PAIR_SUPERIONIC_H

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "pair.h"

namespace superionic {
class Model;
class SprinterKernel;
}

namespace LAMMPS_NS {

class PairSuperionic : public Pair {
 public:
  PairSuperionic(class LAMMPS *);
  ~PairSuperionic() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void finish() override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 protected:
  // Protected for pair_style superionic/kk (cpp/kokkos), which shares the keywords, model loading,
  // type map and run checks and replaces the per-step graph and force accumulation.
  // Committee members (docs/committee.md); models[0] drives the dynamics, the others are evaluated
  // only on deviation steps. One entry without the committee keyword.
  std::vector<std::unique_ptr<superionic::Model>> models;
  std::vector<superionic::SprinterKernel *> kernels;  // owned by models; null: that member's torch path
  std::string device_request = "cpu";  // see device_placement.h for how a rank picks its GPU
  int gpus_per_node = 0;
  bool allow_oversubscribe = false;
  std::string backend_request = "auto";     // auto: the native kernel where the model has one
  std::string kernel_precision = "model";  // the native kernel's arithmetic: model, float32, float64
  int threads_per_rank = 1;
  int num_threads = 0;  // 0: leave libtorch's choice, unless several ranks share the node
  std::string debug_edges_path;
  std::vector<int> type_species;  // per LAMMPS type: model species index, -1 for NULL
  double cutoff = 0.0;
  double receptive_field = 0.0;
  bool message_passing = false;
  // How a message-passing model sees periodic images (docs/conventions.md): auto, folded or shell.
  // Folded (one rank only): nodes are the owned atoms, an edge to a ghost image points to its owner.
  std::string graph_request = "auto";
  bool folded_graph = false;      // this run's choice, made in init_style()
  int graph_logged = -1;          // the scheme last described in the log: -1 none, 0 shell, 1 folded
  bigint debug_edges_step = -1;

  // Committee settings and the state of the current run.
  int committee_size = 1;  // K; 1 = no committee
  bigint devi_every = 10;
  std::string devi_path = "model_devi.out";
  double devi_warn = -1.0;  // eV/A; negative: off
  double devi_stop = -1.0;  // eV/A; negative: off
  FILE *devi_fp = nullptr;  // rank 0 only
  std::string devi_fp_path;
  double devi_values[4] = {0.0, 0.0, 0.0, 0.0};  // max, avg, min, devi_e: compute pair's vector
  bigint devi_steps_run = 0, devi_warnings_run = 0, devi_stop_step = -1;
  double devi_max_run = 0.0;
  double **member_force = nullptr;  // [nmax][3K]: each member's force on local and ghost atoms
  int member_force_rows = 0, member_force_cols = 0;
  std::vector<double> member_energy;  // [K] this rank's share of each member's energy

  // The physical-sanity guard (docs/guard.md): every guard_every steps each edge's length is held
  // against the floor of its species pair, which the model file carries (metadata pair_floor_A).
  bigint guard_every = 10;        // 0: off
  bool guard_every_given = false;  // the pair_style line set it (an error if the model has no floors)
  bool guard_stop = false;         // stop the run cleanly (write_restart still runs) at a breach
  double guard_factor = -1.0;      // > 0: floors = this x closest distance, instead of the model's
  std::vector<double> guard_floor_sq;     // [S*S] squared floors; empty: guard off for this model
  std::vector<double> guard_closest_sq;   // [S*S] closest squared distance of each pair this run
  bigint guard_checks_run = 0, guard_breaches_run = 0, guard_first_step = -1, guard_stop_step = -1;

  // Per-step work arrays sized by local + ghost atoms and local edges, reused between steps.
  std::vector<int64_t> node_of_atom, atom_of_node, species, edge_src, edge_dst;
  std::vector<double> edge_vec, atom_energy, edge_grad;
  // With several threads: edge_offset[ii] is the first edge of neighbour-list source ii (from
  // build_graph, which also sets graph_threads), and force_scratch holds each thread's forces
  // on the edges' destination atoms until they are summed into atom->f.
  std::vector<int64_t> edge_offset;
  std::vector<double> force_scratch;
  int graph_threads = 1;
  int graph_threads_logged = 0;  // the count last written to the log; 0: none yet

  void allocate();
  // The kk style overrides it: on a Kokkos GPU build the model goes to the GPU Kokkos runs on.
  virtual std::string resolve_device();
  void build_graph();
  void write_debug_edges();
  void load_models(const std::vector<std::string> &paths);
  void evaluate(int member, int64_t n_nodes, int64_t n_local, int64_t n_edges);
  // Each edge's gradient into atom->f (and the virial): serially, or on graph_threads threads.
  void add_forces(int64_t n_edges);
  void add_forces_threaded();
  void committee_deviation(int64_t n_local);
  void open_devi_file();
  void setup_guard();
  void guard_check(int64_t n_local, int64_t n_edges);
  void check_finite(int64_t n_local, int64_t n_edges);
  std::string pair_name(int a, int b) const;
};

}  // namespace LAMMPS_NS

#endif
#endif
