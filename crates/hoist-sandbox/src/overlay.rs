//! Root filesystems are overlay mounts: the runtime is the bottom layer, a deployment's app
//! layer sits on it, and only a build gets an upper (writable) dir. Layers are never copied,
//! which is what keeps an instance start in milliseconds and disk use flat.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::SandboxError;

#[derive(Debug)]
pub struct Overlay {
    target: PathBuf,
    mounted: bool,
}

impl Overlay {
    /// Mounts `lowers` (topmost first) at `target`. Without `upper` the mount is read-only
    /// by construction: overlayfs has nowhere to write.
    pub fn mount(
        lowers: &[&Path],
        upper: Option<(&Path, &Path)>,
        target: &Path,
    ) -> Result<Overlay, SandboxError> {
        std::fs::create_dir_all(target).map_err(SandboxError::io(format!(
            "creating mount point {}",
            target.display()
        )))?;
        let lower = lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut data = format!("lowerdir={lower}");
        if let Some((upper, work)) = upper {
            for dir in [upper, work] {
                std::fs::create_dir_all(dir)
                    .map_err(SandboxError::io(format!("creating {}", dir.display())))?;
            }
            data.push_str(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                work.display()
            ));
        }
        // nosuid: a build runs as root and could leave a setuid binary in its layer; on the
        // host side of the mount that must not mean anything. (crun's own bind of the root
        // drops these flags inside the sandbox; `seal_container_root` puts them back there.)
        let flags = if upper.is_none() {
            MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID
        } else {
            MsFlags::MS_NODEV | MsFlags::MS_NOSUID
        };
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            flags,
            Some(data.as_str()),
        )
        .map_err(|source| SandboxError::Mount {
            target: target.to_path_buf(),
            source,
        })?;
        Ok(Overlay {
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn unmount(mut self) -> Result<(), SandboxError> {
        self.mounted = false;
        unmount(&self.target)
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if self.mounted {
            let _ = unmount(&self.target);
        }
    }
}

/// Remounts `/` of the container whose init is `pid` (created, not yet started) `nodev,nosuid`,
/// and read-only if `readonly`.
///
/// crun 1.8 (Debian 12's) bind-mounts the root onto itself and then remounts it with only
/// MS_BIND (and MS_RDONLY for `root.readonly`), which clears `nodev` and `nosuid` whatever the
/// mount under it had, and no OCI field sets flags on the root. So the flags are set here,
/// before the sandbox's process runs. A mount namespace can only be joined by a thread that
/// shares no filesystem attributes (root, cwd) with others, hence the short-lived thread that
/// unshares them first; it ends with the remount, so no other code ever runs in that namespace.
pub(crate) fn seal_container_root(pid: i32, readonly: bool) -> Result<(), SandboxError> {
    let ns_path = format!("/proc/{pid}/ns/mnt");
    let ns =
        std::fs::File::open(&ns_path).map_err(SandboxError::io(format!("opening {ns_path}")))?;
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
    if readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    let remount = std::thread::spawn(move || -> nix::Result<()> {
        use nix::sched::{CloneFlags, setns, unshare};
        unshare(CloneFlags::CLONE_FS)?;
        setns(&ns, CloneFlags::CLONE_NEWNS)?;
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
    });
    let result = remount
        .join()
        .map_err(|_| SandboxError::Host("the root remount thread panicked".into()))?;
    result.map_err(|source| SandboxError::Mount {
        target: PathBuf::from(format!("/ of container process {pid}")),
        source,
    })
}

/// Detaches a mount; a mount that is already gone is not an error, so cleanup is idempotent.
pub fn unmount(target: &Path) -> Result<(), SandboxError> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(source) => Err(SandboxError::Mount {
            target: target.to_path_buf(),
            source,
        }),
    }
}
