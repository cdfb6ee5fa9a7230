#include "fix_h5md_superionic.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "group.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <numeric>

#include "h5md_writer.h"

using namespace LAMMPS_NS;
using namespace FixConst;

#ifndef SUPERIONIC_LAMMPS_VERSION
#define SUPERIONIC_LAMMPS_VERSION "unknown"
#endif
#ifndef SUPERIONIC_VERSION
#define SUPERIONIC_VERSION "unknown"
#endif

FixH5mdSuperionic::FixH5mdSuperionic(LAMMPS *lmp, int narg, char **arg) : Fix(lmp, narg, arg)
{
  if (narg < 5) error->all(FLERR, "fix superionic/h5md: usage: fix ID group superionic/h5md N file.h5 [keywords]");
  nevery = utils::inumeric(FLERR, arg[3], false, lmp);
  if (nevery <= 0) error->all(FLERR, "fix superionic/h5md: N must be a positive number of steps, not {}", arg[3]);
  path = arg[4];
  const int ntypes = atom->ntypes;
  bool append = false, overwrite = false;
  int iarg = 5;
  auto yes_no = [&](const char *key) {
    if (iarg + 1 >= narg) error->all(FLERR, "fix superionic/h5md: keyword {} needs yes or no", key);
    return utils::logical(FLERR, arg[iarg + 1], false, lmp) == 1;
  };
  while (iarg < narg) {
    std::string key = arg[iarg];
    if (key == "positions") {
      if (iarg + 1 >= narg) error->all(FLERR, "fix superionic/h5md: keyword positions needs single or double");
      std::string value = arg[iarg + 1];
      if (value != "single" && value != "double")
        error->all(FLERR, "fix superionic/h5md: positions must be single or double, not '{}'", value);
      double_positions = value == "double";
      iarg += 2;
    } else if (key == "velocity") {
      with_velocities = yes_no("velocity");
      iarg += 2;
    } else if (key == "force") {
      with_forces = yes_no("force");
      iarg += 2;
    } else if (key == "append") {
      append = yes_no("append");
      iarg += 2;
    } else if (key == "overwrite") {
      overwrite = yes_no("overwrite");
      iarg += 2;
    } else if (key == "types" || key == "charges") {
      if (iarg + ntypes >= narg)
        error->all(FLERR, "fix superionic/h5md: keyword {} needs {} values, one per atom type", key, ntypes);
      for (int t = 0; t < ntypes; t++) {
        if (key == "types") type_names.emplace_back(arg[iarg + 1 + t]);
        else type_charges.push_back(utils::numeric(FLERR, arg[iarg + 1 + t], false, lmp));
      }
      iarg += 1 + ntypes;
    } else {
      error->all(FLERR, "fix superionic/h5md: unknown keyword '{}'; valid keywords are positions, velocity, force, "
                 "types, charges, append, overwrite", key);
    }
  }
  if (append && overwrite) error->all(FLERR, "fix superionic/h5md: choose append or overwrite, not both");
  open_mode = overwrite ? 1 : (append ? 2 : 0);
  int exists = 0;
  if (comm->me == 0) exists = std::ifstream(path).good() ? 1 : 0;
  MPI_Bcast(&exists, 1, MPI_INT, 0, world);
  if (exists && open_mode == 0)
    error->all(FLERR, "fix superionic/h5md: file {} exists; add 'append yes' to continue it or 'overwrite yes' to replace it",
               path);
  columns = 8 + (with_velocities ? 3 : 0) + (with_forces ? 3 : 0);
}

FixH5mdSuperionic::~FixH5mdSuperionic() = default;

int FixH5mdSuperionic::setmask()
{
  return END_OF_STEP;
}

void FixH5mdSuperionic::init()
{
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "fix superionic/h5md: trajectories are written in metal units; the input sets units {}",
               update->unit_style);
  if (domain->dimension != 3) error->all(FLERR, "fix superionic/h5md: needs a 3d simulation");
  if (!atom->tag_enable) error->all(FLERR, "fix superionic/h5md: needs atom IDs");
  group_count = group->count(igroup);
  if (group_count == 0)
    error->all(FLERR, "fix superionic/h5md: group {} has no atoms; nothing to write", group->names[igroup]);
}

void FixH5mdSuperionic::fail_all(const std::string &message_on_root)
{
  // Only rank 0 touches the file; every rank must stop with the same message.
  int length = comm->me == 0 ? static_cast<int>(message_on_root.size()) : 0;
  MPI_Bcast(&length, 1, MPI_INT, 0, world);
  if (length == 0) return;
  std::string message(length, ' ');
  if (comm->me == 0) message = message_on_root;
  MPI_Bcast(message.data(), length, MPI_CHAR, 0, world);
  error->all(FLERR, "fix superionic/h5md: {}", message);
}

