//! Reading a config file (`hoist.toml`, `leapcell.yaml`) out of a checked-out repository,
//! whose contents the repository's author decides, symlinks included.

use std::path::Path;

use hoist_core::SpecError;

/// A config file of the app root (already resolved without symlinks), if there is one. It
/// must be a regular file: a symlinked `hoist.toml` must not make the server read a host file
/// (and quote it back in an error message). Opened with `O_NOFOLLOW`, so a link cannot slip in
/// between a check and the read either.
pub(crate) fn read_config(
    app_root: &Path,
    file: &'static str,
) -> Result<Option<String>, SpecError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |message: String| SpecError::file(file, message);
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(app_root.join(file))
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(refuse(
                "is a symlink; config files must be regular files of the repository".into(),
            ));
        }
        Err(e) => return Err(refuse(format!("cannot be read: {e}"))),
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(refuse("is not a regular file".into()));
    }
    // Config files are small; a huge one is refused after the limit's worth of reading,
    // rather than filling the server's memory or being cut silently.
    let mut bytes = Vec::new();
    f.by_ref()
        .take(CONFIG_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > CONFIG_LIMIT {
        return Err(refuse(format!("is larger than {} MB", CONFIG_LIMIT >> 20)));
    }
    let text = String::from_utf8(bytes).map_err(|_| refuse("is not valid UTF-8 text".into()))?;
    Ok(Some(text))
}

/// The most of a config file read: far beyond any real `hoist.toml` (the env alone is capped
/// at 3 KB).
const CONFIG_LIMIT: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_is_read() {
        let dir = std::env::temp_dir().join(format!("hoist-config-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("app")).unwrap();
        std::fs::write(dir.join("host.toml"), "[env]\nMARK = \"leaked\"\n").unwrap();
        std::fs::write(dir.join("app/leapcell.yaml"), "port: 8080\n").unwrap();
        std::os::unix::fs::symlink(dir.join("host.toml"), dir.join("app/hoist.toml")).unwrap();
        std::fs::create_dir(dir.join("app/leapcell.yml")).unwrap();
        let app = dir.join("app");

        assert_eq!(
            read_config(&app, "leapcell.yaml").unwrap().as_deref(),
            Some("port: 8080\n")
        );
        assert_eq!(read_config(&app, "missing.toml").unwrap(), None);
        let err = read_config(&app, "hoist.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "hoist.toml: is a symlink; config files must be regular files of the repository"
        );
        let err = read_config(&app, "leapcell.yml").unwrap_err().to_string();
        assert!(err.starts_with("leapcell.yml: "), "{err}");
        // Past the limit: refused, not cut where the limit falls.
        let big = format!("port = 8080\n{}", "# padding\n".repeat(120_000));
        std::fs::write(app.join("big.toml"), big).unwrap();
        let err = read_config(&app, "big.toml").unwrap_err().to_string();
        assert_eq!(err, "big.toml: is larger than 1 MB");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
