// The job script parser: realistic Slurm scripts, every `--time` and `--gres` form, dependencies,
// warnings for what gsched does not use, and errors that name the line.
#include "client/directives.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace gsched::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadData(const std::string& name) {
  std::ifstream in(std::string(GSCHED_TEST_DATA_DIR) + "/client/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

DirectiveContext Context() {
  DirectiveContext ctx;
  ctx.partitions = {{"a100q", {"a100"}}, {"hopper", {"h100", "h200"}}};
  ctx.getenv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "HOME")
      return "/home/alice";
    return std::nullopt;
  };
  return ctx;
}

// Parses `lines` after a shebang and returns the options; fails the test on an error.
SubmitOptions Parse(const std::string& lines) {
  auto r = ParseScript("#!/bin/bash\n" + lines + "\necho run\n", "job.sh", Context());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r->options : SubmitOptions{};
}

std::string ParseError(const std::string& lines) {
  auto r = ParseScript("#!/bin/bash\n" + lines + "\necho run\n", "job.sh", Context());
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.status().message();
}

TEST(Directives, RealisticSlurmScript) {
  std::string text = ReadData("llama_ft.sbatch");
  auto r = ParseScript(text, "llama_ft.sbatch", Context());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const SubmitOptions& o = r->options;
  EXPECT_EQ(o.name, "llama-ft");
  EXPECT_EQ(o.account, "kaist-nlp");
  EXPECT_EQ(o.nodes, 2);
  EXPECT_EQ(o.gpus_per_node, 8);
  EXPECT_EQ(o.gpu_type, std::vector<std::string>{"h100"});
  // 1-12:00:00 = 36 h = 129600 s; the `#SBATCH --time=5` after `srun` is not a directive.
  EXPECT_EQ(o.time_limit_s, 129600);
  EXPECT_EQ(o.cpus_per_node, 96);
  EXPECT_EQ(o.memory_mib_per_node, 512 * 1024);
  EXPECT_EQ(o.requeue, true);
  EXPECT_THAT(r->warnings,
              ElementsAre(HasSubstr("llama_ft.sbatch:9: #SBATCH --output: output path "
                                    "'logs/%x-%j.out' is not used"),
                          "llama_ft.sbatch:10: #SBATCH --mail-user is not supported; ignored"));
  EXPECT_THAT(r->interpreter, ElementsAre("/bin/bash"));

  api::JobSpec spec = BuildJobSpec(o, ScriptCommand(*r, text, "llama_ft.sbatch", {"--fast"}));
  EXPECT_THAT(spec.command, ElementsAre("/bin/bash", "-c", text, "llama_ft.sbatch", "--fast"));
  EXPECT_EQ(spec.nodes, 2);
  EXPECT_FALSE(spec.array.has_value());
}

TEST(Directives, ShortFormsPartitionsQosSignalAndDependencies) {
  auto r = ParseScript(ReadData("short_forms.sbatch"), "short_forms.sbatch", Context());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const SubmitOptions& o = r->options;
  EXPECT_EQ(o.name, "sweep");
  EXPECT_EQ(o.account, "snu-vision");
  EXPECT_EQ(o.nodes, 1);            // 1-4 runs on its minimum.
  EXPECT_EQ(o.time_limit_s, 1800);  // Bare Slurm time is minutes: 30 min.
  EXPECT_EQ(o.array, "0-99%10");
  EXPECT_EQ(o.workdir, "/scratch/alice");
  EXPECT_EQ(o.cpus_per_node, 8);
  EXPECT_EQ(o.gpu_type, std::vector<std::string>{"a100"});  // Partition a100q.
  EXPECT_EQ(o.gpus_per_node, 4);
  EXPECT_EQ(o.env, (std::map<std::string, std::string>{{"EPOCHS", "3"}}));
  EXPECT_EQ(o.priority_class, api::PriorityClass::kPreemptible);
  EXPECT_EQ(o.checkpoint_signal, "SIGUSR1");
  EXPECT_EQ(o.grace_period_s, 120);
  ASSERT_TRUE(o.depends_on.has_value());
  EXPECT_THAT(*o.depends_on, ElementsAre(api::Dependency{api::DependencyType::kAfterOk, 41},
                                         api::Dependency{api::DependencyType::kAfterOk, 42},
                                         api::Dependency{api::DependencyType::kAfterAny, 43}));
  EXPECT_THAT(r->interpreter, ElementsAre("/usr/bin/env", "bash"));
  EXPECT_THAT(r->warnings, ElementsAre(HasSubstr("short_forms.sbatch:3: #SBATCH --nodes: a node "
                                                 "range runs on its minimum, 1 node(s)"),
                                       HasSubstr("short_forms.sbatch:14: #SBATCH --error")));
}

