// H5MD 1.1 trajectory writer: the only code that calls the HDF5 library. No LAMMPS headers, so
// the LAMMPS fix and any test harness share one implementation of the file layout.
#ifndef SUPERIONIC_H5MD_WRITER_H
#define SUPERIONIC_H5MD_WRITER_H

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace superionic {

class H5mdError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct H5mdLayout {
  std::string group = "all";               // particles/<group>
  int64_t n_particles = 0;
  bool double_positions = false;           // float32 positions by default (images keep them exact)
  bool velocities = false;
  bool forces = false;
  std::vector<int64_t> ids;                // atom IDs, in the order of every frame's rows
  std::vector<int32_t> species;            // LAMMPS type of each row
  std::vector<std::string> type_names;     // name of type k+1, may be empty
  std::vector<double> charges;             // per row, empty if unknown
  double timestep_ps = 0.0;
  std::string creator_version;
  std::string lammps_version;
};

enum class OpenMode { Create, Overwrite, Append };

class H5mdWriter {
 public:
  // Append: the file must hold the same group and particles; frames at or after `first_step`
  // are dropped so a resumed run neither duplicates nor skips a step.
  H5mdWriter(const std::string &path, const H5mdLayout &layout, OpenMode mode, int64_t first_step);
  ~H5mdWriter();
  H5mdWriter(const H5mdWriter &) = delete;
  H5mdWriter &operator=(const H5mdWriter &) = delete;

  // edges: the three box vectors as rows (row-major 3x3). positions/velocities/forces: n x 3.
  void write_frame(int64_t step, double time, const double *edges, const double *positions,
                   const int32_t *images, const double *velocities, const double *forces);
  int64_t frames() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace superionic

#endif
