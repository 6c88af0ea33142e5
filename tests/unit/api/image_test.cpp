// What a job's image may be at submit, how OCI references are read, and the loader variables a
// job may not set (scheduler/api/image.h).
#include "scheduler/api/image.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "scheduler/api/codec.h"

namespace gsched::api {
namespace {

TEST(ImageReference, ReadsLikeContainerEngines) {
  struct Case {
    std::string text;
    ImageReference want;
  };
  const std::string digest =
      "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  std::vector<Case> cases = {
      {"busybox", {"docker.io", "library/busybox", "latest", ""}},
      {"busybox:1.36", {"docker.io", "library/busybox", "1.36", ""}},
      {"lab/trainer", {"docker.io", "lab/trainer", "latest", ""}},
      {"nvcr.io/nvidia/pytorch:25.01-py3", {"nvcr.io", "nvidia/pytorch", "25.01-py3", ""}},
      {"127.0.0.1:5000/demo/busybox:1", {"127.0.0.1:5000", "demo/busybox", "1", ""}},
      {"localhost/x", {"localhost", "x", "latest", ""}},
      {"ghcr.io/lab/trainer@" + digest, {"ghcr.io", "lab/trainer", "", digest}},
      {"ghcr.io/lab/trainer:v2@" + digest, {"ghcr.io", "lab/trainer", "v2", digest}},
      {"a.b/c__d/e-f.g", {"a.b", "c__d/e-f.g", "latest", ""}},
  };
  for (const auto& c : cases) {
    auto ref = ParseImageReference(c.text);
    ASSERT_TRUE(ref.ok()) << c.text << ": " << ref.status().ToString();
    EXPECT_EQ(*ref, c.want) << c.text;
  }
  EXPECT_EQ(ParseImageReference("ghcr.io/lab/trainer:v2")->ToString(), "ghcr.io/lab/trainer:v2");
}

TEST(ImageReference, RefusesWhatNoRegistryServes) {
  for (const char* bad : {"", "UPPER/case", "a//b", "a/", "-x", "x:", "x:-tag", "x@sha256:12",
                          "x@md5:0123", "host:99999/x", "a..b/c", ".a/b", "a b"}) {
    EXPECT_FALSE(ParseImageReference(bad).ok()) << bad;
  }
}

TEST(CheckImage, RefusesObviouslyInvalidImagesNamingTheField) {
  for (const char* ok : {"/images/pytorch-24.10", "/", "busybox:1", "127.0.0.1:5000/demo/busybox:1",
                         "/srv/images/a.b/c"}) {
    EXPECT_TRUE(CheckImage(ok).ok()) << ok << ": " << CheckImage(ok).ToString();
  }
  for (const char* bad :
       {"", "--privileged", "-v", "/images/../etc", "/images/./x", "./rootfs", "../rootfs",
        "~/rootfs", "/images//x", "/images/x\n", "/a b", "a\tb", "/images/\x7f"}) {
    Status st = CheckImage(bad);
    EXPECT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.field(), "image") << bad;
  }
}

TEST(LoaderVariables, AreTheDynamicLoadersAndGlibcsUnsecureOnes) {
  for (const char* name : {"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_", "GCONV_PATH",
                           "GLIBC_TUNABLES", "HOSTALIASES", "NLSPATH", "RES_OPTIONS"})
    EXPECT_TRUE(IsLoaderVariable(name)) << name;
  for (const char* name : {"PATH", "HOME", "OLD_PRELOAD", "CUDA_VISIBLE_DEVICES", "TMPDIR", "LD"})
    EXPECT_FALSE(IsLoaderVariable(name)) << name;
}

TEST(SubmitBody, RefusesBadImagesAndLoaderVariablesButStoredJobsStillDecode) {
  auto submit = [](const std::string& text) {
    return DecodeSubmitBody(boost::json::parse(text)).status();
  };
  Status st = submit(R"({"image": "--privileged", "command": ["sh"]})");
  EXPECT_EQ(st.field(), "image") << st.ToString();
  st = submit(R"({"image": "/i", "command": ["sh"], "env": {"LD_PRELOAD": "/tmp/x.so"}})");
  EXPECT_EQ(st.field(), "env.LD_PRELOAD") << st.ToString();
  EXPECT_NE(st.message().find("loader"), std::string::npos) << st.ToString();
  st = submit(
      R"({"jobs": [{"image": "/i", "command": ["a"]}, {"image": "/x/../y", "command": ["b"]}]})");
  EXPECT_EQ(st.field(), "jobs[1].image") << st.ToString();
  EXPECT_TRUE(submit(R"({"image": "/i", "command": ["sh"], "env": {"LD": "1"}})").ok());
  // A record written before these rules (or by an admin tool) still reads: the rules are for
  // new submissions only.
  EXPECT_TRUE(
      DecodeJobSpec(boost::json::parse(
                        R"({"image": "rel/../x", "command": ["sh"], "env": {"LD_PRELOAD": "x"}})"))
          .ok());
}

}  // namespace
}  // namespace gsched::api
