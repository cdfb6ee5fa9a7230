#include "metadata.h"

#include <cctype>
#include <cstdlib>
#include <map>
#include <sstream>

namespace superionic {
namespace {

// The metadata is a flat JSON object whose values are strings, numbers, booleans, null, arrays of
// strings or arrays of numbers. This reader accepts exactly that subset and reports anything else
// as malformed.
struct Value {
  enum class Kind { String, Number, Bool, Null, StringArray, NumberArray } kind = Kind::Null;
  std::string text;
  double number = 0.0;
  std::vector<std::string> items;
  std::vector<double> numbers;
};

class FlatJsonReader {
 public:
  FlatJsonReader(const std::string &text, const std::string &source) : s_(text), source_(source) {}

  std::map<std::string, Value> read_object() {
    std::map<std::string, Value> out;
    expect('{');
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return out;
    }
    while (true) {
      std::string key = read_string();
      expect(':');
      out[key] = read_value();
      skip_space();
      char c = next();
      if (c == '}') break;
      if (c != ',') fail("expected ',' or '}'");
    }
    skip_space();
    if (pos_ != s_.size()) fail("trailing characters after the object");
    return out;
  }

 private:
  const std::string &s_;
  const std::string &source_;
  size_t pos_ = 0;

  [[noreturn]] void fail(const std::string &what) const {
    throw ModelError(source_ + ": malformed " + kMetadataName + " (" + what + " at character " +
                     std::to_string(pos_) + "); re-export the model with superionic export");
  }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  char next() {
    if (pos_ >= s_.size()) fail("unexpected end");
    return s_[pos_++];
  }
  void expect(char c) {
    skip_space();
    if (next() != c) fail(std::string("expected '") + c + "'");
  }
  std::string read_string() {
    expect('"');
    std::string out;
    while (true) {
      char c = next();
      if (c == '"') return out;
      if (c == '\\') {
        char e = next();
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          default: fail("unsupported escape sequence");
        }
      } else {
        out += c;
      }
    }
  }
  Value read_value() {
    skip_space();
    Value v;
    char c = peek();
    if (c == '"') {
      v.kind = Value::Kind::String;
      v.text = read_string();
    } else if (c == '[') {
      ++pos_;
      v.kind = Value::Kind::StringArray;
      skip_space();
      if (peek() == ']') {
        ++pos_;
        return v;
      }
      // The first element decides: an array holds strings or numbers, never both.
      if (peek() != '"') v.kind = Value::Kind::NumberArray;
      while (true) {
        if (v.kind == Value::Kind::StringArray)
          v.items.push_back(read_string());
        else
          v.numbers.push_back(read_number());
        skip_space();
        char d = next();
        if (d == ']') break;
        if (d != ',') fail("expected ',' or ']'");
      }
    } else if (s_.compare(pos_, 4, "true") == 0 || s_.compare(pos_, 5, "false") == 0) {
      v.kind = Value::Kind::Bool;
      v.number = (c == 't') ? 1.0 : 0.0;
      pos_ += (c == 't') ? 4 : 5;
    } else if (s_.compare(pos_, 4, "null") == 0) {
      pos_ += 4;
    } else {
      v.number = read_number();
      v.kind = Value::Kind::Number;
    }
    return v;
  }
  double read_number() {
    skip_space();
    const char *begin = s_.c_str() + pos_;
    char *end = nullptr;
    double number = std::strtod(begin, &end);
    if (end == begin) fail("expected a value");
    pos_ += static_cast<size_t>(end - begin);
    return number;
  }
};

const Value &require(const std::map<std::string, Value> &fields, const std::string &key,
                     Value::Kind kind, const std::string &source) {
  auto it = fields.find(key);
  if (it == fields.end() || it->second.kind != kind)
    throw ModelError(source + ": metadata field '" + key +
                     "' is missing or has the wrong type; re-export the model with superionic export");
  return it->second;
}

