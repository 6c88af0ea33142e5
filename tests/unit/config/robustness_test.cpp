// Seeded mutations of the example files go through every loader: each must come back OK or with an
// `InvalidArgument` whose message is one non-empty line per error, never crash, hang or throw.
// Run under ASan/UBSan this is a small, deterministic fuzzer. A failing case prints its seed.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "config/accounts_config.h"
#include "config/cluster_config.h"
#include "config/scheduler_config.h"
#include "config/worker_config.h"

namespace gsched::config {
namespace {

std::string ReadExample(std::string_view name) {
  std::ifstream in(std::string(GSCHED_SOURCE_DIR) + "/config/" + std::string(name));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One random edit: overwrite a byte with a YAML-significant character, delete a span, duplicate a
// line, or swap two lines.
std::string Mutate(std::string text, std::mt19937_64& rng) {
  static constexpr std::string_view kChars = ":-[]{}&*!|>'\"#\n\t ,?%@`0123456789abcdz~.";
  if (text.empty())
    return text;
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  int edits = 1 + static_cast<int>(pick(4));
  for (int e = 0; e < edits && !text.empty(); ++e) {
    switch (pick(4)) {
      case 0:
        text[pick(text.size())] = kChars[pick(kChars.size())];
        break;
      case 1: {
        size_t at = pick(text.size());
        text.erase(at, 1 + pick(16));
        break;
      }
      case 2: {
        size_t at = pick(text.size());
        size_t start = text.rfind('\n', at);
        start = start == std::string::npos ? 0 : start + 1;
        size_t end = text.find('\n', at);
        end = end == std::string::npos ? text.size() : end + 1;
        text.insert(end, text.substr(start, end - start));
        break;
      }
      default: {
        size_t a = pick(text.size()), b = pick(text.size());
        std::swap(text[a], text[b]);
        break;
      }
    }
  }
  return text;
}

template <typename T>
void CheckOutcome(const Result<T>& r, uint64_t seed, std::string_view file) {
  if (r.ok())
    return;
  const Status& s = r.status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << file << " seed " << seed;
  ASSERT_FALSE(s.message().empty()) << file << " seed " << seed;
  std::istringstream lines(s.message());
  for (std::string line; std::getline(lines, line);)
    EXPECT_FALSE(line.empty()) << file << " seed " << seed << ": " << s.message();
}

TEST(ConfigRobustnessTest, MutatedExamplesNeverCrash) {
  struct Case {
    std::string_view file;
    int iterations;
  };
  // yaml-cpp parses about 3 MB/s, so the larger files get fewer rounds.
  const std::vector<Case> cases = {{"scheduler.yaml", 150},
                                   {"worker.yaml", 150},
                                   {"accounts.yaml", 80},
                                   {"cluster-demo.yaml", 150},
                                   {"cluster-50k.yaml", 5}};
  for (const Case& c : cases) {
    std::string original = ReadExample(c.file);
    ASSERT_FALSE(original.empty()) << c.file;
    for (int i = 0; i < c.iterations; ++i) {
      uint64_t seed = 1000003ULL * static_cast<uint64_t>(i) + c.file.size();
      std::mt19937_64 rng(seed);
      std::string text = Mutate(original, rng);
      // Every loader on every mutated file: a scheduler file read as a cluster must fail cleanly.
      CheckOutcome(ParseSchedulerConfig(text, c.file), seed, c.file);
      CheckOutcome(ParseWorkerConfig(text, c.file), seed, c.file);
      CheckOutcome(ParseAccountsConfig(text, c.file), seed, c.file);
      CheckOutcome(ParseClusterConfig(text, c.file), seed, c.file);
    }
  }
}

TEST(ConfigRobustnessTest, AHugeMappingOfUnknownKeysIsCheap) {
  // 30,000 unknown top-level keys: reported (200 kept, the rest counted) without quadratic work.
  std::string text;
  for (int i = 0; i < 30000; ++i)
    text += "k" + std::to_string(i) + ": 1\n";
  Result<SchedulerConfig> c = ParseSchedulerConfig(text, "x.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("... and 29800 more errors"), std::string::npos);
}

TEST(ConfigRobustnessTest, HostileInputs) {
  const std::vector<std::string> inputs = {
      std::string("\0\0\0", 3),
      "\xff\xfe\x00garbage",
      "a: !!binary AAAA\n",
      "a: !custom {x: 1}\n",
      "<<: {listen: \"1.2.3.4:5\"}\n",
      std::string(100000, '['),
      std::string(100000, '{'),
      "listen: " + std::string(1 << 20, 'x') + "\n",
      "accounts: [" + std::string(10000, '{') + "\n",
      "sites: &s [{name: a, blocks: *s}]\n",
      "accounts: &a [{name: x, users: *a}]\n",
      "? !!null\n: 1\n",
      "\"\": 1\n",
      "~: 1\n",
  };
  for (const std::string& text : inputs) {
    CheckOutcome(ParseSchedulerConfig(text, "x.yaml"), 0, text.substr(0, 40));
    CheckOutcome(ParseWorkerConfig(text, "x.yaml"), 0, text.substr(0, 40));
    CheckOutcome(ParseAccountsConfig(text, "x.yaml"), 0, text.substr(0, 40));
    CheckOutcome(ParseClusterConfig(text, "x.yaml"), 0, text.substr(0, 40));
  }
}

}  // namespace
}  // namespace gsched::config
