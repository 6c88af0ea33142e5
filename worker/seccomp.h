// The seccomp profile of jobs in OCI runtimes (runc/crun): allow by default, deny the calls that
// attack the kernel or escape the container, in the spirit of the container engines' default
// profiles. Denied calls fail with EPERM (`clone3` with ENOSYS, so that C libraries fall back to
// `clone`, whose namespace flags are filtered).
//
// Denied: kernel keyrings (keyctl, add_key, request_key), eBPF, kexec, kernel modules,
// open_by_handle_at (the classic escape), perf_event_open, ptrace and cross-process memory
// access, mounts and the new mount API, pivot_root/chroot, new namespaces (unshare, setns,
// clone with CLONE_NEW*), swap, reboot, clock setting, raw I/O ports, quotactl, acct,
// userfaultfd, io_uring, personality changes other than the default, and obsolete calls.
// Syscall names the runtime's libseccomp does not know are skipped by the runtime.
//
// Threading: pure.
#pragma once

#include <boost/json/object.hpp>

namespace gsched::worker {

// `linux.seccomp` of an OCI config.
boost::json::object JobSeccompProfile();

}  // namespace gsched::worker