TEST(Directives, GschedLinesUseTheSubmitFlags) {
  auto r = ParseScript(ReadData("gsched_lines.sh"), "gsched_lines.sh", Context());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const SubmitOptions& o = r->options;
  EXPECT_EQ(o.gpus_per_node, 2);
  EXPECT_EQ(o.gpu_type, (std::vector<std::string>{"h100", "h200"}));
  EXPECT_EQ(o.time_limit_s, 4 * 3600);
  EXPECT_EQ(o.priority_class, api::PriorityClass::kHigh);
  EXPECT_EQ(o.topology, api::Topology::kBlock);
  EXPECT_EQ(o.image, "/images/pytorch-24.10");
  EXPECT_EQ(o.env, (std::map<std::string, std::string>{{"EPOCHS", "3"}, {"LR", "0.001"}}));
  EXPECT_THAT(*o.depends_on, ElementsAre(api::Dependency{api::DependencyType::kAfterOk, 7},
                                         api::Dependency{api::DependencyType::kAfterNotOk, 8}));
  EXPECT_EQ(o.requeue, false);
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_THAT(r->interpreter, ElementsAre("/bin/sh"));
}

TEST(Directives, EverySlurmTimeFormat) {
  struct Case {
    std::string text;
    int64_t seconds;
  };
  for (const Case& c : std::vector<Case>{
           {"90", 90 * 60},                                       // MM
           {"90:30", 90 * 60 + 30},                               // MM:SS
           {"2:30:00", 2 * 3600 + 30 * 60},                       // HH:MM:SS
           {"2-12", 2 * 86400 + 12 * 3600},                       // D-HH
           {"2-12:30", 2 * 86400 + 12 * 3600 + 30 * 60},          // D-HH:MM
           {"2-12:30:15", 2 * 86400 + 12 * 3600 + 30 * 60 + 15},  // D-HH:MM:SS
       }) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(Parse("#SBATCH --time=" + c.text).time_limit_s, c.seconds);
    EXPECT_EQ(Parse("#SBATCH -t " + c.text).time_limit_s, c.seconds);
    EXPECT_EQ(Parse("#SBATCH --time " + c.text).time_limit_s, c.seconds);
  }
}

TEST(Directives, UnlimitedTimeIsRejectedWithAReason) {
  EXPECT_THAT(
      ParseError("#SBATCH --time=UNLIMITED"),
      HasSubstr("job.sh:2: --time: 'UNLIMITED' is not accepted: gsched needs a time limit"));
  EXPECT_THAT(ParseError("#SBATCH -t infinite"), HasSubstr("'infinite' is not accepted"));
}

