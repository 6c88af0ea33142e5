#include "scheduler/api/json.h"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value_stack.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "scheduler/api/decode.h"

namespace gsched::api {
namespace {

namespace json = boost::json;
using internal::AppendIndexToPath;
using internal::AppendKeyToPath;
using internal::Printable;

// Builds the value exactly like `boost::json::parser` does (through a `value_stack`) and, on the
// side, remembers a 64-bit hash of every key of each open object. When an object closes, its key
// hashes are checked for a repeat. A repeat is only a candidate: the caller confirms it with
// `ExactDuplicateFinder`, which compares the key strings and knows the path. The fast path thus
// costs one hash per key and a small comparison per object, and never copies a key.
class DuplicateKeyHandler {
 public:
  static constexpr size_t max_object_size = json::object::max_size();
  static constexpr size_t max_array_size = json::array::max_size();
  static constexpr size_t max_key_size = json::string::max_size();
  static constexpr size_t max_string_size = json::string::max_size();

  // `buffer` gives the value stack its first memory, as `boost::json::parse` does.
  DuplicateKeyHandler(unsigned char* buffer, size_t size) : st(json::storage_ptr(), buffer, size) {}

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    frames_.push_back(hashes_.size());
    return true;
  }
  bool on_object_end(size_t n, json::error_code& ec) {
    size_t begin = frames_.back();
    frames_.pop_back();
    bool repeated = HasRepeat(begin);
    hashes_.resize(begin);
    if (repeated) {
      // Stop here; the caller finds out which key it was.
      candidate_duplicate_ = true;
      ec = json::error::syntax;
      return false;
    }
    st.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(size_t n, json::error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, size_t, json::error_code&) {
    // Only keys split by escapes or buffer boundaries come in parts: rare, so a copy is fine.
    key_part_.append(s.data(), s.size());
    st.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, size_t, json::error_code&) {
    if (key_part_.empty()) {
      hashes_.push_back(std::hash<std::string_view>()(std::string_view(s.data(), s.size())));
    } else {
      key_part_.append(s.data(), s.size());
      hashes_.push_back(std::hash<std::string_view>()(key_part_));
      key_part_.clear();
    }
    st.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, size_t, json::error_code&) {
    st.push_string(s);
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t i, json::string_view, json::error_code&) {
    st.push_int64(i);
    return true;
  }
  bool on_uint64(uint64_t u, json::string_view, json::error_code&) {
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view, json::error_code&) {
    st.push_double(d);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  bool candidate_duplicate() const { return candidate_duplicate_; }

  json::value_stack st;

 private:
  bool HasRepeat(size_t begin) {
    auto first = hashes_.begin() + static_cast<std::ptrdiff_t>(begin);
    auto last = hashes_.end();
    size_t n = hashes_.size() - begin;
    if (n <= 16) {
      // Typical objects are small: pairwise is cheaper than sorting.
      for (auto i = first; i != last; ++i) {
        for (auto j = i + 1; j != last; ++j) {
          if (*i == *j)
            return true;
        }
      }
      return false;
    }
    // The hashes are discarded afterwards, so they may be sorted in place.
    std::sort(first, last);
    return std::adjacent_find(first, last) != last;
  }

  std::vector<size_t> frames_;    // Start of each open object's hashes in `hashes_`.
  std::vector<uint64_t> hashes_;  // Key hashes of all open objects, innermost last.
  std::string key_part_;          // The pieces of a key delivered in parts.
  bool candidate_duplicate_ = false;
};

// The slow, exact check, run only after `DuplicateKeyHandler` saw a repeated hash: keeps the
// decoded keys of every open object and the path to the current position, and stops at the first
// key seen twice in one object.
class ExactDuplicateFinder {
 public:
  static constexpr size_t max_object_size = json::object::max_size();
  static constexpr size_t max_array_size = json::array::max_size();
  static constexpr size_t max_key_size = json::string::max_size();
  static constexpr size_t max_string_size = json::string::max_size();

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    OnValue();
    frames_.push_back(Frame{true, 0, {}, {}});
    return true;
  }
  bool on_object_end(size_t, json::error_code&) {
    frames_.pop_back();
    return true;
  }
  bool on_array_begin(json::error_code&) {
    OnValue();
    frames_.push_back(Frame{false, 0, {}, {}});
    return true;
  }
  bool on_array_end(size_t, json::error_code&) {
    frames_.pop_back();
    return true;
  }
  bool on_key_part(json::string_view s, size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, size_t, json::error_code& ec) {
    key_.append(s.data(), s.size());
    Frame& f = frames_.back();
    f.key = key_;
    key_.clear();
    if (!f.keys.insert(f.key).second) {
      path_ = BuildPath();
      duplicate_key_ = f.key;
      ec = json::error::syntax;
      return false;
    }
    return true;
  }
  bool on_string_part(json::string_view, size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, size_t, json::error_code&) { return OnValue(); }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t, json::string_view, json::error_code&) { return OnValue(); }
  bool on_uint64(uint64_t, json::string_view, json::error_code&) { return OnValue(); }
  bool on_double(double, json::string_view, json::error_code&) { return OnValue(); }
  bool on_bool(bool, json::error_code&) { return OnValue(); }
  bool on_null(json::error_code&) { return OnValue(); }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  // The path of the first repeated key, or empty when there is none.
  const std::string& path() const { return path_; }
  const std::string& duplicate_key() const { return duplicate_key_; }

