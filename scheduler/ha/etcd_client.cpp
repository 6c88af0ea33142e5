#include "scheduler/ha/etcd_client.h"

#include <boost/json.hpp>
#include <charconv>
#include <thread>

#include "scheduler/common/text.h"
#include "scheduler/net/http_client.h"

namespace gsched::ha {
namespace json = boost::json;

namespace {

// gRPC codes the gateway passes on: an answer worth trying elsewhere or again.
constexpr int64_t kGrpcDeadlineExceeded = 4;
constexpr int64_t kGrpcNotFound = 5;
constexpr int64_t kGrpcUnavailable = 14;

int64_t Int(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr)
    return 0;
  if (v->is_int64())
    return v->as_int64();
  if (v->is_uint64())
    return static_cast<int64_t>(v->as_uint64());
  if (v->is_string()) {
    int64_t out = 0;
    const json::string& s = v->as_string();
    std::from_chars(s.data(), s.data() + s.size(), out);
    return out;
  }
  return 0;
}

bool Bool(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v != nullptr && v->is_bool() && v->as_bool();
}

const json::object* Object(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
}

Result<std::string> Bytes(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr)
    return std::string();
  if (!v->is_string())
    return Status::Internal("etcd: field " + std::string(name) + " is not a string");
  return Base64Decode(v->as_string());
}

Result<RangeResult> DecodeRange(const json::object& o) {
  RangeResult out;
  if (const json::object* h = Object(o, "header"))
    out.revision = Int(*h, "revision");
  out.more = Bool(o, "more");
  if (const json::value* kvs = o.if_contains("kvs"); kvs != nullptr && kvs->is_array()) {
    for (const json::value& item : kvs->as_array()) {
      if (!item.is_object())
        return Status::Internal("etcd: a kv is not an object");
      const json::object& kv = item.as_object();
      KeyValue k;
      ASSIGN_OR_RETURN(k.key, Bytes(kv, "key"));
      ASSIGN_OR_RETURN(k.value, Bytes(kv, "value"));
      k.create_revision = Int(kv, "create_revision");
      k.mod_revision = Int(kv, "mod_revision");
      k.lease = Int(kv, "lease");
      out.kvs.push_back(std::move(k));
    }
  }
  return out;
}

json::object EncodeOp(const TxnOp& op) {
  json::object inner;
  inner["key"] = Base64Encode(op.key);
  switch (op.kind) {
    case TxnOp::Kind::kPut:
      inner["value"] = Base64Encode(op.value);
      if (op.lease != 0)
        inner["lease"] = std::to_string(op.lease);
      return {{"request_put", std::move(inner)}};
    case TxnOp::Kind::kRange:
      if (!op.range_end.empty())
        inner["range_end"] = Base64Encode(op.range_end);
      if (op.limit != 0)
        inner["limit"] = std::to_string(op.limit);
      return {{"request_range", std::move(inner)}};
    case TxnOp::Kind::kDeleteRange:
      if (!op.range_end.empty())
        inner["range_end"] = Base64Encode(op.range_end);
      return {{"request_delete_range", std::move(inner)}};
  }
  return {};
}

}  // namespace

TxnOp TxnOp::Put(std::string key, std::string value, int64_t lease) {
  TxnOp op;
  op.kind = Kind::kPut;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}
TxnOp TxnOp::Range(std::string key, std::string range_end, int64_t limit) {
  TxnOp op;
  op.kind = Kind::kRange;
  op.key = std::move(key);
  op.range_end = std::move(range_end);
  op.limit = limit;
  return op;
}
TxnOp TxnOp::DeleteRange(std::string key, std::string range_end) {
  TxnOp op;
  op.kind = Kind::kDeleteRange;
  op.key = std::move(key);
  op.range_end = std::move(range_end);
  return op;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // Every key: etcd's "from key to the end".
}

struct EtcdClient::Impl {
  EtcdOptions options;
  size_t current = 0;
  std::unique_ptr<net::HttpClient> client;