TEST(Directives, EveryGresForm) {
  SubmitOptions a = Parse("#SBATCH --gres=gpu:4");
  EXPECT_EQ(a.gpus_per_node, 4);
  EXPECT_FALSE(a.gpu_type.has_value());
  SubmitOptions b = Parse("#SBATCH --gres=gpu:h200:8");
  EXPECT_EQ(b.gpus_per_node, 8);
  EXPECT_EQ(b.gpu_type, std::vector<std::string>{"h200"});
  SubmitOptions c = Parse("#SBATCH --gres=gpu");
  EXPECT_EQ(c.gpus_per_node, 1);
  SubmitOptions d = Parse("#SBATCH --gres gpu:b200");
  EXPECT_EQ(d.gpus_per_node, 1);
  EXPECT_EQ(d.gpu_type, std::vector<std::string>{"b200"});
  SubmitOptions e = Parse("#SBATCH --gpus-per-node=h100:2");
  EXPECT_EQ(e.gpus_per_node, 2);
  EXPECT_EQ(e.gpu_type, std::vector<std::string>{"h100"});
  SubmitOptions f = Parse("#SBATCH --gpus-per-node 3");
  EXPECT_EQ(f.gpus_per_node, 3);

  auto r = ParseScript("#SBATCH --gres=gpu:2,nvme:1\n", "job.sh", Context());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->options.gpus_per_node, 2);
  EXPECT_THAT(r->warnings, ElementsAre(HasSubstr("generic resource 'nvme:1' is not supported")));

  EXPECT_THAT(ParseError("#SBATCH --gres=gpu:h100:99"), HasSubstr("job.sh:2: --gres: invalid GPU"));
  EXPECT_THAT(ParseError("#SBATCH --gres=gpu:H100:2"), HasSubstr("invalid GPU type 'H100'"));
}

TEST(Directives, DependencyForms) {
  SubmitOptions o = Parse("#SBATCH --dependency=afternotok:5,afterany:6:7");
  EXPECT_THAT(*o.depends_on, ElementsAre(api::Dependency{api::DependencyType::kAfterNotOk, 5},
                                         api::Dependency{api::DependencyType::kAfterAny, 6},
                                         api::Dependency{api::DependencyType::kAfterAny, 7}));
  SubmitOptions d = Parse("#SBATCH -d afterok:9");
  EXPECT_THAT(*d.depends_on, ElementsAre(api::Dependency{api::DependencyType::kAfterOk, 9}));
  EXPECT_THAT(ParseError("#SBATCH --dependency=singleton"),
              HasSubstr("dependency type 'singleton' is not supported"));
  EXPECT_THAT(ParseError("#SBATCH --dependency=afterok:1?afterok:2"), HasSubstr("'?' (any of)"));
  EXPECT_THAT(ParseError("#SBATCH --dependency=afterok:x1"), HasSubstr("invalid job id 'x1'"));
  EXPECT_THAT(ParseError("#SBATCH --dependency=afterok"), HasSubstr("names no job id"));
}

TEST(Directives, BadValuesNameTheLine) {
  auto r = ParseScript(ReadData("bad_time.sbatch"), "bad_time.sbatch", Context());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("bad_time.sbatch:5: --time: invalid duration '1-25:00'"));
  EXPECT_THAT(ParseError("#SBATCH --nodes=0"), HasSubstr("job.sh:2: --nodes: must be an integer"));
  EXPECT_THAT(ParseError("#SBATCH --mem=lots"), HasSubstr("job.sh:2: --mem: invalid size 'lots'"));
  EXPECT_THAT(ParseError("#SBATCH --array=5-1"), HasSubstr("job.sh:2: --array:"));
  EXPECT_THAT(ParseError("#SBATCH --qos=debug"), HasSubstr("unknown QOS 'debug'"));
  EXPECT_THAT(ParseError("#SBATCH --partition=gpuq"),
              HasSubstr("job.sh:2: --partition: unknown partition 'gpuq'; known: a100q, hopper"));
  EXPECT_THAT(ParseError("#SBATCH --signal=NOPE@10"), HasSubstr("job.sh:2: --signal:"));
  EXPECT_THAT(ParseError("#SBATCH --job-name"), HasSubstr("job.sh:2: --job-name: needs a value"));
  EXPECT_THAT(ParseError("#SBATCH --requeue=yes"), HasSubstr("takes no value"));
  EXPECT_THAT(ParseError("#SBATCH --export=NOT_SET_ANYWHERE"), HasSubstr("not set"));
  EXPECT_THAT(ParseError("#GSCHED --time 60"), HasSubstr("job.sh:2: --time: '60' is ambiguous"));
  EXPECT_THAT(ParseError("#GSCHED --class urgent"), HasSubstr("must be one of high, normal"));
  EXPECT_THAT(ParseError("#SBATCH --job-name='x"), HasSubstr("unterminated quote"));
}

