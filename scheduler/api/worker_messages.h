// Messages of the worker channel (DESIGN.md section 5, `GET /v1/workers/connect`): one JSON object
// per WebSocket text message, whose `type` field says which message it is
// (`{"type": "hello", "node": ...}`).
//
// worker -> scheduler: `hello`, `heartbeat`, `job_update`, `gpu_health`, `log_chunk`.
// scheduler -> worker: `launch`, `signal`, `kill`, `drain`, `read_log`.
//
// `read_log` / `log_chunk` carry `GET /v1/jobs/{id}/logs`: the scheduler asks the node that ran
// the attempt for a byte range of its stdout or stderr and answers the HTTP request with the
// chunk that comes back under the same `request` number.
//
// Every message is idempotent and names the attempt it is about, so that stale messages are
// recognised by attempt number. Decoding ignores unknown fields - also inside the `JobSpec` of a
// `launch` - because the scheduler and the workers of a pool are upgraded at different times: a
// newer peer may add fields, and an older one must keep working. Known fields are still fully
// validated, and an unknown `type` is an error.
//
// Threading: stateless.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "scheduler/api/types.h"
#include "scheduler/common/status.h"

namespace gsched::api {

// A job attempt a worker runs - or, in `hello`, one that ended while the worker was not
// connected (a terminal `state`) whose final `job_update` follows the hello.
struct RunningAttempt {
  uint64_t job = 0;
  uint32_t attempt = 0;
  JobState state = JobState::kRunning;

  friend bool operator==(const RunningAttempt&, const RunningAttempt&) = default;
};

// A range of TCP ports, both ends included.
struct PortRange {
  int32_t first = 0;
  int32_t last = 0;

  friend bool operator==(const PortRange&, const PortRange&) = default;
};

// The ports a worker lends to rendezvous unless its config says otherwise.
inline constexpr PortRange kDefaultRendezvousPorts{29500, 29999};

struct Hello {
  std::string node;
  // Where the node's jobs listen for each other (`MASTER_ADDR` when this node is a gang's rank 0).
  std::string address;
  // The ports the worker lends to rendezvous (`MASTER_PORT`); absent: the scheduler's default.
  std::optional<PortRange> rendezvous_ports;
  std::string site;
  std::string block;
  std::map<std::string, std::string> labels;
  int32_t cpus = 0;
  int64_t memory_mib = 0;
  std::vector<Gpu> gpus;
  std::vector<std::pair<int32_t, int32_t>> nvlink_pairs;
  std::vector<RunningAttempt> running;
  std::string worker_version;

  friend bool operator==(const Hello&, const Hello&) = default;
};

struct Heartbeat {
  std::string node;
  Timestamp time{};
  std::vector<RunningAttempt> running;

  friend bool operator==(const Heartbeat&, const Heartbeat&) = default;
};

struct JobUpdate {
  uint64_t job = 0;
  uint32_t attempt = 0;
  JobState state = JobState::kRunning;
  std::optional<int32_t> exit_code;
  std::optional<std::string> signal;  // "SIGKILL" when a signal ended the job.
  // While `starting`: what the worker is doing (pulling the image, with progress), shown as the
  // job's reason. Otherwise how the attempt ended.
  std::string message;
  std::optional<Timestamp> checkpoint_time;
  // The digest of the image the attempt runs ("sha256:..."), once the worker resolved it; empty
  // for local root file systems.
  std::string image_digest;

  friend bool operator==(const JobUpdate&, const JobUpdate&) = default;
};

struct GpuHealthEntry {
  int32_t index = 0;
  GpuHealth health = GpuHealth::kHealthy;
  std::string message;
  std::optional<int32_t> xid;  // NVIDIA XID error code, when one was seen.

  friend bool operator==(const GpuHealthEntry&, const GpuHealthEntry&) = default;
};

struct GpuHealthReport {
  std::string node;
  std::vector<GpuHealthEntry> gpus;

