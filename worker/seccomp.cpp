#include "worker/seccomp.h"

#include <sched.h>

#include <boost/json/array.hpp>

namespace gsched::worker {
namespace json = boost::json;

json::object JobSeccompProfile() {
  static constexpr const char* kDenied[] = {
      // Kernel keyrings.
      "add_key", "keyctl", "request_key",
      // eBPF and performance counters.
      "bpf", "perf_event_open",
      // Replacing the kernel or loading code into it.
      "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
      "create_module", "get_kernel_syms", "query_module",
      // Host file handles: the classic container escape.
      "open_by_handle_at", "name_to_handle_at",
      // Other processes' memory.
      "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
      // Mounts and the new mount API.
      "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount",
      "fspick", "move_mount", "open_tree", "mount_setattr",
      // New namespaces.
      "unshare", "setns",
      // The machine itself.
      "reboot", "swapon", "swapoff", "syslog", "acct", "settimeofday", "stime", "clock_settime",
      "clock_adjtime", "adjtimex", "iopl", "ioperm", "quotactl", "quotactl_fd", "lookup_dcookie",
      "nfsservctl", "sysfs", "_sysctl", "uselib", "ustat", "vm86", "vm86old", "vhangup",
      // Kernel attack surface without a use in batch jobs.
      "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init",
      "mbind", "move_pages", "set_mempolicy_home_node"};
  json::array denied;
  for (const char* name : kDenied)
    denied.emplace_back(name);
  constexpr int kEperm = 1;
  constexpr int kEnosys = 38;
  json::array syscalls = {
      {{"names", std::move(denied)}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", kEperm}},
      // clone3 passes its flags in memory, which seccomp cannot read: make it unknown.
      {{"names", {"clone3"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", kEnosys}},
      // clone with any namespace flag: one rule per flag (rules for one call are alternatives,
      // the conditions of one rule all must hold). The flags are the first argument on x86_64
      // and arm64.
      // personality: only the default, PER_LINUX32, UNAME26 and the query (0xffffffff).
      {{"names", {"personality"}},
       {"action", "SCMP_ACT_ERRNO"},
       {"errnoRet", kEperm},
       {"args",
        {{{"index", 0}, {"value", 0}, {"op", "SCMP_CMP_NE"}},
         {{"index", 0}, {"value", 8}, {"op", "SCMP_CMP_NE"}},
         {{"index", 0}, {"value", 0x20000}, {"op", "SCMP_CMP_NE"}},
         {{"index", 0}, {"value", 0x20008}, {"op", "SCMP_CMP_NE"}},
         {{"index", 0}, {"value", 0xffffffff}, {"op", "SCMP_CMP_NE"}}}}},
  };
  for (uint64_t flag : {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                        CLONE_NEWNET, CLONE_NEWCGROUP}) {
    syscalls.push_back(json::object{
        {"names", {"clone"}},
        {"action", "SCMP_ACT_ERRNO"},
        {"errnoRet", kEperm},
        {"args",
         {{{"index", 0}, {"value", flag}, {"valueTwo", flag}, {"op", "SCMP_CMP_MASKED_EQ"}}}}});
  }
  return json::object{
      {"defaultAction", "SCMP_ACT_ALLOW"},
      {"architectures",
       {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM"}},
      {"syscalls", std::move(syscalls)},
  };
}

}  // namespace gsched::worker