TEST(Directives, TaskCountsReachSrunThroughTheEnvironment) {
  auto r =
      ParseScript("#!/bin/sh\n#SBATCH --ntasks-per-node=2 -n 4\nsrun x\n", "job.sh", Context());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->options.env.at("SLURM_NTASKS_PER_NODE"), "2");
  EXPECT_EQ(r->options.env.at("SLURM_NTASKS"), "4");
  EXPECT_THAT(ParseError("#SBATCH --ntasks-per-node=0"), HasSubstr("--ntasks-per-node"));
}

TEST(Directives, UnknownDirectivesAreWarnedNeverDropped) {
  auto r = ParseScript(
      "#!/bin/bash\n#SBATCH --mail-type=END\n#SBATCH --exclusive\n#SBATCH --constraint "
      "ib --nodes 2\n#GSCHED --frobnicate\n#SBATCH --gpu-bind=closest -c 2\necho\n",
      "job.sh", Context());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_THAT(r->warnings, ElementsAre("job.sh:2: #SBATCH --mail-type is not supported; ignored",
                                       "job.sh:3: #SBATCH --exclusive is not supported; ignored",
                                       "job.sh:4: #SBATCH --constraint is not supported; ignored",
                                       "job.sh:5: #GSCHED --frobnicate is not supported; ignored",
                                       "job.sh:6: #SBATCH --gpu-bind is not supported; ignored"));
  EXPECT_EQ(r->options.nodes, 2);
  EXPECT_EQ(r->options.cpus_per_node, 2);  // The known option after the unknown one still counts.
}

TEST(Directives, CommentsBlankLinesAndQuotes) {
  auto r = ParseScript(
      "#!/bin/bash\n\n# plain comment\n#SBATCHING is a comment\n  #SBATCH -J \"my job\"  # "
      "trailing comment\n#SBATCH --export=HOME\necho\n",
      "job.sh", Context());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->options.name, "my job");
  EXPECT_EQ(r->options.env.at("HOME"), "/home/alice");
  EXPECT_TRUE(r->warnings.empty());
}

TEST(Directives, NonShellInterpretersAreRejected) {
  auto r = ParseScript(ReadData("python.py"), "python.py", Context());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("python.py:1: interpreter"));
  EXPECT_THAT(r.status().message(), HasSubstr("-- PROGRAM SCRIPT"));
}

TEST(Directives, FlagsOverrideTheScript) {
  SubmitOptions script = Parse("#SBATCH -N 2 --time=1:00:00 --export=A=1,B=2 -J script");
  SubmitOptions flags;
  ASSERT_TRUE(ApplyGschedOption("--nodes", "4", Context(), flags).ok());
  ASSERT_TRUE(ApplyGschedOption("--env", "B=3", Context(), flags).ok());
  SubmitOptions merged = MergeOptions(script, flags);
  EXPECT_EQ(merged.nodes, 4);
  EXPECT_EQ(merged.time_limit_s, 3600);
  EXPECT_EQ(merged.name, "script");
  EXPECT_EQ(merged.env, (std::map<std::string, std::string>{{"A", "1"}, {"B", "3"}}));
}

TEST(Directives, SplitDirectiveWords) {
  EXPECT_THAT(*SplitDirectiveWords(" -J 'a b' --x=\"c d\"e # rest"),
              ElementsAre("-J", "a b", "--x=c de"));
  EXPECT_THAT(*SplitDirectiveWords("--a=#1"), ElementsAre("--a=#1"));
}

}  // namespace
}  // namespace gsched::client
