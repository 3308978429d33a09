//! The container's init process.
//!
//! Builds and instances are made with `crun create` (instances ahead of time, in the warm
//! pool), which exits once the container is set up; the container's init is then re-parented to
//! this server, which is a child subreaper, and watched through a pidfd. Being its parent is what lets us read its exit
//! status (code, signal) rather than only learn that it is gone.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use tokio::io::unix::AsyncFd;

use crate::SandboxError;
use crate::crun::ExitStatus;

/// Makes this process the reaper of orphaned descendants, so a container init whose `crun
/// create` has exited becomes our child. Process-wide and idempotent.
pub fn become_subreaper() -> Result<(), SandboxError> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| SandboxError::Host(format!("cannot become a child subreaper: {e}")))
}

#[derive(Debug)]
pub(crate) enum Process {
    Adopted(Adopted),
}

#[derive(Debug)]
pub(crate) struct Adopted {
    pid: i32,
    pidfd: AsyncFd<OwnedFd>,
    exit: Option<ExitStatus>,
}

const UNKNOWN: ExitStatus = ExitStatus {
    code: None,
    signal: None,
};

impl Adopted {
    pub(crate) fn open(pid: i32) -> Result<Adopted, SandboxError> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(SandboxError::io(format!(
                "watching container process {pid}"
            ))(std::io::Error::last_os_error()));
        }
        // SAFETY: the descriptor was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: an OwnedFd is open and keeps returning the same descriptor until dropped,
        // which only happens with the AsyncFd itself.
        let pidfd = unsafe { AsyncFd::register(fd) }
            .map_err(|e| SandboxError::io("registering a pidfd")(e.into()))?;
        Ok(Adopted {
            pid,
            pidfd,
            exit: None,
        })
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Reaps the process if it has exited.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let status = match waitid(
            Id::PIDFd(self.pidfd.get_ref().as_fd()),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
        ) {
            Ok(WaitStatus::Exited(_, code)) => ExitStatus {
                code: Some(code),
                signal: None,
            },
            Ok(WaitStatus::Signaled(_, signal, _)) => ExitStatus {
                code: None,
                signal: Some(signal as i32),
            },
            Ok(_) => return None,
            // Not our child (the server is not a subreaper, or someone else reaped it): all
            // we can know is that it is gone, which a readable pidfd tells.
            Err(Errno::ECHILD) => {
                if pidfd_exited(self.pidfd.get_ref()) {
                    UNKNOWN
                } else {
                    return None;
                }
            }
            Err(_) => return None,
        };
        self.exit = Some(status);
        self.exit
    }

    pub(crate) async fn wait(&mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            // The readiness is cleared before re-checking, so an exit between the check and
            // the next await still wakes us.
            match self.pidfd.readable().await {
                Ok(mut guard) => guard.clear_ready(),
                Err(_) => return UNKNOWN,
            }
        }
    }
}

/// A pidfd polls readable once its process has exited.
fn pidfd_exited(fd: &OwnedFd) -> bool {
    let mut pfd = nix::libc::pollfd {
        fd: fd.as_raw_fd(),
        events: nix::libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { nix::libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & nix::libc::POLLIN != 0
}

impl Process {
    pub(crate) async fn wait(&mut self) -> ExitStatus {
        match self {
            Process::Adopted(a) => a.wait().await,
        }
    }

    pub(crate) fn running(&mut self) -> bool {
        match self {
            Process::Adopted(a) => a.try_wait().is_none(),
        }
    }

    /// SIGKILL to the container's init.
    pub(crate) fn kill(&mut self) {
        match self {
            Process::Adopted(a) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(a.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
