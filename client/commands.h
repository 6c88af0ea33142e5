// The commands of `gsched` (DESIGN.md section 7) behind the CLI11 wiring of cli.cpp: each takes
// its parsed arguments, talks to the server through a `Transport`, prints a table (or the server's
// JSON with `--json`) on `out` and one-line errors on `err`, and returns the exit code:
//   0 done, 1 the server said no (4xx/5xx) or sent nonsense, 2 usage error (bad flags, script or
//   config), 3 server unreachable.
//
// Threading: a `Session` belongs to one command run.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "client/api_client.h"
#include "client/cli_config.h"

namespace gsched::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerSaidNo = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;

// Everything the CLI takes from its surroundings, so that tests can run it in-process.
struct Env {
  EnvVars vars;                         // The process environment (HOME, GSCHED_SERVER, ...).
  std::optional<Timestamp> now;         // "Now" for relative times; the system clock when absent.
  Duration poll_interval = Seconds(2);  // `logs -f` between polls.
  // `watch` reconnects (with `since`) after this long without a message.
  Duration watch_idle_timeout = Seconds(300);
  // Empty members: the real network clients.
  Connector connector;
};

struct SubmitArgs {
  std::vector<std::pair<std::string, std::string>> flags;  // (long name, value), in table order.
  std::optional<std::string> script;
  std::vector<std::string> script_args;
  std::vector<std::string> command;  // After `--` when there is no script.
  bool dry_run = false;
  bool parsable = false;
  bool json = false;
};

struct QueueArgs {
  bool all = false;
  std::string user, account, state;
  int64_t limit = 0;
  bool json = false;
};

struct LogsArgs {
  std::string id;
  bool follow = false;
  bool stderr_stream = false;
  int64_t attempt = 0;
  std::string node;  // A node of a multi-node job; empty: its first (rank 0).
};

struct WatchArgs {
  std::string job;
  std::string topics = "jobs,nodes,accounts";
  int64_t since = -1;
  bool ephemeral = false;  // Also job.reason, account.usage, cluster.summary (never replayed).
  bool json = false;
};

struct QuotaArgs {
  std::string account, gpu_type;
  int64_t guaranteed = -1, limit = -1;
};

struct TokenCreateArgs {
  std::string user, role = "user", expires = "30d";
  std::vector<std::string> accounts;
  std::vector<std::string> nodes;  // Worker tokens: node names or prefixes ending in `*`.
  bool json = false;
};

class Session {
 public:
  Session(std::ostream& out, std::ostream& err, const Env& env, CliConfig config);
  ~Session();

  int Submit(const SubmitArgs& args);
  int Queue(const QueueArgs& args);
  int Show(const std::string& id, bool json);
  // `verb` is cancel, hold or release.
  int JobAction(const std::string& verb, const std::vector<std::string>& ids);
  int Logs(const LogsArgs& args);
  int Watch(const WatchArgs& args);
  int Nodes(bool json);
  int Drain(const std::string& node, const std::string& reason);
  int Resume(const std::string& node);
  int Accounts(bool json);
  int AccountsApply(const std::string& file, bool dry_run);
  int QuotaSet(const QuotaArgs& args);
  int Usage(const std::string& account, const std::string& since, const std::string& until,
            bool json);
  int TokenCreate(const TokenCreateArgs& args);
  int TokenRevoke(const std::string& id);
  int WhoAmI(bool json);

  // Prints `gsched: MESSAGE` and returns `code`.
  int Fail(int code, const std::string& message);

 private:
  // A server answer, or the exit code of a failure that was already reported.
  struct Answer {
    int exit_code = kExitOk;
    boost::json::value body;  // Null for a non-JSON answer.
    std::string raw;          // The body as sent, for `text/*` answers (logs).
    bool is_text = false;
  };
  Answer Call(std::string_view method, const std::string& target, std::string body = {});
  Timestamp Now() const;
  void PrintJson(const boost::json::value& v);
  // The exit code (reported already when not 0) and the token's user.
  std::pair<int, std::string> CurrentUser();
  int NoServer();
  // "cannot reach ...: why" for a connection failure (or no leader among several schedulers).
  std::string Unreachable(const Status& status) const;

  std::ostream& out_;
  std::ostream& err_;
  const Env& env_;
  CliConfig config_;
  Connector connector_;
  std::unique_ptr<Transport> transport_;
  // Appended to every error while set: what the failing request was about.
  std::string error_context_;
};

// "?a=1&b=x%20y" from the pairs whose value is not empty.
std::string QueryString(const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace gsched::client
