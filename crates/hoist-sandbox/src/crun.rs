//! The crun driver. Sandboxes are created (`crun create`: instances ahead of time, builds just
//! before they run) and then started; see `process.rs` for how their init is watched.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::SandboxError;

#[derive(Debug, Clone)]
pub struct Crun {
    binary: PathBuf,
    state_root: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// The app's own exit from the sandbox init's: tini exits 128+N when the app was killed by
    /// signal N, so an app OOM-killed under tini shows as exit code 137, which is signal 9.
    pub fn through_init(self) -> ExitStatus {
        match self.code {
            Some(c) if c > 128 && c < 160 => ExitStatus {
                code: None,
                signal: Some(c - 128),
            },
            _ => self,
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            (None, None) => write!(f, "unknown exit"),
        }
    }
}

impl Crun {
    /// `state_root` is crun's `--root`: keeping Hoist's containers apart from anybody else's
    /// lets a restarted server list and remove exactly what it left behind.
    pub fn new(state_root: impl Into<PathBuf>) -> Crun {
        Crun {
            binary: PathBuf::from("crun"),
            state_root: state_root.into(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.state_root);
        c
    }

    /// `crun create`: sets the container up (namespaces, mounts, cgroup, seccomp) and leaves
    /// its init waiting, before the app's first instruction, until [`Crun::start`]. Its
    /// stdout/stderr are the pipes given here; the caller waits for this child to exit.
    pub fn create(&self, id: &str, bundle: &Path, pid_file: &Path) -> Result<Child, SandboxError> {
        self.cmd()
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(SandboxError::io("starting crun create"))
    }

    /// Lets a created container run its process.
    ///
    /// This is what `crun start` does (write to the container's exec fifo, then remove it, which
    /// is how crun tells "created" from "running"), done in-process: starting the crun binary
    /// costs 6 ms on these machines, the write 0.1 ms, and this is on the cold-start path.
    /// Falls back to `crun start` if the fifo is not where crun keeps it.
    pub async fn start(&self, id: &str) -> Result<(), SandboxError> {
        let fifo = self.state_root.join(id).join("exec.fifo");
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .and_then(|mut f| f.write_all(b"0"));
        match direct {
            Ok(()) => {
                let _ = std::fs::remove_file(&fifo);
                Ok(())
            }
            // ENXIO: nobody reads the fifo, i.e. the container's init is gone.
            Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => Err(SandboxError::Host(
                "the container exited before it was started".into(),
            )),
            Err(_) => self.simple(&["start", id]).await,
        }
    }

    /// Sends `signal` to every process of the container.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), SandboxError> {
        self.simple(&["kill", "--all", id, signal]).await
    }

    /// Sends `signal` to the container's init only, which passes it on to the app's process
    /// group: each process gets it once (with `--all` the app's main process would get it
    /// from crun and again from the init).
    pub async fn kill_init(&self, id: &str, signal: &str) -> Result<(), SandboxError> {
        self.simple(&["kill", id, signal]).await
    }

    /// Removes the container's state; `force` kills it first if it still runs.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), SandboxError> {
        if force {
            self.simple(&["delete", "--force", id]).await
        } else {
            self.simple(&["delete", id]).await
        }
    }

    /// SIGKILLs every crun process that works on this state root: after a `kill -9` of the
    /// server they run on unsupervised. Only call it before this server starts any.
    pub fn kill_stale_processes(&self) {
        let root = self.state_root.as_os_str().as_encoded_bytes();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut killed = Vec::new();
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours = args.windows(2).any(|w| w[0] == b"--root" && w[1] == root);
            if ours && pid != std::process::id() as i32 {
                tracing::info!(pid, "killing a crun left by an earlier run");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                killed.push(entry.path());
            }
        }
        // Their containers are cleaned up next; a crun still writing state would race that.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while killed.iter().any(|p| p.exists()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Removes every container state dir under the state root. Only for cleanup at start,
    /// after `delete` has had its chance: it forgets containers without stopping them.
    pub fn remove_state_dirs(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.state_root) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }

    pub async fn list(&self) -> Result<Vec<String>, SandboxError> {
        let out = self
            .cmd()
            .args(["list", "--quiet"])
            .output()
            .await
            .map_err(SandboxError::io("running crun list"))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    async fn simple(&self, args: &[&str]) -> Result<(), SandboxError> {
        let out = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(SandboxError::io(format!("running crun {}", args.join(" "))))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SandboxError::Command {
                command: format!("crun {}", args.join(" ")),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExitStatus;

    #[test]
    fn the_inits_128_plus_n_is_the_apps_signal() {
        let code = |c| ExitStatus {
            code: Some(c),
            signal: None,
        };
        let signal = |s| ExitStatus {
            code: None,
            signal: Some(s),
        };
        assert_eq!(code(137).through_init(), signal(9));
        assert_eq!(code(143).through_init(), signal(15));
        assert_eq!(code(3).through_init(), code(3));
        assert_eq!(code(128).through_init(), code(128));
        assert_eq!(signal(9).through_init(), signal(9));
    }
}