// The optional distance floors: both arrays S x S and symmetric, floors positive and below the
// closest distances they derive from, or neither array (a null or absent field).
void read_floors(const std::map<std::string, Value> &fields, ModelMetadata &meta, const std::string &source) {
  auto closest = fields.find("pair_closest_A");
  auto floor = fields.find("pair_floor_A");
  auto factor = fields.find("floor_factor");
  auto given = [&](std::map<std::string, Value>::const_iterator it) {
    return it != fields.end() && it->second.kind != Value::Kind::Null;
  };
  if (!given(closest) && !given(floor)) return;
  const std::string fix = "; re-export the model with superionic export";
  const size_t n = meta.species.size();
  for (auto it : {closest, floor}) {
    if (!given(it) || it->second.kind != Value::Kind::NumberArray || it->second.numbers.size() != n * n)
      throw ModelError(source + ": metadata needs both pair_closest_A and pair_floor_A as arrays of " +
                       std::to_string(n * n) + " numbers (species x species)" + fix);
  }
  if (!given(factor) || factor->second.kind != Value::Kind::Number || !(factor->second.number > 0.0) ||
      factor->second.number > 1.0)
    throw ModelError(source + ": metadata floor_factor is missing or not in (0, 1]" + fix);
  meta.pair_closest = closest->second.numbers;
  meta.pair_floor = floor->second.numbers;
  meta.floor_factor = factor->second.number;
  for (size_t a = 0; a < n; a++)
    for (size_t b = 0; b < n; b++) {
      const double f = meta.pair_floor[a * n + b], c = meta.pair_closest[a * n + b];
      if (!(f > 0.0) || f > c || f != meta.pair_floor[b * n + a] || c != meta.pair_closest[b * n + a])
        throw ModelError(source + ": metadata floor of " + meta.species[a] + "-" + meta.species[b] +
                         " is not positive, above the closest distance, or not symmetric" + fix);
    }
}

}  // namespace

ModelMetadata parse_metadata(const std::string &json, const std::string &source) {
  if (json.empty())
    throw ModelError(source + ": contains no " + std::string(kMetadataName) +
                     " metadata; export it with superionic export");
  auto fields = FlatJsonReader(json, source).read_object();
  using K = Value::Kind;
  ModelMetadata meta;
  meta.json = json;
  meta.format_version = static_cast<int>(require(fields, "format_version", K::Number, source).number);
  if (meta.format_version > kMetadataFormatVersion)
    throw ModelError(source + ": metadata format version " + std::to_string(meta.format_version) +
                     " is newer than this build of superionic reads (" +
                     std::to_string(kMetadataFormatVersion) + "); upgrade superionic");
  if (meta.format_version < 1)
    throw ModelError(source + ": metadata format version " + std::to_string(meta.format_version) +
                     " is invalid; re-export the model with superionic export");
  meta.model_kind = require(fields, "model_kind", K::String, source).text;
  meta.species = require(fields, "species", K::StringArray, source).items;
  meta.cutoff = require(fields, "cutoff", K::Number, source).number;
  meta.receptive_field = require(fields, "receptive_field", K::Number, source).number;
  meta.dtype = require(fields, "dtype", K::String, source).text;
  meta.units = require(fields, "units", K::String, source).text;
  meta.device = require(fields, "device", K::String, source).text;
  if (meta.species.empty()) throw ModelError(source + ": metadata lists no species");
  if (!(meta.cutoff > 0.0))
    throw ModelError(source + ": metadata cutoff " + std::to_string(meta.cutoff) + " is not positive");
  if (meta.receptive_field < meta.cutoff)
    throw ModelError(source + ": metadata receptive_field is smaller than the cutoff");
  if (meta.dtype != "float32" && meta.dtype != "float64")
    throw ModelError(source + ": metadata dtype '" + meta.dtype + "' is not float32 or float64");
  if (meta.units != "metal")
    throw ModelError(source + ": model units are '" + meta.units + "'; superionic models use metal units");
  read_floors(fields, meta, source);
  return meta;
}

}  // namespace superionic
