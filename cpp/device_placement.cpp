#include "device_placement.h"

#include <cctype>

namespace superionic {
namespace {

// -1 unless `device` is "cuda:" followed by decimal digits only.
int explicit_index(const std::string &device) {
  const std::string prefix = "cuda:";
  if (device.compare(0, prefix.size(), prefix) != 0 || device.size() == prefix.size() ||
      device.size() > prefix.size() + 6)
    return -1;
  int index = 0;
  for (size_t k = prefix.size(); k < device.size(); k++) {
    if (!std::isdigit(static_cast<unsigned char>(device[k]))) return -1;
    index = 10 * index + (device[k] - '0');
  }
  return index;
}

}  // namespace

void check_device_request(const std::string &device) {
  if (device == "cpu" || device == "cuda" || device == "auto" || explicit_index(device) >= 0) return;
  throw PlacementError("device must be cpu, cuda or auto, or cuda:N for GPU N, not '" + device + "'");
}

std::string place_rank(const PlacementRequest &request, int local_rank, int local_size, int visible_gpus) {
  check_device_request(request.device);
  if (local_size < 1 || local_rank < 0 || local_rank >= local_size)
    throw PlacementError("node-local rank " + std::to_string(local_rank) + " of " + std::to_string(local_size) +
                         " is not a valid rank index");
  if (request.gpus_per_node < 0)
    throw PlacementError("gpus_per_node must be >= 0 (0 = every visible GPU), not " +
                         std::to_string(request.gpus_per_node));
  if (request.device == "cpu") return "cpu";
  if (visible_gpus <= 0) {
    if (request.device == "auto") return "cpu";
    throw PlacementError("device " + request.device +
                         " requested but libtorch sees no GPU (check CUDA_VISIBLE_DEVICES and that torch is a CUDA "
                         "build); use device cpu or auto");
  }
  const int index = explicit_index(request.device);
  if (index >= 0) {
    if (index >= visible_gpus)
      throw PlacementError("device " + request.device + " requested but this rank sees only " +
                           std::to_string(visible_gpus) + " GPU(s), cuda:0 to cuda:" +
                           std::to_string(visible_gpus - 1));
    return "cuda:" + std::to_string(index);  // canonical: "cuda:01" names the same device as "cuda:1"
  }
  if (request.gpus_per_node > visible_gpus)
    throw PlacementError("gpus_per_node " + std::to_string(request.gpus_per_node) + " but only " +
                         std::to_string(visible_gpus) + " GPU(s) are visible on this node");
  const int in_use = request.gpus_per_node > 0 ? request.gpus_per_node : visible_gpus;
  if (local_size > in_use && !request.allow_oversubscribe)
    throw PlacementError(std::to_string(local_size) + " ranks on this node would share " + std::to_string(in_use) +
                         " GPU(s); start at most " + std::to_string(in_use) +
                         " ranks per node, or add 'allow_oversubscribe yes' to share them");
  return "cuda:" + std::to_string(local_rank % in_use);
}

}  // namespace superionic