void FixH5mdSuperionic::gather()
{
  const int nlocal = atom->nlocal;
  const int *mask = atom->mask;
  send.clear();
  for (int i = 0; i < nlocal; i++) {
    if (!(mask[i] & groupbit)) continue;
    imageint image = atom->image[i];
    send.push_back(static_cast<double>(atom->tag[i]));
    send.push_back(static_cast<double>(atom->type[i]));
    for (int k = 0; k < 3; k++) send.push_back(atom->x[i][k]);
    send.push_back(static_cast<double>((image & IMGMASK) - IMGMAX));
    send.push_back(static_cast<double>((image >> IMGBITS & IMGMASK) - IMGMAX));
    send.push_back(static_cast<double>((image >> IMG2BITS) - IMGMAX));
    if (with_velocities)
      for (int k = 0; k < 3; k++) send.push_back(atom->v[i][k]);
    if (with_forces)
      for (int k = 0; k < 3; k++) send.push_back(atom->f[i][k]);
  }
  int mine = static_cast<int>(send.size());
  counts.assign(comm->nprocs, 0);
  MPI_Gather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world);
  if (comm->me == 0) {
    displacements.assign(comm->nprocs, 0);
    std::partial_sum(counts.begin(), counts.end() - 1, displacements.begin() + 1);
    received.resize(static_cast<size_t>(displacements.back() + counts.back()));
  }
  MPI_Gatherv(send.data(), mine, MPI_DOUBLE, received.data(), counts.data(), displacements.data(), MPI_DOUBLE, 0,
              world);
}

void FixH5mdSuperionic::open_file()
{
  gather();
  std::string message;
  if (comm->me == 0) {
    sort_rows();
    const size_t n = order.size();
    superionic::H5mdLayout layout;
    layout.group = group->names[igroup];
    layout.n_particles = static_cast<int64_t>(n);
    layout.double_positions = double_positions;
    layout.velocities = with_velocities;
    layout.forces = with_forces;
    layout.type_names = type_names;
    layout.timestep_ps = update->dt;
    layout.creator_version = SUPERIONIC_VERSION;
    layout.lammps_version = SUPERIONIC_LAMMPS_VERSION;
    for (size_t r = 0; r < n; r++) {
      const double *row = &received[order[r] * columns];
      layout.ids.push_back(static_cast<int64_t>(row[0]));
      layout.species.push_back(static_cast<int32_t>(row[1]));
      if (!type_charges.empty()) layout.charges.push_back(type_charges[static_cast<int>(row[1]) - 1]);
    }
    try {
      auto mode = open_mode == 1 ? superionic::OpenMode::Overwrite
                                 : (open_mode == 2 ? superionic::OpenMode::Append : superionic::OpenMode::Create);
      writer = std::make_unique<superionic::H5mdWriter>(path, layout, mode, update->ntimestep);
    } catch (const std::exception &e) {
      message = e.what();
    }
  }
  fail_all(message);
}

void FixH5mdSuperionic::sort_rows()
{
  // Every frame lists atoms in ascending ID: readers may index rows across frames.
  const size_t n = received.size() / columns;
  order.resize(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return received[a * columns] < received[b * columns]; });
}

void FixH5mdSuperionic::write_frame()
{
  if (update->ntimestep == last_step_written) return;
  gather();
  bigint total = 0, mine = static_cast<bigint>(send.size() / columns);
  MPI_Allreduce(&mine, &total, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  if (total != group_count)
    error->all(FLERR, "fix superionic/h5md: group {} changed size ({} -> {} atoms) during the run",
               group->names[igroup], group_count, total);
  std::string message;
  if (comm->me == 0) {
    sort_rows();
    const size_t n = order.size();
    positions.resize(3 * n);
    images.resize(3 * n);
    velocities.resize(with_velocities ? 3 * n : 0);
    forces.resize(with_forces ? 3 * n : 0);
    for (size_t r = 0; r < n; r++) {
      const double *row = &received[order[r] * columns];
      for (int k = 0; k < 3; k++) {
        positions[3 * r + k] = row[2 + k];
        images[3 * r + k] = static_cast<int32_t>(row[5 + k]);
        if (with_velocities) velocities[3 * r + k] = row[8 + k];
        if (with_forces) forces[3 * r + k] = row[(with_velocities ? 11 : 8) + k];
      }
    }
    // Box vectors as rows: a = (lx,0,0), b = (xy,ly,0), c = (xz,yz,lz); unwrapped = x + image . rows.
    const double edges[9] = {domain->xprd, 0.0, 0.0, domain->xy, domain->yprd, 0.0,
                             domain->xz, domain->yz, domain->zprd};
    const double time = update->atime + (update->ntimestep - update->atimestep) * update->dt;
    try {
      writer->write_frame(update->ntimestep, time, edges, positions.data(), images.data(),
                          with_velocities ? velocities.data() : nullptr, with_forces ? forces.data() : nullptr);
    } catch (const std::exception &e) {
      message = e.what();
    }
  }
  fail_all(message);
  last_step_written = update->ntimestep;
}

void FixH5mdSuperionic::setup(int /*vflag*/)
{
  int need_open = (comm->me == 0 && !writer) ? 1 : 0;
  MPI_Bcast(&need_open, 1, MPI_INT, 0, world);
  if (need_open) open_file();
  if (update->ntimestep % nevery == 0) write_frame();
}

void FixH5mdSuperionic::end_of_step()
{
  write_frame();
}
