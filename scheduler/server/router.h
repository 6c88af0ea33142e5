// `Router`: the API's route table. Each route is a method, a path pattern such as
// "/v1/jobs/{id}/logs" (literal segments and `{name}` parameters, one segment each) and a handler;
// `Find` picks the route a request names and hands its parameters over by name. No I/O and no
// state of its own beyond the table: built once at start, then read from any thread.
//
// Paths are matched segment by segment after percent-decoding (`HttpRequest::path`); empty
// segments ("//") are ignored, as the service always did. A literal segment wins over a parameter
// at the same place ("/v1/jobs/{id}" does not take "/v1/jobs/stats" when that is a route of its
// own), whatever the order the routes were added in.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scheduler/common/status.h"

namespace gsched::server {

// The path's segments: "/v1//jobs/7" -> {"v1", "jobs", "7"}.
std::vector<std::string_view> PathSegments(std::string_view path);

// A request's parameters by name, pointing into the matched path.
class RouteParams {
 public:
  std::string_view Get(std::string_view name) const;
  void Add(std::string_view name, std::string_view value) { values_.emplace_back(name, value); }

 private:
  std::vector<std::pair<std::string_view, std::string_view>> values_;
};

template <typename Handler>
class Router {
 public:
  // Adds a route. `pattern` starts with '/'; a parameter segment is "{name}". A pattern given twice
  // for one method is a programming error: the first one stays and `Add` says so.
  Status Add(std::string method, std::string_view pattern, Handler handler) {
    Route r{std::move(method), {}, std::move(handler)};
    for (std::string_view s : PathSegments(pattern)) {
      bool param = s.size() >= 2 && s.front() == '{' && s.back() == '}';
      r.segments.push_back({std::string(param ? s.substr(1, s.size() - 2) : s), param});
    }
    for (const Route& old : routes_) {
      if (old.method == r.method && SameShape(old, r))
        return Status::AlreadyExists("route " + r.method + " " + std::string(pattern));
    }
    routes_.push_back(std::move(r));
    return Status::Ok();
  }

  struct Match {
    const Handler* handler = nullptr;
    RouteParams params;
  };
  // The route for `method` and `path`, the most literal one when several match; nullopt when
  // none does (the service answers 404 "no route").
  std::optional<Match> Find(std::string_view method, std::string_view path) const {
    std::vector<std::string_view> segments = PathSegments(path);
    const Route* best = nullptr;
    size_t best_literals = 0;
    for (const Route& r : routes_) {
      if (r.method != method || r.segments.size() != segments.size())
        continue;
      size_t literals = 0;
      bool ok = true;
      for (size_t i = 0; ok && i < segments.size(); ++i) {
        if (!r.segments[i].param) {
          ok = r.segments[i].text == segments[i];
          ++literals;
        }
      }
      if (ok && (best == nullptr || literals > best_literals)) {
        best = &r;
        best_literals = literals;
      }
    }
    if (best == nullptr)
      return std::nullopt;
    Match m;
    m.handler = &best->handler;
    for (size_t i = 0; i < segments.size(); ++i) {
      if (best->segments[i].param)
        m.params.Add(best->segments[i].text, segments[i]);
    }
    return m;
  }

  size_t size() const { return routes_.size(); }

 private:
  struct Segment {
    std::string text;  // The literal, or the parameter's name.
    bool param = false;
  };
  struct Route {
    std::string method;
    std::vector<Segment> segments;
    Handler handler;
  };
  static bool SameShape(const Route& a, const Route& b) {
    if (a.segments.size() != b.segments.size())
      return false;
    for (size_t i = 0; i < a.segments.size(); ++i) {
      if (a.segments[i].param != b.segments[i].param ||
          (!a.segments[i].param && a.segments[i].text != b.segments[i].text))
        return false;
    }
    return true;
  }

  std::vector<Route> routes_;
};

}  // namespace gsched::server
