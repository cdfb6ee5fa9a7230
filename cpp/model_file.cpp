#include "model_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "metadata.h"

namespace superionic {
namespace {

constexpr std::uint64_t kMaxEntries = 1000000;       // a model or checkpoint holds hundreds at most
constexpr std::uint64_t kPickleWindow = 1u << 20;    // the keys of a checkpoint's dict come first

struct Entry {
  std::string name;
  std::uint16_t method = 0;
  std::uint64_t size = 0;
  std::uint64_t local_offset = 0;
};

std::uint64_t le(const std::string &b, std::size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

bool read_at(std::ifstream &in, std::uint64_t offset, std::uint64_t n, std::string &out) {
  out.assign(n, '\0');
  in.clear();
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(&out[0], static_cast<std::streamsize>(n));
  return static_cast<std::uint64_t>(in.gcount()) == n;
}

bool valid_utf8(const std::string &s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (extra < 0) return false;
    if (i + extra >= s.size() && extra > 0) return true;  // a character cut by the read window
    for (int k = 1; k <= extra; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += extra + 1;
  }
  return true;
}

std::string sniff(const std::string &head) {
  if (head.compare(0, 8, "\x89HDF\r\n\x1a\n") == 0) return "it is an HDF5 file, not a zip archive";
  if (head.compare(0, 2, "\x1f\x8b") == 0) return "it is a gzip file, not a zip archive";
  if (head.size() > 1 && static_cast<unsigned char>(head[0]) == 0x80 && head[1] >= 2 && head[1] <= 5)
    return "it is a bare pickle (legacy torch.save format), not a zip archive";
  if (head.find('\0') == std::string::npos && valid_utf8(head)) return "it is a text file, not a zip archive";
  return "it is not a zip archive";
}

// The central directory of a zip archive (zip64 included); false if it cannot be found or parsed.
bool read_directory(std::ifstream &in, std::uint64_t file_size, std::vector<Entry> &entries) {
  std::uint64_t tail_size = std::min<std::uint64_t>(file_size, 65535 + 22);
  std::string tail;
  if (!read_at(in, file_size - tail_size, tail_size, tail)) return false;
  std::size_t eocd = tail.rfind(std::string("PK\x05\x06", 4));
  if (eocd == std::string::npos || eocd + 22 > tail.size()) return false;
  std::uint64_t count = le(tail, eocd + 10, 2);
  std::uint64_t cd_size = le(tail, eocd + 12, 4);
  std::uint64_t cd_offset = le(tail, eocd + 16, 4);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    if (eocd < 20 || tail.compare(eocd - 20, 4, std::string("PK\x06\x07", 4)) != 0) return false;
    std::string z64;
    if (!read_at(in, le(tail, eocd - 20 + 8, 8), 56, z64) || z64.compare(0, 4, std::string("PK\x06\x06", 4)) != 0)
      return false;
    count = le(z64, 32, 8);
    cd_size = le(z64, 40, 8);
    cd_offset = le(z64, 48, 8);
  }
  if (count > kMaxEntries || cd_offset > file_size || cd_size > file_size - cd_offset) return false;
  std::string cd;
  if (!read_at(in, cd_offset, cd_size, cd)) return false;
  std::size_t at = 0;
  for (std::uint64_t k = 0; k < count; ++k) {
    if (at + 46 > cd.size() || cd.compare(at, 4, std::string("PK\x01\x02", 4)) != 0) return false;
    Entry e;
    e.method = static_cast<std::uint16_t>(le(cd, at + 10, 2));
    e.size = le(cd, at + 24, 4);
    std::size_t name_len = le(cd, at + 28, 2), extra_len = le(cd, at + 30, 2), comment_len = le(cd, at + 32, 2);
    e.local_offset = le(cd, at + 42, 4);
    if (at + 46 + name_len + extra_len + comment_len > cd.size()) return false;
    e.name = cd.substr(at + 46, name_len);
    // zip64 extra field: the 64-bit values of those fields that read 0xFFFFFFFF, in this order.
    std::size_t x = at + 46 + name_len, x_end = x + extra_len;
    while (x + 4 <= x_end) {
      std::uint64_t id = le(cd, x, 2), len = le(cd, x + 2, 2);
      if (id == 1) {
        std::size_t v = x + 4;
        if (e.size == 0xFFFFFFFF && v + 8 <= x_end) e.size = le(cd, v, 8), v += 8;
        if (le(cd, at + 20, 4) == 0xFFFFFFFF && v + 8 <= x_end) v += 8;  // compressed size
        if (e.local_offset == 0xFFFFFFFF && v + 8 <= x_end) e.local_offset = le(cd, v, 8);
      }
      x += 4 + len;
    }
    entries.push_back(e);
    at += 46 + name_len + extra_len + comment_len;
  }
  return true;
}

// The first bytes of a stored (uncompressed) entry, as torch writes them; empty otherwise.
std::string stored_prefix(std::ifstream &in, const Entry &e) {
  std::string local, data;
  if (e.method != 0 || !read_at(in, e.local_offset, 30, local) ||
      local.compare(0, 4, std::string("PK\x03\x04", 4)) != 0)
    return "";
  std::uint64_t start = e.local_offset + 30 + le(local, 26, 2) + le(local, 28, 2);
  if (!read_at(in, start, std::min(e.size, kPickleWindow), data)) return "";
  return data;
}

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

ModelFileInfo classify(std::ifstream &in, const std::vector<Entry> &entries) {
  auto has = [&](const std::string &suffix) {
    return std::any_of(entries.begin(), entries.end(), [&](const Entry &e) { return ends_with(e.name, suffix); });
  };
  auto under = [&](const std::string &part) {
    return std::any_of(entries.begin(), entries.end(),
                       [&](const Entry &e) { return e.name.find(part) != std::string::npos; });
  };
  using K = ModelFileKind;
  if (has("/archive_format")) {
    if (under("/data/aotinductor/")) return {K::AOTInductor, "it is an AOTInductor package", false};
    return {K::ExportedProgram, "it is a torch.export program without AOTInductor code", false};
  }
  if (has("/constants.pkl") && under("/code/")) {
    if (has(std::string("/extra/") + kMetadataName)) return {K::TorchScript, "it is a TorchScript model", true};
    if (has("/extra/nequip_version") || has("/extra/r_max"))
      return {K::TorchScript, "it is a nequip/allegro TorchScript model, for pair_style nequip or allegro", false};
    return {K::TorchScript, std::string("it is a TorchScript model without ") + kMetadataName + " inside", false};
  }
  if (has("/.data/extern_modules")) {
    if (has("/model/package_metadata.txt"))
      return {K::NequipPackage, "it is a nequip package (.nequip.zip), not compiled", false};
    return {K::TorchPackage, "it is a torch.package archive", false};
  }
  for (const Entry &e : entries) {
    if (!ends_with(e.name, "/data.pkl") || std::count(e.name.begin(), e.name.end(), '/') != 1) continue;
    // Keys of the pickled dict appear as plain strings; nothing is unpickled here.
    std::string text = stored_prefix(in, e);
    auto contains = [&](const char *word) { return text.find(word) != std::string::npos; };
    if (contains("data_hash") && contains("optimizer") && contains("ema"))
      return {K::Checkpoint, "it is a superionic training checkpoint", false};
    if (contains("pytorch-lightning_version"))
      return {K::Lightning, "it is a PyTorch Lightning checkpoint, e.g. from nequip-train", false};
    return {K::TorchSave, "it is a torch.save file, not an exported model", false};
  }
  return {K::OtherZip, "it is a zip archive but no torch file", false};
}

}  // namespace

ModelFileInfo identify_model_file(const std::string &path) {
  using K = ModelFileKind;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return {K::Missing, "no such file", false};
  if (S_ISDIR(st.st_mode)) return {K::Directory, "it is a directory", false};
  std::ifstream in(path, std::ios::binary);
  if (!in) return {K::Missing, "it cannot be read", false};
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::uint64_t>(in.tellg());
  if (size == 0) return {K::Empty, "it is empty", false};
  std::string head;
  read_at(in, 0, std::min<std::uint64_t>(size, 4096), head);
  if (head.compare(0, 2, "PK") != 0) return {K::NotZip, sniff(head), false};
  std::vector<Entry> entries;
  if (!read_directory(in, size, entries)) return {K::DamagedZip, "it is a truncated or damaged zip archive", false};
  return classify(in, entries);
}

void require_exported_model(const std::string &path) {
  ModelFileInfo info = identify_model_file(path);
  bool exported = info.kind == ModelFileKind::AOTInductor || (info.kind == ModelFileKind::TorchScript && info.metadata);
  if (!exported) {
    std::string fix = info.kind == ModelFileKind::Checkpoint
                          ? "export it with `superionic export " + path + " -o model.pt`"
                          : "export one with `superionic export`";
    throw ModelError(path + " is not a superionic model (" + info.description + "); " + fix);
  }
  std::string wanted = info.kind == ModelFileKind::AOTInductor ? ".pt2" : ".pt";
  if (!ends_with(path, wanted)) {
    std::string name = path.substr(path.find_last_of('/') + 1);
    std::size_t dot = name.find_last_of('.');
    std::string renamed = (dot == std::string::npos || dot == 0 ? name : name.substr(0, dot)) + wanted;
    throw ModelError(path + " holds " + info.description.substr(6) + " but its name does not end in " + wanted +
                     "; rename it to " + renamed);
  }
}

int weights_format_version(const std::string &text) {
  const std::string header = std::string(kWeightsHeader) + " ";
  std::string first = text.substr(0, text.find('\n'));
  if (first.compare(0, header.size(), header) != 0) return -1;
  const char *begin = first.c_str() + header.size();
  char *end = nullptr;
  long version = std::strtol(begin, &end, 10);
  if (end == begin || *end != '\0' || version < 0 || version > 1000000) return -1;
  return static_cast<int>(version);
}

std::vector<NamedArray> parse_weights_text(const std::string &text, const std::string &source) {
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  auto fail = [&](const std::string &what) {
    throw ModelError(source + ": " + kWeightsEntry + " line " + std::to_string(line_no) + ": " + what +
                     "; export the model again with superionic export");
  };
  std::getline(in, line);
  ++line_no;
  if (weights_format_version(line) != kWeightsFormatVersion) fail("not a format " + std::to_string(kWeightsFormatVersion) + " header");
  std::vector<NamedArray> arrays;
  while (std::getline(in, line)) {
    ++line_no;
    std::istringstream words(line);
    std::string word;
    words >> word;
    if (word == "end") {
      std::size_t count = 0;
      if (!(words >> count) || count != arrays.size())
        fail("the end line does not count the " + std::to_string(arrays.size()) + " tensors read");
      return arrays;
    }
    if (word != "tensor") fail("expected 'tensor' or 'end'");
    NamedArray a;
    int ndim = -1;
    if (!(words >> a.name >> ndim) || ndim < 0 || ndim > 8) fail("expected 'tensor <name> <ndim> <dims...>'");
    std::size_t numel = 1;
    for (int d = 0; d < ndim; ++d) {
      int64_t n = -1;
      if (!(words >> n) || n < 0 || n > (int64_t{1} << 32)) fail("a dimension of " + a.name + " is not a size");
      a.shape.push_back(n);
      numel *= static_cast<std::size_t>(n);
    }
    if (words >> word) fail("trailing words after the dimensions of " + a.name);
    if (!std::getline(in, line)) fail("the values of " + a.name + " are missing");
    ++line_no;
    a.values.reserve(numel);
    const char *at = line.c_str();
    while (true) {
      while (*at == ' ') ++at;
      if (*at == '\0') break;
      char *end = nullptr;
      double v = std::strtod(at, &end);  // Python's repr: shortest round-trip, read back exactly
      if (end == at || (*end != ' ' && *end != '\0') || !std::isfinite(v)) fail("a value of " + a.name + " is not a finite number");
      a.values.push_back(v);
      at = end;
    }
    if (a.values.size() != numel)
      fail(a.name + " has " + std::to_string(a.values.size()) + " values for " + std::to_string(numel) + " elements");
    arrays.push_back(std::move(a));
  }
  fail("no end line (the entry is truncated)");
  return arrays;
}

}  // namespace superionic