  // POSTs `body` to `path`, moving along the endpoints on failures worth another try.
  Result<json::object> Call(std::string_view path, const json::object& body) {
    std::string text = json::serialize(body);
    auto deadline = std::chrono::steady_clock::now() + options.call_timeout;
    Status last = Status::Unavailable("etcd: no endpoints");
    for (size_t attempt = 0;; ++attempt) {
      if (attempt > 0) {
        if (std::chrono::steady_clock::now() >= deadline)
          return last;
        client.reset();
        current = (current + 1) % options.endpoints.size();
        // A whole round without an answer: give the cluster a moment (an election takes ~1 s).
        if (attempt % options.endpoints.size() == 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      const std::string& url = options.endpoints[current];
      if (!client) {
        auto c = net::HttpClient::Create(
            url, {.ca_file = options.ca_file, .timeout = options.attempt_timeout});
        if (!c.ok())
          return std::move(c).status();
        client = std::move(c).value();
      }
      auto res = client->Post(path, text);
      if (!res.ok()) {
        last = Status::Unavailable("etcd " + url + ": " + res.status().message());
        continue;
      }
      json::value parsed;
      boost::system::error_code ec;
      parsed = json::parse(res->body, ec);
      if (ec || !parsed.is_object()) {
        last = Status::Unavailable("etcd " + url + ": HTTP " + std::to_string(res->status) +
                                   ", not JSON: " + res->body.substr(0, 200));
        if (res->status >= 500)
          continue;
        return last;
      }
      json::object& o = parsed.as_object();
      // Errors come as {"error": "...", "code": N, "message": "..."}; from streaming calls as
      // {"error": {"grpc_code": N, "message": "..."}}.
      const json::object* err = Object(o, "error");
      int64_t code = err != nullptr ? Int(*err, "grpc_code") : Int(o, "code");
      if (res->status != 200 || code != 0) {
        std::string message;
        if (const json::value* m = (err != nullptr ? *err : o).if_contains("message");
            m != nullptr && m->is_string())
          message = m->as_string().c_str();
        last = Status::Unavailable("etcd " + url + ": " + message);
        if (code == kGrpcUnavailable || code == kGrpcDeadlineExceeded || res->status == 503)
          continue;
        if (code == kGrpcNotFound)
          return Status::NotFound("etcd: " + message);
        return Status::Internal("etcd " + url + ": HTTP " + std::to_string(res->status) + ": " +
                                message);
      }
      return std::move(o);
    }
  }
};

EtcdClient::EtcdClient(EtcdOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}
EtcdClient::~EtcdClient() = default;

const std::string& EtcdClient::endpoint() const {
  return impl_->options.endpoints[impl_->current];
}

Result<TxnResult> EtcdClient::Txn(const std::vector<Compare>& compare,
                                  const std::vector<TxnOp>& success,
                                  const std::vector<TxnOp>& failure) {
  json::array cmp;
  for (const Compare& c : compare) {
    json::object o;
    o["key"] = Base64Encode(c.key);
    o["result"] = "EQUAL";
    if (c.target == Compare::Target::kCreateRevision) {
      o["target"] = "CREATE";
      o["create_revision"] = std::to_string(c.revision);
    } else {
      o["target"] = "MOD";
      o["mod_revision"] = std::to_string(c.revision);
    }
    cmp.push_back(std::move(o));
  }
  auto ops = [](const std::vector<TxnOp>& list) {
    json::array a;
    for (const TxnOp& op : list)
      a.push_back(EncodeOp(op));
    return a;
  };
  json::object body{
      {"compare", std::move(cmp)}, {"success", ops(success)}, {"failure", ops(failure)}};
  ASSIGN_OR_RETURN(json::object o, impl_->Call("/v3/kv/txn", body));
  TxnResult out;
  out.succeeded = Bool(o, "succeeded");
  if (const json::object* h = Object(o, "header"))
    out.revision = Int(*h, "revision");
  if (const json::value* rs = o.if_contains("responses"); rs != nullptr && rs->is_array()) {
    for (const json::value& r : rs->as_array()) {
      if (!r.is_object())
        continue;
      if (const json::object* range = Object(r.as_object(), "response_range")) {
        ASSIGN_OR_RETURN(RangeResult rr, DecodeRange(*range));
        out.ranges.push_back(std::move(rr));
      }
    }
  }
  return out;
}

Result<RangeResult> EtcdClient::Range(std::string_view key, std::string_view range_end,
                                      int64_t limit) {
  json::object body{{"key", Base64Encode(key)}};
  if (!range_end.empty())
    body["range_end"] = Base64Encode(range_end);
  if (limit != 0)
    body["limit"] = std::to_string(limit);
  ASSIGN_OR_RETURN(json::object o, impl_->Call("/v3/kv/range", body));
  return DecodeRange(o);
}

Status EtcdClient::Put(std::string_view key, std::string_view value, int64_t lease) {
  json::object body{{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
  if (lease != 0)
    body["lease"] = std::to_string(lease);
  return impl_->Call("/v3/kv/put", body).status();
}

Status EtcdClient::DeleteRange(std::string_view key, std::string_view range_end) {
  json::object body{{"key", Base64Encode(key)}};
  if (!range_end.empty())
    body["range_end"] = Base64Encode(range_end);
  return impl_->Call("/v3/kv/deleterange", body).status();
}

Result<int64_t> EtcdClient::Grant(Duration ttl) {
  int64_t seconds = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(ttl + std::chrono::milliseconds(999))
             .count());
  ASSIGN_OR_RETURN(json::object o,
                   impl_->Call("/v3/lease/grant", {{"TTL", std::to_string(seconds)}}));
  int64_t id = Int(o, "ID");
  if (id == 0)
    return Status::Internal("etcd: lease grant without an id");
  return id;
}

Result<Duration> EtcdClient::KeepAlive(int64_t lease) {
  ASSIGN_OR_RETURN(json::object o,
                   impl_->Call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}}));
  const json::object* result = Object(o, "result");
  int64_t ttl = result != nullptr ? Int(*result, "TTL") : 0;
  if (ttl <= 0)
    return Status::NotFound("etcd: lease " + std::to_string(lease) + " expired");
  return Seconds(ttl);
}

Status EtcdClient::Revoke(int64_t lease) {
  return impl_->Call("/v3/lease/revoke", {{"ID", std::to_string(lease)}}).status();
}

}  // namespace gsched::ha
