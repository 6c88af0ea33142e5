// Bearer tokens: HMAC-SHA256-signed claims (id, subject, role, accounts, expiry), DESIGN.md
// section 5.
//
// Wire form: "gs1.<payload>.<mac>", both parts base64url without padding; the payload is compact
// JSON {"id","sub","role","acc","exp"} and, for worker tokens, "nod" (the node patterns); the MAC
// covers "gs1.<payload>". The signing key is 32 random bytes kept in `DATA_DIR/hmac.key` (mode
// 0600), made on first start. Verification is constant-time; revocation is the caller's (a stored
// set of revoked ids).
//
// Thread-safe after construction.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "scheduler/api/enums.h"
#include "scheduler/common/clock.h"
#include "scheduler/common/status.h"
#include "scheduler/common/text.h"

namespace gsched::server {

struct TokenClaims {
  std::string id;  // "tok_" + 16 hex digits; what revocation names.
  std::string user;
  api::Role role = api::Role::kUser;
  std::vector<std::string> accounts;  // The first is the user's default account.
  Timestamp expires;
  // Worker tokens: the nodes they serve (`api::NodePatternCovers`). Empty for other roles, and in
  // worker tokens made before tokens named their nodes: those serve no node.
  std::vector<std::string> nodes;
};

// Whether a token with these claims may speak for `node` on the worker channel.
bool ServesNode(const std::vector<std::string>& patterns, std::string_view node);

class TokenAuthority {
 public:
  // Reads `DATA_DIR/hmac.key`, creating it (0600) when missing.
  static Result<TokenAuthority> LoadOrCreate(const std::string& data_dir);
  explicit TokenAuthority(std::string key) : key_(std::move(key)) {}

  std::string Sign(const TokenClaims& claims) const;
  // Checks format, MAC and expiry. `kUnauthenticated` with a reason otherwise.
  Result<TokenClaims> Verify(std::string_view token, Timestamp now) const;

 private:
  std::string Mac(std::string_view data) const;
  std::string key_;
};

// A fresh token id: "tok_" + 16 random hex digits.
std::string NewTokenId();

}  // namespace gsched::server
