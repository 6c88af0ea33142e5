#include "scheduler/server/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "scheduler/api/types.h"
#include "scheduler/common/files.h"

namespace gsched::server {
namespace {

constexpr std::string_view kPrefix = "gs1.";
constexpr size_t kKeyBytes = 32;

Status Unauthenticated(std::string_view why) {
  return Status::Unauthenticated("invalid token: " + std::string(why));
}

}  // namespace

bool ServesNode(const std::vector<std::string>& patterns, std::string_view node) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return api::NodePatternCovers(p, node); });
}

std::string NewTokenId() {
  std::array<unsigned char, 8> bytes{};
  if (RAND_bytes(bytes.data(), bytes.size()) != 1)
    std::abort();  // No randomness: unsafe to go on.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "tok_";
  for (unsigned char b : bytes) {
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }
  return id;
}

Result<TokenAuthority> TokenAuthority::LoadOrCreate(const std::string& data_dir) {
  std::string path = (std::filesystem::path(data_dir) / "hmac.key").string();
  if (std::filesystem::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (key.size() != kKeyBytes) {
      return Status::Internal(path + " holds " + std::to_string(key.size()) + " bytes, expected " +
                              std::to_string(kKeyBytes));
    }
    return TokenAuthority(std::move(key));
  }
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), kKeyBytes) != 1) {
    return Status::Internal("no randomness for the signing key");
  }
  // Written to a temporary file, synced, then renamed: a crash never leaves half a key.
  RETURN_IF_ERROR(WriteFileAtomic(path, key, 0600));
  return TokenAuthority(std::move(key));
}

std::string TokenAuthority::Mac(std::string_view data) const {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  return std::string(reinterpret_cast<const char*>(mac.data()), len);
}

std::string TokenAuthority::Sign(const TokenClaims& claims) const {
  boost::json::object payload;
  payload["id"] = claims.id;
  payload["sub"] = claims.user;
  payload["role"] = std::string(api::ToString(claims.role));
  boost::json::array accounts;
  for (const auto& a : claims.accounts)
    accounts.emplace_back(a);
  payload["acc"] = std::move(accounts);
  payload["exp"] = ToUnixSeconds(claims.expires);
  if (!claims.nodes.empty()) {
    boost::json::array nodes;
    for (const auto& n : claims.nodes)
      nodes.emplace_back(n);
    payload["nod"] = std::move(nodes);
  }
  std::string signed_part = std::string(kPrefix) + Base64UrlEncode(boost::json::serialize(payload));
  return signed_part + "." + Base64UrlEncode(Mac(signed_part));
}

Result<TokenClaims> TokenAuthority::Verify(std::string_view token, Timestamp now) const {
  if (token.size() > 8192)
    return Unauthenticated("too long");
  if (token.substr(0, kPrefix.size()) != kPrefix)
    return Unauthenticated("unknown format");
  size_t dot = token.rfind('.');
  if (dot <= kPrefix.size())
    return Unauthenticated("malformed");
  std::string_view signed_part = token.substr(0, dot);
  auto mac = Base64UrlDecode(token.substr(dot + 1));
  std::string expected = Mac(signed_part);
  if (!mac.ok() || mac->size() != expected.size() ||
      CRYPTO_memcmp(mac->data(), expected.data(), expected.size()) != 0) {
    return Unauthenticated("bad signature");
  }
  // The MAC is good: the payload was written by this server, but parse it defensively all the same.
  auto json_text = Base64UrlDecode(signed_part.substr(kPrefix.size()));
  if (!json_text.ok())
    return Unauthenticated("malformed payload");
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*json_text, ec);
  const boost::json::object* o = ec ? nullptr : v.if_object();
  if (o == nullptr)
    return Unauthenticated("malformed payload");
  TokenClaims claims;
  const auto* id = o->if_contains("id");
  const auto* sub = o->if_contains("sub");
  const auto* role = o->if_contains("role");
  const auto* acc = o->if_contains("acc");
  const auto* exp = o->if_contains("exp");
  if (!id || !id->is_string() || !sub || !sub->is_string() || !role || !role->is_string() || !acc ||
      !acc->is_array() || !exp || !exp->is_int64()) {
    return Unauthenticated("malformed payload");
  }
  claims.id = std::string(id->get_string());
  claims.user = std::string(sub->get_string());
  auto parsed_role = api::ParseEnum<api::Role>(role->get_string());
  if (!parsed_role)
    return Unauthenticated("unknown role");
  claims.role = *parsed_role;
  for (const auto& a : acc->get_array()) {
    if (!a.is_string())
      return Unauthenticated("malformed payload");
    claims.accounts.emplace_back(a.get_string());
  }
  if (const auto* nodes = o->if_contains("nod")) {
    if (!nodes->is_array())
      return Unauthenticated("malformed payload");
    for (const auto& n : nodes->get_array()) {
      if (!n.is_string())
        return Unauthenticated("malformed payload");
      claims.nodes.emplace_back(n.get_string());
    }
  }
  claims.expires = FromUnixSeconds(exp->get_int64());
  if (now >= claims.expires)
    return Status::Unauthenticated("token expired");
  return claims;
}

}  // namespace gsched::server
