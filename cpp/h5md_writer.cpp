#include "h5md_writer.h"

#include <hdf5.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>

namespace superionic {
namespace {

// What the HDF5 library says went wrong, from its error stack (printing is off, see the
// constructor): the operating system's reason when a system call failed ("No space left on
// device"), else the innermost description ("truncated file: eof = ..."). Read right after the
// failing call: the next library call clears the stack.
herr_t collect_description(unsigned, const H5E_error2_t *error, void *data) {
  auto *out = static_cast<std::vector<std::string> *>(data);
  if (error && error->desc) out->emplace_back(error->desc);
  return 0;
}

std::string library_reason() {
  std::vector<std::string> descriptions;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_description, &descriptions);
  static const std::regex system_error("errno = (\\d+), error message = '([^']*)'");
  for (const auto &d : descriptions) {
    std::smatch m;
    if (std::regex_search(d, m, system_error)) return m[2].str();
  }
  for (auto it = descriptions.rbegin(); it != descriptions.rend(); ++it)
    if (!it->empty()) return *it;
  return "";
}

std::string with_reason(const std::string &what) {
  std::string reason = library_reason();
  return reason.empty() ? what : what + " (" + reason + ")";
}

// HDF5 handles closed on scope exit, whatever their kind.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(Handle &&other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = -1; }
  Handle &operator=(Handle &&other) noexcept {
    reset();
    id_ = other.id_;
    close_ = other.close_;
    other.id_ = -1;
    return *this;
  }
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

hid_t check(hid_t id, const std::string &what) {
  if (id < 0) throw H5mdError(with_reason(what));
  return id;
}
void check_status(herr_t status, const std::string &what) {
  if (status < 0) throw H5mdError(with_reason(what));
}

Handle group(hid_t parent, const char *name, bool create) {
  hid_t id = create ? H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                    : H5Gopen2(parent, name, H5P_DEFAULT);
  return Handle(check(id, std::string(create ? "cannot create group " : "missing group ") + name), H5Gclose);
}

void string_attribute(hid_t object, const char *name, const std::vector<std::string> &values, bool scalar) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  hsize_t n = values.size();
  Handle space(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle attr(check(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                    std::string("cannot create attribute ") + name), H5Aclose);
  std::vector<const char *> pointers;
  for (const auto &v : values) pointers.push_back(v.c_str());
  check_status(H5Awrite(attr.get(), type.get(), pointers.data()), std::string("cannot write attribute ") + name);
}

template <typename T>
void numeric_attribute(hid_t object, const char *name, hid_t type, const std::vector<T> &values) {
  hsize_t n = values.size();
  Handle space(n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle attr(check(H5Acreate2(object, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                    std::string("cannot create attribute ") + name), H5Aclose);
  check_status(H5Awrite(attr.get(), type, values.data()), std::string("cannot write attribute ") + name);
}

template <typename T>
void fixed_dataset(hid_t parent, const char *name, hid_t type, const std::vector<T> &values) {
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle data(check(H5Dcreate2(parent, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                    std::string("cannot create dataset ") + name), H5Dclose);
  if (n) check_status(H5Dwrite(data.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
                      std::string("cannot write dataset ") + name);
}

// A dataset growing along its first axis: one row per frame, each frame its own compressed chunk.
Handle series(hid_t parent, const char *name, hid_t type, const std::vector<hsize_t> &row_shape, bool compress) {
  std::vector<hsize_t> dims{0}, maxdims{H5S_UNLIMITED}, chunk{compress ? 1u : 1024u};
  for (auto d : row_shape) {
    dims.push_back(d);
    maxdims.push_back(d);
    chunk.push_back(std::max<hsize_t>(d, 1));
  }
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()), H5Sclose);
  Handle props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(props.get(), static_cast<int>(chunk.size()), chunk.data());
  if (compress) {
    H5Pset_shuffle(props.get());
    H5Pset_deflate(props.get(), 4);
  }
  return Handle(check(H5Dcreate2(parent, name, type, space.get(), H5P_DEFAULT, props.get(), H5P_DEFAULT),
                      std::string("cannot create dataset ") + name), H5Dclose);
}

hsize_t rows(hid_t dataset) {
  Handle space(H5Dget_space(dataset), H5Sclose);
  hsize_t dims[4] = {0, 0, 0, 0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  return dims[0];
}

void resize_rows(hid_t dataset, hsize_t n) {
  Handle space(H5Dget_space(dataset), H5Sclose);
  hsize_t dims[4] = {0, 0, 0, 0};
  int rank = H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  if (rank < 1) throw H5mdError("a frame dataset has no rows axis");
  dims[0] = n;
  check_status(H5Dset_extent(dataset, dims), "cannot resize a dataset");
}

void append_row(hid_t dataset, hid_t memtype, const void *row) {
  hsize_t n = rows(dataset);
  resize_rows(dataset, n + 1);
  Handle file_space(H5Dget_space(dataset), H5Sclose);
  hsize_t dims[4] = {0, 0, 0, 0};
  int rank = H5Sget_simple_extent_dims(file_space.get(), dims, nullptr);
  std::vector<hsize_t> start(rank, 0), count(dims, dims + rank);
  start[0] = n;
  count[0] = 1;
  H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Handle mem_space(H5Screate_simple(rank, count.data(), nullptr), H5Sclose);
  check_status(H5Dwrite(dataset, memtype, mem_space.get(), file_space.get(), H5P_DEFAULT, row),
               "cannot write a frame");
}

}  // namespace

struct H5mdWriter::Impl {
  std::string path;
  H5mdLayout layout;
  Handle file;
  Handle step, time;                                          // shared by every time-dependent element
  Handle position, image, velocity, force, edges;             // value datasets
  std::vector<float> position_f32;
  bool broken = false;  // a write failed: nothing more goes to the file
  // The complete frames on disk, for the messages (kept here: reading `step` for them would cost
  // a pass over the whole dataset at every frame).
  hsize_t frames_kept = 0;
  int64_t first_step_kept = 0, last_step_kept = 0;

  void create(OpenMode mode);
  void reserve(int64_t step);
  void freeze();
  std::string kept() const;
  void open_append(int64_t first_step);
  Handle element(hid_t parent, const char *name, hid_t type, const std::vector<hsize_t> &row, bool create,
                 bool first);
};

Handle H5mdWriter::Impl::element(hid_t parent, const char *name, hid_t type, const std::vector<hsize_t> &row,
                                 bool create, bool first) {
  Handle g = group(parent, name, create);
  if (!create) return Handle(check(H5Dopen2(g.get(), "value", H5P_DEFAULT), std::string(name) + "/value missing"),
                             H5Dclose);
  if (first) {
    step = series(g.get(), "step", H5T_STD_I64LE, {}, false);
    time = series(g.get(), "time", H5T_IEEE_F64LE, {}, false);
    string_attribute(time.get(), "unit", {"ps"}, true);
  } else {
    // H5MD lets elements sampled together share one step and time dataset.
    std::string base = "/particles/" + layout.group + "/position/";
    check_status(H5Lcreate_hard(file.get(), (base + "step").c_str(), g.get(), "step", H5P_DEFAULT, H5P_DEFAULT),
                 "cannot link step");
    check_status(H5Lcreate_hard(file.get(), (base + "time").c_str(), g.get(), "time", H5P_DEFAULT, H5P_DEFAULT),
                 "cannot link time");
  }
  return series(g.get(), "value", type, row, true);
}

void H5mdWriter::Impl::create(OpenMode mode) {
  unsigned flags = mode == OpenMode::Overwrite ? H5F_ACC_TRUNC : H5F_ACC_EXCL;
  file = Handle(H5Fcreate(path.c_str(), flags, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (file.get() < 0) {
    std::string reason = library_reason();
    throw H5mdError("cannot create '" + path + "': " + (reason.empty() ? "unknown reason" : reason) +
                    "; write the trajectory to an existing directory you can write to");
  }
  const hsize_t n = static_cast<hsize_t>(layout.n_particles);
  {
    Handle h5md = group(file.get(), "h5md", true);
    numeric_attribute<int32_t>(h5md.get(), "version", H5T_NATIVE_INT32, {1, 1});
    Handle author = group(h5md.get(), "author", true);
    string_attribute(author.get(), "name", {"superionic user"}, true);
    Handle creator = group(h5md.get(), "creator", true);
    string_attribute(creator.get(), "name", {"superionic fix superionic/h5md (LAMMPS plugin)"}, true);
    string_attribute(creator.get(), "version", {layout.creator_version}, true);
  }
  Handle particles = group(file.get(), "particles", true);
  Handle g = group(particles.get(), layout.group.c_str(), true);
  hid_t float_type = layout.double_positions ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
  position = element(g.get(), "position", float_type, {n, 3}, true, true);
  string_attribute(position.get(), "unit", {"Angstrom"}, true);
  image = element(g.get(), "image", H5T_STD_I32LE, {n, 3}, true, false);
  if (layout.velocities) {
    velocity = element(g.get(), "velocity", H5T_IEEE_F64LE, {n, 3}, true, false);
    string_attribute(velocity.get(), "unit", {"Angstrom ps-1"}, true);
  }
  if (layout.forces) {
    // No H5MD unit attribute here: readers such as MDAnalysis know only kJ/mol-based force units and
    // refuse the file; /parameters/superionic/force_unit records it instead.
    force = element(g.get(), "force", H5T_IEEE_F64LE, {n, 3}, true, false);
  }
  {
    Handle box = group(g.get(), "box", true);
    numeric_attribute<int32_t>(box.get(), "dimension", H5T_NATIVE_INT32, {3});
    string_attribute(box.get(), "boundary", {"periodic", "periodic", "periodic"}, false);
    edges = element(box.get(), "edges", H5T_IEEE_F64LE, {3, 3}, true, false);
    string_attribute(edges.get(), "unit", {"Angstrom"}, true);
  }
  fixed_dataset(g.get(), "species", H5T_NATIVE_INT32, layout.species);
  fixed_dataset(g.get(), "id", H5T_NATIVE_INT64, layout.ids);
  if (!layout.charges.empty()) fixed_dataset(g.get(), "charge", H5T_NATIVE_DOUBLE, layout.charges);
  Handle parameters = group(file.get(), "parameters", true);
  Handle ours = group(parameters.get(), "superionic", true);
  if (!layout.type_names.empty()) string_attribute(ours.get(), "type_names", layout.type_names, false);
  string_attribute(ours.get(), "units", {"metal"}, true);
  string_attribute(ours.get(), "force_unit", {"eV Angstrom-1"}, true);
  string_attribute(ours.get(), "lammps_version", {layout.lammps_version}, true);
  numeric_attribute<double>(ours.get(), "timestep_ps", H5T_NATIVE_DOUBLE, {layout.timestep_ps});
  check_status(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "cannot flush");
}

void H5mdWriter::Impl::open_append(int64_t first_step) {
  file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  if (file.get() < 0) {
    std::string reason = library_reason();
    std::string fault = reason.find("truncated file") != std::string::npos
                            ? "the file is truncated (" + reason + ")"
                        : reason.find("signature") != std::string::npos ? "it is not an HDF5 file"
                                                                        : reason;
    throw H5mdError("cannot append to '" + path + "': " + (fault.empty() ? "unknown reason" : fault) +
                    "; give 'overwrite yes' to start it afresh, or another file name");
  }
  std::string base = "/particles/" + layout.group;
  Handle g(H5Gopen2(file.get(), base.c_str(), H5P_DEFAULT), H5Gclose);
  if (g.get() < 0) throw H5mdError("'" + path + "' has no particle group '" + layout.group + "' to append to");
  position = element(g.get(), "position", 0, {}, false, false);
  image = element(g.get(), "image", 0, {}, false, false);
  {
    Handle pos_group = group(g.get(), "position", false);
    step = Handle(check(H5Dopen2(pos_group.get(), "step", H5P_DEFAULT), "position/step missing"), H5Dclose);
    time = Handle(check(H5Dopen2(pos_group.get(), "time", H5P_DEFAULT), "position/time missing"), H5Dclose);
  }
  if (layout.velocities) velocity = element(g.get(), "velocity", 0, {}, false, false);
  if (layout.forces) force = element(g.get(), "force", 0, {}, false, false);
  {
    Handle box = group(g.get(), "box", false);
    edges = element(box.get(), "edges", 0, {}, false, false);
  }
  Handle space(H5Dget_space(position.get()), H5Sclose);
  hsize_t dims[3] = {0, 0, 0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  std::vector<int64_t> ids(dims[1]);
  Handle id_set(check(H5Dopen2(g.get(), "id", H5P_DEFAULT), "id dataset missing"), H5Dclose);
  if (!ids.empty()) H5Dread(id_set.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids.data());
  if (ids != layout.ids)
    throw H5mdError("'" + path + "' holds a different set of atoms (" + std::to_string(dims[1]) +
                    ") than this group (" + std::to_string(layout.n_particles) + "); use a new file");
  // Keep only frames before the step this run starts at: a resumed run rewrites the rest.
  hsize_t n = rows(step.get());
  std::vector<int64_t> steps(n);
  if (n) H5Dread(step.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps.data());
  hsize_t keep = static_cast<hsize_t>(std::lower_bound(steps.begin(), steps.end(), first_step) - steps.begin());
  for (const Handle *d : {&position, &image, &velocity, &force, &edges, &step, &time})
    if (d->get() >= 0) resize_rows(d->get(), std::min(keep, rows(d->get())));
  check_status(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "cannot flush");
  frames_kept = keep;
  if (keep) {
    first_step_kept = steps.front();
    last_step_kept = steps[keep - 1];
  }
}

H5mdWriter::H5mdWriter(const std::string &path, const H5mdLayout &layout, OpenMode mode, int64_t first_step)
    : impl_(new Impl) {
  // No flush at exit: a run stopped by an error (LAMMPS exits without destroying its fixes) keeps
  // the file exactly as the last complete frame's flush left it, instead of having the library
  // write whatever state it holds then. Only possible before the library's first use in the process.
  H5dont_atexit();
  // Errors are reported through exceptions with our messages, not printed by the library.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  impl_->path = path;
  impl_->layout = layout;
  bool exists = std::ifstream(path).good();
  if (mode == OpenMode::Append && exists) {
    impl_->open_append(first_step);
    return;
  }
  try {
    impl_->create(exists ? mode : OpenMode::Create);
  } catch (const H5mdError &e) {
    // A file this writer began and could not finish holds no frame: it goes, without another
    // write reaching the disk (the library would otherwise flush its half-made layout at exit).
    bool began = impl_->file.get() >= 0;
    if (began) {
      impl_->freeze();
      for (Handle *h : {&impl_->position, &impl_->image, &impl_->velocity, &impl_->force, &impl_->edges,
                        &impl_->step, &impl_->time, &impl_->file})
        h->reset();
      std::remove(path.c_str());
      throw H5mdError("cannot create '" + path + "': " + e.what() + "; nothing was kept: free space on its disk");
    }
    throw;
  }
}

H5mdWriter::~H5mdWriter() = default;

int64_t H5mdWriter::frames() const { return static_cast<int64_t>(rows(impl_->step.get())); }

namespace {

std::string kilobytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.0f KB", bytes / 1024.0);
  return text;
}

}  // namespace

std::string H5mdWriter::Impl::kept() const {
  const hsize_t n = frames_kept;
  if (n == 0) return "the file keeps no complete frame";
  return "the file keeps its " + std::to_string(n) + " complete frame" + (n == 1 ? "" : "s") + " (steps " +
         std::to_string(first_step_kept) + "-" + std::to_string(last_step_kept) + ")";
}

// Room for one frame is made sure of before any byte of it is written: HDF5 defers chunk and
// metadata writes to the flush, and a flush that fails half-way leaves metadata pointing past the
// end of the file, unreadable. The frame's uncompressed size plus a quarter and 64 KB (index
// nodes, object headers, a new 1024-row chunk of step and time) is checked against the file-size limit (ulimit -f) and reserved on the disk
// (fallocate without changing the file's size; where the file system cannot, its free space is
// checked instead). A frame that would not fit stops the run with the file as the last flush left it.
void H5mdWriter::Impl::reserve(int64_t step_now) {
  const double n = static_cast<double>(layout.n_particles);
  const double frame = n * ((layout.double_positions ? 24 : 12) + 12 + (layout.velocities ? 24 : 0) +
                            (layout.forces ? 24 : 0)) + 9 * 8 + 16;
  const off_t needed = static_cast<off_t>(1.25 * frame) + (64 << 10);
  hsize_t eof = 0;
  H5Fget_filesize(file.get(), &eof);
  auto stop = [&](const std::string &fault, const std::string &fix = "free space on its disk") {
    throw H5mdError("cannot write the frame of step " + std::to_string(step_now) + " to '" + path + "': " + fault +
                    "; " + kept() + ": " + fix + ", then continue from the last restart file with 'append yes' "
                    "(superionic md: run the same command again)");
  };
  struct rlimit limit {};
  if (getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      static_cast<double>(eof) + needed > static_cast<double>(limit.rlim_cur))
    stop("it would pass the file-size limit (ulimit -f) of " + kilobytes(static_cast<double>(limit.rlim_cur)) +
             " (the file has " + kilobytes(static_cast<double>(eof)) + ", a frame needs up to " +
             kilobytes(static_cast<double>(needed)) + ")",
         "raise the limit");
  int *fd = nullptr;
  if (H5Fget_vfd_handle(file.get(), H5P_DEFAULT, reinterpret_cast<void **>(&fd)) < 0 || !fd) return;
#ifdef __linux__
  if (fallocate(*fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(eof), needed) == 0) return;
  const int error = errno;
  if (error == ENOSPC || error == EDQUOT)
    stop(std::string(std::strerror(error)) + " (a frame needs up to " + kilobytes(static_cast<double>(needed)) + ")");
  if (error == EFBIG)
    stop("it would pass the largest file size allowed (" + std::string(std::strerror(error)) + ")",
         "raise the limit or write to another file system");
#endif
  struct statvfs disk {};
  if (fstatvfs(*fd, &disk) == 0 &&
      static_cast<double>(disk.f_bavail) * static_cast<double>(disk.f_frsize) < static_cast<double>(needed))
    stop("No space left on device (" + kilobytes(static_cast<double>(disk.f_bavail) * disk.f_frsize) +
         " free, a frame needs up to " + kilobytes(static_cast<double>(needed)) + ")");
}

// After a failed write the library's view of the file is ahead of the disk: its descriptor is
// pointed at an anonymous in-memory file, so that nothing it flushes later (at exit, too) can
// overwrite what the last good flush left. (Not /dev/null: the library truncates the file when it
// closes it, which /dev/null refuses, and HDF5 1.10 then crashes at exit on the half-closed file.)
void H5mdWriter::Impl::freeze() {
  broken = true;
  int *fd = nullptr;
  if (H5Fget_vfd_handle(file.get(), H5P_DEFAULT, reinterpret_cast<void **>(&fd)) < 0 || !fd) return;
#ifdef __linux__
  int sink = ::memfd_create("superionic-h5md-discarded", 0);
#else
  int sink = -1;
#endif
  if (sink < 0) sink = ::open("/dev/null", O_RDWR);
  if (sink >= 0) {
    ::dup2(sink, *fd);
    ::close(sink);
  }
}

void H5mdWriter::write_frame(int64_t step, double time, const double *edges, const double *positions,
                             const int32_t *images, const double *velocities, const double *forces) {
  auto &d = *impl_;
  if (d.broken) throw H5mdError("'" + d.path + "' is closed after a failed write");
  d.reserve(step);
  try {
    const size_t n3 = static_cast<size_t>(d.layout.n_particles) * 3;
    if (d.layout.double_positions) {
      append_row(d.position.get(), H5T_NATIVE_DOUBLE, positions);
    } else {
      d.position_f32.assign(positions, positions + n3);
      append_row(d.position.get(), H5T_NATIVE_FLOAT, d.position_f32.data());
    }
    append_row(d.image.get(), H5T_NATIVE_INT32, images);
    if (d.layout.velocities) append_row(d.velocity.get(), H5T_NATIVE_DOUBLE, velocities);
    if (d.layout.forces) append_row(d.force.get(), H5T_NATIVE_DOUBLE, forces);
    append_row(d.edges.get(), H5T_NATIVE_DOUBLE, edges);
    append_row(d.time.get(), H5T_NATIVE_DOUBLE, &time);
    // The step row goes last: readers count frames by it, so they never see a half-written frame.
    append_row(d.step.get(), H5T_NATIVE_INT64, &step);
    check_status(H5Fflush(d.file.get(), H5F_SCOPE_GLOBAL), "cannot flush");
  } catch (const H5mdError &e) {
    d.freeze();
    throw H5mdError("cannot write the frame of step " + std::to_string(step) + " to '" + d.path + "': " + e.what() +
                    "; before it " + d.kept() + ": check the disk, then continue from the last restart file " +
                    "with 'append yes'");
  }
  if (d.frames_kept++ == 0) d.first_step_kept = step;
  d.last_step_kept = step;
}

}  // namespace superionic
