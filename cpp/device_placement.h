// Which device one MPI rank runs its model on. Free of torch and MPI so that the rule is unit-tested
// without GPUs (tests/unit/test_device_placement.py, through superionic._core).
#ifndef SUPERIONIC_DEVICE_PLACEMENT_H
#define SUPERIONIC_DEVICE_PLACEMENT_H

#include <stdexcept>
#include <string>

namespace superionic {

// A request that cannot be met on this node; the message is one line for LAMMPS's error handler.
class PlacementError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PlacementRequest {
  std::string device = "cpu";        // cpu | cuda | auto | cuda:N
  int gpus_per_node = 0;             // 0: every GPU the runtime sees; N: only the first N
  bool allow_oversubscribe = false;  // let several ranks share one GPU
};

// Throws PlacementError when `device` is not cpu, cuda, auto or cuda:N with N >= 0.
void check_device_request(const std::string &device);

// The torch device string ("cpu" or "cuda:K") for the rank with index `local_rank` among the
// `local_size` ranks on its node, where the runtime sees `visible_gpus` devices.
//   cpu      always the CPU
//   auto     as cuda when a GPU is visible, else the CPU
//   cuda     node-local rank modulo the GPUs in use; more ranks than GPUs is an error unless
//            allow_oversubscribe
//   cuda:N   device N for every rank: the explicit override, for launchers that give each rank
//            its own CUDA_VISIBLE_DEVICES (every rank then sees one device and asks for cuda:0)
std::string place_rank(const PlacementRequest &request, int local_rank, int local_size, int visible_gpus);

}  // namespace superionic

#endif
