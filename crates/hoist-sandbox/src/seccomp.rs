//! The seccomp filter for instances and builds. crun ships no built-in default profile, so this
//! is Docker's posture written as a deny list: everything an ordinary server process uses is
//! allowed; syscalls that administer the kernel, other processes or namespaces fail with EPERM.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use crate::SandboxError;

const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    // io_uring does I/O outside the syscalls this filter sees (and has been a steady source of
    // kernel exploits); Docker's default profile refuses it too.
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "vhangup",
];

pub(crate) fn profile() -> Result<LinuxSeccomp, SandboxError> {
    let denied = LinuxSyscallBuilder::default()
        .names(DENIED.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(nix::libc::EPERM as u32)
        .build()?;
    let mut syscalls = vec![denied];
    syscalls.extend(namespace_clones()?);
    // clone3 passes its flags in memory, where a filter cannot look; ENOSYS makes libc fall
    // back to clone(2), whose flags the rules below do check (Docker does the same).
    syscalls.push(
        LinuxSyscallBuilder::default()
            .names(vec!["clone3".to_string()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(nix::libc::ENOSYS as u32)
            .build()?,
    );
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
        .syscalls(syscalls)
        .build()?)
}

/// clone(2) with any CLONE_NEW* flag fails: new namespaces (a user namespace above all) would
/// hand the process capabilities over fresh kernel objects. One rule per flag, since rules for
/// one syscall combine with OR and a masked compare can only test one pattern.
fn namespace_clones() -> Result<Vec<LinuxSyscall>, SandboxError> {
    const FLAGS: &[u64] = &[
        nix::libc::CLONE_NEWNS as u64,
        nix::libc::CLONE_NEWCGROUP as u64,
        nix::libc::CLONE_NEWUTS as u64,
        nix::libc::CLONE_NEWIPC as u64,
        nix::libc::CLONE_NEWUSER as u64,
        nix::libc::CLONE_NEWPID as u64,
        nix::libc::CLONE_NEWNET as u64,
    ];
    FLAGS
        .iter()
        .map(|&flag| {
            Ok(LinuxSyscallBuilder::default()
                .names(vec!["clone".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(nix::libc::EPERM as u32)
                .args(vec![
                    LinuxSeccompArgBuilder::default()
                        .index(0usize)
                        .value(flag)
                        .value_two(flag)
                        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                        .build()?,
                ])
                .build()?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action_of(name: &str) -> Option<(LinuxSeccompAction, Option<u32>)> {
        let p = profile().unwrap();
        p.syscalls().as_ref()?.iter().find_map(|rule| {
            (rule.names().iter().any(|n| n == name) && rule.args().is_none())
                .then(|| (rule.action(), rule.errno_ret()))
        })
    }

    #[test]
    fn io_uring_is_refused_with_eperm() {
        for name in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
            assert_eq!(
                action_of(name),
                Some((
                    LinuxSeccompAction::ScmpActErrno,
                    Some(nix::libc::EPERM as u32)
                )),
                "{name}"
            );
        }
    }

    #[test]
    fn ordinary_syscalls_stay_allowed() {
        let p = profile().unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        for name in ["read", "openat", "epoll_wait", "io_submit"] {
            assert_eq!(action_of(name), None, "{name}");
        }
    }
}
