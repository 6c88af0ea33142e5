// Files a job could have planted (worker/job_files.h): symlinks, FIFOs, hard links and
// directories are refused without blocking, and atomic writes replace a planted link instead of
// writing through it.
#include "worker/job_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "worker_test_util.h"

namespace gsched::worker {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(JobFiles, ReadsOnlyPlainFiles) {
  TempDir dir;
  std::string d = dir.path();
  std::ofstream(d + "/plain") << "hello";
  std::ofstream(d + "/secret") << "host secret";
  fs::create_symlink(d + "/secret", d + "/link");
  ASSERT_EQ(mkfifo((d + "/fifo").c_str(), 0600), 0);
  ASSERT_EQ(link((d + "/secret").c_str(), (d + "/hard").c_str()), 0);
  fs::create_directory(d + "/dir");

  EXPECT_EQ(ReadRegularFile(d + "/plain").value_or(""), "hello");
  EXPECT_EQ(ReadRegularFile(d + "/plain", 2).value_or(""), "he");
  EXPECT_EQ(ReadRegularFile(d + "/missing").status().code(), StatusCode::kNotFound);
  // No writer on the FIFO: a plain open would block this test forever.
  for (const char* name : {"link", "fifo", "hard", "dir"}) {
    auto r = ReadRegularFile(d + "/" + name);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << name;
    EXPECT_NE(r.status().message().find("refusing"), std::string::npos) << r.status().ToString();
  }
  EXPECT_TRUE(RegularFileMtimeNs(d + "/plain").has_value());
  EXPECT_FALSE(RegularFileMtimeNs(d + "/link").has_value());
  EXPECT_FALSE(RegularFileMtimeNs(d + "/fifo").has_value());
}

TEST(JobFiles, AtomicWritesReplacePlantedLinksAndNeverWriteThroughThem) {
  TempDir dir;
  std::string d = dir.path();
  std::ofstream(d + "/host-file") << "precious";
  // Both the target and its tmp name are links to the host file.
  fs::create_symlink(d + "/host-file", d + "/exit");
  fs::create_symlink(d + "/host-file", d + "/exit.tmp");
  ASSERT_TRUE(WriteFileAtomic(d + "/exit", "exit 0\n").ok());
  EXPECT_EQ(Slurp(d + "/host-file"), "precious");
  EXPECT_FALSE(fs::is_symlink(d + "/exit"));
  EXPECT_EQ(Slurp(d + "/exit"), "exit 0\n");
  struct stat st {};
  ASSERT_EQ(stat((d + "/exit").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(JobFiles, MakeDirectoryRefusesALinkInItsPlace) {
  TempDir dir;
  std::string d = dir.path();
  fs::create_directory(d + "/elsewhere");
  fs::create_symlink(d + "/elsewhere", d + "/job");
  EXPECT_FALSE(MakeDirectory(d + "/job", 0700).ok());
  ASSERT_TRUE(MakeDirectory(d + "/real", 0711).ok());
  struct stat st {};
  ASSERT_EQ(stat((d + "/real").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0711u);
  ASSERT_TRUE(MakeDirectory(d + "/real", 0700).ok());  // An existing one is fixed up.
  ASSERT_EQ(stat((d + "/real").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

}  // namespace
}  // namespace gsched::worker
