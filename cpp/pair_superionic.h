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

 private:
  std::unique_ptr<superionic::Model> model;
  std::string device_request = "cpu";  // see device_placement.h for how a rank picks its GPU
  int gpus_per_node = 0;
  bool allow_oversubscribe = false;
  std::string backend_request = "auto";     // auto: the native kernel where the model has one
  std::string kernel_precision = "model";  // the native kernel's arithmetic: model, float32, float64
  superionic::SprinterKernel *kernel = nullptr;  // owned by model; null: the torch path
  int threads_per_rank = 1;
  int num_threads = 0;  // 0: leave libtorch's choice, unless several ranks share the node
  std::string debug_edges_path;
  std::vector<int> type_species;  // per LAMMPS type: model species index, -1 for NULL
  double cutoff = 0.0;
  double receptive_field = 0.0;
  bool message_passing = false;
  bigint debug_edges_step = -1;

  // Per-step work arrays sized by local + ghost atoms and local edges, reused between steps.
  std::vector<int64_t> node_of_atom, atom_of_node, species, edge_src, edge_dst;
  std::vector<double> edge_vec, atom_energy, edge_grad;

  void allocate();
  std::string resolve_device();
  void build_graph();
  void write_debug_edges();
};

}  // namespace LAMMPS_NS

#endif
#endif
