// What a model file is, decided from its bytes before libtorch opens it (no torch header here).
//
// torch::jit::load and the AOTInductor loader meet a wrong file with "PytorchStreamReader failed
// reading zip archive" and the like. Reading the zip directory first names what the file is (a
// training checkpoint, a nequip package, an HDF5 file, random bytes ...) and what to do, with the
// same words as python/superionic/modelfile.py.
#ifndef SUPERIONIC_MODEL_FILE_H
#define SUPERIONIC_MODEL_FILE_H

#include <cstdint>
#include <string>
#include <vector>

namespace superionic {

enum class ModelFileKind {
  Missing,
  Directory,
  Empty,
  NotZip,
  DamagedZip,
  TorchScript,
  AOTInductor,
  ExportedProgram,
  Checkpoint,
  Lightning,
  TorchSave,
  NequipPackage,
  TorchPackage,
  OtherZip,
};

struct ModelFileInfo {
  ModelFileKind kind = ModelFileKind::Missing;
  std::string description;  // "it is a superionic training checkpoint"
  bool metadata = false;    // TorchScript: superionic.json inside (AOTInductor: checked on load)
};

// Never throws for a readable or missing file.
ModelFileInfo identify_model_file(const std::string &path);

// Throws ModelError ("<path> is not a superionic model (<what it is>); <fix>") unless `path` is a
// TorchScript model with superionic metadata named .pt or an AOTInductor package named .pt2.
void require_exported_model(const std::string &path);

// One tensor of a .pt2's weights entry (metadata.h, kWeightsEntry), row-major float64.
struct NamedArray {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<double> values;
};

// The format version named on the entry's first line; -1 if that line is not a weights header.
int weights_format_version(const std::string &text);

// Parses an entry of format kWeightsFormatVersion; throws ModelError naming `source` and the line.
std::vector<NamedArray> parse_weights_text(const std::string &text, const std::string &source);

}  // namespace superionic

#endif
