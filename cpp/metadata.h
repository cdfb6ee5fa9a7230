// Model metadata: the JSON written by superionic.export, parsed and validated without libtorch
// so that the pair style and the tests share one reader.
#ifndef SUPERIONIC_METADATA_H
#define SUPERIONIC_METADATA_H

#include <stdexcept>
#include <string>
#include <vector>

namespace superionic {

// Raised for anything wrong with a model file; the message is a single line meant for users.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr int kMetadataFormatVersion = 1;
constexpr const char *kMetadataName = "superionic.json";

// A sprinter's .pt2 carries its weights as text beside the compiled code (python/superionic/
// export.py, weights_text); the SHA-1 of that entry sits in the compiled metadata under
// kWeightsDigestKey, which ties the two together.
constexpr int kWeightsFormatVersion = 1;
constexpr const char *kWeightsEntry = "extra/superionic_weights.txt";
constexpr const char *kWeightsHeader = "superionic sprinter weights format";
constexpr const char *kWeightsDigestKey = "superionic.weights_sha1";

struct ModelMetadata {
  int format_version = 0;
  std::string model_kind;
  std::vector<std::string> species;
  double cutoff = 0.0;           // Angstrom
  double receptive_field = 0.0;  // Angstrom, >= cutoff
  std::string dtype;             // "float32" or "float64"
  std::string units;             // always "metal"
  std::string device;            // what the artefact was compiled for
  // The physical-sanity floors (docs/conventions.md, "Distance floors"), optional: per species pair
  // (S x S, row-major in species order) the closest distance of that pair in the training data
  // (the cutoff for a pair never seen within it) and the floor, floor_factor times it. Empty when
  // the model file carries none (exported before floors existed, or from an analytic model).
  std::vector<double> pair_closest;  // Angstrom
  std::vector<double> pair_floor;    // Angstrom
  double floor_factor = 0.0;
  std::string json;              // the raw text, for logs and the Python bindings
};

// Parses and validates; `source` names the file in error messages.
ModelMetadata parse_metadata(const std::string &json, const std::string &source);

}  // namespace superionic

#endif