 private:
  struct Frame {
    bool is_object;
    size_t next_index;  // Arrays: index of the next element.
    std::string key;    // Objects: the current key.
    std::unordered_set<std::string> keys;
  };

  bool OnValue() {
    if (!frames_.empty() && !frames_.back().is_object)
      ++frames_.back().next_index;
    return true;
  }

  std::string BuildPath() const {
    std::string path;
    for (const Frame& f : frames_) {
      if (f.is_object) {
        AppendKeyToPath(path, f.key);
      } else {
        AppendIndexToPath(path, f.next_index - 1);
      }
    }
    return path;
  }

  std::vector<Frame> frames_;
  std::string key_;
  std::string path_;
  std::string duplicate_key_;
};

json::parse_options Options(const JsonLimits& limits) {
  json::parse_options opt;
  opt.max_depth = limits.max_depth;
  return opt;
}

Status SyntaxError(size_t offset, const json::error_code& ec, const JsonLimits& limits) {
  if (ec == json::error::too_deep) {
    return Status::InvalidArgument("invalid JSON at byte " + std::to_string(offset) +
                                   ": nesting deeper than " + std::to_string(limits.max_depth));
  }
  return Status::InvalidArgument("invalid JSON at byte " + std::to_string(offset) + ": " +
                                 ec.message());
}

}  // namespace

Result<json::value> ParseJson(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return Status::ResourceExhausted("JSON text of " + std::to_string(text.size()) +
                                     " bytes is over the limit of " +
                                     std::to_string(limits.max_bytes) + " bytes");
  }
  unsigned char stack_buffer[BOOST_JSON_STACK_BUFFER_SIZE];
  json::basic_parser<DuplicateKeyHandler> parser(Options(limits), stack_buffer,
                                                 sizeof(stack_buffer));
  json::error_code ec;
  size_t n = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && n < text.size()) {
    return Status::InvalidArgument("invalid JSON at byte " + std::to_string(n) +
                                   ": unexpected data after the value");
  }
  if (ec && !parser.handler().candidate_duplicate())
    return SyntaxError(n, ec, limits);
  if (!ec)
    return parser.handler().st.release();

  // A repeated key hash: find the real duplicate, with its path.
  json::basic_parser<ExactDuplicateFinder> exact(Options(limits));
  json::error_code exact_ec;
  exact.write_some(false, text.data(), text.size(), exact_ec);
  if (!exact.handler().path().empty())
    return Status::InvalidArgument(
        "duplicate key '" + Printable(exact.handler().duplicate_key()) + "'",
        exact.handler().path());
  // Two different keys with equal 64-bit hashes: the text is fine after all.
  json::value value = json::parse(json::string_view(text.data(), text.size()), exact_ec,
                                  json::storage_ptr(), Options(limits));
  if (exact_ec)
    return SyntaxError(0, exact_ec, limits);
  return value;
}

}  // namespace gsched::api