  friend bool operator==(const GpuHealthReport&, const GpuHealthReport&) = default;
};

struct Launch {
  uint64_t job = 0;
  uint32_t attempt = 0;
  JobSpec spec;
  std::string user;  // The job's owner: the worker runs the job under this user's identity.
  std::vector<int32_t> gpus;               // Indices on this node.
  std::map<std::string, std::string> env;  // Set by the scheduler on top of `spec.env`.
  std::optional<uint32_t> array_index;
  std::optional<uint64_t> array_job_id;  // The array's first job, for array tasks.
  std::optional<int32_t> node_rank;      // This node's place in `nodes`.
  std::vector<std::string> nodes;        // All nodes of the gang, in rank order.
  std::optional<Rendezvous> rendezvous;  // MASTER_ADDR and MASTER_PORT.

  friend bool operator==(const Launch&, const Launch&) = default;
};

struct Signal {
  uint64_t job = 0;
  uint32_t attempt = 0;
  std::string signal = "SIGTERM";

  friend bool operator==(const Signal&, const Signal&) = default;
};

struct Kill {
  uint64_t job = 0;
  uint32_t attempt = 0;
  int32_t grace_s = 30;  // Between the checkpoint signal and SIGKILL.
  std::string reason;

  friend bool operator==(const Kill&, const Kill&) = default;
};

struct Drain {
  std::string reason;

  friend bool operator==(const Drain&, const Drain&) = default;
};

// The most bytes one `read_log` may ask for. Even if every byte needed a six-byte JSON escape, a
// chunk stays well inside the channel's default 1 MiB message limit.
inline constexpr int64_t kMaxLogChunkBytes = 128 * 1024;

enum class LogStream { kStdout, kStderr };
std::string_view ToString(LogStream s);

struct ReadLog {
  uint64_t request = 0;  // Echoed in the answer.
  uint64_t job = 0;
  uint32_t attempt = 0;
  LogStream stream = LogStream::kStdout;
  int64_t offset = 0;
  int64_t limit = kMaxLogChunkBytes;

  friend bool operator==(const ReadLog&, const ReadLog&) = default;
};

struct LogChunk {
  uint64_t request = 0;
  uint64_t job = 0;
  uint32_t attempt = 0;
  LogStream stream = LogStream::kStdout;
  int64_t offset = 0;       // Where `data` starts.
  std::string data;         // Valid UTF-8: invalid bytes are replaced by U+FFFD.
  int64_t next_offset = 0;  // Where the next read continues (bytes consumed, not `data.size()`).
  int64_t size = 0;         // The file's size when read.
  bool eof = false;         // The attempt has ended and `next_offset` is the end of the file.
  std::string error;        // Non-empty: nothing could be read, and why.

  friend bool operator==(const LogChunk&, const LogChunk&) = default;
};

// The scheduler has the final `job_update` of (job, attempt) durably: the worker may forget it.
// Until then the worker sends it again on every new connection.
struct Ack {
  uint64_t job = 0;
  uint32_t attempt = 0;

  friend bool operator==(const Ack&, const Ack&) = default;
};

using WorkerMessage = std::variant<Hello, Heartbeat, JobUpdate, GpuHealthReport, LogChunk>;
using SchedulerMessage = std::variant<Launch, Signal, Kill, Drain, ReadLog, Ack>;

// Parse (through `ParseJson`) and decode one message. An unknown or missing `type` is an error
// naming `type`.
Result<WorkerMessage> DecodeWorkerMessage(std::string_view text);
Result<SchedulerMessage> DecodeSchedulerMessage(std::string_view text);
// The same for an already parsed value (named apart: a string literal converts to both).
Result<WorkerMessage> DecodeWorkerMessageValue(const boost::json::value& v);
Result<SchedulerMessage> DecodeSchedulerMessageValue(const boost::json::value& v);

// The message as a JSON object with its `type`.
boost::json::value EncodeMessage(const WorkerMessage& message);
boost::json::value EncodeMessage(const SchedulerMessage& message);
// The same, serialised: ready for a WebSocket text frame.
std::string SerializeMessage(const WorkerMessage& message);
std::string SerializeMessage(const SchedulerMessage& message);

// The `type` of each message.
std::string_view MessageType(const WorkerMessage& message);
std::string_view MessageType(const SchedulerMessage& message);

}  // namespace gsched::api
